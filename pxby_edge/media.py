"""Frames → PNG/GIF, audio levels → WAV, text → UTF-8; the Game Boy speaker filter.

    python -c "import numpy as np; from pxby_edge.media import gameboy_filter; print(gameboy_filter(np.random.randn(16000), 16000)[:4])"

Every writer is atomic (a temporary file in the same folder, then ``os.replace``) and refuses to
replace an existing file unless ``overwrite=True``, so an interrupted run never leaves half a file
and never destroys a user's file.
"""

from __future__ import annotations

import errno
import glob
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pxby_edge.errors import MediaError, OutputExistsError

GB_RATE = 8192


# -- files -----------------------------------------------------------------------------------------


def check_folder(folder: os.PathLike | str, target: os.PathLike | str | None = None) -> Path:
    """The folder, after making sure it is (or can become) a folder this process may write in.

    Checked before any work is done, so a run never fails only after it generated everything.
    ``target``, the file to be written there, is what a refusal names (the folder by default)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        culprit = "it" if probe == folder else str(probe)
        raise MediaError(f"cannot write into {folder}: {culprit} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target or folder))
    return folder


def check_writable(path: os.PathLike | str, overwrite: bool = False) -> Path:
    """The path, after making sure writing it loses nothing the user did not ask to lose."""
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path} is a folder; give a file path")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            # --force replaces files, never a device, pipe or socket (os.replace would swap the node out).
            raise MediaError(f"{path} is not a regular file (a device, pipe or socket); write to a file instead")
        if not overwrite:
            raise OutputExistsError(f"{path} already exists; pass --force to overwrite it or choose another path")
    check_folder(path.parent, path)
    return path


def atomic_write(path: os.PathLike | str, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` all at once (temp file + rename).

    A failure is raised as the ``OSError`` it was, but naming ``path``: the temporary file's
    name means nothing to the user."""
    path = check_writable(path, overwrite)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _share(tmp, 0o666)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp) -> None:
    if tmp is not None and os.path.lexists(tmp):
        os.unlink(tmp)


class OutputSet:
    """A set of outputs (text, sprite, sound, ...) that lands in its folder whole or not at all.

    The files are written into a hidden sibling folder (``folder``); ``commit()`` moves the set
    into place: one rename of the whole folder when the destination does not exist yet, else one
    rename per file, every one checked before the first. A run killed before ``commit()`` leaves
    the destination as it was, and a ``.NAME.PID.*.partial`` folder beside it that the next run
    into the same destination deletes; with ``overwrite`` the old files are replaced only then,
    at the end."""

    def __init__(self, out_dir: os.PathLike | str, names: Sequence[str], overwrite: bool = False):
        self.out_dir = check_folder(out_dir)
        self.overwrite = overwrite
        for name in names:
            check_writable(self.out_dir / name, overwrite)
        self._target = Path(os.path.abspath(self.out_dir))  # "." and ".." have no sibling to build in
        base = self._target.parent
        while not base.exists():  # parents are made only when the set is committed
            base = base.parent
        prefix = f".{self._target.name}."
        _remove_dead_partials(base, prefix)
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", suffix=".partial", dir=base))
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(self.out_dir)) from None

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename and Path(exc.filename).is_relative_to(self.folder):
            # the user asked for out_dir/NAME; the hidden folder is ours
            raise type(exc)(exc.errno, exc.strerror or str(exc), self.final(exc.filename)) from None

    def final(self, path) -> str:
        """Where a file written under ``folder`` ends up."""
        return str(self.out_dir / Path(path).relative_to(self.folder))

    def commit(self) -> None:
        _share(self.folder, 0o777)
        try:
            if not os.path.lexists(self._target):
                self._target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(self.folder, self._target)  # the whole set appears at once
                    return
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):  # made meanwhile: merge into it
                        raise
            self._merge()
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(self.out_dir)) from None

    def _merge(self) -> None:
        files = sorted(p for p in self.folder.rglob("*") if not p.is_dir())
        for p in files:  # every file checked before any is moved: nothing new unless all of it
            check_writable(self._target / p.relative_to(self.folder), self.overwrite)
        for p in files:
            dest = self._target / p.relative_to(self.folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, dest)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (as any user): a temporary named by a live pid is not stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, as another user
    return True


def _remove_dead_partials(base: Path, prefix: str) -> None:
    """Delete the hidden folders that killed runs into the same destination left (their process is gone)."""
    for entry in base.glob(f"{glob.escape(prefix)}*.partial"):
        pid = entry.name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass  # alive, as another user: not ours to touch


