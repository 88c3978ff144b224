"""Under CI=true a skip that is not on the allow-list fails the run (tests/ci_skips.py); an expected one does not."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = "from ci_skips import pytest_configure, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401\n"


@pytest.fixture
def inner(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    return pytester


def test_a_stray_skip_fails_the_run_under_ci(inner, monkeypatch):
    inner.makepyfile(
        test_one="import pytest\n\ndef test_a():\n    pytest.skip('gcc is missing')\n\ndef test_b():\n    assert True\n",
        test_two="import pytest\npytest.importorskip('no_such_module_pxby')\n\ndef test_c():\n    pass\n",
    )
    monkeypatch.setenv("CI", "true")
    result = inner.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected skips under CI*", "*test_two.py: could not import 'no_such_module_pxby'*",
                                 "*test_one.py::test_a: gcc is missing*"])  # collection reports come first
    monkeypatch.setenv("CI", "")
    assert inner.runpytest("-p", "no:cacheprovider").ret == pytest.ExitCode.OK  # outside CI a skip is a skip


def test_an_expected_skip_passes_under_ci(inner, monkeypatch):
    inner.makepyfile(test_one="import pytest\n\ndef test_a():\n    pytest.skip('tflite-runtime is not installed here')\n")
    monkeypatch.setenv("CI", "true")
    assert inner.runpytest("-p", "no:cacheprovider").ret == pytest.ExitCode.OK


def test_every_allow_list_entry_says_why():
    from ci_skips import EXPECTED_SKIPS

    assert EXPECTED_SKIPS and all(len(why.split()) >= 6 for why in EXPECTED_SKIPS.values())


def test_ci_run_applies_the_policy_and_runs_the_slow_tests_ci_needs():
    """.ci/run sets CI (so the allow-list holds) and runs the wheel install and the 50-kill test, which
    `make test` deselects as slow."""
    from pathlib import Path

    script = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert 'export CI="${CI:-true}"' in commands
    slow = [line for line in commands if "-m slow" in line]
    assert slow and "tests/test_wheel_install.py" in slow[0] and "tests/test_output_sets.py" in slow[0]
    assert commands.index('export CI="${CI:-true}"') < commands.index(slow[0])
