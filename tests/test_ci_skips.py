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
