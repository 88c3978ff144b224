"""Under CI, a skip must be expected: one whose reason is not on ``EXPECTED_SKIPS`` fails the run.

    CI=true .venv/bin/python -m pytest tests/test_ci_skips.py

A module that ``importorskip``s a broken extra, or a test that skips because a tool is missing, would
otherwise pass CI silently. Each entry is a pattern of the reason the skip gives and why CI may meet it.
``tests/conftest.py`` imports these hooks; tests/test_ci_skips.py shows a stray skip failing a run.
"""

from __future__ import annotations

import os
import re

import pytest

# reason pattern -> why a clean CI machine (.ci/run: make test on a fresh clone) may skip it
EXPECTED_SKIPS = {
    r"^tflite-runtime is not installed": "its last release needs numpy<2, so it lives in its own environment "
                                         "(pip install 'pxby-edge[tflite]'), never beside the test environment",
    r"^upstream fixtures not found": "the upstream reference files are not redistributed: a fresh clone has no ../shared",
    r"^running as root on a file system without chattr \+i": "a root CI container may have no unwritable folder to test",
    r"^the package index is out of reach": "a CI machine without network cannot install the wheel's dependencies",
}
_UNEXPECTED = pytest.StashKey[list]()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def expected(reason: str) -> bool:
    return any(re.search(pattern, reason) for pattern in EXPECTED_SKIPS)


def _note(config, report) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if not expected(reason):
            config.stash.setdefault(_UNEXPECTED, []).append(f"{report.nodeid}: {reason}")


def pytest_configure(config) -> None:
    config.stash[_UNEXPECTED] = []
    config.pluginmanager.register(_Recorder(config), "pxby-ci-skips-recorder")


class _Recorder:
    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report) -> None:
        _note(self.config, report)

    def pytest_collectreport(self, report) -> None:
        _note(self.config, report)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    found = config.stash.get(_UNEXPECTED, [])
    if found:
        terminalreporter.section("unexpected skips under CI", red=True)
        for line in found:
            terminalreporter.line(line)
        terminalreporter.line("fix what this machine lacks, or add the reason to EXPECTED_SKIPS in tests/ci_skips.py "
                              "with why CI may skip it")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    if session.config.stash.get(_UNEXPECTED, []) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
