"""FER+ annotator votes (Microsoft FERPlus ``fer2013new.csv``) joined to FER2013 rows by position.

FER+ had ten crowd workers relabel every FER2013 image into eight emotions plus
"unknown" and "not a face" (NF). Its file has one row per FER2013 row, in the same
order, and must be joined **by row position**: the ``Image name`` column drifts
after row 59, repeats four names and is empty for 173 rows.

Columns: ``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES, SPLITS
from fer_utils.data.dataset import FERData, FERDataError

logger = logging.getLogger(__name__)

FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
"""The ten vote columns, in file order, with FER+'s names."""

META_COLUMNS: tuple[str, ...] = ("Usage", "Image name")
"""The non-vote columns of the FER+ file."""

_FER_LABEL = {name: label for label, name in enumerate(CLASS_NAMES)}

FERPLUS_TO_FER: dict[str, int | None] = {
    "neutral": _FER_LABEL["Neutral"],
    "happiness": _FER_LABEL["Happy"],
    "surprise": _FER_LABEL["Surprise"],
    "sadness": _FER_LABEL["Sad"],
    "anger": _FER_LABEL["Angry"],
    "disgust": _FER_LABEL["Disgust"],
    "fear": _FER_LABEL["Fear"],
    "contempt": None,  # not a FER2013 class
    "unknown": None,
    "NF": None,  # not a face
}
"""FER+ vote column -> FER2013 label (``None``: no FER2013 counterpart)."""

FERPLUS_CLASS_NAMES: tuple[str, ...] = (*CLASS_NAMES, "Contempt")
"""The eight FER+ emotions as labels: FER2013's seven in FER2013's order, then Contempt as 7."""

LEFT_OUT: dict[int, str] = {-1: "no_majority", -2: "unknown", -3: "not_a_face"}
"""Codes :func:`ferplus_majority_labels` gives faces the FERPlus majority protocol leaves out."""

_INTEGER = re.compile(r"\d+")


def read_ferplus(path: str | os.PathLike[str], n_rows: int | None = None) -> pd.DataFrame:
    """Read and validate a FER+ votes file.

    Args:
        path: ``fer2013new.csv`` (relative paths are taken from the repository root).
        n_rows: Rows of the FER2013 data it will be joined to; a different row count
            is an error (the join is by position, so the files must match row for row).

    Returns:
        One row per FER2013 row, in file order (the RangeIndex is the FER2013 row
        position, i.e. ``FERData.index``): ``Usage`` and ``Image name`` (str, the
        name may be empty) and the ten ``FERPLUS_COLUMNS`` as int64 vote counts.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FERDataError: (a ``ValueError``) a missing column, a vote that is not a
            non-negative integer, an unknown Usage value or a row-count mismatch,
            naming the file, row and field.
    """
    source = paths.resolve(path)
    file = str(source)
    try:
        df = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise FERDataError(file, "file is empty") from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        row = int(line.group(1)) - 1 if line else None
        raise FERDataError(file, f"malformed CSV ({str(exc).split('C error: ')[-1].strip()})", row=row) from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in (*META_COLUMNS, *FERPLUS_COLUMNS):
        if col not in df.columns:
            raise FERDataError(file, f"missing column '{col}' (the header has: {', '.join(df.columns)})", field=col)
    if len(df) == 0:
        raise FERDataError(file, "no data rows (the file holds only a header)")
    df = df[[*META_COLUMNS, *FERPLUS_COLUMNS]].copy()

    usage = df["Usage"].str.strip()
    bad = ~usage.isin(SPLITS)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise FERDataError(
            file,
            f"unknown Usage value '{df['Usage'].iat[i]}' (expected one of {', '.join(SPLITS)})",
            row=i + 1,
            field="Usage",
        )
    df["Usage"] = usage

    for col in FERPLUS_COLUMNS:
        text = df[col].str.strip()
        ok = text.str.fullmatch(_INTEGER).to_numpy(dtype=bool)
        if not ok.all():
            i = int(np.argmin(ok))
            raise FERDataError(
                file, f"vote count '{df[col].iat[i]}' is not a non-negative integer", row=i + 1, field=col
            )
        df[col] = text.astype(np.int64)

    if n_rows is not None and len(df) != n_rows:
        raise FERDataError(
            file,
            f"has {len(df)} rows but the FER2013 data has {n_rows}: FER+ joins by row "
            "position, so both files must hold the same rows in the same order",
        )
    return df.reset_index(drop=True)


