"""The misclassification browser's table logic, without a browser: one row per face, filters, sort, pages, export.

:class:`fer_utils.browser.MisclassificationBrowser` shows what these functions
compute; the static figures of papermill reports (where widgets do not run) and
the tests call them directly.

- :func:`sample_table`: one row per evaluated face (right or wrong);
- :class:`Selection`, :func:`select`: filters and a sort order;
- :func:`n_pages`, :func:`page_rows`, :func:`face_position`, :func:`place_in`:
  pages, and where a face is (by the file row the widget shows, or its position);
- :func:`export_selection`: the selection as CSV, with FER+ votes and review marks;
- :func:`pair_examples`: the most confident mistakes of each confused pair.

Two numbers identify a face: ``index``, its row in the source file (what the
widget shows as ``#29915``), and ``position``, its place in the evaluated split's
arrays (``images[position]``, ``probs[position]``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES
from fer_utils.data.ferplus import FERPLUS_COLUMNS
from fer_utils.data.review import CORRECTED_COLUMN, FLAGGED_COLUMN, reviewed
from fer_utils.evaluate.label_noise import FERPLUS_COLUMN
from fer_utils.files import atomic_write_text

OUTCOMES: tuple[str, ...] = ("incorrect", "correct", "all")
"""Values of :attr:`Selection.outcome`."""

SORT_KEYS: dict[str, tuple[str, bool]] = {
    "confidence": ("confidence", False),  # probability of the prediction, most confident first
    "loss": ("loss", False),  # -log p(true class), worst first
    "label_issue": ("label_issue", False),  # confident-learning score, likeliest label error first
    "index": ("index", True),  # row in the source file, ascending
}
"""Sort key name -> (table column, ascending)."""

EXPORT_COLUMNS: tuple[str, ...] = (
    "index",
    "position",
    "true",
    "true_name",
    "pred",
    "pred_name",
    "correct",
    "confidence",
    "p_true",
    "loss",
    "label_issue",
)
"""Leading columns of an exported selection; the class probabilities (and FER+ and review columns) follow."""


class FaceNotFound(LookupError):
    """A face asked for by file row or position that the split, or the current selection, does not hold."""


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """What the browser shows.

    Attributes:
        true_class: Label to keep, or ``None`` for any.
        pred_class: Predicted label to keep, or ``None`` for any.
        outcome: ``"incorrect"``, ``"correct"`` or ``"all"``.
        confidence: Inclusive range (low, high) of the prediction's probability, in [0, 1].
        sort_by: A key of :data:`SORT_KEYS`: ``"confidence"``, ``"loss"`` and
            ``"label_issue"`` descending, ``"index"`` ascending.
        reviewed_only: Keep only faces flagged or given a corrected label (the
            table must carry the review columns).
    """

    true_class: int | None = None
    pred_class: int | None = None
    outcome: str = "incorrect"
    confidence: tuple[float, float] = (0.0, 1.0)
    sort_by: str = "confidence"
    reviewed_only: bool = False

    def __post_init__(self) -> None:
        for field, value in (("true_class", self.true_class), ("pred_class", self.pred_class)):
            if value is not None and not 0 <= value < len(CLASS_NAMES):
                raise ValueError(f"{field} must be None or a label in 0..{len(CLASS_NAMES) - 1}, got {value}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.sort_by not in SORT_KEYS:
            raise ValueError(f"sort_by must be one of {tuple(SORT_KEYS)}, got {self.sort_by!r}")
        lo, hi = self.confidence
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"confidence must be a range within [0, 1] with low <= high, got {self.confidence}")

    def describe(self, class_names: Sequence[str] = CLASS_NAMES) -> str:
        """A short human-readable summary, e.g. ``"incorrect, true Fear, confidence 0.50-1.00, by loss"``."""
        parts = [self.outcome]
        if self.true_class is not None:
            parts.append(f"true {class_names[self.true_class]}")
        if self.pred_class is not None:
            parts.append(f"predicted {class_names[self.pred_class]}")
        parts.append(f"confidence {self.confidence[0]:.2f}-{self.confidence[1]:.2f}")
        if self.reviewed_only:
            parts.append("reviewed only")
        parts.append(f"by {self.sort_by}")
        return ", ".join(parts)


def select(table: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The rows of ``table`` (from :func:`sample_table`) matching ``selection``, sorted.

    Ties keep data order (``position``), so the result is deterministic.

    Returns:
        A filtered, sorted copy with the index reset.
    """
    mask = np.ones(len(table), dtype=bool)
    if selection.true_class is not None:
        mask &= table["true"].to_numpy() == selection.true_class
    if selection.pred_class is not None:
        mask &= table["pred"].to_numpy() == selection.pred_class
    if selection.outcome != "all":
        mask &= table["correct"].to_numpy() == (selection.outcome == "correct")
    lo, hi = selection.confidence
    conf = table["confidence"].to_numpy()
    # slider values are rounded to 0.01; a small tolerance keeps a face at exactly 1.0 in range
    mask &= (conf >= lo - 1e-9) & (conf <= hi + 1e-9)
    if selection.reviewed_only:
        mask &= reviewed(table)
    column, ascending = SORT_KEYS[selection.sort_by]
    out = table[mask]
    return out.sort_values([column, "position"], ascending=[ascending, True], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- pages and jumps


def n_pages(n_rows: int, page_size: int) -> int:
    """Pages needed for ``n_rows`` rows (at least 1, so an empty selection has page 1 of 1)."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    return max(1, math.ceil(n_rows / page_size))


def page_rows(rows: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Rows of the 0-based ``page``.

    Raises:
        IndexError: ``page`` is outside ``0..n_pages-1``.
    """
    total = n_pages(len(rows), page_size)
    if not 0 <= page < total:
        raise IndexError(f"page {page} is outside 0..{total - 1} ({len(rows)} rows, {page_size} per page)")
    return rows.iloc[page * page_size : (page + 1) * page_size]


def face_position(
    table: pd.DataFrame, *, row: int | None = None, position: int | None = None, split: str = "this split"
) -> int:
    """The position of a face given by its file row (the ``index`` column) or by its position.

    Args:
        table: From :func:`sample_table`.
        row: Row in the source file, as the widget shows it (``#29915``).
        position: Place in the evaluated split, ``0..N-1``.
        split: Name used in the message.

    Raises:
        ValueError: neither or both of ``row`` and ``position`` are given.
        FaceNotFound: the split holds no such face.
    """
    if (row is None) == (position is None):
        raise ValueError("give exactly one of row (the file row the widget shows) and position")
    if position is not None:
        if not 0 <= int(position) < len(table):
            raise FaceNotFound(f"position {position} is outside {split}'s 0..{len(table) - 1}")
        return int(position)
    assert row is not None  # exactly one of the two is given
    hit = np.flatnonzero(table["index"].to_numpy() == int(row))
    if not len(hit):
        idx = table["index"]
        span = f"rows {idx.min()}-{idx.max()}" if len(idx) else "no rows"
        raise FaceNotFound(f"row {row} is not in {split} ({len(table):,} faces, {span} of the file)")
    return int(table["position"].iat[hit[0]])


def place_in(rows: pd.DataFrame, position: int) -> int | None:
    """Where the face at ``position`` stands in ``rows`` (e.g. :func:`select`'s result), or ``None``."""
    hit = np.flatnonzero(rows["position"].to_numpy() == position)
    return int(hit[0]) if len(hit) else None


# --------------------------------------------------------------------------- export and static examples


def export_selection(
    rows: pd.DataFrame, path: str | os.PathLike[str], class_names: Sequence[str] = CLASS_NAMES
) -> Path:
    """Write selected rows to CSV atomically, in their current order.

    Args:
        rows: From :func:`select`.
        path: Destination (relative paths from the repository root).
        class_names: Names of the probability columns.

    Returns:
        The path. Columns: :data:`EXPORT_COLUMNS`, one probability column per
        class (``p_<name>``), then where the table has them: ``ferplus`` and
        ``ferplus_name``, the ten FER+ vote counts (``ferplus.FERPLUS_COLUMNS``),
        ``flagged``, ``corrected`` and ``corrected_name`` ("" where none).

    Raises:
        OSError: the file cannot be written (the message names the path).
    """
    out = rows.loc[:, list(EXPORT_COLUMNS)].copy()
    for name in class_names:
        out[f"p_{name}"] = rows[name].to_numpy()
    for col in (FERPLUS_COLUMN, f"{FERPLUS_COLUMN}_name", *FERPLUS_COLUMNS, FLAGGED_COLUMN, CORRECTED_COLUMN):
        if col in rows.columns:
            out[col] = rows[col].to_numpy()
    if CORRECTED_COLUMN in rows.columns:
        corrected = rows[CORRECTED_COLUMN].to_numpy()
        names = np.asarray(class_names, dtype=object)
        out[f"{CORRECTED_COLUMN}_name"] = np.where(corrected >= 0, names[np.clip(corrected, 0, None)], "")
    return atomic_write_text(paths.resolve(path), out.to_csv(index=False, float_format="%.6g"))


def pair_examples(
    table: pd.DataFrame, pairs: Sequence[dict[str, Any]], per_pair: int = 6, class_names: Sequence[str] = CLASS_NAMES
) -> pd.DataFrame:
    """The most confident mistakes of each confused pair, for the static figures.

    Args:
        table: From :func:`sample_table` (or ``evaluate.misclassified``: it has the needed columns).
        pairs: ``metrics["most_confused"]`` entries ({"true", "pred", ...} with class names).
        per_pair: Faces per pair at most.
        class_names: Names in label order.

    Returns:
        The selected rows, pair by pair, most confident first, with added
        columns ``pair`` ("Fear → Sad") and ``pair_count`` (the pair's
        ``count``, else the rows shown).
    """
    parts = []
    for pair in pairs:
        t, p = class_names.index(pair["true"]), class_names.index(pair["pred"])
        rows = select(
            table if "correct" in table.columns else table.assign(correct=False),
            Selection(true_class=t, pred_class=p, outcome="incorrect"),
        ).head(per_pair)
        count = int(pair.get("count", len(rows)))
        parts.append(rows.assign(pair=f"{pair['true']} → {pair['pred']}", pair_count=count))
    if not parts:
        return table.head(0).assign(pair=pd.Series(dtype=object), pair_count=pd.Series(dtype=np.int64))
    return pd.concat(parts, ignore_index=True)
