"""Label noise in FER2013: what FER+ says about the model's mistakes, and a ranking of likely label errors.

Two views, both on a per-face table from :func:`fer_utils.evaluate.metrics.sample_table`
(or plain arrays):

- :func:`label_noise`, :func:`label_noise_table`: on the mistakes, does the FER+
  majority side with the model's prediction or with the FER2013 label?
- :func:`label_issue_scores`: a confident-learning score (Northcutt, Jiang and
  Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
  2021) from the model's out-of-sample probabilities, higher for faces more
  likely mislabelled; :func:`label_issue_precision` checks such a ranking
  against FER+: of the top-k faces, how many have a FER+ majority that differs
  from the FER2013 label, against the rate over all faces (:func:`precision_markdown`
  writes that table for a report).

The score is a few lines of NumPy rather than a ``cleanlab`` dependency: it is
cleanlab's ``normalized_margin`` quality with ``adjust_pred_probs=True``, up to a
monotone rescaling (see :func:`label_issue_scores`), so it ranks faces the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.constants import CLASS_NAMES

FERPLUS_COLUMN = "ferplus"
"""Table column holding the FER+ majority label (-1: none) when votes are given."""

LABEL_NOISE_CATEGORIES: tuple[str, ...] = ("agrees_with_model", "agrees_with_label", "other_class", "no_majority")
"""How the FER+ majority relates to a mistake: the model's prediction, the FER2013 label, another class, or none."""

DEFAULT_TOP_K: tuple[int, ...] = (25, 50, 100, 200, 500)
"""Cut-offs of :func:`label_issue_precision` when none are given."""


# --------------------------------------------------------------------------- FER+ on the mistakes


def _noise_categories(table: pd.DataFrame) -> pd.Series:
    if FERPLUS_COLUMN not in table.columns:
        raise ValueError(
            f"the table has no '{FERPLUS_COLUMN}' column: build it with FER+ votes "
            "(sample_table(..., ferplus_labels=...) or MisclassificationBrowser(..., ferplus_path=...))"
        )
    m = table[FERPLUS_COLUMN].to_numpy()
    cat = np.select(
        [m < 0, m == table["pred"].to_numpy(), m == table["true"].to_numpy()],
        ["no_majority", "agrees_with_model", "agrees_with_label"],
        default="other_class",
    )
    return pd.Series(cat, index=table.index)


def label_noise(table: pd.DataFrame) -> dict[str, Any]:
    """On the mistakes, whom does the FER+ majority side with: the model or the FER2013 label?

    Args:
        table: From :func:`fer_utils.evaluate.metrics.sample_table` with ``ferplus_labels``.

    Returns:
        JSON-ready dict: ``n_mistakes``; ``n_with_majority`` (mistakes whose FER+
        majority is a FER emotion); a count per :data:`LABEL_NOISE_CATEGORIES`;
        ``share_agrees_with_model`` (of the mistakes with a majority: the
        headline number), ``share_agrees_with_label``, ``share_other_class``;
        and for contrast ``correct_agreement``: on correctly classified faces
        with a majority, the share where FER+ agrees with the (common) label.
    """
    cats = _noise_categories(table)
    wrong = ~table["correct"].to_numpy()
    counts = cats[wrong].value_counts()
    n_wrong = int(wrong.sum())
    out: dict[str, Any] = {"n_mistakes": n_wrong}
    for c in LABEL_NOISE_CATEGORIES:
        out[c] = int(counts.get(c, 0))
    with_majority = n_wrong - out["no_majority"]
    out["n_with_majority"] = with_majority
    for c in ("agrees_with_model", "agrees_with_label", "other_class"):
        out[f"share_{c}"] = out[c] / with_majority if with_majority else 0.0
    right = ~wrong & (table[FERPLUS_COLUMN].to_numpy() >= 0)
    out["n_correct_with_majority"] = int(right.sum())
    agree = table.loc[right, FERPLUS_COLUMN] == table.loc[right, "true"]
    out["correct_agreement"] = float(agree.mean()) if right.any() else 0.0
    return out


