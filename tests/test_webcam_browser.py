"""Notebook 05's webcam widget in a real browser, as a person would use it.

The test starts JupyterLab on 127.0.0.1 (a token, a free port, a temporary copy of the notebook with a small
untrained checkpoint injected as its parameter), opens it in Debian's headless Chromium driven by Playwright,
runs all cells, presses Start and checks what is on the page:

- with a fake camera playing a y4m clip of a real face (public domain, fer_utils/assets), at least 20 results
  come back, a face is found in at least 80 % of them, a label and probability bars are shown, and the page
  has no JavaScript errors; Stop clears the label, the bars and the boxes;
- without a camera, the widget says so; opened from a non-secure origin, it says the camera needs localhost
  or https;
- JupyterLab runs with the repository's server settings (``jupyter_config/``, as ``make lab``); under
  Jupyter's defaults the widget suggests them.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); never `playwright install`. Requests to
anything but the local server are blocked, so the test works offline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_lab import block_outside_requests, launch_chromium, open_and_run_all, running_lab
from playwright.sync_api import Page, sync_playwright
from test_realtime import make_checkpoint

from fer_utils import CLASS_NAMES, paths
from fer_utils.live.sources import sample_frames, write_y4m

pytestmark = pytest.mark.browser

INSECURE_HOST = "fer-webcam.test"
"""A name Chromium maps to 127.0.0.1 (--host-resolver-rules): the same server, but not a secure origin."""


@contextlib.contextmanager
def webcam_lab(root: Path, home: Path, checkpoint: Path, project_settings: bool = True) -> Iterator[dict[str, Any]]:
    """JupyterLab serving ``root``, holding a copy of notebook 05 set to ``checkpoint``.

    ``project_settings``: the repository's Jupyter Server settings (``make lab``), else Jupyter's defaults.

    Also used by benchmarks/bench_realtime.py --browser.
    """
    nb = nbformat.read(paths.NOTEBOOKS_DIR / "05_webcam.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = f"SOURCE = 'webcam'\ncheckpoint_path = {str(checkpoint)!r}"  # as papermill would inject them
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(nb, root / "05_webcam.ipynb")
    with running_lab(root, home, project_settings=project_settings) as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary copy of notebook 05 set to an untrained test checkpoint."""
    root = tmp_path_factory.mktemp("lab")
    with webcam_lab(root, tmp_path_factory.mktemp("jupyter_home"), make_checkpoint(root / "tiny.pt")) as server:
        yield server


@pytest.fixture(scope="module")
def face_y4m(tmp_path_factory) -> Path:
    """Two seconds of the moving public-domain face, as Chromium's fake camera plays it (looped)."""
    return write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", sample_frames(60, (320, 240), seed=3), fps=30)


def _open_and_run_all(page: Page, url: str) -> None:
    """Open notebook 05, run all cells, wait for the widget's start button."""
    open_and_run_all(page, url, ".fer-webcam .fer-start")


