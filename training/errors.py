"""Errors the training side adds to ``pxby_edge.errors`` (same tree, so ``cli.py`` prints them as one line)."""

from pxby_edge.errors import CheckpointError, DatasetError, OutputExistsError, PxbyError

__all__ = ["CheckpointError", "ConfigError", "DatasetError", "OutputExistsError", "PxbyError", "TrainingDivergedError"]


class ConfigError(PxbyError):
    """A model or training configuration that is unknown, malformed or inconsistent."""


class TrainingDivergedError(PxbyError):
    """The loss or a weight became NaN or infinite: the run stops, and saves nothing of that state."""
