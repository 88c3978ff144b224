"""Errors the training side adds to ``pxby_edge.errors`` (same tree, so ``cli.py`` prints them as one line)."""

from pxby_edge.errors import CheckpointError, DatasetError, OutputExistsError, PxbyError

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "OutputExistsError", "PxbyError", "TrainingDivergedError"]


class ConfigError(PxbyError):
    """A model or training configuration that is unknown, malformed or inconsistent."""


class TrainingDivergedError(PxbyError):
    """Training produced a non-finite loss; nothing after the last finite state is saved."""
