"""Hostile inputs to the command line: each is answered with one `error:` line, exit 2, nothing written.

    python -m pytest -q tests/test_hostile_inputs.py

The table ``HOSTILE_INPUTS`` holds one row per class of bad input: the command line (``{tmp}``
is the test's folder, ``{model}`` the bundled model), a function that makes the hostile files, and
a fragment the one-line message must hold. ``assert_refused`` runs a row and checks that the
folder is exactly as it was before the command (no output, no partial set, no temporary file).
Hostile *model files* (the bundled file with one manifest field or tensor made hostile) are rows too,
through ``generate --backend numpy`` and ``inspect``; the mutation fuzz of model files is test_model_fuzz.py.
Full disks, unwritable folders and device nodes need the machine's help and have their own tests
below the table.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from scipy.io import wavfile

from pxby_edge.cli import main
from pxby_edge.generate import default_model_path

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

ROOT = Path(__file__).resolve().parent.parent


# -- hostile files ---------------------------------------------------------------------------------


def wav_with_rate_zero(tmp: Path) -> None:
    wavfile.write(tmp / "in.wav", 8000, np.zeros(100, np.int16))
    data = bytearray((tmp / "in.wav").read_bytes())
    data[24:28] = struct.pack("<I", 0)  # nSamplesPerSec
    (tmp / "in.wav").write_bytes(bytes(data))


def wav_without_format_chunk(tmp: Path) -> None:
    """RIFF/WAVE with a data chunk only: scipy used to answer "cannot access local variable 'fs'"."""
    body = b"WAVE" + b"data" + struct.pack("<I", 8) + bytes(8)
    (tmp / "in.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def wav_truncated(tmp: Path) -> None:
    wavfile.write(tmp / "in.wav", 8000, np.zeros(1000, np.int16))
    (tmp / "in.wav").write_bytes((tmp / "in.wav").read_bytes()[:100])


def npy_3d(tmp: Path) -> None:
    np.save(tmp / "in.npy", np.ones((2, 3, 4), np.float32))


def npy_nan(tmp: Path) -> None:
    np.save(tmp / "in.npy", np.full((2, 50), np.nan, np.float32))


def text_file_named_audio(tmp: Path) -> None:
    (tmp / "in.wav").write_text("hello, not a sound")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(tmp: Path) -> None:
    """A 20000×20000 PNG header over a few bytes of data: refused before a pixel is decoded."""
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(20001)))
    (tmp / "in.png").write_bytes(data + png_chunk(b"IEND", b""))


def png_large(tmp: Path) -> None:
    """4096×4096 (under PIL's own bomb limit, over what a sprite may be)."""
    ihdr = struct.pack(">IIBBBBB", 4096, 4096, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(4097)))
    (tmp / "in.png").write_bytes(data + png_chunk(b"IEND", b""))


def gif_many_large_frames(tmp: Path) -> None:
    """5 frames of 2000×2000 (20 M pixels) in a few tens of KB: each frame passes, the animation does not."""
    from PIL import Image

    frames = [Image.new("P", (2000, 2000), k % 4) for k in range(5)]
    frames[0].save(tmp / "in.gif", save_all=True, append_images=frames[1:])


def a_file(tmp: Path) -> None:
    (tmp / "f").write_text("I am a file, not a folder")


