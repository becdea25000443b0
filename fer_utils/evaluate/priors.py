"""Post-hoc logit adjustment for class priors (Menon et al. 2021, "Long-tail learning via logit adjustment").

A model trained on FER2013's imbalanced Training split leans towards its frequent classes (Happy,
Neutral) and away from rare ones (Disgust, Fear). Subtracting ``tau * log(prior)`` from its logits, with
the Training class frequencies as the prior, moves predictions towards the rare classes: ``tau = 0``
changes nothing, ``tau = 1`` is the balanced-error-optimal correction in theory. ``tau`` is chosen on
PublicTest (:func:`adjustment_table`, :func:`choose_tau`), and accuracy and macro-F1 are reported
together, since the adjustment trades one for the other.

The adjustment is an optional, recorded setting of a checkpoint (``logit_adjustment`` in the file,
written by ``python -m fer_utils.model export --logit-adjust TAU --prior-data FILE``) that evaluation
applies only when asked (``python -m fer_utils.evaluate ... --logit-adjust``); the live demo never
applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.evaluate.calibration import logits_from_probs, softmax
from fer_utils.evaluate.metrics import compute_metrics

DEFAULT_TAUS: tuple[float, ...] = tuple(np.round(np.arange(0.0, 1.51, 0.1), 2))
"""Values of ``tau`` searched by default: 0 (no adjustment) to 1.5 in steps of 0.1."""


def class_prior(labels: np.ndarray | Sequence[int], n_classes: int) -> np.ndarray:
    """Class frequencies of ``labels`` (e.g. the Training split's), (C,) float64 summing to 1.

    Raises:
        ValueError: a class without any face (its log prior would be infinite).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no faces: no prior to adjust for")
    return counts / counts.sum()


def logit_adjust(probs: np.ndarray, prior: np.ndarray | Sequence[float], tau: float) -> np.ndarray:
    """``softmax(log(probs) - tau * log(prior))``: probabilities (N, C) adjusted for the class prior (C,)."""
    p = np.asarray(probs)
    log_prior = np.log(np.asarray(prior, dtype=np.float64))
    if log_prior.shape != (p.shape[1],):
        raise ValueError(f"prior must have shape ({p.shape[1]},), got {log_prior.shape}")
    return softmax(logits_from_probs(p) - tau * log_prior).astype(p.dtype)


def adjustment_table(
    labels: np.ndarray | Sequence[int],
    probs: np.ndarray,
    prior: np.ndarray | Sequence[float],
    taus: Sequence[float] = DEFAULT_TAUS,
    class_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Accuracy, macro-F1 and each class's recall at every ``tau``, one row per value."""
    rows: list[dict[str, Any]] = []
    names = list(class_names) if class_names is not None else [f"class_{k}" for k in range(probs.shape[1])]
    for tau in taus:
        m = compute_metrics(labels, logit_adjust(probs, prior, tau), names)
        recall = {f"recall_{n}": v["recall"] for n, v in m["per_class"].items()}
        rows.append({"tau": float(tau), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], **recall})
    return pd.DataFrame(rows)


def choose_tau(table: pd.DataFrame, metric: str = "macro_f1") -> float:
    """The ``tau`` of an :func:`adjustment_table` with the highest ``metric`` (ties: the smallest ``tau``)."""
    best = table[table[metric] == table[metric].max()]
    return float(best["tau"].min())