def _share(path, mode: int) -> None:
    """mkstemp and mkdtemp make private (0600/0700) entries; outputs are ordinary, shareable ones."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def write_text(path, text: str, overwrite: bool = False) -> Path:
    return atomic_write(path, text.encode("utf-8"), overwrite)


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


# -- images ----------------------------------------------------------------------------------------


def _palette_image(frame_ids: np.ndarray, palette_rgb: np.ndarray, scale: int):
    from PIL import Image

    ids = np.asarray(frame_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.size == 0:
        raise MediaError(f"a frame must be a non-empty (rows, columns) array, got shape {ids.shape}")
    palette = np.asarray(palette_rgb, dtype=np.uint8).reshape(-1, 3)
    if ids.min() < 0 or ids.max() >= len(palette):
        raise MediaError("frame holds palette indices outside the palette")
    if len(palette) > 256:
        raise MediaError("a palette image holds at most 256 colours")
    if scale > 1:
        ids = np.repeat(np.repeat(ids, scale, axis=0), scale, axis=1)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[: len(palette)] = palette
    img.putpalette(flat.reshape(-1).tolist())
    return img


def sprite_sheet(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Frames of one sprite side by side (a 1-pixel gap would invent a colour, so none)."""
    if not frames:
        raise MediaError("no frames to write")
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    sheet = np.zeros((height, width * len(frames)), dtype=np.int64)
    for k, f in enumerate(frames):
        sheet[: f.shape[0], k * width : k * width + f.shape[1]] = f
    return sheet


def write_png(path, frames: Sequence[np.ndarray], palette_rgb, scale: int = 1, overwrite: bool = False) -> Path:
    """Frames (palette indices) as one indexed PNG, frames left to right, exact palette colours."""
    img = _palette_image(sprite_sheet(list(frames)), palette_rgb, int(scale))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write(path, buf.getvalue(), overwrite)


def write_gif(
    path, frames: Sequence[np.ndarray], palette_rgb, scale: int = 1, frame_ms: int = 200, overwrite: bool = False
) -> Path:
    """Frames as a looping animated GIF (exact palette colours, nearest-neighbour scaling)."""
    frames = list(frames)
    if not frames:
        raise MediaError("no frames to write")
    images = [_palette_image(f, palette_rgb, int(scale)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(frame_ms), loop=0,
        optimize=False, disposal=1,
    )
    return atomic_write(path, buf.getvalue(), overwrite)


# -- audio -----------------------------------------------------------------------------------------


def gameboy_filter(
    x,
    sample_rate: float,
    low_hz: float = 100.0,
    high_hz: float = 3000.0,
    order: int = 4,
    gb_rate: int = GB_RATE,
    normalize: bool = True,
) -> np.ndarray:
    """The Game Boy speaker as the upstream dataset modelled it: to ``gb_rate``, Butterworth
    band-pass, back to the input length. Peak-normalised to 1 unless ``normalize=False``."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise MediaError("audio needs at least 2 samples to filter")
    nyq = 0.5 * gb_rate
    if not 0 < low_hz < high_hz < nyq:
        raise MediaError(f"filter band must satisfy 0 < low < high < {nyq:g} Hz, got {low_hz:g}-{high_hz:g}")
    n_gb = max(2, int(len(x) * gb_rate / sample_rate))
    resampled = signal.resample(x, n_gb)
    b, a = signal.butter(order, [low_hz / nyq, high_hz / nyq], btype="band")
    filtered = signal.resample(signal.lfilter(b, a, resampled), len(x))
    if normalize:
        peak = np.max(np.abs(filtered))
        if peak > 0:
            filtered = filtered / peak
    return filtered


def stereo_levels(levels: np.ndarray, sample_rate: float) -> np.ndarray:
    """(2, N): channel 0 the sound, channel 1 its Game Boy-filtered copy (made here if absent)."""
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim == 1:
        levels = levels[None]
    if levels.shape[0] >= 2:
        return levels[:2]
    return np.stack([levels[0], gameboy_filter(levels[0], sample_rate)])


def write_wav(path, audio: np.ndarray, sample_rate: int, overwrite: bool = False) -> Path:
    """(channels, N) floats in [-1, 1] as 16-bit PCM WAV."""
    from scipy.io import wavfile

    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.size == 0:
        raise MediaError("no audio samples to write")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).T
    buf = io.BytesIO()
    wavfile.write(buf, int(sample_rate), np.ascontiguousarray(pcm))
    return atomic_write(path, buf.getvalue(), overwrite)


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


def read_audio(path, npy_rate: int = 16000) -> tuple[np.ndarray, int]:
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


def tokenizer_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(2, N) the way the upstream dataset stores a cry: mono mixdown peak-normalised, and its
    Game Boy-filtered copy. Two-channel input is kept as it is."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2 and audio.shape[0] == 2:
        return audio.astype(np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    peak = np.max(np.abs(mono))
    if peak == 0:
        raise MediaError("audio is silent: nothing to tokenize")
    original = mono / peak
    return np.stack([original, gameboy_filter(original, sample_rate)]).astype(np.float32)