def ferplus_plurality(votes_df: pd.DataFrame) -> np.ndarray:
    """FER2013 label of each row's plurality vote (every vote counts; no majority needed).

    The label the error browser and the EDA compare FER2013 with. The FERPlus benchmark's
    labels are :func:`ferplus_majority_labels`.

    Args:
        votes_df: Has the ten ``FERPLUS_COLUMNS`` (as from :func:`read_ferplus`).

    Returns:
        (N,) int64: the FER2013 label (0-6) of the emotion with the most votes;
        -1 where contempt, unknown or not-a-face has the most votes, where the top
        count is tied between columns, or where there are no votes.
    """
    missing = [c for c in FERPLUS_COLUMNS if c not in votes_df.columns]
    if missing:
        raise ValueError(f"votes table lacks FER+ column(s) {', '.join(missing)}")
    votes = votes_df[list(FERPLUS_COLUMNS)].to_numpy(dtype=np.int64)
    top = votes.max(axis=1)
    tied = (votes == top[:, None]).sum(axis=1) > 1
    to_fer = np.array([-1 if FERPLUS_TO_FER[c] is None else FERPLUS_TO_FER[c] for c in FERPLUS_COLUMNS], dtype=np.int64)
    labels = to_fer[votes.argmax(axis=1)]
    labels[tied | (top == 0)] = -1
    return labels


def ferplus_majority_labels(votes_df: pd.DataFrame) -> np.ndarray:
    """Each face's label under the FERPlus majority protocol (microsoft/FERPlus ``src/ferplus.py``).

    A single vote for a column is dropped as an outlier; the face is kept when its top column then
    holds more than half of the remaining votes, and left out when that column is unknown or
    not-a-face. Unlike :func:`ferplus_plurality`, a plurality short of a majority is no label.

    Args:
        votes_df: Has the ten ``FERPLUS_COLUMNS`` (as from :func:`read_ferplus` or :func:`align_votes`).

    Returns:
        (N,) int64 labels in :data:`FERPLUS_CLASS_NAMES` order (0-6 the FER2013 emotions, 7 Contempt);
        the codes of :data:`LEFT_OUT` for faces left out (-1 no majority, -2 unknown, -3 not a face).
    """
    missing = [c for c in FERPLUS_COLUMNS if c not in votes_df.columns]
    if missing:
        raise ValueError(f"votes table lacks FER+ column(s) {', '.join(missing)}")
    votes = votes_df[list(FERPLUS_COLUMNS)].to_numpy(dtype=np.int64).copy()
    votes[votes <= 1] = 0  # a single annotator's vote is an outlier
    top, total = votes.max(axis=1), votes.sum(axis=1)
    code = {"contempt": FERPLUS_CLASS_NAMES.index("Contempt"), "unknown": -2, "NF": -3}
    to_label = np.array([code[c] if FERPLUS_TO_FER[c] is None else FERPLUS_TO_FER[c] for c in FERPLUS_COLUMNS])
    labels = to_label[votes.argmax(axis=1)].astype(np.int64)
    labels[~(2 * top > total)] = -1  # also where no column kept a vote
    return labels


