"""Errors the training side adds to ``pxby_edge.errors`` (same tree, so ``cli.py`` prints them as one line)."""

from pxby_edge.errors import CheckpointError, DatasetError, OutputExistsError, PxbyError

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "OutputExistsError", "PxbyError"]


class ConfigError(PxbyError):
    """A model or training configuration that is unknown, malformed or inconsistent."""
