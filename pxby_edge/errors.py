"""The one exception tree of pxby-edge.

Library code raises these and never prints or exits; ``cli.py`` turns them into one-line
messages and a non-zero exit status. Every message should say what is wrong and how to fix it.
"""


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
