"""Data checks behind the EDA notebook: duplicates, blank images, FER vs FER+ labels.

- :func:`duplicate_groups` finds byte-identical images, within a split and
  across splits (a face in both Training and a test split inflates test
  accuracy), and flags groups whose copies carry different labels.
- :func:`uniform_images` finds blank or near-uniform images (no face to see).
- :func:`ferplus_agreement` and :func:`ferplus_confusion` compare each FER2013
  label with the majority of the ten FER+ annotators.

Not a face: an image counts as "not a face" when the FER+ ``NF`` column holds a
strict majority of the image's votes (more than half of them; with ten
annotators at least six). That is the FER+ rule for a label (the label of an
image is the one that gets the majority of the votes); a plurality or a
5-of-10 threshold differs on a handful of images only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.constants import CLASS_NAMES, SPLITS
from fer_utils.data.dataset import split_sort_key
from fer_utils.data.ferplus import FERPLUS_COLUMNS, ferplus_plurality

NOT_A_FACE_COLUMN = "NF"
"""FER+ vote column for "not a face"."""

NO_MAJORITY = "no majority"
"""Column of :func:`ferplus_confusion` for images whose FER+ majority is no FER emotion and not NF
(contempt, unknown, or a tie)."""


# --------------------------------------------------------------------------- duplicates


def image_keys(images: np.ndarray) -> np.ndarray:
    """A group number per image such that byte-identical images share a number.

    Each image's bytes are viewed as one opaque ``np.void`` value, so
    ``np.unique`` compares whole images at once (exact, no hash collisions,
    no Python loop).

    Args:
        images: uint8 (N, H, W).

    Returns:
        int64 (N,) keys in 0..K-1.
    """
    flat = np.ascontiguousarray(np.asarray(images).reshape(len(images), -1))
    rows = flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).ravel()
    _, keys = np.unique(rows, return_inverse=True)
    return keys.reshape(-1).astype(np.int64)


def duplicate_groups(images: np.ndarray, labels: np.ndarray, usage: np.ndarray) -> pd.DataFrame:
    """Groups of byte-identical images.

    Args:
        images: uint8 (N, 48, 48).
        labels: int (N,) labels.
        usage: str (N,) split of each row.

    Returns:
        DataFrame with one row per group of two or more identical images, in
        order of each group's first row: ``group`` (0, 1, ...), ``size``,
        ``rows`` (positions in ``images``, ascending), ``splits`` and ``labels``
        (one entry per member, aligned with ``rows``), ``split_set`` (distinct
        splits, canonical order, joined by "+"), ``spans_splits`` (bool),
        ``conflicting_labels`` (bool).
    """
    labels, usage = np.asarray(labels), np.asarray(usage)
    if not (len(images) == len(labels) == len(usage)):
        raise ValueError(f"images, labels and usage differ in length: {len(images)}, {len(labels)}, {len(usage)}")
    columns = ["group", "size", "rows", "splits", "labels", "split_set", "spans_splits", "conflicting_labels"]
    if len(images) == 0:
        return pd.DataFrame(columns=columns)
    keys = image_keys(images)
    sizes = np.bincount(keys)
    dup = np.flatnonzero(sizes[keys] > 1)
    # Stable sort by key keeps rows ascending inside each group.
    dup = dup[np.argsort(keys[dup], kind="stable")]
    members = np.split(dup, np.flatnonzero(np.diff(keys[dup])) + 1) if dup.size else []
    members.sort(key=lambda m: m[0])
    records = []
    for g, rows in enumerate(members):
        splits = [str(s) for s in usage[rows]]
        split_set = sorted(set(splits), key=split_sort_key)
        group_labels = [int(v) for v in labels[rows]]
        records.append(
            {
                "group": g,
                "size": len(rows),
                "rows": [int(r) for r in rows],
                "splits": splits,
                "labels": group_labels,
                "split_set": "+".join(split_set),
                "spans_splits": len(split_set) > 1,
                "conflicting_labels": len(set(group_labels)) > 1,
            }
        )
    return pd.DataFrame.from_records(records, columns=columns)


def duplicate_summary(groups: pd.DataFrame) -> dict[str, Any]:
    """Counts that describe :func:`duplicate_groups`' result.

    Returns:
        JSON-ready dict: ``n_groups``; ``n_rows`` (rows in any group);
        ``n_redundant`` (rows beyond the first of each group); ``n_within_split``
        (groups inside one split); ``n_spanning`` (groups over two or more
        splits); ``n_conflicting`` (groups with different labels);
        ``n_spanning_training`` (groups with a Training row and a row of
        another split: test faces seen in training); ``n_test_rows_in_training``
        (rows of other splits whose image is also in Training); ``split_pairs``
        (for each pair of splits, the groups holding both, keyed "A+B").
    """
    if len(groups) == 0:
        return {
            "n_groups": 0, "n_rows": 0, "n_redundant": 0, "n_within_split": 0, "n_spanning": 0,
            "n_conflicting": 0, "n_spanning_training": 0, "n_test_rows_in_training": 0, "split_pairs": {},
        }  # fmt: skip
    pairs: dict[str, int] = {}
    with_training = 0
    test_rows = 0
    for splits in groups["splits"]:
        present = sorted(set(splits), key=split_sort_key)
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                pairs[f"{a}+{b}"] = pairs.get(f"{a}+{b}", 0) + 1
        if SPLITS[0] in present and len(present) > 1:
            with_training += 1
            test_rows += sum(s != SPLITS[0] for s in splits)
    sizes = groups["size"].astype(int)
    return {
        "n_groups": int(len(groups)),
        "n_rows": int(sizes.sum()),
        "n_redundant": int((sizes - 1).sum()),
        "n_within_split": int((~groups["spans_splits"].astype(bool)).sum()),
        "n_spanning": int(groups["spans_splits"].astype(bool).sum()),
        "n_conflicting": int(groups["conflicting_labels"].astype(bool).sum()),
        "n_spanning_training": with_training,
        "n_test_rows_in_training": test_rows,
        "split_pairs": pairs,
    }


# --------------------------------------------------------------------------- blank images


def image_std(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per-image standard deviation of pixel values (0-255 units).

    Args:
        images: uint8 (N, H, W).
        chunk: Images per step; bounds the float temporary to ``chunk * H * W`` floats.

    Returns:
        float64 (N,).
    """
    images = np.asarray(images)
    flat = images.reshape(len(images), int(np.prod(images.shape[1:])))
    out = np.empty(len(flat), dtype=np.float64)
    for start in range(0, len(flat), chunk):
        out[start : start + chunk] = flat[start : start + chunk].astype(np.float32).std(axis=1, dtype=np.float64)
    return out


