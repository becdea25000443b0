"""Notebook 05's webcam widget in a real browser, as a person would use it.

The test starts JupyterLab on 127.0.0.1 (a token, a free port, a temporary copy of the notebook with a small
untrained checkpoint injected as its parameter), opens it in Debian's headless Chromium driven by Playwright,
runs all cells, presses Start and checks what is on the page:

- with a fake camera playing a y4m clip of a real face (public domain, fer_utils/assets), at least 20 results
  come back, a face is found in at least 80 % of them, a label and probability bars are shown, and the page
  has no JavaScript errors;
- without a camera, the widget says so; opened from a non-secure origin, it says the camera needs localhost
  or https.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); never `playwright install`. Requests to
anything but the local server are blocked, so the test works offline.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Page, sync_playwright

from fer_utils import CLASS_NAMES, paths
from fer_utils.realtime import sample_frames, write_y4m

from test_realtime import make_checkpoint

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
INSECURE_HOST = "fer-webcam.test"
"""A name Chromium maps to 127.0.0.1 (--host-resolver-rules): the same server, but not a secure origin."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_lab(root: Path, home: Path, checkpoint: Path) -> Iterator[dict[str, Any]]:
    """JupyterLab on 127.0.0.1 serving ``root``, holding a copy of notebook 05 set to ``checkpoint``.

    Yields ``url``, ``port``, ``token``; stops the server (and its kernels) on exit. Also used by
    benchmarks/bench_realtime.py --browser.
    """
    nb = nbformat.read(paths.NOTEBOOKS_DIR / "05_webcam.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = f"SOURCE = 'webcam'\ncheckpoint_path = {str(checkpoint)!r}"  # as papermill would inject them
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(nb, root / "05_webcam.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "FER_UTILS_CACHE": str(home / "cache"),
    }
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0", "--ServerApp.allow_remote_access=True",  # the non-secure-origin check's host name
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log_path = home / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"JupyterLab did not start: {log_path.read_text()[-2000:]}") from None
                    time.sleep(0.5)
            yield {"url": url, "port": port, "token": token}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary copy of notebook 05 set to an untrained test checkpoint."""
    root = tmp_path_factory.mktemp("lab")
    with running_lab(root, tmp_path_factory.mktemp("jupyter_home"), make_checkpoint(root / "tiny.pt")) as server:
        yield server


@pytest.fixture(scope="module")
def face_y4m(tmp_path_factory) -> Path:
    """Two seconds of the moving public-domain face, as Chromium's fake camera plays it (looped)."""
    return write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", sample_frames(60, (320, 240), seed=3), fps=30)


def _block_outside_requests(page: Page, allowed_host: str) -> None:
    page.route("**/*", lambda route: route.continue_() if route.request.url.split("/")[2].split(":")[0]
               == allowed_host else route.abort())


def _open_and_run_all(page: Page, url: str) -> None:
    """Open the notebook, wait for its kernel, run all cells, wait for the widget to render."""
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            const w = app && app.shell && app.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!(k && k.status === 'idle');
        }""",
        timeout=90_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".fer-webcam .fer-start", state="visible", timeout=120_000)


def _launch(p, extra_args: list[str]):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + extra_args)


def test_widget_recognises_a_face_from_the_camera(lab, face_y4m, tmp_path):
    errors: list[str] = []
    with sync_playwright() as p:
        browser = _launch(p, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                              f"--use-file-for-fake-video-capture={face_y4m}"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" and
                    ("fer" in m.text.lower() or "anywidget" in m.text.lower() or "webcam" in m.text.lower()) else None)
            _block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
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
        finally:
            browser.close()
    print(f"widget: {results} results, face in {with_face}, {fps:.1f} frames/s; {stats_text}")
    assert with_face >= 0.8 * results
    assert any(label.startswith(name) for name in CLASS_NAMES), label
    assert len(widths) == len(CLASS_NAMES) and sum(widths) == pytest.approx(100, abs=2)
    assert "frames/s" in stats_text
    assert not errors, errors


def test_widget_says_when_there_is_no_camera_or_the_origin_is_not_secure(lab):
    errors: list[str] = []
    with sync_playwright() as p:
        # No fake device: this machine has no camera. The fake UI accepts the permission prompt, so the
        # failure is the missing device, not a refusal.
        browser = _launch(p, ["--use-fake-ui-for-media-stream", f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            _block_outside_requests(page, "127.0.0.1")
            _open_and_run_all(page, f"{lab['url']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            widget = page.locator(".fer-webcam")
            widget.locator(".fer-start").click()
            page.wait_for_function(
                "() => ['no-camera', 'denied', 'error'].includes(document.querySelector('.fer-webcam').dataset.state)",
                timeout=30_000,
            )
            no_camera = (widget.get_attribute("data-state"), widget.locator(".fer-status").inner_text())

            insecure = browser.new_page()
            insecure.on("pageerror", lambda err: errors.append(str(err)))
            _block_outside_requests(insecure, INSECURE_HOST)
            _open_and_run_all(insecure, f"http://{INSECURE_HOST}:{lab['port']}/lab/tree/05_webcam.ipynb?token={lab['token']}")
            w2 = insecure.locator(".fer-webcam")
            w2.locator(".fer-start").click()
            not_secure = (w2.get_attribute("data-state"), w2.locator(".fer-status").inner_text())
        finally:
            browser.close()
    assert no_camera[0] == "no-camera" and "No camera found" in no_camera[1], no_camera
    assert not_secure[0] == "insecure" and "secure page" in not_secure[1] and INSECURE_HOST in not_secure[1], not_secure
    assert not errors, errors
