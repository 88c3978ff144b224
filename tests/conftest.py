"""Shared test fixtures: where the upstream reference files are, and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "fixtures" / "upstream"


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """The upstream fixture folder (../shared/fixtures/upstream); skips when it is absent."""
    if not (UPSTREAM / "vocab.json").is_file():
        pytest.skip(f"upstream fixtures not found at {UPSTREAM} (the shared/ folder beside the checkout)")
    return UPSTREAM
