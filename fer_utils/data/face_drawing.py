"""Cartoon faces for the synthetic data set: :func:`draw_face` draws one 48x48 face of a given expression.

Each of the seven FER2013 expressions is a set of geometric parameters (mouth, brows, eyes,
wrinkles) jittered per face, drawn at several times the output resolution with OpenCV, shaded,
posed (rotation, scale, shift) and placed on a varied background with noise; see
:mod:`fer_utils.data.synthetic` for the data set built from them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fer_utils.constants import CLASS_NAMES, NUM_CLASSES

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


@dataclass(frozen=True)
class _Canvas:
    """Face units -> pixels of the supersampled canvas (see the expression geometry above).

    Attributes:
        side: Canvas side in pixels (output side * ``_SUPERSAMPLE``).
        unit: One face unit in canvas pixels.
        cx: Canvas x of the face centre.
        cy: Canvas y of the face centre (a little below the middle: FER2013 crops show more chin than crown).
    """

    side: int
    unit: float
    cx: float
    cy: float

    @classmethod
    def of_side(cls, side: int) -> _Canvas:
        unit = side / 2.0 * _ZOOM
        return cls(side, unit, side / 2.0, side / 2.0 + 0.06 * unit)

    def p(self, x: float, y: float) -> tuple[float, float]:
        """A point in face units -> canvas pixels."""
        return self.cx + x * self.unit, self.cy + y * self.unit

    def fp(self, x: float, y: float) -> tuple[int, int]:
        """A point in face units -> cv2 fixed point."""
        px, py = self.p(x, y)
        return _fx(px), _fx(py)

    def fl(self, v: float) -> int:
        """A length in face units -> cv2 fixed point."""
        return max(1, _fx(v * self.unit))

    def th(self, v: float) -> int:
        """A thickness in face units -> whole pixels (cv2 takes thicknesses without fixed point)."""
        return max(1, int(round(v * self.unit)))

    def pixels(self, pts: np.ndarray) -> np.ndarray:
        """(K, 2) points in face units -> canvas pixels."""
        return pts * self.unit + (self.cx, self.cy)


@dataclass(frozen=True)
class _Identity:
    """What makes one face look like one person, whatever its expression: head shape, feature layout, tones.

    Positions and sizes are in face units, tones in 0..255 gray levels.
    """

    face_ax: float
    face_ay: float
    eye_x: float
    eye_y: float
    brow_gap: float
    nose_y: float
    mouth_y: float
    skin: float
    feature_dark: float  # eyes, lid lines, open mouth
    lip_tone: float
    brow_tone: float

    @property
    def sclera(self) -> float:
        return min(255.0, self.skin * 1.05 + 25.0)


def _identity(rng: np.random.Generator) -> _Identity:
    """Draw a random identity (11 RNG calls, in a fixed order)."""
    face_ax, face_ay = rng.uniform(0.62, 0.76), rng.uniform(0.80, 0.94)
    eye_x, eye_y = rng.uniform(0.27, 0.34), rng.uniform(-0.20, -0.08)
    brow_gap = rng.uniform(0.15, 0.21)
    nose_y = eye_y + rng.uniform(0.30, 0.38)
    mouth_y = nose_y + rng.uniform(0.18, 0.25)
    skin = rng.uniform(95.0, 215.0)
    feature_dark = rng.uniform(0.25, 0.45) * skin
    lip_tone = skin * rng.uniform(0.62, 0.80)
    brow_tone = skin * rng.uniform(0.25, 0.55)
    return _Identity(face_ax, face_ay, eye_x, eye_y, brow_gap, nose_y, mouth_y, skin, feature_dark, lip_tone, brow_tone)


def _draw_head(layer: np.ndarray, alpha: np.ndarray, c: _Canvas, face: _Identity, rng: np.random.Generator) -> None:
    """Hair (or a hairline shadow for short/light hair), neck and head; their coverage also goes into ``alpha``."""
    import cv2

    skin = face.skin
    hair_tone = float(rng.uniform(15.0, 0.9 * skin)) if rng.random() < 0.85 else skin * 0.9
    hair_ax, hair_ay = face.face_ax + rng.uniform(0.02, 0.12), face.face_ay * rng.uniform(0.8, 1.0)
    hair_c = c.fp(0.0, -0.05 - rng.uniform(0.0, 0.12))
    cv2.ellipse(layer, hair_c, (c.fl(hair_ax), c.fl(hair_ay)), 0, 0, 360, hair_tone, -1, cv2.LINE_8, _SHIFT)
    cv2.ellipse(alpha, hair_c, (c.fl(hair_ax), c.fl(hair_ay)), 0, 0, 360, 1.0, -1, cv2.LINE_8, _SHIFT)
    neck_w = face.face_ax * rng.uniform(0.55, 0.75)
    neck = np.array([c.p(-neck_w, 0.3), c.p(neck_w, 0.3), c.p(neck_w * 1.3, 1.3), c.p(-neck_w * 1.3, 1.3)])
    cv2.fillPoly(layer, [_poly(neck)], skin * rng.uniform(0.6, 0.8), cv2.LINE_8, _SHIFT)
    cv2.fillPoly(alpha, [_poly(neck)], 1.0, cv2.LINE_8, _SHIFT)
    # Head: an ellipse whose top is covered by a fringe of hair cut at a random height.
    fringe = face.eye_y - face.brow_gap - rng.uniform(0.12, 0.35)
    head = np.stack([face.face_ax * _CIRCLE[:, 0], np.maximum(face.face_ay * _CIRCLE[:, 1], fringe)], 1)
    head = c.pixels(head)
    cv2.fillPoly(layer, [_poly(head)], skin, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(alpha, [_poly(head)], 1.0, cv2.LINE_8, _SHIFT)


def _draw_eyes(layer: np.ndarray, c: _Canvas, face: _Identity, e: dict[str, float], rng: np.random.Generator) -> None:
    """Eyes: socket shadow, sclera, iris, upper lid line, and a lower lid where the cheeks push it up."""
    import cv2

    skin, eye_y = face.skin, face.eye_y
    eye_hw = rng.uniform(0.10, 0.13)
    eye_hh = 0.05 * e["eye_open"] * rng.uniform(0.85, 1.15)
    gaze = rng.normal(0.0, 0.015, size=2)
    sclera = face.sclera
    for side in (-1.0, 1.0):
        ex = side * face.eye_x
        cv2.ellipse(
            layer,
            c.fp(ex, eye_y - 0.02),
            (c.fl(eye_hw * 1.45), c.fl(0.09 + eye_hh * 0.6)),
            0,
            0,
            360,
            skin * rng.uniform(0.78, 0.9),
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
        cv2.ellipse(layer, c.fp(ex, eye_y), (c.fl(eye_hw), c.fl(eye_hh)), 0, 0, 360, sclera, -1, cv2.LINE_8, _SHIFT)
        iris_r = 0.05
        cv2.ellipse(
            layer,
            c.fp(ex + gaze[0], eye_y + gaze[1] * 0.3),
            (c.fl(iris_r), c.fl(min(iris_r, eye_hh))),
            0,
            0,
            360,
            face.feature_dark * 0.6,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
        cv2.ellipse(
            layer,
            c.fp(ex, eye_y),
            (c.fl(eye_hw), c.fl(eye_hh)),
            0,
            180,
            360,
            face.feature_dark,
            c.th(0.025),
            cv2.LINE_8,
            _SHIFT,
        )
        if e["eye_open"] < 0.8:  # lower lid pushed up by the cheeks (Happy, Disgust, Angry)
            cv2.ellipse(
                layer,
                c.fp(ex, eye_y + eye_hh + 0.02),
                (c.fl(eye_hw * 0.9), c.fl(0.025)),
                0,
                20,
                160,
                skin * 0.75,
                c.th(0.015),
                cv2.LINE_8,
                _SHIFT,
            )


def _draw_brows(layer: np.ndarray, c: _Canvas, face: _Identity, e: dict[str, float], rng: np.random.Generator) -> None:
    """Brows (inner end, middle, outer end per side) and frown lines when they are drawn together."""
    import cv2

    brow_y = face.eye_y - face.brow_gap
    brow_in_x = rng.uniform(0.09, 0.13) - e["brow_in_x"]
    brow_out_x = face.eye_x + rng.uniform(0.10, 0.15)
    brow_th = c.th(rng.uniform(0.05, 0.08))
    for side in (-1.0, 1.0):
        # Disgust-style asymmetry is carried by the lip; brows get a little independent noise.
        d_in = e["brow_in"] + rng.normal(0.0, 0.01)
        d_out = e["brow_out"] + rng.normal(0.0, 0.01)
        xi, xo = side * brow_in_x, side * brow_out_x
        mid_y = brow_y + (d_in + d_out) / 2.0 - e["brow_arch"] - 0.02
        pts = np.array([c.p(xi, brow_y + d_in), c.p((xi + xo) / 2.0, mid_y), c.p(xo, brow_y + d_out + 0.02)])
        cv2.polylines(layer, [_poly(pts)], False, face.brow_tone, brow_th, cv2.LINE_8, _SHIFT)
    if e["brow_in_x"] > 0.02:  # frown lines between brows drawn together
        for side in (-1.0, 1.0):
            cv2.line(
                layer,
                c.fp(side * 0.025, brow_y - 0.02),
                c.fp(side * 0.035, brow_y + 0.08),
                face.skin * 0.75,
                c.th(0.015),
                cv2.LINE_8,
                _SHIFT,
            )


def _draw_nose(layer: np.ndarray, c: _Canvas, face: _Identity, e: dict[str, float], rng: np.random.Generator) -> None:
    """Nose: bridge shadow on one side, nostrils, wrinkles."""
    import cv2

    skin, nose_y = face.skin, face.nose_y
    light_side = 1.0 if rng.random() < 0.5 else -1.0
    cv2.line(
        layer,
        c.fp(light_side * 0.06, face.eye_y + 0.06),
        c.fp(light_side * 0.08, nose_y - 0.06),
        skin * 0.85,
        c.th(0.03),
        cv2.LINE_8,
        _SHIFT,
    )
    flare = 1.0 + 0.3 * e["wrinkle"]
    nostril_y = nose_y - 0.02 * e["wrinkle"]
    for side in (-1.0, 1.0):
        cv2.ellipse(
            layer,
            c.fp(side * 0.065 * flare, nostril_y),
            (c.fl(0.035 * flare), c.fl(0.018)),
            0,
            0,
            360,
            face.feature_dark * 1.2,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
    if e["wrinkle"] > 0.3:
        for j in range(2 + int(rng.integers(0, 2))):
            wy = face.eye_y + 0.07 + j * 0.05
            cv2.ellipse(
                layer,
                c.fp(0.0, wy),
                (c.fl(0.07), c.fl(0.02)),
                0,
                200,
                340,
                skin * (1.0 - 0.3 * e["wrinkle"]),
                c.th(0.018),
                cv2.LINE_8,
                _SHIFT,
            )


def _draw_folds(layer: np.ndarray, c: _Canvas, face: _Identity, e: dict[str, float], mouth_w: float) -> None:
    """Nasolabial folds, from beside the nose to beyond the mouth corners (no randomness of their own)."""
    import cv2

    if e["folds"] > 0.05:
        for side in (-1.0, 1.0):
            fold = np.array(
                [
                    c.p(side * 0.14, face.nose_y - 0.04),
                    c.p(side * (0.18 + 0.25 * mouth_w), face.mouth_y - 0.08),
                    c.p(side * (mouth_w + 0.06), face.mouth_y + 0.02),
                ]
            )
            tone = face.skin * (1.0 - 0.25 * e["folds"])
            cv2.polylines(layer, [_poly(fold)], False, tone, c.th(0.02), cv2.LINE_8, _SHIFT)


def _draw_mouth(
    layer: np.ndarray, c: _Canvas, face: _Identity, e: dict[str, float], mouth_w: float, rng: np.random.Generator
) -> None:
    """Lips, the opening (with teeth sometimes), the line between the lips and the lower-lip shadow.

    The centre line is y(t) = mouth_y - curve * t^2 for t in [-1, 1] (corners up = smile); the
    opening has a superellipse profile (round "O" .. stretched slit); the upper lip is raised on one side.
    """
    import cv2

    t = np.linspace(-1.0, 1.0, 25)
    raise_side = 1.0 if rng.random() < 0.5 else -1.0
    centre = face.mouth_y - e["mouth_curve"] * t**2
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
    lips = c.pixels(np.concatenate([upper_outer, lower_outer[::-1]]))
    cv2.fillPoly(layer, [_poly(lips)], face.lip_tone, cv2.LINE_8, _SHIFT)
    if half_open > 0.008 or e["lip_raise"] > 0.03:
        hole = c.pixels(np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]]))
        cv2.fillPoly(layer, [_poly(hole)], face.feature_dark * 0.5, cv2.LINE_8, _SHIFT)
        if rng.random() < 0.5 and half_open > 0.03:  # upper teeth showing
            teeth_h = np.minimum(0.6 * (lower - upper), 0.05)
            teeth = c.pixels(
                np.concatenate([np.stack([x * 0.85, upper], 1), np.stack([x * 0.85, upper + teeth_h], 1)[::-1]])
            )
            cv2.fillPoly(layer, [_poly(teeth)], face.sclera * 0.9, cv2.LINE_8, _SHIFT)
    line = c.pixels(np.stack([x, (upper + lower) / 2.0], 1))
    cv2.polylines(
        layer,
        [_poly(line)],
        False,
        face.feature_dark * (1.0 - 0.3 * e["lip_press"]),
        c.th(0.028 + 0.015 * e["lip_press"]),
        cv2.LINE_8,
        _SHIFT,
    )
    # Lower-lip shadow gives the mouth some volume.
    shadow = c.pixels(np.stack([x * 0.6, lower + lip_th * 1.2 * profile + 0.03], 1))
    cv2.polylines(layer, [_poly(shadow)], False, face.skin * 0.85, c.th(0.02), cv2.LINE_8, _SHIFT)


def _shade_head(
    layer: np.ndarray, face: _Identity, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Head shading: darker towards the head's rim, constant beyond it (hair, neck).

    It multiplies the drawn albedo, features included; returns the shaded float32 layer.
    """
    r2 = (xx / (face.face_ax * _ZOOM)) ** 2 + ((yy - 0.06 * _ZOOM) / (face.face_ay * _ZOOM)) ** 2
    return (layer * (1.0 - rng.uniform(0.15, 0.35) * np.minimum(r2, 1.0) ** 2)).astype(np.float32)