def ferplus_distribution(votes_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each face's FER+ vote distribution over the eight emotions (the "cross-entropy" protocol of Barsoum
    et al. 2016, microsoft/FERPlus ``src/ferplus.py``).

    Single votes are dropped as outliers; a face is usable when its top column is then an emotion (not
    unknown or not-a-face); its eight emotions' votes, renormalised, are its target.

    Args:
        votes_df: Has the ten ``FERPLUS_COLUMNS``.

    Returns:
        ``(distribution, usable)``: (N, 8) float32 in :data:`FERPLUS_CLASS_NAMES` order, rows summing
        to 1 where usable (0 elsewhere), and (N,) bool.
    """
    votes = votes_df[list(FERPLUS_COLUMNS)].to_numpy(dtype=np.float32).copy()
    votes[votes <= 1] = 0  # a single annotator's vote is an outlier
    emotion_cols = [c for c in FERPLUS_COLUMNS if c not in ("unknown", "NF")]
    counts = np.zeros((len(votes), len(FERPLUS_CLASS_NAMES)), dtype=np.float32)
    for col in emotion_cols:
        label = FERPLUS_TO_FER[col] if FERPLUS_TO_FER[col] is not None else FERPLUS_CLASS_NAMES.index("Contempt")
        counts[:, label] = votes[:, FERPLUS_COLUMNS.index(col)]
    top_column = np.asarray(FERPLUS_COLUMNS)[votes.argmax(axis=1)]  # ties go to the emotion: it comes first
    total = counts.sum(axis=1)
    usable = ~np.isin(top_column, ["unknown", "NF"]) & (total > 0)
    distribution = np.divide(counts, total[:, None], out=np.zeros_like(counts), where=usable[:, None])
    return distribution, usable


def vote_shares(votes_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's FER+ votes as a distribution over the seven FER2013 classes.

    Contempt and unknown votes are dropped and the seven emotions renormalised.

    Args:
        votes_df: Has the ten ``FERPLUS_COLUMNS`` (as from :func:`read_ferplus` or :func:`align_votes`).

    Returns:
        ``(shares, usable)``: (N, 7) float32 rows summing to 1 in FER2013 class order
        (0 where not usable), and (N,) bool, False where no vote went to one of the seven
        emotions or where "not a face" has at least as many votes as any emotion.
    """
    emotions = [c for c in FERPLUS_COLUMNS if FERPLUS_TO_FER[c] is not None]
    counts = np.zeros((len(votes_df), len(CLASS_NAMES)), dtype=np.float32)
    for col in emotions:
        counts[:, FERPLUS_TO_FER[col]] = votes_df[col].to_numpy(dtype=np.float32)
    total, top = counts.sum(1), counts.max(1)
    usable = (total > 0) & (votes_df["NF"].to_numpy() < top)
    shares = np.divide(counts, total[:, None], out=np.zeros_like(counts), where=usable[:, None])
    return shares, usable


def align_votes(votes_df: pd.DataFrame, data: FERData) -> pd.DataFrame:
    """The votes of ``data``'s rows (also after :meth:`FERData.split`), checked against its splits.

    Args:
        votes_df: From :func:`read_ferplus` for the same file as ``data``.
        data: FER2013 rows; ``data.index`` gives their positions in the file.

    Returns:
        ``votes_df`` rows in ``data``'s order, index reset to 0..len(data)-1.

    Raises:
        FERDataError: ``data`` comes from an image folder (no row positions), has
            positions beyond the votes file, or a row's Usage differs between files.
    """
    if data.file_format == "folder":
        raise FERDataError(
            data.source, "image-folder data has no row positions in fer2013.csv, so FER+ votes cannot be joined to it"
        )
    if len(data) and int(data.index.max()) >= len(votes_df):
        raise FERDataError(
            data.source,
            f"has row positions up to {int(data.index.max())} but the FER+ votes cover {len(votes_df)} rows",
        )
    aligned = votes_df.iloc[data.index].reset_index(drop=True)
    differs = aligned["Usage"].to_numpy() != data.usage
    if differs.any():
        i = int(np.argmax(differs))
        raise FERDataError(
            data.source,
            f"Usage '{data.usage[i]}' differs from the FER+ file's "
            f"'{aligned['Usage'].iat[i]}': the files are not row-aligned",
            row=int(data.index[i]) + 1,
            field="Usage",
        )
    return aligned
