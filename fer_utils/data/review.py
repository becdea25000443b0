"""Review marks on faces: flags and corrected labels, kept in a CSV beside the report.

The misclassification browser writes this file whenever a face is flagged or
relabelled and reads it back when it is opened again on the same data; training
can take its corrected labels (:func:`corrections`) for the Training split.

One row per reviewed face, columns :data:`REVIEW_COLUMNS`:

==================  ================================================================
``row``             the face's 0-based row in the FER2013 file (what the browser shows as ``#row``)
``split``           its ``Usage``: Training, PublicTest or PrivateTest
``fer2013_label``   the FER2013 label, as a class name (``fer_utils.CLASS_NAMES``)
``corrected_label`` the reviewer's label, as a class name; empty if none
``flagged``         ``true`` or ``false``: marked as worth a second look
``pred_label``      the model's prediction when reviewed (empty if none)
``confidence``      the probability of that prediction (empty if none)
``neutral`` … ``NF`` the ten FER+ vote counts (``ferplus.FERPLUS_COLUMNS``; empty without votes)
==================  ================================================================

Labels are written as names, so the file reads well in a spreadsheet, and are
checked on reading: bad input raises ``data.FERDataError`` naming the file,
row and field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES, SPLITS
from fer_utils.data.dataset import FERDataError
from fer_utils.data.ferplus import FERPLUS_COLUMNS
from fer_utils.files import atomic_write_text

FLAGGED_COLUMN = "flagged"
"""Table column (bool) marking faces flagged in review, when the table carries review marks."""

CORRECTED_COLUMN = "corrected"
"""Table column (int) holding a reviewer's corrected label, -1 where none."""

REVIEW_COLUMNS: tuple[str, ...] = (
    "row",
    "split",
    "fer2013_label",
    "corrected_label",
    "flagged",
    "pred_label",
    "confidence",
    *FERPLUS_COLUMNS,
)
"""Columns of a review file, in order."""

_BOOLEAN = {"true": True, "false": False, "1": True, "0": False}
_INTEGER = re.compile(r"\d+")


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The review frame as the strings written to the file."""
    missing = [c for c in REVIEW_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"a review table needs the column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=range(len(df)))
    for col in REVIEW_COLUMNS:
        values = df[col].reset_index(drop=True).astype(object)
        if col == "flagged":
            out[col] = values.map(lambda v: "true" if bool(v) else "false")
        elif col == "confidence":
            out[col] = values.map(lambda v: "" if pd.isna(v) or v == "" else f"{float(v):.6g}")
        else:
            out[col] = values.map(lambda v: "" if pd.isna(v) else str(v))
    return out


def _parse(text: pd.DataFrame, file: str) -> pd.DataFrame:
    """Validate a review file read as strings; returns typed columns (see :func:`load_review`)."""
    for col in REVIEW_COLUMNS:
        if col not in text.columns:
            raise FERDataError(
                file, f"missing column '{col}' (a review file has: {', '.join(REVIEW_COLUMNS)})", field=col
            )
    text = pd.DataFrame({col: text[col].astype(str).str.strip() for col in REVIEW_COLUMNS})

    def fail(i: int, col: str, problem: str) -> FERDataError:
        return FERDataError(file, problem, row=i + 1, field=col)

    def check(col: str, ok: np.ndarray, expected: str) -> None:
        if not ok.all():
            i = int(np.argmin(ok))
            raise fail(i, col, f"'{text[col].iat[i]}' is not {expected}")

    names = ", ".join(CLASS_NAMES)
    check("row", text["row"].str.fullmatch(_INTEGER).to_numpy(dtype=bool), "a file row (a non-negative integer)")
    check("split", text["split"].isin(SPLITS).to_numpy(), f"a split ({', '.join(SPLITS)})")
    check("fer2013_label", text["fer2013_label"].isin(CLASS_NAMES).to_numpy(), f"a class name ({names})")
    for col in ("corrected_label", "pred_label"):
        check(col, text[col].isin(("", *CLASS_NAMES)).to_numpy(), f"empty or a class name ({names})")
    check("flagged", text["flagged"].str.lower().isin(list(_BOOLEAN)).to_numpy(), "true or false")
    confidence = pd.to_numeric(text["confidence"].replace("", "nan"), errors="coerce").to_numpy(dtype=np.float64)
    in_range = (confidence >= 0) & (confidence <= 1)
    check("confidence", (text["confidence"] == "").to_numpy() | in_range, "empty or a probability in [0, 1]")
    for col in FERPLUS_COLUMNS:
        ok = (text[col] == "") | text[col].str.fullmatch(_INTEGER)
        check(col, ok.to_numpy(dtype=bool), "empty or a vote count (a non-negative integer)")
    rows = text["row"].astype(np.int64)
    repeated = rows.duplicated().to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        first = int(np.argmax((rows == rows.iat[i]).to_numpy())) + 1
        raise fail(i, "row", f"row {rows.iat[i]} is reviewed twice (first at row {first})")

    out = pd.DataFrame(
        {
            "row": rows,
            "split": text["split"],
            "fer2013_label": text["fer2013_label"],
            "corrected_label": text["corrected_label"],
            "flagged": text["flagged"].str.lower().map(_BOOLEAN).astype(bool),
            "pred_label": text["pred_label"],
            "confidence": confidence,
        }
    )
    for col in FERPLUS_COLUMNS:
        out[col] = pd.array([None if v == "" else int(v) for v in text[col]], dtype="Int64")
    return out.reset_index(drop=True)


def reviewed(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: faces flagged or given a corrected label (all False without review columns)."""
    if FLAGGED_COLUMN not in table.columns:
        return np.zeros(len(table), dtype=bool)
    return table[FLAGGED_COLUMN].to_numpy(dtype=bool) | (table[CORRECTED_COLUMN].to_numpy() >= 0)


