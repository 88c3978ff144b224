"""Put named byte strings (the manifest) into a TFLite file's model metadata; the result is a new file.

    python -c "from quantize.metadata import with_metadata; print(len(with_metadata(open('m.tflite','rb').read(), {'note': b'hi'})))"
    python -m quantize.metadata pxby_edge/assets/demo.tflite --synth 1500 --seed 0   # re-stamp the geometry

Written with the flatbuffer object API that ships with ai-edge-litert; read back on the device by
``pxby_edge.tflite_file`` without it. An entry of the same name is replaced, never duplicated.
"""

from __future__ import annotations


def with_metadata(model: bytes, entries: dict[str, bytes]) -> bytes:
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    inline_buffers(m, model)
    m.metadata = [md for md in (m.metadata or []) if _name(md.name) not in entries]
    m.buffers = list(m.buffers or [])
    for name, data in entries.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(bytes(data), dtype=np.uint8)
        m.buffers.append(buf)
        md = schema.MetadataT()
        md.name = name
        md.buffer = len(m.buffers) - 1
        m.metadata.append(md)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def inline_buffers(m, model: bytes) -> None:
    """Bring the buffers stored after the flatbuffer into it, in the unpacked model ``m`` of ``model``.

    ai-edge-quantizer may store weights after the flatbuffer (offset/size from the file start);
    re-packing keeps only the flatbuffer, so they must be inline first (models here are far below 2 GB).
    """
    import numpy as np

    for buf in m.buffers or []:
        if buf.offset and buf.offset > 1 and buf.size:
            buf.data = np.frombuffer(model, dtype=np.uint8, count=buf.size, offset=buf.offset)
            buf.offset, buf.size = 0, 0


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def with_geometry(model: bytes, streams, source: str) -> bytes:
    """The model file with its manifest's geometry section measured from token ``streams`` (format 1.1)."""
    from pxby_edge.manifest import FORMAT_VERSION, GEOMETRY_SOURCE, MANIFEST_METADATA_NAME, read_manifest
    from pxby_edge.plan import measure_geometry

    manifest = read_manifest(model)
    geometry = {**measure_geometry(streams, manifest.vocab), GEOMETRY_SOURCE: source}
    manifest = manifest.replace(geometry=geometry, format_version=FORMAT_VERSION)
    return with_metadata(model, {MANIFEST_METADATA_NAME: manifest.to_bytes()})


def _main(argv=None) -> int:
    """Re-stamp a model file's geometry from the synthetic dataset its checkpoint was trained on."""
    import argparse
    from pathlib import Path

    from pxby_edge.manifest import read_manifest
    from quantize.calibrate import synthetic_streams
    from quantize.export import atomic_write

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("model", type=Path)
    ap.add_argument("--synth", type=int, required=True, help="items of `pxby-edge dataset synth --n N`")
    ap.add_argument("--seed", type=int, default=0, help="its --seed")
    args = ap.parse_args(argv)
    data = args.model.read_bytes()
    streams = synthetic_streams(args.synth, read_manifest(data).slicing, args.seed)
    source = f"pxby-edge dataset synth --n {args.synth} --seed {args.seed} (regenerated, all items)"
    atomic_write(args.model, with_geometry(data, streams, source))
    print(read_manifest(args.model.read_bytes()).to_dict()["geometry"])
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
