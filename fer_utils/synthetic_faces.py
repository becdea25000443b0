"""Cartoon faces for the synthetic data set: :func:`draw_face` draws one 48x48 face of a given expression.

Each of the seven FER2013 expressions is a set of geometric parameters (mouth, brows, eyes,
wrinkles) jittered per face, drawn at several times the output resolution with OpenCV, shaded,
posed (rotation, scale, shift) and placed on a varied background with noise; see
:mod:`fer_utils.synthetic` for the data set built from them.
"""

from __future__ import annotations

import functools

import numpy as np

from fer_utils import CLASS_NAMES, NUM_CLASSES

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
    "mouth_w": 0.27,
    "mouth_curve": 0.0,
    "mouth_open": 0.0,
    "mouth_round": 0.0,
    "lip_raise": 0.0,
    "lip_press": 0.0,
    "brow_in": 0.0,
    "brow_out": 0.0,
    "brow_in_x": 0.0,
    "brow_arch": 0.02,
    "eye_open": 1.0,
    "wrinkle": 0.0,
    "folds": 0.15,
}

_EXPRESSIONS: dict[str, dict[str, float]] = {
    "Angry": {
        "mouth_w": 0.22,
        "mouth_curve": -0.04,
        "lip_press": 1.0,
        "brow_in": 0.11,
        "brow_out": -0.03,
        "brow_in_x": 0.05,
        "brow_arch": 0.0,
        "eye_open": 0.7,
        "folds": 0.3,
    },
    "Disgust": {
        "mouth_w": 0.25,
        "mouth_curve": -0.05,
        "mouth_open": 0.03,
        "lip_raise": 0.09,
        "brow_in": 0.08,
        "brow_out": 0.04,
        "brow_in_x": 0.02,
        "eye_open": 0.6,
        "wrinkle": 1.0,
        "folds": 1.0,
    },
    "Fear": {
        "mouth_w": 0.34,
        "mouth_curve": -0.04,
        "mouth_open": 0.10,
        "mouth_round": 0.0,
        "brow_in": -0.13,
        "brow_out": -0.05,
        "brow_in_x": 0.04,
        "brow_arch": 0.0,
        "eye_open": 1.55,
        "folds": 0.4,
    },
    "Happy": {"mouth_w": 0.38, "mouth_curve": 0.14, "brow_in": -0.02, "brow_out": -0.01, "eye_open": 0.6, "folds": 1.0},
    "Sad": {
        "mouth_w": 0.26,
        "mouth_curve": -0.11,
        "brow_in": -0.11,
        "brow_out": 0.05,
        "brow_arch": -0.01,
        "eye_open": 0.75,
        "folds": 0.2,
    },
    "Surprise": {
        "mouth_w": 0.16,
        "mouth_open": 0.30,
        "mouth_round": 1.0,
        "brow_in": -0.14,
        "brow_out": -0.13,
        "brow_arch": 0.05,
        "eye_open": 1.65,
        "folds": 0.0,
    },
    "Neutral": {},
}
if set(_EXPRESSIONS) != set(CLASS_NAMES):  # a renamed class must not silently draw Neutral
    raise RuntimeError(f"expression table {sorted(_EXPRESSIONS)} != CLASS_NAMES {CLASS_NAMES}")

# Per-image jitter (standard deviation, face units / relative) added after interpolation.
_JITTER: dict[str, float] = {
    "mouth_w": 0.03,
    "mouth_curve": 0.03,
    "mouth_open": 0.02,
    "mouth_round": 0.15,
    "lip_raise": 0.015,
    "lip_press": 0.15,
    "brow_in": 0.035,
    "brow_out": 0.03,
    "brow_in_x": 0.015,
    "brow_arch": 0.015,
    "eye_open": 0.15,
    "wrinkle": 0.1,
    "folds": 0.15,
}