def save_review(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Write review marks atomically (checked first, so a bad table writes nothing).

    Args:
        path: Destination (relative paths from the repository root).
        df: Has :data:`REVIEW_COLUMNS` (as from :func:`load_review` or :func:`from_table`).

    Returns:
        The path written.

    Raises:
        FERDataError: a value the file format does not allow (named by row and field).
        OSError: the file cannot be written.
    """
    dest = paths.resolve(path)
    text = _as_text(df)
    _parse(text, str(dest))
    return atomic_write_text(dest, text.to_csv(index=False))


def load_review(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a review file.

    Args:
        path: The CSV (relative paths from the repository root).

    Returns:
        One row per reviewed face, in file order: ``row`` int64, ``split``,
        ``fer2013_label``, ``corrected_label`` ("" where none) and ``pred_label``
        ("" where none) as str, ``flagged`` bool, ``confidence`` float64 (NaN
        where none), the ten vote columns as nullable ``Int64``.

    Raises:
        FileNotFoundError: there is no such file.
        FERDataError: a missing column, a value of the wrong kind or a row
            reviewed twice, naming the file, row and field.
    """
    source = paths.resolve(path)
    try:
        text = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise FERDataError(str(source), "file is empty (a review file has at least its header)") from None
    except pd.errors.ParserError as exc:
        raise FERDataError(str(source), f"malformed CSV ({str(exc).split('C error: ')[-1].strip()})") from None
    text.columns = [str(c).strip() for c in text.columns]
    return _parse(text, str(source))


def corrections(review: pd.DataFrame, split: str | None = None) -> dict[int, int]:
    """Corrected labels by file row.

    Args:
        review: From :func:`load_review`.
        split: Keep only this split's rows (``None``: all). Training applies
            corrections to the Training split only, never to evaluation labels.

    Returns:
        ``{row: label}``: file row (the ``row`` column, which the browser shows)
        -> corrected class index in ``0..6``, for rows with a corrected label.
    """
    rows = review[review["corrected_label"] != ""]
    if split is not None:
        rows = rows[rows["split"] == split]
    return {int(r): CLASS_NAMES.index(name) for r, name in zip(rows["row"], rows["corrected_label"], strict=True)}


# --------------------------------------------------------------------------- the browser's table


def from_table(table: pd.DataFrame, usage: str | np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """The review rows of a browser table's reviewed faces (flagged or relabelled), by file row.

    Args:
        table: ``selection.sample_table`` with the ``flagged`` and ``corrected``
            columns (and the ten FER+ vote columns when votes are known).
        usage: The split of every face (N,) in table order, or one split for all.
        class_names: Names in label order.
    """
    sub = table.assign(_usage=usage)[reviewed(table)].sort_values("index")
    names = np.asarray(class_names, dtype=object)
    corrected = sub[CORRECTED_COLUMN].to_numpy()
    out = pd.DataFrame(
        {
            "row": sub["index"].to_numpy(dtype=np.int64),
            "split": sub["_usage"].astype(str).to_numpy(),
            "fer2013_label": sub["true_name"].to_numpy(),
            "corrected_label": np.where(corrected >= 0, names[np.clip(corrected, 0, None)], ""),
            "flagged": sub[FLAGGED_COLUMN].to_numpy(dtype=bool),
            "pred_label": sub["pred_name"].to_numpy(),
            "confidence": sub["confidence"].to_numpy(dtype=np.float64),
        }
    )
    for col in FERPLUS_COLUMNS:
        values = sub[col].to_numpy() if col in sub.columns else [None] * len(sub)
        out[col] = pd.array(values, dtype="Int64")
    return out


def apply_review(
    table: pd.DataFrame, review: pd.DataFrame, splits: Sequence[str], source: str | os.PathLike[str]
) -> pd.DataFrame:
    """A copy of ``table`` with the ``flagged`` and ``corrected`` columns set from ``review``.

    Args:
        table: ``selection.sample_table`` of the faces of ``splits``.
        review: From :func:`load_review`.
        splits: The splits the table holds; review rows of other splits are ignored.
        source: The review file, for messages.

    Raises:
        FERDataError: a review row of these splits is not in the table, or its
            FER2013 label differs from the table's: the review was made on other data.
    """
    out = table.copy()
    out[FLAGGED_COLUMN] = False
    out[CORRECTED_COLUMN] = -1
    where = pd.Series(np.arange(len(table)), index=table["index"].to_numpy())
    flagged_at, corrected_at = out.columns.get_loc(FLAGGED_COLUMN), out.columns.get_loc(CORRECTED_COLUMN)
    for i in np.flatnonzero(review["split"].isin(list(splits)).to_numpy()):
        entry = review.iloc[i]
        row = int(entry["row"])
        if row not in where.index:
            raise FERDataError(
                str(source),
                f"row {row} ({entry['split']}) is not in this data's {entry['split']}: "
                "the review was made on other data (move the file away or pass "
                "another review_path)",
                row=int(i) + 1,
                field="row",
            )
        at = int(where[row])
        if entry["fer2013_label"] != table["true_name"].iat[at]:
            raise FERDataError(
                str(source),
                f"label {entry['fer2013_label']} of row {row} differs from this data's "
                f"{table['true_name'].iat[at]}: the review was made on other data",
                row=int(i) + 1,
                field="fer2013_label",
            )
        out.iat[at, flagged_at] = bool(entry["flagged"])
        corrected = entry["corrected_label"]
        out.iat[at, corrected_at] = CLASS_NAMES.index(corrected) if corrected else -1
    return out
