"""The one exception tree of pxby-edge.

Library code raises these and never prints or exits; ``cli.py`` turns them into one-line
messages and a non-zero exit status. Every message should say what is wrong and how to fix it.
"""

import errno


class PxbyError(Exception):
    """Base of every error pxby-edge raises on purpose."""


class TokenizerError(PxbyError):
    """An input that cannot be tokenized (unreadable image, empty audio, no input at all)."""


class ContextError(PxbyError):
    """A token stream that is not well-formed at the position it was pushed."""


class MediaError(PxbyError):
    """A file that cannot be read or written as text, image or audio."""


class ManifestError(PxbyError):
    """A model file without a manifest, or with one this version cannot read."""


class ModelFileError(PxbyError):
    """A model file that is missing, corrupt or of the wrong kind."""


class BackendError(PxbyError):
    """An interpreter backend that is not installed or cannot run the file."""


class GenerationError(PxbyError):
    """A generation request that cannot be satisfied (impossible plan, empty prompt)."""


class CheckpointError(PxbyError):
    """A training checkpoint that is missing, corrupt or cannot stream."""


class DatasetError(PxbyError):
    """A dataset source that is missing or holds no usable item."""


class OutputExistsError(PxbyError):
    """An output path that already exists and would be overwritten without --force."""


# What the user can do about a failed system call, by errno; the path is the user's, never a temporary name.
_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device while writing {path}; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded while writing {path}; free some space or write elsewhere",
    errno.EACCES: "permission denied: {path}; choose a path you can write, or fix its permissions",
    errno.EPERM: "operation not permitted: {path}; choose a path you can write, or fix its permissions",
    errno.EROFS: "{path} is on a read-only file system; write elsewhere",
    errno.ENOTDIR: "a part of {path} is a file, not a folder; choose another path",
    errno.EISDIR: "{path} is a folder, a file was expected",
    errno.ENOENT: "no such file: {path} (check the path)",
    errno.EEXIST: "{path} already exists; pass --force to overwrite it or choose another path",
    errno.ENAMETOOLONG: "the path {path} is too long",
    errno.ELOOP: "{path} has too many levels of symbolic links",
    errno.EMFILE: "too many open files while opening {path}; raise the limit (ulimit -n)",
    errno.EIO: "input/output error on {path}; the disk or card may be failing",
}


def error_message(exc: BaseException):
    """One line for an error the command line should answer without a traceback, else None.

    ``PxbyError`` says what it says; a usage error says which option is wrong and where the help
    is; an ``OSError`` is told by its errno and names the path the user gave (the writers in
    ``media`` re-raise with that path, not the temporary file's); anything else is a bug and
    keeps its traceback.
    """
    import click

    if isinstance(exc, PxbyError):
        text = str(exc).strip() or type(exc).__name__
    elif isinstance(exc, click.ClickException):
        ctx = getattr(exc, "ctx", None)
        text = exc.format_message() + (f" (see {ctx.command_path} --help)" if ctx is not None else "")
    elif isinstance(exc, MemoryError):
        text = "out of memory; ask for less (fewer tokens, a smaller batch) or free memory"
    elif isinstance(exc, OSError):
        advice = _OS_ADVICE.get(exc.errno)
        if advice and exc.filename is not None:
            text = advice.format(path=exc.filename)
        else:
            text = str(exc.strerror or exc) + (f": {exc.filename}" if exc.filename is not None else "")
    else:
        return None
    return " ".join(text.split())
