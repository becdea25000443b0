"""Real-time emotion recognition: frames in, faces with smoothed emotion probabilities out.

The pipeline, shared by the command line, the webcam widget (:mod:`fer_utils.webcam`)
and notebook 05's headless run::

    frame (BGR) -> grayscale -> detect faces -> crop with FER2013 framing -> 48x48 uint8
        -> Preprocess (the checkpoint's, as in training) -> classifier -> smoothing per tracked face

Command line::

    python -m fer_utils.realtime --source 0                       # camera 0, in a window when there is a display
    python -m fer_utils.realtime --source clip.mp4 --no-window --output annotated.mp4 --json stats.json --csv frames.csv
    python -m fer_utils.realtime --source "frames/*.png" --checkpoint models/runs/default/best.pt

``--json`` holds ``frames``, ``frames_with_face``, ``fps``, per-emotion counts
and per-stage latency; ``--csv`` one row per face per frame (frame index, box,
label, the probabilities shown and the raw ones). Bad input (an unreadable file,
a camera that does not open, a missing checkpoint) ends with a one-line message
and exit status 2; a corrupt frame is counted, logged and skipped.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import paths
from .faces import Box, FaceDetector, TrackingDetector, crop_faces, make_detector, to_gray
from .files import atomic_write_bytes, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("decode", "detect", "classify", "total")
"""Timed stages of one frame, in milliseconds (``total`` includes smoothing and bookkeeping)."""

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
SAMPLE_FACE = ASSETS_DIR / "astronaut_face.png"
"""A real face (NASA, public domain; see ``fer_utils/assets/README.md``) for sample clips."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm")
MAX_CONSECUTIVE_BAD_READS = 25
"""Failed reads in a row after which a video is taken to have ended (single failures are corrupt frames)."""


class SourceError(ValueError):
    """A source that cannot be opened: unreadable file, empty glob, or a camera that does not open."""


class CorruptFrameError(ValueError):
    """One frame could not be decoded; the stream goes on."""


# --------------------------------------------------------------------------- configuration and results


@dataclass(frozen=True)
class PipelineConfig:
    """Parameters of the real-time pipeline (written into the run's JSON).

    Attributes:
        detector: Face detector name (``fer_utils.faces.DETECTORS``).
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
                {"box": f.box.as_list(), "track": f.track, "label": f.label, "confidence": round(f.confidence, 4),
                 "probs": [round(float(p), 4) for p in f.probs]}
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
        classifier: A :class:`fer_utils.inference.FaceClassifier` (anything with
            ``class_names`` and ``predict(uint8 (N, 48, 48)) -> (N, C)``).
        detector: A :class:`fer_utils.faces.FaceDetector`.
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
        :func:`fer_utils.inference.resolve_checkpoint`)."""
        from .inference import FaceClassifier

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
            for i, (b, tid) in enumerate(zip(boxes, ids))
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


# --------------------------------------------------------------------------- drawing


def _color(label_index: int) -> tuple[int, int, int]:
    """A fixed BGR colour per class (matplotlib's tab10, so figures and video agree)."""
    tab10 = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
             (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]
    return tab10[label_index % len(tab10)]


