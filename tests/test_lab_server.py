"""The repository's Jupyter Server settings (jupyter_config/, fer_utils.live.lab_server) as Jupyter loads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

from fer_utils import paths
from fer_utils.live import lab_server

LOAD = """
import json
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=["--no-browser", "--port=0"], find_extensions=False, new_httpserver=False)
cls = app.kernel_websocket_connection_class
print(json.dumps({"untracked": list(app.kernel_manager.untracked_message_types),
                  "connection": f"{cls.__module__}.{cls.__name__}"}))
"""

HIDE_FER_UTILS = """
import sys
class HideFerUtils:  # this Python behaves as one without fer_utils installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "fer_utils":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, HideFerUtils())
"""


def load_server_settings(tmp_path, config_path: str | None, prelude: str = "") -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    if config_path:
        env["JUPYTER_CONFIG_PATH"] = config_path
    out = subprocess.run(
        [sys.executable, "-c", prelude + LOAD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_make_lab_settings_add_to_jupyters_defaults(tmp_path):
    default, _ = load_server_settings(tmp_path, None)
    project, _ = load_server_settings(tmp_path, str(paths.JUPYTER_CONFIG_DIR))
    assert "comm_msg" not in default["untracked"]
    assert project["untracked"] == default["untracked"] + ["comm_msg"]  # appended, Jupyter's own list kept
    assert default["connection"].endswith("ZMQChannelsWebsocketConnection")
    assert project["connection"] == "fer_utils.live.lab_server.LowLatencyWebsocketConnection"


def test_a_jupyter_that_cannot_import_fer_utils_starts_with_its_defaults_and_says_so(tmp_path):
    default, _ = load_server_settings(tmp_path, None)
    hidden, stderr = load_server_settings(tmp_path, str(paths.JUPYTER_CONFIG_DIR), prelude=HIDE_FER_UTILS)
    assert hidden == default
    assert "jupyter_server_config.py: fer_utils is not importable" in stderr


def test_the_kernel_websocket_is_set_to_nodelay_before_it_connects(monkeypatch):
    calls: list[str] = []
    handler = KernelWebsocketHandler.__new__(KernelWebsocketHandler)  # what Tornado would hand the connection
    handler.set_nodelay = lambda value: calls.append(f"nodelay {value}")
    monkeypatch.setattr(ZMQChannelsWebsocketConnection, "connect", lambda self: calls.append("connect") or "future")
    conn = lab_server.LowLatencyWebsocketConnection(websocket_handler=handler)
    assert conn.connect() == "future"
    assert calls == ["nodelay True", "connect"]
