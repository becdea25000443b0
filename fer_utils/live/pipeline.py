"""The live pipeline, one frame at a time: frames in, faces with smoothed emotion probabilities out.

::

    frame (BGR) -> grayscale -> detect faces -> crop with FER2013 framing -> 48x48 uint8
        -> Preprocess (the checkpoint's, as in training) -> classifier -> smoothing per tracked face

:class:`Pipeline` is shared by the command line (:mod:`fer_utils.live.runner`),
the webcam widget (:mod:`fer_utils.live.webcam`) and notebook 05's headless run.
:class:`FaceSmoother` follows faces from frame to frame and averages each one's
probabilities, so labels do not flicker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from .detect import Box, FaceDetector, TrackingDetector, crop_faces, make_detector, to_gray

STAGES: tuple[str, ...] = ("decode", "detect", "classify", "total")
"""Timed stages of one frame, in milliseconds (``total`` includes smoothing and bookkeeping)."""


class CorruptFrameError(ValueError):
    """One frame could not be decoded; the stream goes on."""


# --------------------------------------------------------------------------- configuration and results


@dataclass(frozen=True)
class PipelineConfig:
    """Parameters of the real-time pipeline (written into the run's JSON).

    Attributes:
        detector: Face detector name (:data:`fer_utils.live.detect.DETECTORS`).
        detector_model: Model file for detectors that need one (YuNet).
        backend: Classifier backend: ``"auto"``, ``"onnx"`` or ``"torch"``.
        threads: Classifier CPU threads (1: the browser and detector share the cores).
        tta: Test-time views per face (each costs a forward pass).
        smoothing: Weight of the past in the per-face exponential moving average
            of probabilities, 0-1; 0.6 at 15-30 frames/s is a time constant of
            about 0.1 s: labels stop flickering but follow a change of expression.
        track_iou: Least box overlap for a face to count as the same face as in
            the previous frame (its smoothing continues).
        track_max_missed: Frames a face may go undetected before its track ends.
        full_detect_every: Frames between full-frame face searches (in between
            the detector looks only near the last faces; 1: always full frame).
        max_faces: Most faces classified per frame (largest first).
    """

    detector: str = "haar"
    detector_model: str = ""
    backend: str = "auto"
    threads: int = 1
    tta: str = "none"
    smoothing: float = 0.6
    track_iou: float = 0.3
    track_max_missed: int = 5
    full_detect_every: int = 10
    max_faces: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")


@dataclass
class Face:
    """One face in one frame.

    Attributes:
        box: Where it is, in frame pixels.
        track: Identifier of the face across frames.
        probs: float32 (num_classes,) probabilities shown (smoothed over the track).
        raw_probs: float32 (num_classes,) this frame's probabilities, unsmoothed.
        label: Name of the most probable class in ``probs``.
    """

    box: Box
    track: int
    probs: np.ndarray
    raw_probs: np.ndarray
    label: str

    @property
    def confidence(self) -> float:
        return float(self.probs.max())


@dataclass
class FrameResult:
    """What the pipeline found in one frame.

    Attributes:
        index: Frame number in the stream (0-based).
        width: Frame width in pixels.
        height: Frame height in pixels.
        faces: Faces, largest first.
        timings_ms: Milliseconds per stage (:data:`STAGES`).
    """

    index: int
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        """JSON-ready summary (sent to the browser by the webcam widget)."""
        return {
            "index": self.index,
            "width": self.width,
            "height": self.height,
            "faces": [
                {
                    "box": f.box.as_list(),
                    "track": f.track,
                    "label": f.label,
                    "confidence": round(f.confidence, 4),
                    "probs": [round(float(p), 4) for p in f.probs],
                }
                for f in self.faces
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


# --------------------------------------------------------------------------- smoothing


class FaceSmoother:
    """Exponential moving average of each face's probabilities, following faces by box overlap.

    A face in a new frame continues the track whose last box overlaps it most
    (IoU at least ``min_iou``); its shown probabilities become
    ``smoothing * previous + (1 - smoothing) * current``. Unmatched faces start
    new tracks; tracks unseen for more than ``max_missed`` frames end.

    Args:
        smoothing: Weight of the past, 0 (no smoothing) to <1.
        min_iou: Least overlap to continue a track.
        max_missed: Frames a track survives without its face.
    """

    def __init__(self, smoothing: float = 0.6, min_iou: float = 0.3, max_missed: int = 5) -> None:
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.max_missed = max_missed
        self._tracks: dict[int, tuple[Box, np.ndarray, int]] = {}  # id -> (box, probs, frames missed)
        self._next_id = 0

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, boxes: Sequence[Box], probs: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Match this frame's faces to tracks and smooth.

        Args:
            boxes: This frame's faces.
            probs: float32 (len(boxes), num_classes) raw probabilities.

        Returns:
            ``(track ids, smoothed probabilities)`` in the order of ``boxes``.
        """
        pairs = sorted(
            ((b.iou(tb), i, tid) for i, b in enumerate(boxes) for tid, (tb, _, _) in self._tracks.items()),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for iou, i, tid in pairs:
            if iou < self.min_iou:
                break
            if i not in assigned and tid not in used:
                assigned[i] = tid
                used.add(tid)
        ids: list[int] = []
        out = np.empty_like(probs)
        for i, b in enumerate(boxes):
            if i in assigned:
                tid = assigned[i]
                prev = self._tracks[tid][1]
                out[i] = self.smoothing * prev + (1.0 - self.smoothing) * probs[i]
            else:
                tid, self._next_id = self._next_id, self._next_id + 1
                out[i] = probs[i]
            self._tracks[tid] = (b, out[i].copy(), 0)
            ids.append(tid)
        for tid in list(self._tracks):
            if tid not in ids:
                box, p, missed = self._tracks[tid]
                if missed + 1 > self.max_missed:
                    del self._tracks[tid]
                else:
                    self._tracks[tid] = (box, p, missed + 1)
        return ids, out


# --------------------------------------------------------------------------- the pipeline


class Pipeline:
    """Detect, crop, classify and smooth, one frame at a time.

    Args:
        classifier: A :class:`fer_utils.live.classify.FaceClassifier` (anything with
            ``class_names`` and ``predict(uint8 (N, 48, 48)) -> (N, C)``).
        detector: A :class:`fer_utils.live.detect.FaceDetector`.
        config: The pipeline's parameters.
    """

    def __init__(self, classifier: Any, detector: FaceDetector, config: PipelineConfig = PipelineConfig()) -> None:
        self.classifier = classifier
        self.config = config
        self.detector: FaceDetector = (
            TrackingDetector(detector, full_every=config.full_detect_every)
            if config.full_detect_every > 1
            else detector
        )
        self.class_names: tuple[str, ...] = tuple(classifier.class_names)
        self.smoother = FaceSmoother(config.smoothing, config.track_iou, config.track_max_missed)
        self._index = 0

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | os.PathLike[str] | None = None, config: PipelineConfig = PipelineConfig()
    ) -> Pipeline:
        """Build the classifier and detector from a checkpoint (``None``: the shipped model, see
        :func:`fer_utils.model.checkpoint.resolve_checkpoint`)."""
        from .classify import FaceClassifier

        classifier = FaceClassifier(checkpoint, backend=config.backend, threads=config.threads, tta=config.tta)
        detector = make_detector(config.detector, config.detector_model or None)
        return cls(classifier, detector, config)

    def reset(self) -> None:
        """Start a new stream: forget tracks and restart frame numbering."""
        self.smoother.reset()
        if isinstance(self.detector, TrackingDetector):
            self.detector.reset()
        self._index = 0

    def process(self, frame: np.ndarray, *, decode_ms: float = 0.0) -> FrameResult:
        """Faces and their emotions in one frame.

        Args:
            frame: uint8 BGR (H, W, 3) or grayscale (H, W).
            decode_ms: Time spent decoding the frame, recorded as the ``decode`` stage.

        Returns:
            The frame's :class:`FrameResult`.
        """
        t0 = time.perf_counter()
        if frame is None or frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
            raise CorruptFrameError(f"not an image frame: {None if frame is None else (frame.dtype, frame.shape)}")
        gray = to_gray(frame)
        boxes = self.detector.detect(frame if self.detector.wants_color else gray)[: self.config.max_faces]
        t1 = time.perf_counter()
        crops = crop_faces(gray, boxes, self.detector.framing)
        raw = self.classifier.predict(crops).astype(np.float32)
        t2 = time.perf_counter()
        ids, shown = self.smoother.update(boxes, raw)
        faces = [
            Face(b, tid, shown[i], raw[i], self.class_names[int(np.argmax(shown[i]))])
            for i, (b, tid) in enumerate(zip(boxes, ids, strict=True))
        ]
        h, w = gray.shape
        result = FrameResult(self._index, w, h, faces)
        self._index += 1
        t3 = time.perf_counter()
        result.timings_ms = {
            "decode": decode_ms,
            "detect": (t1 - t0) * 1e3,
            "classify": (t2 - t1) * 1e3,
            "total": decode_ms + (t3 - t0) * 1e3,
        }
        return result

    def process_jpeg(self, data: bytes | memoryview) -> FrameResult:
        """Decode an encoded image (JPEG, PNG, WebP) and process it.

        Raises:
            CorruptFrameError: the bytes are not a decodable image.
        """
        t0 = time.perf_counter()
        frame = decode_image(data)
        return self.process(frame, decode_ms=(time.perf_counter() - t0) * 1e3)

    def describe(self) -> dict[str, Any]:
        """The pipeline's configuration, detector and classifier (JSON-ready)."""
        info = {"config": asdict(self.config), "detector": self.detector.name, "framing": self.detector.framing}
        if hasattr(self.classifier, "describe"):
            info["classifier"] = self.classifier.describe()
        return info


def decode_image(data: bytes | memoryview | np.ndarray) -> np.ndarray:
    """Encoded image bytes -> uint8 BGR (H, W, 3).

    Raises:
        CorruptFrameError: empty or undecodable bytes.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.size == 0:
        raise CorruptFrameError("empty frame (0 bytes)")
    frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if frame is None:
        raise CorruptFrameError(f"could not decode a {buf.size}-byte frame as an image")
    return frame
