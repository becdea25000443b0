"""Procedurally drawn FER2013-format faces: the embedded default data set.

When no FER2013 file is present (see :func:`fer_utils.paths.find_data_file`),
:func:`fer_utils.data.load_dataset` falls back to :func:`ensure_default_dataset`,
which writes ``data/interim/synthetic/fer2013_synthetic.csv`` on first use. Every
notebook, test and smoke run therefore works offline and without the real data.
These images are **not FER2013**: numbers measured on them say that the code
runs and learns, nothing about facial-expression recognition.

How a face is drawn (:func:`draw_face`)
    A cartoon face is drawn at 4x resolution with OpenCV (head, hair, neck,
    eyes, brows, nose, nasolabial folds, lips), shaded, then rotated, scaled and
    shifted, composited over a background, lit and reduced to ``size x size``
    with area averaging (which anti-aliases the drawing). The expression sets
    the geometry, following the facial action units of each emotion:

    ==========  ==============================================================
    class       geometry
    ==========  ==============================================================
    Angry       brows lowered and drawn together (a V), narrowed eyes, pressed lips
    Disgust     lowered brows, squinted eyes, wrinkled nose, upper lip raised on
                one side (asymmetric), deep nasolabial folds
    Fear        raised brows pulled together, wide eyes, stretched, slightly open mouth
    Happy       wide, upturned closed mouth, narrowed eyes, smile folds
    Sad         inner brow ends raised, downturned mouth, drooping eyes
    Surprise    raised arched brows, wide eyes, open round mouth
    Neutral     flat brows, relaxed eyes, flat closed mouth
    ==========  ==============================================================

    Each face interpolates from Neutral towards its class by a random
    *intensity* and then jitters every parameter, so weak expressions look
    neutral and neighbouring classes (Fear/Surprise, Angry/Disgust, Sad/Neutral)
    overlap a little, as in real data. Identity (face shape, feature positions,
    skin tone, hair), pose (rotation, translation, scale), lighting (gradient,
    brightness, contrast, gamma), background and sensor noise vary per image.

Determinism
    Image ``i`` of class ``c`` in split ``s`` is drawn from its own generator,
    ``np.random.default_rng([seed, s, c, i])`` (``s`` the split's index in
    ``SPLITS``), so it does not depend on the
    other counts (adding Training images leaves PublicTest unchanged). Rows are
    written in split order (Training, PublicTest, PrivateTest) and shuffled
    within a split by a generator seeded from ``seed`` and the split. The same
    seed and counts give the same bytes.

Class balance
    :data:`DEFAULT_N_PER_CLASS` follows FER2013's Training class frequencies
    (Disgust is ~1.5% of the rows, Happy ~25%) so class-weight and per-class
    metric notebooks show the effect they exist for. A plain ``int`` per split
    gives a balanced split.

Learnability (measured when the defaults were chosen)
    A 4-layer CNN (16-32-64-128 channels) trained from scratch on one CPU thread
    reaches ~80-88% PublicTest accuracy after one minute (chance 14%) and ~92%
    when trained to convergence: clearly learnable, not trivial. Most errors are
    weak expressions taken for Neutral, and the rare Disgust.

Command line: ``python -m fer_utils.synthetic [PATH] [--seed N] [--base N] [--balanced]``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from fer_utils import CLASS_NAMES, NUM_CLASSES, SPLITS, paths
from fer_utils.files import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bumped whenever the drawing changes, so :func:`ensure_default_dataset` regenerates."""

FER2013_TRAINING_COUNTS: tuple[int, ...] = (3995, 436, 4097, 7215, 4830, 3171, 4965)
"""Images per class (label order) in FER2013's Training split; shapes the default imbalance."""

DEFAULT_SEED = 0

DEFAULT_BASE_PER_CLASS: Mapping[str, int] = MappingProxyType(
    # 300 per class on average gives 2,100 Training rows: about 18 s per epoch for
    # EfficientNet-B3 on CPU at ~120 images/s, so the 1-2 minute smoke run sees
    # 4-6 epochs. 60 per class (420 rows) per test split keeps evaluation to
    # seconds while an 80% accuracy still has a standard error of ~2 points.
    {"Training": 300, "PublicTest": 60, "PrivateTest": 60}
)


