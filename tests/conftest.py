"""Shared test setup: no test reads the user's FER2013 file or writes caches into the repository.

Tests marked ``browser`` drive a real Chromium (``$CHROMIUM``, else ``/usr/bin/chromium``). Where it is
missing they are skipped with a line saying how to install it, except under CI (``CI=true``), where they
fail: CI installs Chromium, so a missing one there is a broken setup, never a reason to skip.
"""

import os

import pytest
from jupyter_lab import CHROMIUM

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_UTILS_CACHE", str(tmp_path_factory.getbasetemp() / "fer_cache"))
    monkeypatch.delenv("FER2013_CSV", raising=False)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    """A small synthetic FER2013-format CSV: 12 Training, 4 PublicTest, 4 PrivateTest faces per class."""
    from fer_utils.data import make_synthetic_csv

    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    return make_synthetic_csv(path, n_per_class={"Training": 12, "PublicTest": 4, "PrivateTest": 4}, seed=3)


def _no_chromium() -> bool:
    return not os.access(CHROMIUM, os.X_OK)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config, items):
    if not _no_chromium() or _in_ci():
        return
    skip = pytest.mark.skip(
        reason=f"no Chromium at {CHROMIUM}: install Debian's chromium package "
        "(apt-get install chromium) or set CHROMIUM=/path/to/chromium"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Under CI a browser test fails before its fixtures start JupyterLab, instead of being skipped."""
    if "browser" in item.keywords and _in_ci() and _no_chromium():
        pytest.fail(
            f"CI=true but there is no Chromium at {CHROMIUM}: .ci/run installs it; "
            "browser tests are never skipped in CI",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter):
    skipped = [r.nodeid for r in terminalreporter.stats.get("skipped", []) if "browser" in r.keywords]
    if skipped:
        terminalreporter.write_line(f"browser tests skipped for want of Chromium ({CHROMIUM}):")
        for nodeid in skipped:
            terminalreporter.write_line(f"  {nodeid}")
