"""Atomic files and output sets: a file appears whole or not at all, a set of files lands together or not at all.

    python -c "from pxby_edge.atomic import atomic_write; print(atomic_write('/tmp/x.txt', b'hi', overwrite=True))"

``atomic_write`` writes a temporary file beside the target, then renames it over; ``OutputSet`` builds a
whole set in a hidden sibling folder and moves it into place at ``commit()``; ``FileSet`` does the same for
files in several folders (quantize's model, float model, ONNX and report), with a journal that the next
run finishes when a kill came among its renames. All refuse to replace a file unless asked
(``overwrite``) and never replace a device, pipe or socket. ``pxby_edge/outputs.py`` decides which set
each runtime command writes.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pxby_edge.errors import MediaError, OutputExistsError


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
        if not pid_alive(int(pid)):  # a live one (ours or another user's) is still writing
            shutil.rmtree(entry, ignore_errors=True)


def _share(path, mode: int) -> None:
    """mkstemp and mkdtemp make private (0600/0700) entries; outputs are ordinary, shareable ones."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


# -- files in several folders, as one set ---------------------------------------------------------

MAX_JOURNAL_BYTES = 1 << 16


def _partial_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.partial")


def journal_path(main: Path) -> Path:
    return main.parent / f".{main.name}.set.json"


class FileSet:
    """Files, in any folders, that land together. ``stage`` each, then ``commit``; leaving the ``with``
    block without ``commit`` removes what was staged."""

    def __init__(self, paths, overwrite: bool = False):
        self.paths = [Path(p) for p in paths if p is not None]
        resolved = [os.path.abspath(p) for p in self.paths]
        if len(set(resolved)) != len(resolved):
            raise MediaError(f"two outputs name the same file ({', '.join(map(str, self.paths))}); give each its own path")
        recover(self.paths[0])
        for p in self.paths:
            check_writable(p, overwrite)
        for p in [*self.paths, journal_path(self.paths[0])]:
            _remove_dead_temporaries(p)
        self.staged: dict[Path, str] = {}

    def __enter__(self) -> FileSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()

    def stage(self, path, data: bytes) -> None:
        """Write ``data`` in full beside ``path`` (not yet in place)."""
        path = Path(path)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
            self.staged[path] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                os.fsync(fh.fileno())
            _share(tmp, 0o666)
        except OSError as exc:  # named by the user's path, not the temporary one
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from None

    def commit(self) -> None:
        """Every staged file into place: the journal first, so a kill among the renames is finished later."""
        main = self.paths[0]
        renames = [[os.path.abspath(tmp), os.path.abspath(p)] for p, tmp in self.staged.items()]
        journal = journal_path(main)
        fd, tmp = tempfile.mkstemp(prefix=f".{journal.name}.{os.getpid()}.", suffix=".partial", dir=main.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"renames": renames}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, journal)
        for src, dest in renames:
            os.replace(src, dest)
        self.staged.clear()
        os.unlink(journal)

    def discard(self) -> None:
        for tmp in self.staged.values():
            if os.path.lexists(tmp):
                os.unlink(tmp)
        self.staged.clear()


def recover(main) -> list[str]:
    """Finish the renames a killed run's journal beside ``main`` lists; returns the files put in place.

    The journal is untrusted like any file in a shared folder: it is followed only when it and every
    temporary it names are regular files of this user, each temporary beside its destination and named
    as ``FileSet.stage`` names them, and the process that wrote it is gone."""
    main = Path(main)
    journal = journal_path(main)
    try:
        st = os.lstat(journal)
    except FileNotFoundError:
        return []
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > MAX_JOURNAL_BYTES:
        raise MediaError(f"{journal} is not a journal this user's quantize wrote; remove it")
    try:
        renames = json.loads(journal.read_text())["renames"]
        pairs = [(Path(src), Path(dest)) for src, dest in renames]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MediaError(f"{journal} is not a journal quantize wrote ({exc}); remove it") from None
    done = []
    for src, dest in pairs:
        if not _is_our_partial(src, dest):
            raise MediaError(f"{journal} names {src}, which is not a temporary of {dest}; remove the journal")
    for src, dest in pairs:
        if src.exists():
            os.replace(src, dest)
            done.append(str(dest))
    os.unlink(journal)
    return done


def _is_our_partial(src: Path, dest: Path) -> bool:
    m = _partial_pattern(dest.name).fullmatch(src.name)
    if m is None or src.parent != dest.parent:
        return False
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        return True  # already renamed before the kill
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not pid_alive(int(m["pid"]))


def _remove_dead_temporaries(path: Path) -> None:
    """Delete the temporaries of ``path`` that killed runs of this user left (their process is gone)."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return
    pattern = _partial_pattern(path.name)
    for entry in os.scandir(folder):
        m = pattern.fullmatch(entry.name)
        if m and entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == os.geteuid() \
                and not pid_alive(int(m["pid"])):
            os.unlink(entry.path)

