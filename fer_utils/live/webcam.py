"""Live emotion recognition in JupyterLab, with the camera of the *browser*, not the kernel's machine.

::

    from fer_utils.live.webcam import WebcamWidget
    WebcamWidget(checkpoint="models/runs/default/best.pt")   # the last expression of a cell

Most live demos open ``cv2.VideoCapture(0)`` in the kernel, which fails whenever
the kernel is not on the machine with the camera (a server, Colab, a container).
Here the browser captures the video (``getUserMedia``), scales each frame to
about 320 px wide and sends it to the kernel as JPEG bytes in a binary message
buffer, one frame in flight at a time (re-sent after a timeout if no answer
comes). The kernel runs :class:`fer_utils.live.pipeline.Pipeline` (detect, crop with
FER2013 framing, the checkpoint's own preprocessing, classify, smooth per face)
and answers with boxes, labels and probabilities, which the browser draws over
the live video with per-emotion bars, frames/s and latency.

The browser side is ``fer_utils/live/static/webcam.js`` (and ``webcam.css``), an
`anywidget <https://anywidget.dev>`_ module. It says plainly when the camera
cannot be used: permission denied, no camera, or a page that is not a secure
origin (browsers only give the camera to ``https://`` pages and ``localhost``).

Keep the kernel free while the widget runs: frames are answered between cells,
so a cell that keeps running after the widget stops the stream.

Speed: start JupyterLab with ``make lab``, which loads the repository's server
settings (``jupyter_config/``, :mod:`fer_utils.live.lab_server`); under Jupyter's
defaults every frame also costs JupyterLab two kernel-status redraws and a
delayed websocket reply, and the widget shows a tip saying so.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path
from typing import Any

from fer_utils.extras import require_extra

require_extra("notebooks", "anywidget", "traitlets")

import anywidget  # noqa: E402
import traitlets  # noqa: E402

from .pipeline import CorruptFrameError, Pipeline, PipelineConfig  # noqa: E402

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


class WebcamWidget(anywidget.AnyWidget):
    """Browser camera -> kernel pipeline -> boxes, labels and probability bars over the live video.

    Args:
        checkpoint: Checkpoint for :meth:`Pipeline.from_checkpoint` (``None``: the
            shipped model, else notebook 03's default ``best.pt``).
        pipeline: An already built pipeline (then ``checkpoint`` and ``config`` are unused).
        config: Pipeline parameters (``None``: the defaults, in which the classifier
            uses one thread, since the browser shares the cores).
        **kwargs: Initial values of the synced traits below.

    Synced traits: ``capture_width`` (px sent per frame), ``jpeg_quality`` (0-1),
    ``resend_timeout_ms``, ``max_fps`` (upper bound on frames sent per second),
    ``mirror`` (show the video mirrored, like a mirror), ``autostart``.
    """

    _esm = STATIC_DIR / "webcam.js"
    _css = STATIC_DIR / "webcam.css"

    class_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    info = traitlets.Unicode("").tag(sync=True)
    capture_width = traitlets.Int(320).tag(sync=True)
    jpeg_quality = traitlets.Float(0.75).tag(sync=True)
    resend_timeout_ms = traitlets.Int(3000).tag(sync=True)
    max_fps = traitlets.Float(30.0).tag(sync=True)
    mirror = traitlets.Bool(True).tag(sync=True)
    autostart = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        pipeline: Pipeline | None = None,
        config: PipelineConfig | None = None,
        **kwargs: Any,
    ) -> None:
        pipe = pipeline or Pipeline.from_checkpoint(checkpoint, config or PipelineConfig())
        desc = pipe.describe()
        clf = desc.get("classifier", {})
        info = f"{clf.get('arch', '?')} via {clf.get('backend', '?')} · {desc['detector']} face detector"
        super().__init__(class_names=list(pipe.class_names), info=info, **kwargs)
        self.pipeline = pipe
        self.frames = 0
        self.frames_with_face = 0
        self.corrupt_frames = 0
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=300)
        self._started = time.perf_counter()
        self._stopped: float | None = None
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "start":
            self.pipeline.reset()
            self.frames = self.frames_with_face = self.corrupt_frames = 0
            self.recent.clear()
            self._started, self._stopped = time.perf_counter(), None
            return
        if kind == "stop":
            # The browser cleared its label, bars and boxes; the kernel forgets the faces it was smoothing,
            # and the run's duration stops growing.
            self.pipeline.reset()
            self._stopped = time.perf_counter()
            return
        if kind != "frame":
            return
        msg_id = content.get("id")
        if not buffers:
            self.send({"type": "error", "id": msg_id, "message": "frame message without image bytes"})
            return
        try:
            result = self.pipeline.process_jpeg(buffers[0])
        except CorruptFrameError as err:
            self.corrupt_frames += 1
            self.send({"type": "error", "id": msg_id, "message": f"corrupt frame skipped: {err}"})
            return
        self.frames += 1
        self.frames_with_face += bool(result.faces)
        message = result.to_message()
        self.recent.append(message)
        self.send({"type": "result", "id": msg_id, **message})

    @property
    def stats(self) -> dict[str, Any]:
        """Kernel-side counts of the run since the last Start (until Stop): frames, frames_with_face,
        corrupt_frames, kernel_ms_mean (mean latency of recent frames) and seconds (the run's duration)."""
        totals = [m["timings_ms"]["total"] for m in self.recent]
        return {
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "corrupt_frames": self.corrupt_frames,
            "kernel_ms_mean": sum(totals) / len(totals) if totals else 0.0,
            "seconds": (self._stopped or time.perf_counter()) - self._started,
        }
