"""Put named byte strings (the manifest) into a TFLite file's model metadata; the result is a new file.

    python -c "from quantize.metadata import with_metadata; print(len(with_metadata(open('m.tflite','rb').read(), {'note': b'hi'})))"

Written with the flatbuffer object API that ships with ai-edge-litert; read back on the device by
``pxby_edge.tflite_file`` without it. An entry of the same name is replaced, never duplicated.
"""

from __future__ import annotations


def with_metadata(model: bytes, entries: dict[str, bytes]) -> bytes:
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for buf in m.buffers or []:
        # ai-edge-quantizer may store weights after the flatbuffer (offset/size from the file start);
        # re-packing keeps only the flatbuffer, so bring them inline (models here are far below 2 GB).
        if buf.offset and buf.offset > 1 and buf.size:
            buf.data = np.frombuffer(model, dtype=np.uint8, count=buf.size, offset=buf.offset)
            buf.offset, buf.size = 0, 0
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


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
