"""Reading untrusted input: text, sound, images and .npz arrays, each bounded before it is decoded.

    python -c "from pxby_edge.readers import audio_kind; from pathlib import Path; print(audio_kind(Path('cry.wav')))"

Every reader sizes what a file claims (a header's array shape, a zip member's declared size, an image's
pixel count) against a limit before allocating for it, picks the decoder by the file's first bytes
rather than its name, and turns whatever a corrupt file raises into one ``MediaError``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from pxby_edge.constants import UPSTREAM_AUDIO_RATE
from pxby_edge.errors import MediaError

MAX_TEXT_BYTES = 16 << 20  # a text of more characters than a model could ever read back


def read_text(path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file, refused when it is longer than ``max_bytes`` or not UTF-8."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise MediaError(f"no such text file: {path}") from None
    if len(data) > max_bytes:
        raise MediaError(f"{path} is longer than {max_bytes:,} bytes; give a shorter text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MediaError(f"{path} is not UTF-8 text ({exc.reason}); convert it to UTF-8") from None


def read_regular_file(path, max_bytes: int, what: str = "file") -> bytes:
    """Every byte of the regular file at ``path``; MediaError when it is not a regular file (a FIFO, a
    device such as /dev/zero or /dev/full, a folder) or holds more than ``max_bytes``.

    The file is opened without blocking and checked through its descriptor, so a FIFO cannot hang the
    reader and a link swapped in between cannot change what is checked. ``OSError`` (no such file,
    permission) is raised as it is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MediaError(f"{path} is not a regular file (a device, FIFO or folder); give a {what}")
        if st.st_size > max_bytes:
            raise MediaError(f"{path} holds {st.st_size:,} bytes, more than the {max_bytes:,} a {what} may have")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise MediaError(f"{path} holds more than the {max_bytes:,} bytes a {what} may have")
    return data


MAX_AUDIO_BYTES = 256 << 20  # minutes of CD-quality sound; far beyond any cry, far below a Pi's memory
MAX_IMAGE_PIXELS = 1 << 22  # 2048×2048 per frame; a sprite is tens of pixels wide, every pixel is a token
MAX_ANIMATION_PIXELS = 1 << 24  # all frames together (a GIF's frame count is read without decoding them)
MAX_NPZ_ARRAY_BYTES = 256 << 20  # decompressed, all arrays of one .npz together

_AUDIO_MAGIC = (  # (offset, bytes, kind): the file's first bytes decide its reader, not its name
    (0, b"\x93NUMPY", "npy"),
    (0, b"OggS", "soundfile"),
    (0, b"fLaC", "soundfile"),
    (0, b"FORM", "soundfile"),  # AIFF
    (0, b"RIFX", "soundfile"),  # big-endian WAV, which scipy does not read
)


def audio_kind(path: Path) -> str:
    """'wav', 'npy' or 'soundfile', from the first bytes of the file; MediaError for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except FileNotFoundError:
        raise MediaError(f"no such audio file: {path}") from None
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    for offset, magic, kind in _AUDIO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    raise MediaError(f"{path} is not an audio file this reads (WAV, OGG, FLAC, AIFF or a .npy array)")


def _wav_format(path: Path) -> tuple[int, int]:
    """(channels, rate) from a WAV's chunks, checked before any decoder trusts them."""
    with open(path, "rb") as fh:
        fh.seek(12)
        while True:
            header = fh.read(8)
            if len(header) < 8:
                raise MediaError(f"cannot read audio {path}: the WAV has no format chunk; the file is corrupt")
            size = int.from_bytes(header[4:], "little")
            if header[:4] == b"fmt ":
                body = fh.read(min(size, 64))
                break
            fh.seek(size + (size & 1), os.SEEK_CUR)
    if len(body) < 16:
        raise MediaError(f"cannot read audio {path}: the WAV format chunk is truncated")
    channels = int.from_bytes(body[2:4], "little")
    rate = int.from_bytes(body[4:8], "little")
    if channels < 1 or rate < 1:
        raise MediaError(f"cannot read audio {path}: the WAV header says {channels} channel(s) at {rate} Hz")
    return channels, rate


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import warnings

    from scipy.io import wavfile

    _wav_format(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", wavfile.WavFileWarning)
        rate, data = wavfile.read(str(path))
    for w in caught:
        if "EOF" in str(w.message):  # scipy reads a truncated file but only warns
            raise MediaError(f"cannot read audio {path}: the WAV is truncated ({w.message})")
    data = np.asarray(data)
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    return data, rate


def _read_npy(path: Path, rate: int) -> tuple[np.ndarray, int]:
    with open(path, "rb") as fh:
        shape, fortran, dtype = _npy_header(fh, path, MAX_AUDIO_BYTES)
        if dtype.kind not in "fiu":
            raise MediaError(f"{path} must hold numbers, got dtype {dtype}")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] not in (1, 2)):
            raise MediaError(f"{path} holds an array of shape {shape}; audio must be (samples,) or (channels, samples)")
        data = _npy_body(fh, path, shape, fortran, dtype)
    return data.T if len(shape) == 2 else data, rate  # returned as (samples, channels) like the decoders


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError as exc:
        raise MediaError(f"reading {path.name} (OGG, FLAC or AIFF) needs soundfile: pip install soundfile") from exc
    data, rate = soundfile.read(str(path), always_2d=True)
    return data, rate


