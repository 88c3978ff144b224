"""The audio rate travels from the dataset to the speaker without being guessed (docs/ARCHITECTURE.md,
"Following the audio rate"): read from the items, recorded by training, read back by the runtime."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import wavfile

from pxby_edge.backends.null import NullBackend
from pxby_edge.constants import UPSTREAM_AUDIO_RATE
from pxby_edge.errors import GenerationError
from pxby_edge.generate import GenerationRequest, Generator
from training.audio_rate import dataset_audio_rate, item_audio_rate
from training.errors import DatasetError


def _dataset(root, rates):
    (root / "audio").mkdir(parents=True)
    (root / "text").mkdir()
    for i, rate in enumerate(rates):
        wavfile.write(root / "audio" / f"{i:04d}.wav", rate, np.zeros((rate // 10, 2), dtype=np.int16))
        (root / "text" / f"{i:04d}.txt").write_text("a cry")
    return root


def test_the_dataset_rate_is_read_from_its_items(tmp_path):
    assert dataset_audio_rate(_dataset(tmp_path / "a", [11025, 11025, 11025])) == 11025
    (tmp_path / "b" / "text").mkdir(parents=True)
    (tmp_path / "b" / "text" / "0000.txt").write_text("no sound")
    assert dataset_audio_rate(tmp_path / "b") is None


def test_a_dataset_at_two_rates_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="several sample rates .*2 items at 8192 Hz, 1 items at 16000 Hz"):
        dataset_audio_rate(_dataset(tmp_path / "d", [8192, 16000, 8192]))


def test_an_unreadable_item_is_left_to_training_to_skip(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert item_audio_rate(bad) is None
    assert item_audio_rate((np.zeros(4), 22050)) == 22050 and item_audio_rate(None) is None


def test_the_generator_exposes_the_rate_it_resolved_and_leaves_the_request_alone():
    request = GenerationRequest(audio_seconds=0.5)
    recorded = Generator(NullBackend(slicing={"image": 1, "audio": 4}, audio_rate=2048.0), request)
    assert (recorded.audio_rate, recorded.audio_samples) == (2048, 1024)
    assert request.audio_samples is None  # frozen: what the model resolved is the generator's
    with pytest.raises(AttributeError):
        request.audio_samples = 3  # type: ignore[misc]
    unrecorded = Generator(NullBackend(slicing={"image": 1, "audio": 4}), request)  # an upstream checkpoint's file
    assert unrecorded.audio_rate == UPSTREAM_AUDIO_RATE // 4
    with pytest.raises(GenerationError, match="audio seconds must be > 0"):
        Generator(NullBackend(), GenerationRequest(audio_seconds=-1.0))
