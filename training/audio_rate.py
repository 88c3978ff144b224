"""The sample rate of a dataset's audio, read from its items, for the checkpoint to record.

    python -c "from training.audio_rate import dataset_audio_rate; print(dataset_audio_rate('runs/synth'))"

The tokenizer keeps a cry's samples as they are (it slices, it does not resample), so the model's audio
tokens run at the dataset's rate over the audio slicing. Training records that rate in the checkpoint
(``source_audio_rate``, ``audio_rate``), quantize carries it into the manifest, and the runtime plays the
tokens at it (docs/ARCHITECTURE.md, "Following the audio rate"). One rate per dataset: items at several
rates would give tokens of several speeds, so they are refused.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Optional

from training.data import open_source
from training.errors import DatasetError


def item_audio_rate(audio) -> Optional[int]:
    """The rate of one item's audio (a file, bytes, or (array, rate)); None when the item has none or its header
    cannot be read (training skips that item as corrupt)."""
    from pxby_edge.errors import MediaError
    from pxby_edge.readers import audio_rate

    try:
        if audio is None:
            return None
        if isinstance(audio, Path):
            # A FIFO or a device (a link to /dev/zero) would block or never end: skipped as training skips it.
            return audio_rate(audio) if audio.is_file() else None
        if isinstance(audio, bytes):
            import soundfile

            return int(soundfile.info(io.BytesIO(audio)).samplerate)
        return int(audio[1])
    except (MediaError, OSError, RuntimeError, ValueError, TypeError, IndexError):  # soundfile's errors are RuntimeErrors
        return None


def dataset_audio_rate(source) -> Optional[int]:
    """The one sample rate of the audio of the dataset at ``source``; None when no item has audio;
    ``DatasetError`` when items disagree."""
    rates = Counter(rate for rate in (item_audio_rate(item.audio) for item in open_source(source)) if rate)
    if len(rates) > 1:
        found = ", ".join(f"{n} items at {rate} Hz" for rate, n in rates.most_common())
        raise DatasetError(f"{source}: the audio comes at several sample rates ({found}); resample it to one rate "
                           "(the model's audio tokens have one speed)")
    return next(iter(rates), None)