def audio_rate(path, npy_rate: int = UPSTREAM_AUDIO_RATE) -> int:
    """The sample rate of an audio file, from its header alone (a .npy array has none: ``npy_rate``)."""
    path = Path(path)
    kind = audio_kind(path)
    if kind == "wav":
        return _wav_format(path)[1]
    if kind == "npy":
        return int(npy_rate)
    try:
        import soundfile
    except ImportError as exc:
        raise MediaError(f"reading {path.name} (OGG, FLAC or AIFF) needs soundfile: pip install soundfile") from exc
    try:
        return int(soundfile.info(str(path)).samplerate)
    except Exception as exc:  # libsndfile's errors on a corrupt header
        raise MediaError(f"cannot read audio {path}: {exc}") from None


def read_audio(path, npy_rate: int = UPSTREAM_AUDIO_RATE) -> tuple[np.ndarray, int]:
    """(channels, N) float32 and the sample rate, from WAV (scipy), OGG/FLAC/AIFF (soundfile) or a
    .npy array at ``npy_rate``. The reader is chosen by the file's first bytes."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"no such audio file: {path}")
    if path.stat().st_size > MAX_AUDIO_BYTES:
        raise MediaError(f"{path} is larger than {MAX_AUDIO_BYTES >> 20} MiB; give a shorter sound")
    readers = {"wav": _read_wav, "soundfile": _read_soundfile, "npy": lambda p: _read_npy(p, npy_rate)}
    try:
        data, rate = readers[audio_kind(path)](path)
    except MediaError:
        raise
    except Exception as exc:  # corrupt files surface as many exception types
        raise MediaError(f"cannot read audio {path}: {exc}") from None
    data = np.asarray(data, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data
    if data.size == 0:
        raise MediaError(f"audio file {path} holds no samples")
    if not np.isfinite(data).all():
        raise MediaError(f"audio file {path} holds NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(rate)


def _npy_header(fh, path, max_bytes: int) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy array at ``fh``'s position, refused when it would
    not fit ``max_bytes``."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(fh, max_header_size=10000)
    except ValueError as exc:
        raise MediaError(f"cannot read {path} as a numpy array: {exc}") from None
    if dtype.hasobject:
        raise MediaError(f"{path} holds Python objects; only numeric arrays are read")
    if any(int(n) < 0 for n in shape):
        raise MediaError(f"{path} declares a negative array size")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > max_bytes:
        raise MediaError(f"{path} declares {nbytes:,} bytes of data, more than the {max_bytes >> 20} MiB a file may hold")
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _npy_body(fh, path, shape: tuple, fortran: bool, dtype: np.dtype) -> np.ndarray:
    """Exactly the bytes the header declared (already bounded), as an array."""
    buf = bytearray(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = fh.readinto(view[got:])
        if not n:
            raise MediaError(f"{path} is truncated: {got:,} of {len(buf):,} bytes of array data")
        got += n
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_npz(path, max_bytes: int = MAX_NPZ_ARRAY_BYTES) -> dict:
    """The arrays of a .npz, bounded by their *decompressed* size before any is read.

    A few MB of zeros compress to gigabytes of array: the sizes in the zip directory and in each
    array's header are checked against ``max_bytes`` first, and each array is read for exactly the
    bytes its header declares, so a member that lies about its size cannot grow past it."""
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            declared = sum(m.file_size for m in members)
            if declared > max_bytes:
                raise MediaError(f"{path} would decompress to {declared:,} bytes, more than {max_bytes >> 20} MiB")
            budget, arrays = max_bytes, {}
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise MediaError(f"{path} holds {m.filename!r}, which is not a numpy array")
                with zf.open(m) as fh:
                    name = f"{path}:{m.filename}"
                    shape, fortran, dtype = _npy_header(fh, name, budget)
                    budget -= int(np.prod(shape, dtype=object)) * dtype.itemsize
                    arrays[m.filename[:-4]] = _npy_body(fh, name, shape, fortran, dtype)
    except MediaError:
        raise
    # zipfile raises NotImplementedError for a compression method it lacks (a hostile or exotic archive)
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as exc:
        raise MediaError(f"cannot read {path} as a .npz: {exc}") from None
    return arrays


def open_image(path, data: bytes | None = None):
    """A PIL image of ``path`` (or of ``data``, read from ``path`` already), its size checked before any
    pixel is decoded."""
    import io

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        img = Image.open(path if data is None else io.BytesIO(data))
    except FileNotFoundError:
        raise MediaError(f"no such image: {path}") from None
    except Image.DecompressionBombError:
        raise MediaError(f"image {path} is far too large to be a sprite (a decompression bomb?); scale it down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"cannot read image {path}: {exc}; give a PNG or GIF") from None
    width, height = img.size
    try:
        frames = getattr(img, "n_frames", 1)
        if width * height > MAX_IMAGE_PIXELS:
            raise MediaError(
                f"image {path} is {width}×{height} pixels, more than the {MAX_IMAGE_PIXELS:,} a sprite may have; scale it down"
            )
        if frames * width * height > MAX_ANIMATION_PIXELS:
            raise MediaError(
                f"image {path} holds {frames} frames of {width}×{height} pixels, more than the {MAX_ANIMATION_PIXELS:,} "
                "an animated sprite may have; use fewer or smaller frames"
            )
        img.load()
    except MediaError:
        img.close()
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        img.close()
        raise MediaError(f"cannot read image {path}: {exc}; give a PNG or GIF") from None
    return img
