"""Quantize's outputs (model, float model, ONNX, report) as one set: all of them land, or none does.

    python -c "from quantize.output_set import FileSet; s = FileSet(['/tmp/a.bin', '/tmp/b.json'], overwrite=True); s.stage('/tmp/a.bin', b'a'); s.stage('/tmp/b.json', b'{}'); s.commit()"

Checked first, before the conversion: every destination (exists without --force, a folder, a device,
a folder this process cannot write). At the end every file is written in full beside its destination
(``.NAME.PID.XXXXXXXX.partial``), then a journal naming the renames is written beside the main output,
the renames run back to back, and the journal goes. A run killed among the renames leaves the journal:
the next ``FileSet`` for the same main output finishes those renames first (``recover``), so a set never
stays half old, half new; a run killed before leaves only temporaries, which the next run removes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

from pxby_edge.atomic import pid_alive
from pxby_edge.errors import MediaError

MAX_JOURNAL_BYTES = 1 << 16


def _partial_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.partial")


def journal_path(main: Path) -> Path:
    return main.parent / f".{main.name}.set.json"


class FileSet:
    """Files, in any folders, that land together. ``stage`` each, then ``commit``; leaving the ``with``
    block without ``commit`` removes what was staged."""

    def __init__(self, paths, overwrite: bool = False):
        from pxby_edge.atomic import check_writable

        self.paths = [Path(p) for p in paths if p is not None]
        resolved = [os.path.abspath(p) for p in self.paths]
        if len(set(resolved)) != len(resolved):
            raise MediaError(f"two outputs name the same file ({', '.join(map(str, self.paths))}); give each its own path")
        recover(self.paths[0])
        for p in self.paths:
            check_writable(p, overwrite)
        for p in [*self.paths, journal_path(self.paths[0])]:
            _remove_dead_partials(p)
        self.staged: dict[Path, str] = {}

    def __enter__(self) -> FileSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()

    def stage(self, path, data: bytes) -> None:
        """Write ``data`` in full beside ``path`` (not yet in place)."""
        from pxby_edge.atomic import _share

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


def _remove_dead_partials(path: Path) -> None:
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