# Valid ranges after jitter (a mouth cannot open a negative amount).
_LIMITS: dict[str, tuple[float, float]] = {
    "mouth_w": (0.1, 0.6),
    "mouth_open": (0.0, 0.5),
    "eye_open": (0.25, 2.5),
    "mouth_round": (0.0, 1.0),
    "lip_press": (0.0, 1.0),
    "lip_raise": (0.0, 0.2),
    "wrinkle": (0.0, 1.0),
    "folds": (0.0, 1.0),
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
    p = {
        name: _NEUTRAL[name] + k * (target[name] - _NEUTRAL[name]) + _JITTER[name] * z
        for name, z in zip(_NEUTRAL, noise, strict=True)
    }
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

    layer: np.ndarray = np.full((S, S), skin, np.float32)
    alpha: np.ndarray = np.zeros((S, S), np.float32)

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
        cv2.ellipse(
            layer,
            fp(ex, eye_y - 0.02),
            (fl(eye_hw * 1.45), fl(0.09 + eye_hh * 0.6)),
            0,
            0,
            360,
            skin * rng.uniform(0.78, 0.9),
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
        cv2.ellipse(layer, fp(ex, eye_y), (fl(eye_hw), fl(eye_hh)), 0, 0, 360, sclera, -1, cv2.LINE_8, _SHIFT)
        iris_r = 0.05
        cv2.ellipse(
            layer,
            fp(ex + gaze[0], eye_y + gaze[1] * 0.3),
            (fl(iris_r), fl(min(iris_r, eye_hh))),
            0,
            0,
            360,
            feature_dark * 0.6,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
        cv2.ellipse(
            layer, fp(ex, eye_y), (fl(eye_hw), fl(eye_hh)), 0, 180, 360, feature_dark, th(0.025), cv2.LINE_8, _SHIFT
        )
        if e["eye_open"] < 0.8:  # lower lid pushed up by the cheeks (Happy, Disgust, Angry)
            cv2.ellipse(
                layer,
                fp(ex, eye_y + eye_hh + 0.02),
                (fl(eye_hw * 0.9), fl(0.025)),
                0,
                20,
                160,
                skin * 0.75,
                th(0.015),
                cv2.LINE_8,
                _SHIFT,
            )

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
            cv2.line(
                layer,
                fp(side * 0.025, brow_y - 0.02),
                fp(side * 0.035, brow_y + 0.08),
                skin * 0.75,
                th(0.015),
                cv2.LINE_8,
                _SHIFT,
            )

    # Nose: bridge shadow on one side, nostrils, wrinkles, nasolabial folds.
    light_side = 1.0 if rng.random() < 0.5 else -1.0
    cv2.line(
        layer,
        fp(light_side * 0.06, eye_y + 0.06),
        fp(light_side * 0.08, nose_y - 0.06),
        skin * 0.85,
        th(0.03),
        cv2.LINE_8,
        _SHIFT,
    )
    flare = 1.0 + 0.3 * e["wrinkle"]
    nostril_y = nose_y - 0.02 * e["wrinkle"]
    for side in (-1.0, 1.0):
        cv2.ellipse(
            layer,
            fp(side * 0.065 * flare, nostril_y),
            (fl(0.035 * flare), fl(0.018)),
            0,
            0,
            360,
            feature_dark * 1.2,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
    if e["wrinkle"] > 0.3:
        for j in range(2 + int(rng.integers(0, 2))):
            wy = eye_y + 0.07 + j * 0.05
            cv2.ellipse(
                layer,
                fp(0.0, wy),
                (fl(0.07), fl(0.02)),
                0,
                200,
                340,
                skin * (1.0 - 0.3 * e["wrinkle"]),
                th(0.018),
                cv2.LINE_8,
                _SHIFT,
            )
    mouth_w = e["mouth_w"] * rng.uniform(0.9, 1.1)
    if e["folds"] > 0.05:
        for side in (-1.0, 1.0):
            fold = np.array(
                [
                    P(side * 0.14, nose_y - 0.04),
                    P(side * (0.18 + 0.25 * mouth_w), mouth_y - 0.08),
                    P(side * (mouth_w + 0.06), mouth_y + 0.02),
                ]
            )
            cv2.polylines(layer, [_poly(fold)], False, skin * (1.0 - 0.25 * e["folds"]), th(0.02), cv2.LINE_8, _SHIFT)

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
            teeth = np.concatenate(
                [np.stack([x * 0.85, upper], 1), np.stack([x * 0.85, upper + teeth_h], 1)[::-1]]
            ) * unit + (cx, cy)
            cv2.fillPoly(layer, [_poly(teeth)], sclera * 0.9, cv2.LINE_8, _SHIFT)
    line = np.stack([x, (upper + lower) / 2.0], 1) * unit + (cx, cy)
    cv2.polylines(
        layer,
        [_poly(line)],
        False,
        feature_dark * (1.0 - 0.3 * e["lip_press"]),
        th(0.028 + 0.015 * e["lip_press"]),
        cv2.LINE_8,
        _SHIFT,
    )
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
    layer = (layer * (1.0 - rng.uniform(0.15, 0.35) * np.minimum(r2, 1.0) ** 2)).astype(np.float32)

    # Pose: rotation, scale, translation (about the image centre).
    angle = rng.normal(0.0, 6.0)
    scale = rng.uniform(0.88, 1.08)
    m = np.asarray(cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), angle, scale), dtype=np.float64)
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