def uniform_images(images: np.ndarray, max_std: float = 2.0) -> np.ndarray:
    """Blank or near-uniform images.

    Args:
        images: uint8 (N, H, W).
        max_std: Largest pixel standard deviation (0-255 units) still counted
            as uniform; 0 finds exactly constant images.

    Returns:
        int64 positions (ascending) of the images whose std is <= ``max_std``.
    """
    return np.flatnonzero(image_std(images) <= max_std).astype(np.int64)


# --------------------------------------------------------------------------- FER+


def not_a_face(votes: pd.DataFrame) -> np.ndarray:
    """Images that the FER+ annotators call "not a face" (NF holds a strict majority of the votes).

    Args:
        votes: FER+ votes (``fer_utils.data.ferplus.read_ferplus``), one row per image.

    Returns:
        bool (N,).
    """
    missing = [c for c in FERPLUS_COLUMNS if c not in votes.columns]
    if missing:
        raise ValueError(f"FER+ votes lack the columns {missing}; columns: {list(votes.columns)}")
    counts = votes[list(FERPLUS_COLUMNS)].to_numpy()
    nf = votes[NOT_A_FACE_COLUMN].to_numpy()
    return 2 * nf > counts.sum(axis=1)


def _aligned(labels: np.ndarray | Sequence[int], votes: pd.DataFrame) -> np.ndarray:
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(votes):
        raise ValueError(
            f"{len(y)} labels but {len(votes)} FER+ rows; select the votes of the same rows first "
            "(fer_utils.data.ferplus.align_votes(votes, data))"
        )
    return y


def ferplus_agreement(labels: np.ndarray | Sequence[int], votes: pd.DataFrame) -> dict[str, Any]:
    """How often the FER2013 label equals the FER+ majority label.

    Args:
        labels: FER2013 labels (N,).
        votes: FER+ votes for the same rows, in the same order (join by row
            position: ``ferplus.align_votes(votes, data)``).

    Returns:
        JSON-ready dict: ``n``; ``n_majority`` (images whose FER+ majority is
        one of the FER emotions); ``n_agree``; ``agreement`` (n_agree /
        n_majority); ``agreement_all`` (n_agree / n); ``n_not_a_face`` (see
        :func:`not_a_face`); ``n_no_majority`` (no FER-emotion majority and
        not NF: contempt, unknown or ties); ``per_class`` ({name: agreement
        among the images with that FER label and a FER+ majority}).
    """
    y = _aligned(labels, votes)
    major = ferplus_plurality(votes)
    nf = not_a_face(votes)
    has = major >= 0
    agree = has & (major == y)
    per_class = {}
    for i, name in enumerate(CLASS_NAMES):
        m = has & (y == i)
        per_class[name] = float(agree[m].mean()) if m.any() else 0.0
    n = int(len(y))
    return {
        "n": n,
        "n_majority": int(has.sum()),
        "n_agree": int(agree.sum()),
        "agreement": float(agree.sum() / has.sum()) if has.any() else 0.0,
        "agreement_all": float(agree.sum() / n) if n else 0.0,
        "n_not_a_face": int(nf.sum()),
        "n_no_majority": int((~has & ~nf).sum()),
        "per_class": per_class,
    }


def ferplus_confusion(labels: np.ndarray | Sequence[int], votes: pd.DataFrame) -> pd.DataFrame:
    """Counts of FER2013 label (rows) against FER+ majority (columns).

    Args: as :func:`ferplus_agreement`.

    Returns:
        int DataFrame, index = ``CLASS_NAMES`` (name "FER2013"), columns =
        ``CLASS_NAMES`` + ``"NF"`` (not a face) + :data:`NO_MAJORITY`
        (name "FER+ majority"); every row sums to that label's count.
    """
    y = _aligned(labels, votes)
    major = ferplus_plurality(votes)
    nf = not_a_face(votes)
    k = len(CLASS_NAMES)
    col = np.where(major >= 0, major, np.where(nf, k, k + 1))
    table = np.zeros((k, k + 2), dtype=np.int64)
    np.add.at(table, (y, col), 1)
    columns = pd.Index([*CLASS_NAMES, NOT_A_FACE_COLUMN, NO_MAJORITY], name="FER+ majority")
    return pd.DataFrame(table, index=pd.Index(list(CLASS_NAMES), name="FER2013"), columns=columns)