def fer2013_shaped_counts(base_per_class: int) -> tuple[int, ...]:
    """Per-class counts with FER2013's Training class frequencies.

    Args:
        base_per_class: The mean number of images per class; the total is about
            ``base_per_class * NUM_CLASSES``.

    Returns:
        ``NUM_CLASSES`` counts in label order, each at least 1 when the base is
        positive (so every class is present), e.g. 300 -> (292, 32, 300, 528, 353, 232, 363).
    """
    if base_per_class < 0:
        raise ValueError(f"base_per_class must be >= 0, got {base_per_class}")
    if base_per_class == 0:
        return (0,) * NUM_CLASSES
    total = sum(FER2013_TRAINING_COUNTS)
    return tuple(
        max(1, round(base_per_class * NUM_CLASSES * c / total)) for c in FER2013_TRAINING_COUNTS
    )


DEFAULT_N_PER_CLASS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {split: fer2013_shaped_counts(n) for split, n in DEFAULT_BASE_PER_CLASS.items()}
)
"""Default images per class per split: 2,100 / 420 / 420 rows, FER2013-shaped (few Disgust)."""

DEFAULT_PATH: Path = paths.INTERIM_DIR / "synthetic" / "fer2013_synthetic.csv"

SIDECAR_SUFFIX = ".synthetic.json"
CSV_HEADER = "emotion,pixels,Usage"
_NOTE = "procedurally drawn faces, not FER2013"

# ----------------------------------------------------------------------------------------------
# Expression geometry.
#
# Face units: the face centre is (0, 0), x points right, y points down, and one unit is half the
# image side (before pose). Mouth fields: ``mouth_w`` half-width, ``mouth_curve`` corner lift
# (+ up = smile), ``mouth_open`` opening height, ``mouth_round`` 0 = stretched slit .. 1 = "O",
# ``lip_raise`` one-sided upper-lip lift, ``lip_press`` 0 = full lips .. 1 = lips pressed thin.
# Brows: offsets of the inner and outer ends from the rest height (- = raised), ``brow_in_x``
# moves the inner ends towards the midline, ``brow_arch`` lifts the middle. Eyes: ``eye_open`` is
# the opening relative to neutral. ``wrinkle`` draws nose wrinkles, ``folds`` nasolabial folds.
# ----------------------------------------------------------------------------------------------
_NEUTRAL: dict[str, float] = {
    "mouth_w": 0.27, "mouth_curve": 0.0, "mouth_open": 0.0, "mouth_round": 0.0,
    "lip_raise": 0.0, "lip_press": 0.0,
    "brow_in": 0.0, "brow_out": 0.0, "brow_in_x": 0.0, "brow_arch": 0.02,
    "eye_open": 1.0, "wrinkle": 0.0, "folds": 0.15,
}

_EXPRESSIONS: dict[str, dict[str, float]] = {
    "Angry": {"mouth_w": 0.22, "mouth_curve": -0.04, "lip_press": 1.0,
              "brow_in": 0.11, "brow_out": -0.03, "brow_in_x": 0.05, "brow_arch": 0.0,
              "eye_open": 0.7, "folds": 0.3},
    "Disgust": {"mouth_w": 0.25, "mouth_curve": -0.05, "mouth_open": 0.03, "lip_raise": 0.09,
                "brow_in": 0.08, "brow_out": 0.04, "brow_in_x": 0.02,
                "eye_open": 0.6, "wrinkle": 1.0, "folds": 1.0},
    "Fear": {"mouth_w": 0.34, "mouth_curve": -0.04, "mouth_open": 0.10, "mouth_round": 0.0,
             "brow_in": -0.13, "brow_out": -0.05, "brow_in_x": 0.04, "brow_arch": 0.0,
             "eye_open": 1.55, "folds": 0.4},
    "Happy": {"mouth_w": 0.38, "mouth_curve": 0.14, "brow_in": -0.02, "brow_out": -0.01,
              "eye_open": 0.6, "folds": 1.0},
    "Sad": {"mouth_w": 0.26, "mouth_curve": -0.11, "brow_in": -0.11, "brow_out": 0.05,
            "brow_arch": -0.01, "eye_open": 0.75, "folds": 0.2},
    "Surprise": {"mouth_w": 0.16, "mouth_open": 0.30, "mouth_round": 1.0,
                 "brow_in": -0.14, "brow_out": -0.13, "brow_arch": 0.05,
                 "eye_open": 1.65, "folds": 0.0},
    "Neutral": {},
}
if set(_EXPRESSIONS) != set(CLASS_NAMES):  # a renamed class must not silently draw Neutral
    raise RuntimeError(f"expression table {sorted(_EXPRESSIONS)} != CLASS_NAMES {CLASS_NAMES}")

