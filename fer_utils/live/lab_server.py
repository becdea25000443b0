"""Jupyter Server settings that keep the webcam widget (notebook 05) fast.

``jupyter_config/jupyter_server_config.py`` applies them; ``make lab`` (and the browser tests) start
JupyterLab with that folder on ``JUPYTER_CONFIG_PATH``. Two per-frame costs of the widget come from
Jupyter rather than from the model, and both are settings here:

- **Kernel status redraws.** The kernel answers every widget (comm) message with a busy and an idle status
  message, and JupyterLab redraws its kernel indicators (notebook toolbar, status bar, tab) for each: two
  redraws per camera frame. Listing ``comm_msg`` in ``MappingKernelManager.untracked_message_types``
  (:data:`UNTRACKED_MESSAGE_TYPES`) tells JupyterLab (4.5 and later read it) to leave the shown status alone
  for them. The cost: for *every* widget, not only this one, a callback that takes long (say a Grad-CAM
  computed on a click in notebook 04's browser) no longer shows the kernel as busy, and widget traffic no
  longer counts as kernel activity for the server's idle culling (``cull_idle_timeout``, a JupyterHub
  culler). Cell executions are tracked as before.
- **Nagle's algorithm on the kernel websocket.** Jupyter Server leaves it on, so the kernel's answer, which
  follows the small "busy" message, waits for the browser's delayed acknowledgement of that message (tens of
  milliseconds on Linux) before it is sent. :class:`LowLatencyWebsocketConnection` turns it off
  (``TCP_NODELAY``), as Tornado's ``WebSocketHandler.set_nodelay`` documentation recommends for small
  interactive messages.

``benchmarks/bench_realtime.py --browser 20`` measures the widget with these settings, ``--jupyter-defaults``
without them (README's "Measured so far" table gives both). The connection class is Jupyter Server's own
ZMQ one: with ``--gateway-url`` (kernels on a remote gateway) start JupyterLab without these settings.
"""

from __future__ import annotations

import asyncio

from fer_utils.extras import require_extra

require_extra("notebooks", "jupyter_server", "traitlets")

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection  # noqa: E402
from traitlets.config import Config  # noqa: E402

UNTRACKED_MESSAGE_TYPES = ("comm_msg",)
"""Message types whose busy/idle replies should not change the kernel status JupyterLab shows."""


class LowLatencyWebsocketConnection(ZMQChannelsWebsocketConnection):
    """Jupyter Server's kernel websocket connection with ``TCP_NODELAY`` set on the websocket."""

    def connect(self) -> asyncio.Future[None] | None:  # type: ignore[override]  # the base class's annotation is wrong
        self.websocket_handler.set_nodelay(True)
        return super().connect()


def configure(c: Config) -> None:
    """Apply both settings to a Jupyter Server config object ``c`` (as in ``jupyter_server_config.py``)."""
    c.MappingKernelManager.untracked_message_types.extend(UNTRACKED_MESSAGE_TYPES)
    c.ServerApp.kernel_websocket_connection_class = f"{__name__}.{LowLatencyWebsocketConnection.__name__}"