def label_noise_table(table: pd.DataFrame, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """:func:`label_noise` counts per true class, plus an ``all`` row.

    Returns:
        int DataFrame: index = class names with mistakes, then ``"all"``;
        columns = :data:`LABEL_NOISE_CATEGORIES`.
    """
    cats = _noise_categories(table)
    wrong = ~table["correct"].to_numpy()
    sub = pd.DataFrame({"true": table.loc[wrong, "true_name"].to_numpy(), "category": cats[wrong].to_numpy()})
    counts = pd.crosstab(sub["true"], sub["category"]).reindex(columns=list(LABEL_NOISE_CATEGORIES), fill_value=0)
    counts = counts.reindex([n for n in class_names if n in counts.index])
    counts.loc["all"] = counts.sum(axis=0)
    counts.index.name = "true"
    counts.columns.name = None
    return counts.astype(np.int64)


# --------------------------------------------------------------------------- ranking likely label errors


def _labels_and_probs(labels: np.ndarray | Sequence[int], probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {p.shape}")
    if y.shape != (len(p),):
        raise ValueError(f"labels must have shape ({len(p)},) to match probs, got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be integers in 0..{p.shape[1] - 1}")
    return y.astype(np.int64), p


def confident_thresholds(labels: np.ndarray | Sequence[int], probs: np.ndarray) -> np.ndarray:
    """Per-class thresholds of confident learning: each class's mean self-confidence.

    Args:
        labels: Given (possibly noisy) labels (N,) in ``0..C-1``.
        probs: Out-of-sample class probabilities (N, C): predictions of a model
            that did not train on these faces.

    Returns:
        float64 (C,): ``t[j]`` = mean of ``probs[i, j]`` over faces labelled ``j``;
        1.0 for a class no face carries (no other class is then pushed aside by it).
    """
    y, p = _labels_and_probs(labels, probs)
    counts = np.bincount(y, minlength=p.shape[1])
    sums = np.zeros(p.shape[1])
    np.add.at(sums, y, p[np.arange(len(y)), y])
    return np.divide(sums, counts, out=np.ones(p.shape[1]), where=counts > 0)


def label_issue_scores(labels: np.ndarray | Sequence[int], probs: np.ndarray) -> np.ndarray:
    """How likely each face's label is wrong, by confident learning; higher is more likely.

    Each class's probabilities are first measured against that class's threshold
    ``t`` (:func:`confident_thresholds`), which undoes the model's bias towards
    frequent or easy classes. The score is how far the best *other* class stands
    above its threshold, minus how far the given label stands above its own::

        score[i] = max_{k != y_i} (p[i, k] - t[k]) - (p[i, y_i] - t[y_i])

    A positive score means another class is more confidently present than the
    given one: the face lies off the diagonal of the confident joint. Ranked
    from the highest, it orders faces as cleanlab's
    ``get_label_quality_scores(method="normalized_margin", adjust_pred_probs=True)``
    orders them from the lowest (cleanlab shifts and renormalises the adjusted
    probabilities by constants that are the same for every face).

    Args:
        labels: Given labels (N,) in ``0..C-1``.
        probs: Out-of-sample class probabilities (N, C), C >= 2.

    Returns:
        float64 (N,) in [-2, 2].
    """
    y, p = _labels_and_probs(labels, probs)
    if p.shape[1] < 2:
        raise ValueError("label issue scores need at least two classes")
    adjusted = p - confident_thresholds(y, p)
    rows = np.arange(len(y))
    own = adjusted[rows, y].copy()
    adjusted[rows, y] = -np.inf
    return adjusted.max(axis=1) - own


def label_issue_precision(
    scores: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    ferplus_labels: np.ndarray | Sequence[int],
    ks: Sequence[int] = DEFAULT_TOP_K,
) -> pd.DataFrame:
    """Does a ranking of likely label errors find the faces FER+ relabelled?

    Faces are ranked by ``scores``, highest first (ties in data order). For each
    ``k``, of the top-k faces: how many have a FER+ majority that differs from the
    FER2013 label. Faces without a FER+ majority (a tie, contempt, unknown, not a
    face) never count as disagreeing.

    Args:
        scores: (N,) higher = more likely mislabelled (e.g. :func:`label_issue_scores`).
        labels: FER2013 labels (N,).
        ferplus_labels: FER+ plurality label (N,), -1 where there is none
            (``ferplus.ferplus_plurality``).
        ks: Cut-offs; those above N are replaced by N (once).

    Returns:
        One row per k: ``k``; ``disagree`` (count in the top k); ``precision``
        (``disagree / k``); ``base_rate`` (the same share over all N faces: what
        a random ranking would find); ``lift`` (``precision / base_rate``, NaN
        when the base rate is 0).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    m = np.asarray(ferplus_labels, dtype=np.int64)
    if not s.shape == y.shape == m.shape or s.ndim != 1:
        raise ValueError(
            f"scores, labels and ferplus_labels must be (N,) arrays of one length, got {s.shape}, {y.shape}, {m.shape}"
        )
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be at least 1, got {list(ks)}")
    disagrees = (m >= 0) & (m != y)
    order = np.argsort(-s, kind="stable")
    hits = np.cumsum(disagrees[order])
    base = float(disagrees.mean()) if len(s) else 0.0
    rows = []
    for k in sorted({min(int(k), len(s)) for k in ks} - {0}):
        precision = float(hits[k - 1]) / k
        rows.append(
            {
                "k": k,
                "disagree": int(hits[k - 1]),
                "precision": precision,
                "base_rate": base,
                "lift": precision / base if base > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["k", "disagree", "precision", "base_rate", "lift"])


def precision_markdown(table: pd.DataFrame) -> str:
    """:func:`label_issue_precision`'s table as a Markdown table, for a report or the README."""
    lines = ["| top k | FER+ majority differs | precision | base rate | lift |", "|---:|---:|---:|---:|---:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.k:,} | {r.disagree:,} | {r.precision:.1%} | {r.base_rate:.1%} | {r.lift:.2f}x |")
    return "\n".join(lines) + "\n"
