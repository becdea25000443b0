"""JupyterLab and headless Chromium for the browser tests (and ``benchmarks/bench_realtime.py --browser``).

Chromium is Debian's (``.ci/run`` installs it); Playwright only drives it, it never downloads a browser.
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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fer_utils import paths

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
"""The Chromium the browser tests drive: ``$CHROMIUM``, else Debian's."""
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",  # no connections to the outside world
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_chromium(playwright: Any, extra_args: Sequence[str] = ()) -> Any:
    """Headless Debian Chromium through Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + list(extra_args))


@contextlib.contextmanager
def running_lab(
    root: Path, home: Path, env: Mapping[str, str] | None = None, project_settings: bool = True
) -> Iterator[dict[str, Any]]:
    """JupyterLab on 127.0.0.1 serving ``root`` with a token.

    With ``project_settings`` it loads ``jupyter_config/`` as ``make lab`` does; without, Jupyter's defaults.

    ``window.jupyterapp`` is exposed so a test can run all cells without clicking. Yields ``url``,
    ``port``, ``token`` and ``log``; stops the server and its kernels on exit.
    """
    port, token = free_port(), secrets.token_hex(16)
    full_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "FER_UTILS_CACHE": str(home / "cache"),
    }
    full_env.pop("JUPYTER_CONFIG_PATH", None)
    if project_settings:
        full_env["JUPYTER_CONFIG_PATH"] = str(paths.JUPYTER_CONFIG_DIR)
    full_env.update(env or {})
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_remote_access=True",  # host names mapped to 127.0.0.1
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    # No "get notified about Jupyter news?" pop-up over the page, and no autosave: a notebook saved with a
    # widget's output would show that stale widget to the next test before its own cells have run.
    settings = home / "settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    (settings / "docmanager-extension").mkdir(parents=True, exist_ok=True)
    (settings / "docmanager-extension" / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    log_path = home / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=root, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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
            yield {"url": url, "port": port, "token": token, "log": log_path}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def block_outside_requests(page: Any, allowed_host: str = "127.0.0.1") -> None:
    """Abort every request the page makes to a host other than ``allowed_host``."""
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.split("/")[2].split(":")[0] == allowed_host else route.abort()
        ),
    )


def open_and_run_all(page: Any, url: str, ready_selector: str, timeout_ms: int = 120_000) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, run all cells, and wait for ``ready_selector``."""
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
    page.wait_for_selector(ready_selector, state="visible", timeout=timeout_ms)
    page.wait_for_function(  # every cell has run: the widget on the page is the one this kernel serves
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=timeout_ms,
    )


def show_file_browser(page: Any) -> None:
    """Open JupyterLab's file browser in the left sidebar (where a person usually has it) and wait for it."""
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:activate')")
    page.wait_for_selector("#filebrowser", state="visible", timeout=30_000)


def rerun_all(page: Any, ready_selector: str, timeout_ms: int = 120_000) -> None:
    """Clear the open notebook's outputs, run all its cells again and wait for ``ready_selector`` and an idle kernel.

    Clearing first means the element waited for is the new run's, not a leftover of the previous one.
    """
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_selector(ready_selector, state="detached", timeout=30_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(ready_selector, state="visible", timeout=timeout_ms)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=timeout_ms,
    )
