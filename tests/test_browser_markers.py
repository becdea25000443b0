"""Browser tests without a Chromium: skipped, saying how to install one, except under CI, where they fail."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two pytest runs in subprocesses

BROWSER_TESTS = [str(Path(__file__).with_name(n)) for n in ("test_webcam_browser.py", "test_browser_playwright.py")]


def run_browser_tests(tmp_path, ci: bool):
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ["CHROMIUM"] = str(tmp_path / "no-chromium")
    if ci:
        environ["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *BROWSER_TESTS],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def test_without_chromium_browser_tests_are_skipped_with_how_to_install(tmp_path):
    r = run_browser_tests(tmp_path, ci=False)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "passed" not in r.stdout.splitlines()[-1] and "skipped" in r.stdout.splitlines()[-1]
    assert "apt-get install chromium" in r.stdout
    assert "test_webcam_browser.py::test_widget_recognises_a_face_from_the_camera" in r.stdout
    assert "test_browser_playwright.py::test_browser_filters_pages_and_opens_details_in_jupyterlab" in r.stdout


def test_without_chromium_browser_tests_fail_under_ci(tmp_path):
    r = run_browser_tests(tmp_path, ci=True)
    assert r.returncode != 0
    assert "browser tests are never skipped in CI" in r.stdout