def annotate(
    frame: np.ndarray, result: FrameResult, class_names: Sequence[str], *, show_fps: float | None = None
) -> np.ndarray:
    """Draw boxes, labels and the top probabilities on a copy of ``frame``.

    Args:
        frame: uint8 BGR (H, W, 3) or grayscale (H, W).
        result: The frame's :class:`FrameResult`.
        class_names: Class names, in the probabilities' order.
        show_fps: If given, written in the top-left corner.

    Returns:
        uint8 BGR (H, W, 3).
    """
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    scale = max(0.35, min(out.shape[:2]) / 600.0)
    thick = max(1, round(scale * 2))
    for f in result.faces:
        k = int(np.argmax(f.probs))
        color = _color(k)
        b = f.box
        cv2.rectangle(out, (b.x, b.y), (b.x + b.w, b.y + b.h), color, thick)
        text = f"{f.label} {f.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = b.y - 4 if b.y - th - 6 > 0 else b.y + b.h + th + 4
        cv2.rectangle(out, (b.x, y - th - 3), (b.x + tw + 4, y + base - 1), color, -1)
        cv2.putText(out, text, (b.x + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    if show_fps is not None:
        cv2.putText(out, f"{show_fps:.1f} fps", (6, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return out


def montage(frames: Sequence[np.ndarray], cols: int = 4, width: int = 320) -> np.ndarray:
    """Tile BGR frames into one image (each resized to ``width`` pixels wide), row by row.

    Returns:
        uint8 BGR image; blank tiles fill the last row.
    """
    if not frames:
        raise ValueError("montage needs at least one frame")
    tiles = []
    for f in frames:
        f = cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f
        h, w = f.shape[:2]
        tiles.append(cv2.resize(f, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, th - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=0) for t in tiles]
    cols = max(1, min(cols, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    tiles += [np.zeros_like(tiles[0])] * (rows * cols - len(tiles))
    return np.vstack([np.hstack(tiles[r * cols : (r + 1) * cols]) for r in range(rows)])


# --------------------------------------------------------------------------- sources


@dataclass
class FrameSource:
    """An opened source of frames.

    Attributes:
        description: What it is (for messages and the JSON).
        fps: Frames per second the source declares (0 if unknown; cameras and image folders).
        is_camera: True for a live camera (runs until stopped).
        frames: Iterator of ``(index, frame or None)``; ``None`` marks a corrupt frame.
    """

    description: str
    fps: float
    is_camera: bool
    frames: Iterator[tuple[int, np.ndarray | None]]
    close: Callable[[], None] = lambda: None


def open_source(source: str | int) -> FrameSource:
    """Open a camera index, a video file or an image glob.

    Args:
        source: ``0``/``"0"`` (camera index), a video file, or a glob of images
            (``"frames/*.png"``) or a folder of images.

    Raises:
        SourceError: the file is missing or unreadable, the glob matches no
            image, or the camera does not open.
    """
    text = str(source)
    if text.isdigit():
        index = int(text)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {index} could not be opened (no camera at that index, no permission, or it is in use)"
            )
        return FrameSource(f"camera {index}", float(cap.get(cv2.CAP_PROP_FPS) or 0.0), True, _read_capture(cap, True),
                           cap.release)
    if any(ch in text for ch in "*?[") or Path(text).is_dir():
        pattern = str(Path(text) / "*") if Path(text).is_dir() else text
        files = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"{text}: no image files ({', '.join(IMAGE_SUFFIXES)}) match")
        return FrameSource(f"{len(files)} images matching {text}", 0.0, False, _read_images(files))
    path = Path(text).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(str(path), 0.0, False, _read_images([str(path)]))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{path}: not a readable video (OpenCV/FFmpeg cannot open it)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise SourceError(f"{path}: not a readable video (no frame could be decoded)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if math.isfinite(fps) else 0.0
    return FrameSource(str(path), fps, False, _read_capture(cap, False, first), cap.release)


def _read_capture(
    cap: Any, is_camera: bool, first: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray | None]]:
    index = 0
    if first is not None:
        yield index, first
        index += 1
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not is_camera else 0
    bad = 0
    while True:
        ok, frame = cap.read()
        if ok and frame is not None:
            bad = 0
            yield index, frame
            index += 1
            continue
        bad += 1
        # A failed read is either the end of the video or a frame FFmpeg could not decode. Past the declared
        # frame count, or after many failures in a row, it is the end; otherwise report one corrupt frame.
        if bad >= MAX_CONSECUTIVE_BAD_READS or (not is_camera and (total <= 0 or index >= total)):
            return
        yield index, None
        index += 1


def _read_images(files: Sequence[str]) -> Iterator[tuple[int, np.ndarray | None]]:
    for i, f in enumerate(files):
        frame = cv2.imread(f, cv2.IMREAD_COLOR)
        if frame is None:
            logger.warning("%s: not a readable image; skipped", f)
        yield i, frame


class VideoWriter:
    """An annotated-video writer that leaves no half-written file behind.

    Frames go to a hidden temporary file in the destination folder (with the same
    extension, which FFmpeg uses to choose the container) and are renamed into
    place by :meth:`close`; on error the temporary file is removed.

    Args:
        path: ``.mp4`` (MPEG-4 Part 2, plays everywhere) or ``.avi`` (Motion JPEG).
        fps: Frame rate written into the file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 15.0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise SourceError(f"{self.path}: cannot write video (use a .mp4 or .avi file name)")
        self._writer.write(frame)
        self.frames += 1

    def close(self, keep: bool = True) -> Path | None:
        """Finish the file and move it into place (``keep=False`` discards it)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.frames and self._tmp.exists():
            os.replace(self._tmp, self.path)
            return self.path
        self._tmp.unlink(missing_ok=True)
        return None


# --------------------------------------------------------------------------- sample clips


def sample_frames(n: int = 60, size: tuple[int, int] = (320, 240), *, seed: int = 0) -> Iterator[np.ndarray]:
    """Frames of a real face moving gently over a plain background: a stand-in for a camera.

    The face is ``SAMPLE_FACE`` (public domain). It drifts along a slow
    Lissajous path, grows and shrinks by a few percent and the light changes a
    little, as a person in front of a laptop would.

    Args:
        n: Number of frames.
        size: ``(width, height)`` in pixels.
        seed: Seed of the motion's phase.

    Yields:
        uint8 BGR frames (height, width, 3).
    """
    face = cv2.imread(str(SAMPLE_FACE), cv2.IMREAD_COLOR)
    if face is None:
        raise FileNotFoundError(f"{SAMPLE_FACE}: bundled sample face missing")
    w, h = size
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    # A warm grey wall, lit from above: smooth, so clips and montages compress well.
    shade = np.linspace(1.1, 0.85, h, dtype=np.float32)[:, None, None]
    base = np.clip(np.array([96, 112, 128], np.float32) * shade, 0, 255).astype(np.uint8).repeat(w, axis=1)
    side0 = 0.75 * min(w, h)
    for t in range(n):
        s = side0 * (1.0 + 0.06 * np.sin(2 * np.pi * t / 47.0 + phase))
        cx = w / 2 + 0.12 * w * np.sin(2 * np.pi * t / 61.0 + phase)
        cy = h / 2 + 0.06 * h * np.sin(2 * np.pi * t / 37.0)
        m = np.array([[s / face.shape[1], 0, cx - s / 2], [0, s / face.shape[0], cy - s / 2]], np.float32)
        frame = base.copy()
        cv2.warpAffine(face, m, (w, h), dst=frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        gain = 1.0 + 0.05 * np.sin(2 * np.pi * t / 29.0)
        yield cv2.convertScaleAbs(frame, alpha=gain)


def write_video(
    path: str | os.PathLike[str], frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float = 15.0
) -> Path:
    """Write BGR frames to ``.mp4``/``.avi`` atomically; returns the path."""
    writer = VideoWriter(path, fps)
    try:
        for f in frames:
            writer.write(f)
    except BaseException:
        writer.close(keep=False)
        raise
    out = writer.close()
    if out is None:
        raise ValueError(f"{path}: no frames to write")
    return out


def write_y4m(path: str | os.PathLike[str], frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: int = 30) -> Path:
    """Write BGR frames as an uncompressed YUV4MPEG2 (4:2:0) file, e.g. for Chromium's fake camera
    (``--use-file-for-fake-video-capture=FILE.y4m``). Width and height must be even."""
    chunks: list[bytes] = []
    header: bytes | None = None
    for f in frames:
        h, w = f.shape[:2]
        if w % 2 or h % 2:
            raise ValueError(f"y4m 4:2:0 needs even width and height, got {w}x{h}")
        if header is None:
            header = f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii")
        chunks.append(b"FRAME\n" + cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())
    if header is None:
        raise ValueError(f"{path}: no frames to write")
    return atomic_write_bytes(path, header + b"".join(chunks))


def make_sample_clip(path: str | os.PathLike[str], n: int = 60, size: tuple[int, int] = (320, 240), fps: float = 15.0,
                     seed: int = 0) -> Path:
    """Write :func:`sample_frames` as a video (``make reproduce`` and the tests use it)."""
    return write_video(path, sample_frames(n, size, seed=seed), fps)


# --------------------------------------------------------------------------- running over a source


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


CSV_FIXED = ("frame", "face", "track", "x", "y", "w", "h", "label", "confidence")


def csv_header(class_names: Sequence[str]) -> list[str]:
    """Columns of the per-face CSV: :data:`CSV_FIXED`, ``p_<class>`` (shown, smoothed) and ``raw_<class>``."""
    return [*CSV_FIXED, *(f"p_{c}" for c in class_names), *(f"raw_{c}" for c in class_names)]


def csv_rows(result: FrameResult) -> list[list[Any]]:
    """One CSV row per face of ``result`` (see :func:`csv_header`)."""
    rows = []
    for j, f in enumerate(result.faces):
        rows.append([result.index, j, f.track, *f.box.as_list(), f.label, round(f.confidence, 5),
                     *(round(float(p), 5) for p in f.probs), *(round(float(p), 5) for p in f.raw_probs)])
    return rows


@dataclass
class RunStats:
    """Counts and timings of a run over a source (the ``--json`` output)."""

    source: str
    frames: int = 0
    frames_with_face: int = 0
    faces: int = 0
    corrupt_frames: int = 0
    seconds: float = 0.0
    emotion_counts: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped_by: str = "end of source"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, pipeline: Pipeline | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = round(self.fps, 2)
        d["seconds"] = round(self.seconds, 3)
        d["face_rate"] = round(self.frames_with_face / self.frames, 4) if self.frames else 0.0
        if pipeline is not None:
            d["pipeline"] = pipeline.describe()
        return d


def run(
    source: str | int,
    pipeline: Pipeline,
    *,
    output: str | os.PathLike[str] | None = None,
    csv_path: str | os.PathLike[str] | None = None,
    window: bool = False,
    max_frames: int = 0,
    keep_frames: int = 0,
    on_result: Callable[[np.ndarray, FrameResult], None] | None = None,
) -> tuple[RunStats, list[np.ndarray]]:
    """Run the pipeline over a camera, video file or image glob.

    Args:
        source: See :func:`open_source`.
        pipeline: The pipeline (reset at the start).
        output: Annotated video to write (``.mp4`` or ``.avi``), or ``None``.
        csv_path: Per-face CSV to write, or ``None``.
        window: Show annotated frames in an OpenCV window (``q`` or Esc stops).
        max_frames: Stop after this many frames (0: until the source ends or is stopped).
        keep_frames: Also return this many annotated frames, evenly spread over
            the run (for a montage); needs ``max_frames`` or a finite source.
        on_result: Called with ``(frame, result)`` after each frame.

    Returns:
        ``(stats, kept annotated frames)``.

    Raises:
        SourceError: the source cannot be opened or the video cannot be written.
    """
    src = open_source(source)
    pipeline.reset()
    stats = RunStats(source=src.description)
    counts = dict.fromkeys(pipeline.class_names, 0)
    timings: dict[str, list[float]] = {k: [] for k in STAGES}
    rows: list[list[Any]] = []
    writer = VideoWriter(output, src.fps) if output else None
    kept: dict[int, np.ndarray] = {}
    planned = max_frames or _frame_count(source)
    keep_at: set[int] = set()
    if keep_frames and planned:
        keep_at = set(np.linspace(0, planned - 1, keep_frames).round().astype(int).tolist())
    t_start = time.perf_counter()
    ok = False
    try:
        t_read = time.perf_counter()
        for index, frame in src.frames:
            decode_ms = (time.perf_counter() - t_read) * 1e3
            if frame is None:
                stats.corrupt_frames += 1
                logger.warning("%s: frame %d could not be decoded; skipped", src.description, index)
                t_read = time.perf_counter()
                continue
            result = pipeline.process(frame, decode_ms=decode_ms)
            result.index = index
            stats.frames += 1
            stats.faces += len(result.faces)
            stats.frames_with_face += bool(result.faces)
            for f in result.faces:
                counts[f.label] += 1
            for k in STAGES:
                timings[k].append(result.timings_ms[k])
            if csv_path:
                rows.extend(csv_rows(result))
            if writer is not None or window or index in keep_at:
                elapsed = time.perf_counter() - t_start
                fps_now = stats.frames / elapsed if elapsed else None
                shown = annotate(frame, result, pipeline.class_names, show_fps=fps_now)
                if writer is not None:
                    writer.write(shown)
                if index in keep_at:
                    kept[index] = shown
                if window:
                    cv2.imshow("fer_utils.realtime (q to quit)", shown)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        stats.stopped_by = "user (q)"
                        break
            if on_result is not None:
                on_result(frame, result)
            if max_frames and stats.frames >= max_frames:
                stats.stopped_by = f"max_frames={max_frames}"
                break
            t_read = time.perf_counter()
        ok = True
    except KeyboardInterrupt:
        stats.stopped_by = "user (Ctrl-C)"
        ok = True
    finally:
        stats.seconds = time.perf_counter() - t_start
        src.close()
        if writer is not None:
            writer.close(keep=ok)
        if window:
            cv2.destroyAllWindows()
    stats.emotion_counts = counts
    stats.latency_ms = {k: {m: round(v, 3) for m, v in _percentiles(timings[k]).items()} for k in STAGES}
    if csv_path:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(csv_header(pipeline.class_names))
        w.writerows(rows)
        atomic_write_text(csv_path, buf.getvalue())
    return stats, [kept[i] for i in sorted(kept)]


def _frame_count(source: str | int) -> int:
    text = str(source)
    if text.isdigit():
        return 0
    if any(ch in text for ch in "*?[") or Path(text).is_dir():
        pattern = str(Path(text) / "*") if Path(text).is_dir() else text
        return sum(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in glob.glob(os.path.expanduser(pattern)))
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        return 1
    cap = cv2.VideoCapture(text)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    return max(n, 0)


def run_headless(
    source: str,
    report_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    config: PipelineConfig = PipelineConfig(),
    max_frames: int = 0,
    montage_frames: int = 12,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    """Notebook 05's fallback without a browser: run over a file and write the report files.

    Writes to ``report_dir``: ``realtime_frames.csv`` (one row per face per frame),
    ``realtime_montage.png`` (annotated frames spread over the run) and
    ``realtime_stats.json`` (the run's statistics and configuration).

    Args:
        source: Video file, image glob or folder (relative paths: from the
            working directory if they exist there, else from the repository root).
        report_dir: Output folder (relative paths from the repository root).
        checkpoint: Checkpoint for :meth:`Pipeline.from_checkpoint` (``None``: the default).
        config: Pipeline parameters.
        max_frames: Stop after this many frames (0: all).
        montage_frames: Frames in the montage.
        pipeline: An already built pipeline (then ``checkpoint`` and ``config`` are ignored).

    Returns:
        The statistics written to ``realtime_stats.json``, plus ``files`` (name -> path).
    """
    out = paths.resolve(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = _resolve_source(source)
    pipe = pipeline or Pipeline.from_checkpoint(checkpoint, config)
    files = {
        "csv": out / "realtime_frames.csv",
        "montage": out / "realtime_montage.png",
        "json": out / "realtime_stats.json",
    }
    stats, kept = run(src, pipe, csv_path=files["csv"], max_frames=max_frames, keep_frames=montage_frames)
    if kept:
        ok, png = cv2.imencode(".png", montage(kept, cols=4, width=240))
        if not ok:
            raise RuntimeError("could not encode the montage as PNG")
        atomic_write_bytes(files["montage"], png.tobytes())
    else:
        files.pop("montage")
    record = {**stats.to_dict(pipe), "files": {k: str(v) for k, v in files.items()}}
    from .report import to_jsonable

    atomic_write_json(files["json"], to_jsonable(record))
    return record


def _resolve_source(source: str) -> str:
    """Relative paths from the working directory if they exist there, else from the repository root."""
    text = str(source)
    if text.isdigit() or Path(text).expanduser().is_absolute():
        return text
    if Path(text).exists() or glob.glob(text):
        return str(Path(text).resolve()) if Path(text).exists() else text
    return str(paths.REPO_ROOT / text)


# --------------------------------------------------------------------------- command line


def gui_available() -> tuple[bool, str]:
    """Whether OpenCV can open a window here, and if not, why."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    try:
        cv2.namedWindow("fer_utils.realtime probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("fer_utils.realtime probe")
    except cv2.error:
        return False, "this OpenCV build has no GUI support (opencv-python-headless)"
    return True, ""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.realtime",
        description="Detect faces and recognise their expressions in a camera stream, a video file or images.",
    )
    ap.add_argument("--source", required=True, help="camera index (0), a video file, or an image glob/folder")
    ap.add_argument("--checkpoint", default="", help="fer_utils checkpoint (default: the shipped model, else "
                    "notebook 03's models/runs/manual/best.pt)")
    ap.add_argument("--output", help="write the annotated video here (.mp4 or .avi)")
    ap.add_argument("--json", help="write run statistics here (frames, frames_with_face, fps, emotion counts, latency)")
    ap.add_argument("--csv", help="write one row per face per frame here")
    ap.add_argument("--no-window", action="store_true", help="do not open a window (automatic without a display)")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: until the end / q)")
    d = PipelineConfig()
    ap.add_argument("--detector", default=d.detector, help="face detector: haar (built in) or yunet")
    ap.add_argument("--detector-model", default=d.detector_model, help="model file for --detector yunet")
    ap.add_argument("--backend", default=d.backend, choices=["auto", "onnx", "torch"], help="classifier backend")
    ap.add_argument("--threads", type=int, default=d.threads, help="classifier CPU threads")
    ap.add_argument("--smoothing", type=float, default=d.smoothing, help="per-face EMA weight of the past (0: off)")
    ap.add_argument("--full-detect-every", type=int, default=d.full_detect_every,
                    help="frames between full-frame face searches (1: every frame)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 on bad input (with a one-line message, no traceback)."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .checkpoint import CheckpointError

    window = not args.no_window
    if window:
        ok, why = gui_available()
        if not ok:
            print(f"note: cannot open a window: {why}; continuing as with --no-window "
                  "(use --output FILE.mp4 to keep the annotated video)", file=sys.stderr)
            window = False
    try:
        config = PipelineConfig(
            detector=args.detector, detector_model=args.detector_model, backend=args.backend, threads=args.threads,
            smoothing=args.smoothing, full_detect_every=args.full_detect_every,
        )
        pipeline = Pipeline.from_checkpoint(args.checkpoint or None, config)
        cli = lambda p: str(Path(p).expanduser().resolve()) if p else None  # noqa: E731 - paths as typed, from the cwd
        stats, _ = run(args.source, pipeline, output=cli(args.output), csv_path=cli(args.csv), window=window,
                       max_frames=args.max_frames)
    except (SourceError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = stats.to_dict(pipeline)
    if args.json:
        from .report import to_jsonable

        atomic_write_json(Path(args.json).expanduser().resolve(), to_jsonable(record))
    top = max(stats.emotion_counts, key=stats.emotion_counts.get) if stats.faces else "-"
    print(
        f"{stats.frames} frames ({stats.corrupt_frames} corrupt skipped), face in {stats.frames_with_face}, "
        f"{stats.fps:.1f} frames/s, most frequent: {top}; latency p50/p95 ms: "
        + ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in stats.latency_ms.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
