"""Metrics over predicted probabilities: accuracy and F1 per class, confusions, the per-face table.

:func:`sample_table` is the one table of evaluated faces (right or wrong) that the error
browser filters and the mistake lists are cut from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.constants import CLASS_NAMES
from fer_utils.data.ferplus import FERPLUS_CLASS_NAMES, LEFT_OUT
from fer_utils.evaluate.calibration import EPS
from fer_utils.evaluate.label_noise import FERPLUS_COLUMN, label_issue_scores

# --------------------------------------------------------------------------- metrics


def _check_inputs(
    y_true: np.ndarray | Sequence[int], probs: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] != len(class_names):
        raise ValueError(f"probs must have shape (N, {len(class_names)}), got {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"y_true must have shape ({p.shape[0]},) to match probs, got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(class_names)):
        raise ValueError(f"y_true must hold integer labels in 0..{len(class_names) - 1}")
    return y.astype(np.int64), p


def compute_metrics(
    y_true: np.ndarray | Sequence[int], probs: np.ndarray, class_names: Sequence[str] = CLASS_NAMES
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and the confusion matrix.

    Args:
        y_true: True labels (N,), integers in ``0..C-1``.
        probs: Class probabilities (N, C); the prediction is the arg-max.
        class_names: C names in label order.

    Returns:
        JSON-ready dict:

        - ``accuracy``, ``macro_f1`` (unweighted mean F1 over the classes that
          occur in ``y_true`` or in the predictions, scikit-learn's default, so
          a class absent from both does not count as an F1 of 0), ``n``;
        - ``nll``: mean negative log-probability of the true class;
        - ``per_class``: ``{name: {"precision", "recall", "f1", "support"}}``,
          0 where undefined;
        - ``confusion``: counts, rows = true class, columns = predicted, C x C
          even for classes absent from the data;
        - ``confusion_normalized``: each row divided by its sum (rows of absent
          classes stay 0), i.e. per-class recall on the diagonal;
        - ``most_confused``: see :func:`most_confused_pairs`;
        - ``class_names``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y, p = _check_inputs(y_true, probs, class_names)
    if y.size == 0:
        raise ValueError("cannot compute metrics on zero samples")
    pred = p.argmax(axis=1)
    labels = list(range(len(class_names)))
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y, pred, labels=labels)
    p_true = np.clip(p[np.arange(len(y)), y].astype(np.float64), EPS, 1.0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "n": int(y.size),
        "nll": float(-np.log(p_true).mean()),
        "per_class": {
            name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion": cm.astype(int).tolist(),
        "confusion_normalized": _row_normalize(cm).tolist(),
        "most_confused": most_confused_pairs(cm, class_names),
        "class_names": list(class_names),
    }


def fer2013_probs(probs: np.ndarray) -> np.ndarray:
    """A model's probabilities over FER2013's seven classes: an eight-class FER+ model's Contempt column is
    dropped and the rest renormalised; seven-class probabilities are returned as they are."""
    p = np.asarray(probs)
    if p.shape[1] == len(CLASS_NAMES):
        return p
    if p.shape[1] != len(FERPLUS_CLASS_NAMES):
        raise ValueError(f"probs must have {len(CLASS_NAMES)} or {len(FERPLUS_CLASS_NAMES)} columns, got {p.shape}")
    seven = p[:, : len(CLASS_NAMES)]
    return seven / np.clip(seven.sum(axis=1, keepdims=True), EPS, None)


def ferplus_metrics(probs: np.ndarray, majority: np.ndarray | Sequence[int]) -> dict[str, Any]:
    """Scores against FER+ majority labels (:func:`fer_utils.data.ferplus_majority_labels`).

    A seven-class FER2013 model is scored on the faces whose majority is one of its seven classes,
    and faces with a Contempt majority are counted as left out; an eight-class FER+ model
    (:data:`~fer_utils.data.FERPLUS_CLASS_NAMES`) is scored on all eight.

    Args:
        probs: (N, 7) or (N, 8) class probabilities.
        majority: (N,) FERPlus majority labels, negative where the protocol leaves a face out.

    Returns:
        :func:`compute_metrics` over the kept faces (``accuracy``, ``per_class``, ...) plus
        ``protocol``, ``n_kept``, ``n_left_out`` and ``left_out`` (faces per reason:
        ``no_majority``, ``unknown``, ``not_a_face``, and ``contempt`` for a seven-class model).
    """
    p, m = np.asarray(probs), np.asarray(majority, dtype=np.int64)
    if m.shape != (len(p),):
        raise ValueError(f"majority must have shape ({len(p)},) to match probs, got {m.shape}")
    n_classes = p.shape[1]
    names = FERPLUS_CLASS_NAMES[:n_classes]
    kept = (m >= 0) & (m < n_classes)
    left_out = {name: int((m == code).sum()) for code, name in LEFT_OUT.items()}
    if n_classes < len(FERPLUS_CLASS_NAMES):
        left_out["contempt"] = int((m == FERPLUS_CLASS_NAMES.index("Contempt")).sum())
    metrics = compute_metrics(m[kept], p[kept], names)
    return {
        "protocol": "FERPlus majority",
        **metrics,
        "n_kept": int(kept.sum()),
        "n_left_out": int((~kept).sum()),
        "left_out": left_out,
    }


def _row_normalize(cm: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; all-zero rows stay zero (JSON has no NaN)."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def most_confused_pairs(
    confusion: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str] = CLASS_NAMES, k: int | None = 5
) -> list[dict[str, Any]]:
    """The most frequent mistakes (off-diagonal confusion cells).

    Args:
        confusion: Counts (C, C), rows = true class, columns = predicted.
        class_names: C names.
        k: How many pairs to return; ``None`` for all non-zero pairs.

    Returns:
        ``[{"true", "pred", "count", "rate"}, ...]`` for cells with count > 0,
        sorted by count (descending; ties in row-major order). ``rate`` is the
        fraction of the true class's samples predicted as ``pred``.
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion must be {len(class_names)}x{len(class_names)}, got shape {cm.shape}")
    rates = _row_normalize(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    order = np.argsort(-flat, kind="stable")
    order = order[flat[order] > 0]
    if k is not None:
        order = order[:k]
    c = cm.shape[1]
    return [
        {"true": class_names[i // c], "pred": class_names[i % c], "count": int(flat[i]), "rate": float(rates.flat[i])}
        for i in order
    ]


def misclassified(
    y_true: np.ndarray | Sequence[int],
    probs: np.ndarray,
    index: np.ndarray | Sequence[int] | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> pd.DataFrame:
    """One row per wrongly predicted face, most confident mistakes first.

    The wrong rows of the misclassification browser's per-face table
    (``selection.sample_table``), with the same values.

    Args:
        y_true: True labels (N,).
        probs: Class probabilities (N, C).
        index: Identifier of each face (N,), e.g. ``FERData.index`` (row in the
            source file); ``None`` uses positions 0..N-1.
        class_names: C names.

    Returns:
        DataFrame with columns ``index``, ``position`` (0-based position in
        ``y_true``/``probs``, to pick the face out of the evaluated image array),
        ``true``, ``pred``, ``true_name``, ``pred_name``, ``confidence`` (probability
        of the prediction), ``p_true``, ``loss`` (-log p_true), then one
        probability column per class named by the class; sorted by
        ``confidence`` descending (ties keep data order), index reset.
    """
    y, p = _check_inputs(y_true, probs, class_names)
    table = sample_table(y, p, index, class_names=class_names)
    columns = ["index", "position", "true", "pred", "true_name", "pred_name", "confidence", "p_true", "loss"]
    wrong = table.loc[~table["correct"], columns + list(class_names)]
    return wrong.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- the table


def _same_shape(issue_probs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    q = np.asarray(issue_probs)
    if q.shape != probs.shape:
        raise ValueError(f"issue_probs must have the shape of probs {probs.shape}, got {q.shape}")
    return q


def sample_table(
    labels: np.ndarray | Sequence[int],
    probs: np.ndarray,
    index: np.ndarray | Sequence[int] | None = None,
    *,
    ferplus_labels: np.ndarray | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
    issue_probs: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per evaluated face, right or wrong, in data order.

    Args:
        labels: True labels (N,) in ``0..C-1``.
        probs: Class probabilities (N, C).
        index: Row of each face in the source file (``FERData.index``); ``None``
            uses 0..N-1.
        ferplus_labels: FER+ plurality label per face (N,), -1 where there is
            none (``ferplus.ferplus_plurality`` of the aligned votes), or ``None``.
        class_names: C names.
        issue_probs: Probabilities (N, C) the ``label_issue`` score is computed from instead of
            ``probs``: out-of-sample ones (:func:`fer_utils.train.crossfit`) for faces the model trained on.

    Returns:
        DataFrame with ``index``, ``position`` (0..N-1, into the evaluated
        arrays), ``true``, ``pred``, ``true_name``, ``pred_name``, ``correct``,
        ``confidence`` (probability of the prediction), ``p_true``, ``loss``
        (-log p_true), ``label_issue`` (``label_noise.label_issue_scores``: higher,
        likelier a wrong label), one probability column per class, and
        ``ferplus`` / ``ferplus_name`` when ``ferplus_labels`` is given ("" where -1).
    """
    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] != len(class_names):
        raise ValueError(f"probs must have shape (N, {len(class_names)}), got {p.shape}")
    if y.shape != (len(p),):
        raise ValueError(f"labels must have shape ({len(p)},) to match probs, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= len(class_names)):
        raise ValueError(f"labels must be in 0..{len(class_names) - 1}")
    idx = np.arange(len(y), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if idx.shape != y.shape:
        raise ValueError(f"index must have shape {y.shape}, got {idx.shape}")
    rows = np.arange(len(y))
    pred = p.argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
    names = np.asarray(class_names, dtype=object)
    p_true = p[rows, y].astype(np.float64)
    df = pd.DataFrame(
        {
            "index": idx,
            "position": rows,
            "true": y,
            "pred": pred.astype(np.int64),
            "true_name": names[y],
            "pred_name": names[pred],
            "correct": pred == y,
            "confidence": p[rows, pred].astype(np.float64),
            "p_true": p_true,
            "loss": -np.log(np.clip(p_true, EPS, 1.0)),
            "label_issue": label_issue_scores(y, p if issue_probs is None else _same_shape(issue_probs, p)),
        }
    )
    for i, name in enumerate(class_names):
        df[name] = p[:, i].astype(np.float64)
    if ferplus_labels is not None:
        m = np.asarray(ferplus_labels, dtype=np.int64)
        if m.shape != y.shape:
            raise ValueError(f"ferplus_labels must have shape {y.shape}, got {m.shape}")
        df[FERPLUS_COLUMN] = m
        df[f"{FERPLUS_COLUMN}_name"] = np.where(m >= 0, names[np.clip(m, 0, None)], "")
    return df