def npy_header(shape: tuple, descr: str = "<i8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npz_header_bomb(tmp: Path) -> None:
    """A member whose npy header declares 250 M int64 (2 GB) over a few bytes: the header is the bound."""
    with zipfile.ZipFile(tmp / "in.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("labels.npy", npy_header((250_000_000,)) + bytes(4096))


def npz_zip_bomb(tmp: Path) -> None:
    """A real zip bomb: 40 M int64 zeros (320 MB) deflated (fast level) to about a megabyte."""
    n = 40_000_000
    with zipfile.ZipFile(tmp / "in.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("labels.npy", "w", force_zip64=True) as fh:
            fh.write(npy_header((n,)))
            block = bytes(8 << 20)
            for _ in range(n * 8 // len(block)):
                fh.write(block)


def npz_object_array(tmp: Path) -> None:
    with zipfile.ZipFile(tmp / "in.npz", "w") as zf:
        zf.writestr("labels.npy", npy_header((3,), "|O") + bytes(24))


def npz_nan_rate(tmp: Path) -> None:
    np.savez(tmp / "in.npz", labels=np.array([[3], [2]]), audio_rate=np.float64("nan"))


def npz_ids_out_of_range(tmp: Path) -> None:
    np.savez(tmp / "in.npz", labels=np.array([[999], [-4]]))


# -- hostile model files: the bundled file with one thing made hostile -----------------------------

DEEP = "nested 5000 deep"  # a value too deep to build as a Python object: spliced in as JSON text


def _with_manifest(change) -> Callable[[Path], None]:
    """A ``make`` writing {tmp}/model.tflite: the bundled file with its manifest changed by ``change(dict)``,
    rewritten with the project's own metadata writer."""

    def make(tmp: Path) -> None:
        import json

        pytest.importorskip("ai_edge_litert.schema_py_generated", reason="rewriting a model file needs ai-edge-litert")
        from pxby_edge.manifest import MANIFEST_METADATA_NAME, read_manifest
        from quantize.metadata import with_metadata

        data = default_model_path().read_bytes()
        d = read_manifest(data).to_dict()
        change(d)
        text = json.dumps(d).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
        (tmp / "model.tflite").write_bytes(with_metadata(data, {MANIFEST_METADATA_NAME: text.encode()}))

    return make


def _set(*path_and_value):
    *path, value = path_and_value

    def change(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return _with_manifest(change)


def negative_constant_shape(tmp: Path) -> None:
    """A constant tensor of the graph given a negative first dimension (through the schema's object API)."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="rewriting a model file needs ai-edge-litert")
    flatbuffers = pytest.importorskip("flatbuffers")
    m = schema.ModelT.InitFromPackedBuf(bytearray(default_model_path().read_bytes()), 0)
    sub = m.subgraphs[0]
    const = next(t for t in sub.tensors if len(m.buffers[t.buffer].data if m.buffers[t.buffer].data is not None else ()) > 64)
    const.shape = [-int(const.shape[0]), *list(const.shape[1:])]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    (tmp / "model.tflite").write_bytes(bytes(builder.Output()))


HOSTILE_MODELS = {  # name -> (make, fragment of the one-line answer)
    "audio-rate-nan": (_set("audio_rate", float("nan")), "audio_rate nan"),
    "audio-rate-inf": (_set("audio_rate", float("inf")), "audio_rate inf"),
    "audio-rate-minus-inf": (_set("audio_rate", -float("inf")), "audio_rate -inf"),
    "audio-rate-1e300": (_set("audio_rate", 1e300), "audio_rate 1e"),
    "audio-rate-negative": (_set("audio_rate", -2048.0), "audio_rate -2048"),
    "palette-entry-999": (_set("vocab", "palette", 5, [999, 0, 0]), "palette entry"),
    "slicing-0": (_set("slicing", "audio", 0), "slicing"),
    "nested-json": (_set("calibration", DEEP), "nested too deeply"),
    "negative-constant-shape": (negative_constant_shape, "negative dimension"),
}


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One class of hostile input: ``args`` ({tmp}: the folder, {model}: the bundled model), the
    files ``make`` writes into the folder first, and a fragment of the one-line answer."""

    name: str
    args: tuple
    message: str
    make: Optional[Callable[[Path], None]] = None


HOSTILE_INPUTS = [
    Hostile("wav-rate-0", ("tokenize", "--audio", "{tmp}/in.wav", "-o", "{tmp}/o.npz"), "at 0 Hz", wav_with_rate_zero),
    Hostile("wav-no-fmt", ("tokenize", "--audio", "{tmp}/in.wav", "-o", "{tmp}/o.npz"), "no format chunk", wav_without_format_chunk),
    Hostile("wav-truncated", ("tokenize", "--audio", "{tmp}/in.wav", "-o", "{tmp}/o.npz"), "truncated", wav_truncated),
    Hostile("npy-3d", ("tokenize", "--audio", "{tmp}/in.npy", "-o", "{tmp}/o.npz"), "shape (2, 3, 4)", npy_3d),
    Hostile("npy-nan", ("tokenize", "--audio", "{tmp}/in.npy", "-o", "{tmp}/o.npz"), "NaN", npy_nan),
    Hostile("text-as-audio", ("tokenize", "--audio", "{tmp}/in.wav", "-o", "{tmp}/o.npz"), "not an audio file", text_file_named_audio),
    Hostile("png-bomb", ("tokenize", "--image", "{tmp}/in.png", "-o", "{tmp}/o.npz"), "too large", png_bomb),
    Hostile("png-large", ("tokenize", "--image", "{tmp}/in.png", "-o", "{tmp}/o.npz"), "4096×4096", png_large),
    Hostile("gif-frames-bomb", ("tokenize", "--image", "{tmp}/in.gif", "-o", "{tmp}/o.npz"), "5 frames of 2000×2000", gif_many_large_frames),
    Hostile("output-under-a-file", ("tokenize", "--text", "hi", "-o", "{tmp}/f/o.npz"), "is a file, not a folder", a_file),
    Hostile("out-folder-is-a-file", ("tokenize", "--text", "hi", "-o", "{tmp}/f"), "already exists", a_file),
    Hostile("nothing-encodable", ("tokenize", "--text", "€€€", "-o", "{tmp}/o.npz"), "no character the vocabulary can encode"),
    Hostile("npz-header-bomb", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/d"), "declares 2,000,000,000 bytes", npz_header_bomb),
    Hostile("npz-zip-bomb", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/d"), "would decompress to", npz_zip_bomb),
    Hostile("npz-objects", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/d"), "Python objects", npz_object_array),
    Hostile("npz-nan-rate", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/d"), "is not a sample rate", npz_nan_rate),
    Hostile("npz-bad-ids", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/d"), "outside 0..150", npz_ids_out_of_range),
    Hostile("detokenize-into-a-file", ("detokenize", "{tmp}/in.npz", "--out", "{tmp}/f"), "is a file",
            lambda tmp: (a_file(tmp), np.savez(tmp / "in.npz", labels=np.array([[60], [2]])))),
    # generate opens the model first (a wrong one is the error to see, issue 22), then checks the folder, and only
    # then generates: a path under a file is still refused before any token.
    Hostile("generate-under-a-file", ("generate", "--out", "{tmp}/f/o"), "is a file, not a folder", a_file),
    Hostile("generate-no-model-under-a-file", ("generate", "{tmp}/no-model.tflite", "--out", "{tmp}/f/o"),
            "no such model file", a_file),
    Hostile("demo-under-a-file", ("demo", "{tmp}/no-model.tflite", "--out", "{tmp}/f/o"), "is a file, not a folder", a_file),
    Hostile("seed-negative", ("generate", "--seed", "-1", "--out", "{tmp}/g"), "'--seed'"),
    Hostile("threads-absurd", ("generate", "--threads", "1000000", "--out", "{tmp}/g"), "'--threads'"),
    Hostile("prompt-twice", ("generate", "--prompt", "a", "--prompt-file", "{tmp}/f", "--out", "{tmp}/g"), "not both", a_file),
    Hostile("generate-image-bomb", ("generate", "--image", "{tmp}/in.png", "--out", "{tmp}/g"), "too large", png_bomb),
    Hostile("prompt-file-not-utf8", ("generate", "--prompt-file", "{tmp}/p.txt", "--out", "{tmp}/g"), "not UTF-8",
            lambda tmp: (tmp / "p.txt").write_bytes(b"\xff\xfe caf\xe9")),
    Hostile("audio-rate-absurd", ("detokenize", "{tmp}/in.npz", "--audio-rate", "1000000000000", "--out", "{tmp}/d"), "'--audio-rate'"),
    # Issue 21 item 7: a device or FIFO given as the model is refused, never read until memory runs out.
    Hostile("inspect-dev-full", ("inspect", "/dev/full"), "not a regular file"),
    Hostile("inspect-fifo", ("inspect", "{tmp}/m.tflite"), "not a regular file", lambda tmp: os.mkfifo(tmp / "m.tflite")),
    Hostile("bench-bogus-backend", ("bench", "--backend", "bogus"), "litert"),
    Hostile("handheld-port-out-of-range", ("handheld", "--port", "socket://127.0.0.1:99999"), "bad socket URL"),
    Hostile("stream-no-such-port", ("stream", "--synthetic", "--port", "{tmp}/no-such-tty"), "no such port"),
    *(Hostile(f"model-{name}-generate", ("generate", "{tmp}/model.tflite", "--backend", "numpy", "--seed", "1",
                                          "--out", "{tmp}/out"), message, make)
      for name, (make, message) in HOSTILE_MODELS.items()),
    *(Hostile(f"model-{name}-inspect", ("inspect", "{tmp}/model.tflite"), message, make)
      for name, (make, message) in HOSTILE_MODELS.items()),
]


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (hidden ones too) with its size and modification time."""
    return {str(p.relative_to(folder)): (p.is_dir(), p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def assert_refused(capsys, folder: Path, args, message: str) -> str:
    """Run the command; it must answer one `error:` line holding ``message``, exit 2, change nothing."""
    before = snapshot(folder)
    code = main([str(a).replace("{tmp}", str(folder)).replace("{model}", str(default_model_path())) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in out + err
    assert snapshot(folder) == before, "the command changed the folder"
    return err


@pytest.mark.parametrize("case", HOSTILE_INPUTS, ids=lambda c: c.name)
def test_hostile_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    if case.make is not None:
        case.make(tmp_path)
    assert_refused(capsys, tmp_path, case.args, case.message)


# -- the machine's help: devices, full disks, unwritable folders ----------------------------------


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_force_never_replaces_a_device_node(device, capsys):
    if not os.path.exists(device):
        pytest.skip(f"{device} is absent here")
    before = os.stat(device)
    code = main(["tokenize", "--text", "hi", "-o", device, "--force"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a regular file" in err, err
    after = os.stat(device)
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


def test_force_never_replaces_a_fifo(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe")
    assert_refused(capsys, tmp_path, ["tokenize", "--text", "hi", "-o", "{tmp}/pipe", "--force"], "not a regular file")
    assert (tmp_path / "pipe").is_fifo()


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder where every write fails with ENOSPC: a 64 KiB tmpfs filled up when this process may
    mount one, else the writers' file objects replaced by one that raises ENOSPC."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    if mounted:
        with open(mnt / "filler", "wb") as fh:
            try:
                fh.write(bytes(1 << 20))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    else:
        real_fdopen = os.fdopen

        class FullFile(io.RawIOBase):
            def __init__(self, fd):
                self.fh = real_fdopen(fd, "wb")

            def write(self, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def close(self):
                self.fh.close()
                super().close()

        monkeypatch.setattr("pxby_edge.atomic.os.fdopen", lambda fd, mode="r": FullFile(fd))
    yield mnt
    if mounted:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize(
    "args",
    [
        ("tokenize", "--text", "a small blue creature " * 200, "-o", "{tmp}/o.npz"),
        ("detokenize", "{src}", "--out", "{tmp}/d", "--scale", "16"),
        ("generate", "--max-tokens", "3000", "--seed", "2", "--out", "{tmp}/g"),
    ],
    ids=["tokenize", "detokenize", "generate"],
)
def test_full_disk_is_one_line_naming_the_users_path(args, full_disk, tmp_path, capsys):
    src = tmp_path / "src.npz"
    np.savez(src, labels=np.array([[60 + (i % 40)] for i in range(24 * 24)] + [[2]]))
    args = [a.replace("{src}", str(src)) for a in args]
    err = assert_refused(capsys, full_disk, args, "no space left on the device while writing")
    assert str(full_disk) in err and ".partial" not in err and "/." not in err, err


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write in: mode 0555, or, for root (who writes anywhere),
    the immutable attribute."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no folder is unwritable")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize(
    "args,target",
    [
        (("tokenize", "--text", "hi", "-o", "{tmp}/ro/x.npz"), "{tmp}/ro/x.npz"),
        (("generate", "--max-tokens", "20", "--out", "{tmp}/ro/g"), "{tmp}/ro/g"),
        (("detokenize", "{tmp}/in.npz", "--out", "{tmp}/ro/d"), "{tmp}/ro/d"),
        (("demo", "--out", "{tmp}/ro/d"), "{tmp}/ro/d"),
    ],
    ids=["tokenize", "generate", "detokenize", "demo"],
)
def test_unwritable_folder_names_the_users_path(args, target, unwritable, capsys):
    """Permission denied names what the user asked to write, never a temporary file."""
    tmp = unwritable.parent
    np.savez(tmp / "in.npz", labels=np.array([[60], [2]]))
    err = assert_refused(capsys, tmp, args, "error: permission denied: " + target.replace("{tmp}", str(tmp)) + ";")
    assert ".partial" not in err