@contextlib.contextmanager
def _camera_page(lab: dict[str, Any], face_y4m: Path) -> Iterator[tuple[Page, list[str]]]:
    """Notebook 05 run in Chromium with a fake camera playing ``face_y4m``, the widget idle; yields the page
    and the JavaScript errors it reports."""
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(
            p,
            [
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={face_y4m}",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
            page.on(
                "console",
                lambda m: (
                    errors.append(f"console: {m.text}")
                    if m.type == "error"
                    and ("fer" in m.text.lower() or "anywidget" in m.text.lower() or "webcam" in m.text.lower())
                    else None
                ),
            )
            block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            yield page, errors
        finally:
            browser.close()


OVERLAY_PIXELS = """() => {
    const c = document.querySelector('.fer-webcam .fer-overlay');
    if (!c.width || !c.height) return 0;
    const alpha = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    for (let i = 3; i < alpha.length; i += 4) painted += alpha[i] > 0;
    return painted;
}"""
"""JavaScript: how many pixels of the widget's overlay (face boxes and labels over the video) are drawn on."""


def test_widget_recognises_a_face_from_the_camera(lab, face_y4m, tmp_path):
    with _camera_page(lab, face_y4m) as (page, errors):
        widget = page.locator(".fer-webcam")
        assert widget.get_attribute("data-state") == "idle"
        widget.locator(".fer-start").click()
        page.wait_for_function(
            "() => Number(document.querySelector('.fer-webcam').dataset.results) >= 20", timeout=90_000
        )
        results = int(widget.get_attribute("data-results"))
        with_face = int(widget.get_attribute("data-with-face"))
        fps = float(widget.get_attribute("data-fps") or 0)
        label = widget.locator(".fer-label").inner_text()
        widths = widget.locator(".fer-bar-fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
        stats_text = widget.locator(".fer-stats").inner_text()
        page.screenshot(path=str(tmp_path / "widget.png"))
        widget.locator(".fer-start").click()  # Stop: releases the camera
        assert widget.get_attribute("data-state") == "stopped"
    print(f"widget: {results} results, face in {with_face}, {fps:.1f} frames/s; {stats_text}")
    assert with_face >= 0.8 * results
    assert any(label.startswith(name) for name in CLASS_NAMES), label
    assert len(widths) == len(CLASS_NAMES) and sum(widths) == pytest.approx(100, abs=2)
    assert "frames/s" in stats_text
    assert not errors, errors


def test_stop_clears_the_label_bars_and_boxes(lab, face_y4m):
    with _camera_page(lab, face_y4m) as (page, errors):
        widget = page.locator(".fer-webcam")
        widget.locator(".fer-start").click()
        # A face on show: its box drawn over the video, its label and bars beside it.
        page.wait_for_function(
            f"() => document.querySelector('.fer-webcam').dataset.label && ({OVERLAY_PIXELS})() > 0", timeout=90_000
        )
        widget.locator(".fer-start").click()  # Stop
        state = widget.get_attribute("data-state")
        label = (widget.locator(".fer-label").inner_text(), widget.get_attribute("data-label"))
        widths = widget.locator(".fer-bar-fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
        values = widget.locator(".fer-bar-value").all_inner_texts()
        stats_text = widget.locator(".fer-stats").inner_text()
        painted = page.evaluate(OVERLAY_PIXELS)
    assert state == "stopped"
    assert label == ("–", "")
    assert widths == [0.0] * len(CLASS_NAMES) and values == [""] * len(CLASS_NAMES)
    assert stats_text == ""
    assert painted == 0
    assert not errors, errors


def test_widget_says_when_there_is_no_camera_or_the_origin_is_not_secure(lab):
    errors: list[str] = []
    with sync_playwright() as p:
        # No fake device: this machine has no camera. The fake UI accepts the permission prompt, so the
        # failure is the missing device, not a refusal.
        browser = launch_chromium(
            p, ["--use-fake-ui-for-media-stream", f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"]
        )
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            widget = page.locator(".fer-webcam")
            widget.locator(".fer-start").click()
            # Wait for getUserMedia's answer, whatever it is; the assertions below say which state it left.
            page.wait_for_function(
                "() => !['idle', 'starting'].includes(document.querySelector('.fer-webcam').dataset.state)",
                timeout=60_000,
            )
            no_camera = (widget.get_attribute("data-state"), widget.locator(".fer-status").inner_text())

            insecure = browser.new_page()
            insecure.on("pageerror", lambda err: errors.append(str(err)))
            block_outside_requests(insecure, INSECURE_HOST)
            _open_and_run_all(
                insecure, f"http://{INSECURE_HOST}:{lab['port']}/lab/tree/05_webcam.ipynb?token={lab['token']}"
            )
            w2 = insecure.locator(".fer-webcam")
            w2.locator(".fer-start").click()
            not_secure = (w2.get_attribute("data-state"), w2.locator(".fer-status").inner_text())
        finally:
            browser.close()
    assert no_camera[0] == "no-camera" and "No camera found" in no_camera[1], no_camera
    assert not_secure[0] == "insecure" and "secure page" in not_secure[1] and INSECURE_HOST in not_secure[1], not_secure
    assert not errors, errors


def _lab_settings_and_tips(lab: dict[str, Any]) -> tuple[str | None, list[str]]:
    """Open notebook 05 in Chromium (no camera needed): the widget's data-lab-settings and its tips' texts."""
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            widget = page.locator(".fer-webcam")
            return widget.get_attribute("data-lab-settings"), widget.locator(".fer-tip").all_inner_texts()
        finally:
            browser.close()


def test_widget_gives_no_tip_under_the_make_lab_settings(lab):
    settings, tips = _lab_settings_and_tips(lab)
    assert settings == "project"  # JupyterLab's page config lists comm_msg: jupyter_config/ reached the page
    assert tips == []


def test_widget_suggests_make_lab_under_default_jupyter_settings(tmp_path):
    root, home = tmp_path / "lab", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    with webcam_lab(root, home, make_checkpoint(root / "tiny.pt"), project_settings=False) as lab:
        settings, tips = _lab_settings_and_tips(lab)
    assert settings == "default"
    assert len(tips) == 1 and "make lab" in tips[0] and "jupyter_config/" in tips[0]