# Per-image jitter (standard deviation, face units / relative) added after interpolation.
_JITTER: dict[str, float] = {
    "mouth_w": 0.03, "mouth_curve": 0.03, "mouth_open": 0.02, "mouth_round": 0.15,
    "lip_raise": 0.015, "lip_press": 0.15,
    "brow_in": 0.035, "brow_out": 0.03, "brow_in_x": 0.015, "brow_arch": 0.015,
    "eye_open": 0.15, "wrinkle": 0.1, "folds": 0.15,
}

# Valid ranges after jitter (a mouth cannot open a negative amount).
_LIMITS: dict[str, tuple[float, float]] = {
    "mouth_w": (0.1, 0.6), "mouth_open": (0.0, 0.5), "eye_open": (0.25, 2.5), "mouth_round": (0.0, 1.0),
    "lip_press": (0.0, 1.0), "lip_raise": (0.0, 0.2), "wrinkle": (0.0, 1.0), "folds": (0.0, 1.0),
}

# Expression intensity: 0 would be Neutral, 1 the table above.
_INTENSITY_RANGE = (0.45, 1.2)

_SUPERSAMPLE = 4  # faces are drawn at 4x and area-averaged down: anti-aliasing for float canvases
_ZOOM = 1.12  # face units -> half image sides; > 1 crops like FER2013 (forehead and chin at the edges)
_SHIFT = 4  # cv2 fixed-point bits: coordinates are passed as integers * 2**_SHIFT
_SHIFT_SCALE = 1 << _SHIFT


def _expression_params(label: int, rng: np.random.Generator) -> dict[str, float]:
    """Expression parameters of one face: Neutral -> class by a random intensity, plus jitter."""
    target = {**_NEUTRAL, **_EXPRESSIONS[CLASS_NAMES[label]]}
    k = rng.uniform(*_INTENSITY_RANGE)
    noise = rng.standard_normal(len(_NEUTRAL)).tolist()
    p = {name: _NEUTRAL[name] + k * (target[name] - _NEUTRAL[name]) + _JITTER[name] * z
         for name, z in zip(_NEUTRAL, noise)}
    for name, (lo, hi) in _LIMITS.items():
        p[name] = min(max(p[name], lo), hi)
    return p


_ANGLES = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)
"""(48, 2) unit-circle points: the outline of ellipses that get clipped before filling."""


@functools.lru_cache(maxsize=8)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx) float32 (size, size) pixel-centre coordinates scaled to [-1, 1]; read-only."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(c, c, indexing="ij")
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _fx(v: float) -> int:
    """Pixel coordinate to cv2's fixed-point integer."""
    return int(round(v * _SHIFT_SCALE))


def _poly(pts: np.ndarray) -> np.ndarray:
    """(K, 2) float pixel coordinates -> int32 fixed-point array for cv2.polylines / fillPoly."""
    return np.round(pts * _SHIFT_SCALE).astype(np.int32).reshape(-1, 1, 2)