def _pose(layer: np.ndarray, alpha: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, scale and shift the face (about the image centre); returns the posed (layer, alpha)."""
    import cv2

    angle = rng.normal(0.0, 6.0)
    scale = rng.uniform(0.88, 1.08)
    m = np.asarray(cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), angle, scale), dtype=np.float64)
    m[:, 2] += rng.uniform(-0.06, 0.06, size=2) * size
    layer = cv2.warpAffine(layer, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return layer, alpha


def _background(size: int, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Background: a base tone, a gradient and low-frequency blotches; float32 (size, size)."""
    import cv2

    blotches = rng.normal(0.0, rng.uniform(0.0, 30.0), size=(4, 4)).astype(np.float32)
    bg = cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    gx, gy = rng.normal(0.0, 20.0, size=2)
    bg += rng.uniform(10.0, 240.0) + gx * xx + gy * yy
    return bg


def _light_and_capture(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting and camera: a directional gradient, focus, brightness/contrast, gamma, sensor noise.

    Args:
        img: float32 composite; scaled in place first, which keeps that step in float32.
        xx, yy: Pixel centres in [-1, 1], as :func:`_unit_grid`.
        rng: The face's generator.

    Returns:
        The final uint8 image.
    """
    import cv2

    lx, ly = rng.normal(0.0, 0.25, size=2)
    img *= 1.0 + lx * xx + ly * yy
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.2, 0.6))
    img = (img - 128.0) * rng.uniform(0.7, 1.3) + 128.0 + rng.normal(0.0, 15.0)
    img = 255.0 * (np.clip(img, 0.0, 255.0) / 255.0) ** rng.uniform(0.8, 1.25)
    img += rng.normal(0.0, rng.uniform(1.0, 6.0), size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


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
    # The steps below draw from ``rng`` in a fixed order: reordering them changes every face of a seed.
    e = _expression_params(int(label), rng)
    c = _Canvas.of_side(size * _SUPERSAMPLE)
    face = _identity(rng)

    layer: np.ndarray = np.full((c.side, c.side), face.skin, np.float32)
    alpha: np.ndarray = np.zeros((c.side, c.side), np.float32)
    _draw_head(layer, alpha, c, face, rng)
    _draw_eyes(layer, c, face, e, rng)
    _draw_brows(layer, c, face, e, rng)
    _draw_nose(layer, c, face, e, rng)
    mouth_w = e["mouth_w"] * rng.uniform(0.9, 1.1)  # the folds follow the mouth's width
    _draw_folds(layer, c, face, e, mouth_w)
    _draw_mouth(layer, c, face, e, mouth_w, rng)

    # Everything below runs at output resolution: area averaging anti-aliases the 4x drawing.
    layer = cv2.resize(layer, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
    yy, xx = _unit_grid(size)  # pixel centres in [-1, 1]
    layer = _shade_head(layer, face, xx, yy, rng)
    layer, alpha = _pose(layer, alpha, size, rng)
    bg = _background(size, xx, yy, rng)
    img = alpha * layer + (1.0 - alpha) * bg
    return _light_and_capture(img, xx, yy, rng)
