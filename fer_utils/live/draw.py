"""Drawing the live pipeline's results: boxes, labels and frames/s on a frame, and a montage of frames.

Colours follow matplotlib's tab10 per class, so the annotated video and the notebooks' figures agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .detect import to_bgr
from .pipeline import FrameResult


def _color(label_index: int) -> tuple[int, int, int]:
    """A fixed BGR colour per class (matplotlib's tab10, so figures and video agree)."""
    tab10 = [
        (180, 119, 31),
        (14, 127, 255),
        (44, 160, 44),
        (40, 39, 214),
        (189, 103, 148),
        (75, 86, 140),
        (194, 119, 227),
        (127, 127, 127),
        (34, 189, 188),
        (207, 190, 23),
    ]
    return tab10[label_index % len(tab10)]


def annotate(
    frame: np.ndarray,
    result: FrameResult,
    class_names: Sequence[str],
    *,
    show_fps: float | None = None,
    landmarks: bool = False,
) -> np.ndarray:
    """Draw boxes, labels and the top probabilities on a copy of ``frame``.

    Args:
        frame: uint8 BGR (H, W, 3) or grayscale (H, W).
        result: The frame's :class:`FrameResult`.
        class_names: Class names, in the probabilities' order.
        show_fps: If given, written in the top-left corner.
        landmarks: Also mark each face's landmarks (eyes, nose, mouth corners) where
            the detector placed them (photos; off for video, where they would flicker).

    Returns:
        uint8 BGR (H, W, 3).
    """
    out = to_bgr(frame).copy()
    scale = max(0.35, min(out.shape[:2]) / 600.0)
    thick = max(1, round(scale * 2))
    for f in result.faces:
        k = int(np.argmax(f.probs))
        color = _color(k)
        b = f.box
        cv2.rectangle(out, (b.x, b.y), (b.x + b.w, b.y + b.h), color, thick)
        if landmarks and b.landmarks:
            for px, py in b.landmarks.values():
                cv2.circle(out, (int(px), int(py)), max(2, thick + 1), color, -1, cv2.LINE_AA)
        text = f"{f.label} {f.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = b.y - 4 if b.y - th - 6 > 0 else b.y + b.h + th + 4
        cv2.rectangle(out, (b.x, y - th - 3), (b.x + tw + 4, y + base - 1), color, -1)
        cv2.putText(out, text, (b.x + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    if show_fps is not None:
        cv2.putText(
            out,
            f"{show_fps:.1f} fps",
            (6, int(18 * scale / 0.5)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
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
        f = to_bgr(f)
        h, w = f.shape[:2]
        tiles.append(cv2.resize(f, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, th - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=0) for t in tiles]
    cols = max(1, min(cols, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    tiles += [np.zeros_like(tiles[0])] * (rows * cols - len(tiles))
    return np.vstack([np.hstack(tiles[r * cols : (r + 1) * cols]) for r in range(rows)])