def draw_face(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Draw one synthetic grayscale face showing the expression ``label``.

    Args:
        label: Emotion label, 0..NUM_CLASSES-1 (index into ``CLASS_NAMES``).
        rng: Source of all randomness; the image is a pure function of its state.
        size: Output side in pixels.

    Returns:
        ``(size, size)`` uint8 array, 0 (black) .. 255 (white).

    Raises:
        ValueError: ``label`` is not a valid class index or ``size`` < 8.
    """
    import cv2  # heavy import kept local, see the package docstring

    if not 0 <= int(label) < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}, got {label}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    e = _expression_params(int(label), rng)

    S = size * _SUPERSAMPLE
    unit = S / 2.0 * _ZOOM  # one face unit in canvas pixels
    cx, cy = S / 2.0, S / 2.0 + 0.06 * unit

    def P(x: float, y: float) -> tuple[float, float]:
        return cx + x * unit, cy + y * unit

    def fp(x: float, y: float) -> tuple[int, int]:
        px, py = P(x, y)
        return _fx(px), _fx(py)

    def fl(v: float) -> int:  # a length in face units -> fixed point
        return max(1, _fx(v * unit))

    def th(v: float) -> int:  # a thickness in face units -> whole pixels (no fixed point)
        return max(1, int(round(v * unit)))

    # Identity: head shape, feature layout, tones.
    face_ax, face_ay = rng.uniform(0.62, 0.76), rng.uniform(0.80, 0.94)
    eye_x, eye_y = rng.uniform(0.27, 0.34), rng.uniform(-0.20, -0.08)
    brow_gap = rng.uniform(0.15, 0.21)
    nose_y = eye_y + rng.uniform(0.30, 0.38)
    mouth_y = nose_y + rng.uniform(0.18, 0.25)
    skin = rng.uniform(95.0, 215.0)
    feature_dark = rng.uniform(0.25, 0.45) * skin  # eyes, lid lines, open mouth
    lip_tone = skin * rng.uniform(0.62, 0.80)
    brow_tone = skin * rng.uniform(0.25, 0.55)

    layer = np.full((S, S), skin, np.float32)
    alpha = np.zeros((S, S), np.float32)

    # Hair (or a hairline shadow for short/light hair), neck, head.
    hair_tone = float(rng.uniform(15.0, 0.9 * skin)) if rng.random() < 0.85 else skin * 0.9
    hair_ax, hair_ay = face_ax + rng.uniform(0.02, 0.12), face_ay * rng.uniform(0.8, 1.0)
    hair_c = fp(0.0, -0.05 - rng.uniform(0.0, 0.12))
    cv2.ellipse(layer, hair_c, (fl(hair_ax), fl(hair_ay)), 0, 0, 360, hair_tone, -1, cv2.LINE_8, _SHIFT)
    cv2.ellipse(alpha, hair_c, (fl(hair_ax), fl(hair_ay)), 0, 0, 360, 1.0, -1, cv2.LINE_8, _SHIFT)
    neck_w = face_ax * rng.uniform(0.55, 0.75)
    neck = np.array([P(-neck_w, 0.3), P(neck_w, 0.3), P(neck_w * 1.3, 1.3), P(-neck_w * 1.3, 1.3)])
    cv2.fillPoly(layer, [_poly(neck)], skin * rng.uniform(0.6, 0.8), cv2.LINE_8, _SHIFT)
    cv2.fillPoly(alpha, [_poly(neck)], 1.0, cv2.LINE_8, _SHIFT)
    # Head: an ellipse whose top is covered by a fringe of hair cut at a random height.
    fringe = eye_y - brow_gap - rng.uniform(0.12, 0.35)
    head = np.stack([face_ax * _CIRCLE[:, 0], np.maximum(face_ay * _CIRCLE[:, 1], fringe)], 1)
    head = head * unit + (cx, cy)
    cv2.fillPoly(layer, [_poly(head)], skin, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(alpha, [_poly(head)], 1.0, cv2.LINE_8, _SHIFT)

    # Eyes: socket shadow, sclera, iris, upper lid line.
    eye_hw = rng.uniform(0.10, 0.13)
    eye_hh = 0.05 * e["eye_open"] * rng.uniform(0.85, 1.15)
    gaze = rng.normal(0.0, 0.015, size=2)
    sclera = min(255.0, skin * 1.05 + 25.0)
    for side in (-1.0, 1.0):
        ex = side * eye_x
        cv2.ellipse(layer, fp(ex, eye_y - 0.02), (fl(eye_hw * 1.45), fl(0.09 + eye_hh * 0.6)), 0, 0, 360,
                    skin * rng.uniform(0.78, 0.9), -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(layer, fp(ex, eye_y), (fl(eye_hw), fl(eye_hh)), 0, 0, 360, sclera, -1, cv2.LINE_8, _SHIFT)
        iris_r = 0.05
        cv2.ellipse(layer, fp(ex + gaze[0], eye_y + gaze[1] * 0.3), (fl(iris_r), fl(min(iris_r, eye_hh))),
                    0, 0, 360, feature_dark * 0.6, -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(layer, fp(ex, eye_y), (fl(eye_hw), fl(eye_hh)), 0, 180, 360, feature_dark,
                    th(0.025), cv2.LINE_8, _SHIFT)
        if e["eye_open"] < 0.8:  # lower lid pushed up by the cheeks (Happy, Disgust, Angry)
            cv2.ellipse(layer, fp(ex, eye_y + eye_hh + 0.02), (fl(eye_hw * 0.9), fl(0.025)), 0, 20, 160,
                        skin * 0.75, th(0.015), cv2.LINE_8, _SHIFT)

    # Brows: inner end, middle, outer end per side.
    brow_y = eye_y - brow_gap
    brow_in_x = rng.uniform(0.09, 0.13) - e["brow_in_x"]
    brow_out_x = eye_x + rng.uniform(0.10, 0.15)
    brow_th = th(rng.uniform(0.05, 0.08))
    for side in (-1.0, 1.0):
        # Disgust-style asymmetry is carried by the lip; brows get a little independent noise.
        d_in = e["brow_in"] + rng.normal(0.0, 0.01)
        d_out = e["brow_out"] + rng.normal(0.0, 0.01)
        xi, xo = side * brow_in_x, side * brow_out_x
        mid_y = brow_y + (d_in + d_out) / 2.0 - e["brow_arch"] - 0.02
        pts = np.array([P(xi, brow_y + d_in), P((xi + xo) / 2.0, mid_y), P(xo, brow_y + d_out + 0.02)])
        cv2.polylines(layer, [_poly(pts)], False, brow_tone, brow_th, cv2.LINE_8, _SHIFT)
    if e["brow_in_x"] > 0.02:  # frown lines between brows drawn together
        for side in (-1.0, 1.0):
            cv2.line(layer, fp(side * 0.025, brow_y - 0.02), fp(side * 0.035, brow_y + 0.08),
                     skin * 0.75, th(0.015), cv2.LINE_8, _SHIFT)

    # Nose: bridge shadow on one side, nostrils, wrinkles, nasolabial folds.
    light_side = 1.0 if rng.random() < 0.5 else -1.0
    cv2.line(layer, fp(light_side * 0.06, eye_y + 0.06), fp(light_side * 0.08, nose_y - 0.06),
             skin * 0.85, th(0.03), cv2.LINE_8, _SHIFT)
    flare = 1.0 + 0.3 * e["wrinkle"]
    nostril_y = nose_y - 0.02 * e["wrinkle"]
    for side in (-1.0, 1.0):
        cv2.ellipse(layer, fp(side * 0.065 * flare, nostril_y), (fl(0.035 * flare), fl(0.018)), 0, 0, 360,
                    feature_dark * 1.2, -1, cv2.LINE_8, _SHIFT)
    if e["wrinkle"] > 0.3:
        for j in range(2 + int(rng.integers(0, 2))):
            wy = eye_y + 0.07 + j * 0.05
            cv2.ellipse(layer, fp(0.0, wy), (fl(0.07), fl(0.02)), 0, 200, 340,
                        skin * (1.0 - 0.3 * e["wrinkle"]), th(0.018), cv2.LINE_8, _SHIFT)
    mouth_w = e["mouth_w"] * rng.uniform(0.9, 1.1)
    if e["folds"] > 0.05:
        for side in (-1.0, 1.0):
            fold = np.array([P(side * 0.14, nose_y - 0.04), P(side * (0.18 + 0.25 * mouth_w), mouth_y - 0.08),
                             P(side * (mouth_w + 0.06), mouth_y + 0.02)])
            cv2.polylines(layer, [_poly(fold)], False, skin * (1.0 - 0.25 * e["folds"]), th(0.02),
                          cv2.LINE_8, _SHIFT)

    # Mouth: centre line y(t) = mouth_y - curve * t^2 for t in [-1, 1] (corners up = smile); an
    # opening with a superellipse profile (round "O" .. stretched slit); upper lip raised on one side.
    t = np.linspace(-1.0, 1.0, 25)
    raise_side = 1.0 if rng.random() < 0.5 else -1.0
    centre = mouth_y - e["mouth_curve"] * t**2
    lift = e["lip_raise"] * np.exp(-(((t - raise_side * 0.45) / 0.35) ** 2))
    expo = 2.0 + 4.0 * (1.0 - e["mouth_round"])
    profile = np.clip(1.0 - np.abs(t) ** expo, 0.0, 1.0) ** (1.0 / expo)
    half_open = e["mouth_open"] / 2.0
    upper = centre - half_open * profile - lift
    lower = centre + half_open * profile
    lip_th = 0.045 * (1.0 - 0.8 * e["lip_press"]) * rng.uniform(0.7, 1.3)
    x = t * mouth_w
    upper_outer = np.stack([x, upper - lip_th * 0.8 * profile], 1)
    lower_outer = np.stack([x, lower + lip_th * 1.2 * profile], 1)
    lips = np.concatenate([upper_outer, lower_outer[::-1]]) * unit + (cx, cy)
    cv2.fillPoly(layer, [_poly(lips)], lip_tone, cv2.LINE_8, _SHIFT)
    if half_open > 0.008 or e["lip_raise"] > 0.03:
        hole = np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]]) * unit + (cx, cy)
        cv2.fillPoly(layer, [_poly(hole)], feature_dark * 0.5, cv2.LINE_8, _SHIFT)
        if rng.random() < 0.5 and half_open > 0.03:  # upper teeth showing
            teeth_h = np.minimum(0.6 * (lower - upper), 0.05)
            teeth = np.concatenate([np.stack([x * 0.85, upper], 1),
                                    np.stack([x * 0.85, upper + teeth_h], 1)[::-1]]) * unit + (cx, cy)
            cv2.fillPoly(layer, [_poly(teeth)], sclera * 0.9, cv2.LINE_8, _SHIFT)
    line = np.stack([x, (upper + lower) / 2.0], 1) * unit + (cx, cy)
    cv2.polylines(layer, [_poly(line)], False, feature_dark * (1.0 - 0.3 * e["lip_press"]),
                  th(0.028 + 0.015 * e["lip_press"]), cv2.LINE_8, _SHIFT)
    # Lower-lip shadow gives the mouth some volume.
    shadow = np.stack([x * 0.6, lower + lip_th * 1.2 * profile + 0.03], 1) * unit + (cx, cy)
    cv2.polylines(layer, [_poly(shadow)], False, skin * 0.85, th(0.02), cv2.LINE_8, _SHIFT)

    # Everything below runs at output resolution: area averaging anti-aliases the 4x drawing.
    layer = cv2.resize(layer, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
    yy, xx = _unit_grid(size)  # pixel centres in [-1, 1]

    # Head shading (multiplies the drawn albedo, features included): darker towards the rim,
    # constant beyond it (hair, neck).
    r2 = (xx / (face_ax * _ZOOM)) ** 2 + ((yy - 0.06 * _ZOOM) / (face_ay * _ZOOM)) ** 2
    layer *= 1.0 - rng.uniform(0.15, 0.35) * np.minimum(r2, 1.0) ** 2

    # Pose: rotation, scale, translation (about the image centre).
    angle = rng.normal(0.0, 6.0)
    scale = rng.uniform(0.88, 1.08)
    m = cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), angle, scale)
    m[:, 2] += rng.uniform(-0.06, 0.06, size=2) * size
    layer = cv2.warpAffine(layer, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    # Background: a base tone, a gradient and low-frequency blotches.
    blotches = rng.normal(0.0, rng.uniform(0.0, 30.0), size=(4, 4)).astype(np.float32)
    bg = cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    gx, gy = rng.normal(0.0, 20.0, size=2)
    bg += rng.uniform(10.0, 240.0) + gx * xx + gy * yy
    img = alpha * layer + (1.0 - alpha) * bg

    # Lighting: a directional gradient, focus, brightness/contrast, gamma, sensor noise.
    lx, ly = rng.normal(0.0, 0.25, size=2)
    img *= 1.0 + lx * xx + ly * yy
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.2, 0.6))
    img = (img - 128.0) * rng.uniform(0.7, 1.3) + 128.0 + rng.normal(0.0, 15.0)
    img = 255.0 * (np.clip(img, 0.0, 255.0) / 255.0) ** rng.uniform(0.8, 1.25)
    img += rng.normal(0.0, rng.uniform(1.0, 6.0), size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# CSV writing
# ----------------------------------------------------------------------------------------------


def _normalise_counts(n_per_class: Mapping[str, int | Sequence[int]] | None) -> dict[str, list[int]]:
    """``n_per_class`` -> {split: [count per class]} for the splits with rows, in SPLITS order."""
    given: Mapping[str, Any] = DEFAULT_N_PER_CLASS if n_per_class is None else n_per_class
    unknown = [s for s in given if s not in SPLITS]
    if unknown:
        raise ValueError(f"n_per_class: unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    out: dict[str, list[int]] = {}
    for split in SPLITS:
        if split not in given:
            continue
        v = given[split]
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            counts = [int(v)] * NUM_CLASSES
        elif isinstance(v, Sequence) and not isinstance(v, str) and len(v) == NUM_CLASSES:
            counts = [int(c) for c in v]
        else:
            raise ValueError(
                f"n_per_class['{split}']: expected an int or {NUM_CLASSES} ints (one per class), got {v!r}"
            )
        if any(c < 0 for c in counts):
            raise ValueError(f"n_per_class['{split}']: counts must be >= 0, got {counts}")
        if sum(counts):
            out[split] = counts
    return out


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The metadata file next to a synthetic CSV: ``<path>.synthetic.json``."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


# "0 " .. "255 " as fixed-width byte strings (NUL-padded): formatting a row is then one
# vectorised lookup instead of 2304 str() calls, which would dominate generation time.
_PIXEL_TOKENS = np.array([f"{v} ".encode("ascii") for v in range(256)], dtype="S4")


def _pixels_text(img: np.ndarray) -> str:
    """uint8 image -> "p0 p1 ... pN" (space-separated decimal, row-major)."""
    return _PIXEL_TOKENS[img.ravel()].tobytes().replace(b"\x00", b"")[:-1].decode("ascii")


def make_synthetic_csv(
    path: str | os.PathLike[str],
    *,
    n_per_class: Mapping[str, int | Sequence[int]] | None = None,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write a FER2013-format CSV of synthetic faces, plus its ``.synthetic.json`` sidecar.

    The CSV has the header ``emotion,pixels,Usage``, LF line endings, one row per
    image: the label, 2304 space-separated ints 0-255 (48x48, row-major), the split.
    Rows come in split order (Training, PublicTest, PrivateTest), shuffled within a split.

    Args:
        path: Destination CSV; relative paths are taken from the repository root.
        n_per_class: ``{split: count}``: an int gives that many images of every class, a
            sequence of ``NUM_CLASSES`` ints gives one count per class (label order).
            Splits left out get no rows. ``None`` means :data:`DEFAULT_N_PER_CLASS`.
        seed: Non-negative seed; the same seed and counts give the same bytes.

    Returns:
        The CSV path (absolute).

    Raises:
        ValueError: an unknown split, a malformed or negative count, or a negative seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    counts = _normalise_counts(n_per_class)
    dest = paths.resolve(path)

    lines = [CSV_HEADER]
    for split_idx, split in enumerate(SPLITS):
        if split not in counts:
            continue
        rows: list[str] = []
        for label, n in enumerate(counts[split]):
            for i in range(n):
                img = draw_face(label, np.random.default_rng([seed, split_idx, label, i]))
                rows.append(f"{label},{_pixels_text(img)},{split}")
        # A fixed tag keeps the shuffle stream apart from any image stream.
        order = np.random.default_rng([seed, split_idx, 0x5EED]).permutation(len(rows))
        lines.extend(rows[j] for j in order)
    data = ("\n".join(lines) + "\n").encode("ascii")

    meta = {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_per_class": counts,
        "n_rows": len(lines) - 1,
        "csv_md5": hashlib.md5(data).hexdigest(),
        "note": _NOTE,
    }
    # Sidecar first: a crash in between can leave a sidecar without its CSV (regenerated by
    # ensure_default_dataset), never a synthetic CSV that passes for real FER2013.
    atomic_write_json(sidecar_path(dest), meta)
    atomic_write_bytes(dest, data)
    logger.info("wrote %d synthetic rows (seed %d) to %s", meta["n_rows"], seed, dest)
    return dest


def is_synthetic(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` was written by :func:`make_synthetic_csv` (its sidecar exists)."""
    return sidecar_path(paths.resolve(path)).is_file()


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar metadata of a synthetic CSV.

    Raises:
        FileNotFoundError: no sidecar (not a synthetic file).
        ValueError: the sidecar is not valid JSON.
    """
    side = sidecar_path(paths.resolve(path))
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{side}: not valid JSON ({err})") from err


def _default_is_current(path: Path) -> bool:
    if not path.is_file() or not is_synthetic(path):
        return False
    try:
        meta = read_sidecar(path)
    except ValueError:
        return False
    expected = {"version": GENERATOR_VERSION, "seed": DEFAULT_SEED, "n_per_class": _normalise_counts(None)}
    if any(meta.get(k) != v for k, v in expected.items()):
        return False
    # Also catches a truncated or hand-edited CSV; hashing ~20 MB takes a few tens of ms.
    return meta.get("csv_md5") == hashlib.md5(path.read_bytes()).hexdigest()


def ensure_default_dataset() -> Path:
    """Return :data:`DEFAULT_PATH`, generating it first if missing or stale.

    Stale means the sidecar is missing or its generator version, seed or counts differ
    from :data:`GENERATOR_VERSION`, :data:`DEFAULT_SEED` and :data:`DEFAULT_N_PER_CLASS`,
    or the CSV's MD5 no longer matches the one recorded. Generation takes a few seconds.
    """
    if _default_is_current(DEFAULT_PATH):
        return DEFAULT_PATH
    logger.info("generating the default synthetic data set at %s", DEFAULT_PATH)
    return make_synthetic_csv(DEFAULT_PATH, n_per_class=None, seed=DEFAULT_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fer_utils.synthetic [PATH] [--seed N] [--base N] [--balanced]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=None, help=f"output CSV (default {DEFAULT_PATH})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--base", type=int, default=None,
                        help="mean images per class in Training; each test split gets a fifth")
    parser.add_argument("--balanced", action="store_true", help="same count for every class")
    args = parser.parse_args(argv)
    n_per_class: dict[str, int | Sequence[int]] | None = None
    if args.base is not None or args.balanced:
        base = args.base if args.base is not None else DEFAULT_BASE_PER_CLASS["Training"]
        bases = {"Training": base, "PublicTest": math.ceil(base / 5), "PrivateTest": math.ceil(base / 5)}
        n_per_class = {s: (b if args.balanced else fer2013_shaped_counts(b)) for s, b in bases.items()}
    if args.path is None and n_per_class is None and args.seed == DEFAULT_SEED:
        out = ensure_default_dataset()
    else:
        out = make_synthetic_csv(args.path or DEFAULT_PATH, n_per_class=n_per_class, seed=args.seed)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
