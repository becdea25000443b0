"""Calibration: do the model's probabilities mean what they say?

A model is calibrated when, of the faces it predicts with confidence 0.8, about
80 % are right. This module gives

- :func:`reliability_table`: the data of a reliability diagram (per confidence
  bin: mean confidence, accuracy, count);
- :func:`expected_calibration_error` (ECE): the count-weighted mean gap between
  accuracy and confidence over those bins;
- temperature scaling (Guo et al., 2017): logits divided by one scalar ``T``
  fitted to minimise the negative log-likelihood on **PublicTest** (the
  validation split, never the held-out PrivateTest). It changes confidence but
  never the arg-max, so accuracy is unchanged; :func:`fit_temperature`,
  :func:`apply_temperature`;
- :func:`save_temperature` / :func:`load_temperature`: the fitted temperature as
  JSON next to a checkpoint's evaluation outputs (``temperature.json`` in the
  report folder), with the checkpoint and data it belongs to.

``fer_utils.evaluate.predictions`` returns probabilities (averaged over test-time
views), not logits. Their logarithms serve as logits: for a single view they
equal the logits up to a per-row constant, which softmax ignores, and for
several views they are the logits of the averaged prediction that is actually
used.

Nothing here imports torch; figures are in ``fer_utils.plots.reliability_diagram``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.files import atomic_write_json

logger = logging.getLogger(__name__)

N_BINS = 15
"""Default number of equal-width confidence bins (Guo et al. use 15)."""

TEMPERATURE_FILE = "temperature.json"
"""File name of the fitted temperature inside a report folder."""

TEMPERATURE_RANGE: tuple[float, float] = (0.05, 20.0)
"""Search interval of the temperature; a fit at either end is logged as suspicious."""

EPS = 1e-12
"""Floor for probabilities before a logarithm, so a confident mistake costs a finite loss."""


def _check(labels: np.ndarray | Any, probs: np.ndarray | Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, C) with C >= 2, got {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},) to match probs, got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be integers in 0..{p.shape[1] - 1}")
    return y.astype(np.int64), p


def logits_from_probs(probs: np.ndarray) -> np.ndarray:
    """Logarithms of probabilities (N, C), floored at 1e-12: logits up to a per-row constant."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (N, C), computed in float64 after subtracting each row's maximum."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(probs) / T)``.

    Args:
        probs: float (N, C), rows summing to 1.
        temperature: ``T > 0``; above 1 softens (less confident), below 1 sharpens.

    Returns:
        float32 (N, C), rows sum to 1, same arg-max as ``probs``.
    """
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return softmax(logits_from_probs(probs) / temperature).astype(np.float32)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(y)), y]).mean())


def reliability_table(labels: np.ndarray | Any, probs: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per-bin confidence and accuracy: the data of a reliability diagram.

    Confidence is the probability of the predicted class. Bins are equal-width
    on [0, 1]; bin ``b`` holds confidences in ``(lower, upper]`` (the first one
    also 0).

    Args:
        labels: True labels (N,).
        probs: Class probabilities (N, C).
        n_bins: Number of bins.

    Returns:
        DataFrame with one row per bin (all bins, empty ones too): ``lower``,
        ``upper``, ``count``, ``confidence`` (mean confidence, NaN if empty),
        ``accuracy`` (NaN if empty), ``gap`` (accuracy - confidence).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    y, p = _check(labels, probs)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins: a confidence of exactly 1 falls in the last bin, 0 in the first
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.astype(np.int64),
            "confidence": mean_conf,
            "accuracy": acc,
            "gap": acc - mean_conf,
        }
    )


def expected_calibration_error(labels: np.ndarray | Any, probs: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE: ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` over equal-width bins.

    Args:
        labels: True labels (N,), N > 0.
        probs: Class probabilities (N, C).
        n_bins: Number of bins.

    Returns:
        A float in [0, 1]; 0 means perfectly calibrated at this binning.
    """
    table = reliability_table(labels, probs, n_bins)
    n = int(table["count"].sum())
    if n == 0:
        raise ValueError("cannot compute the calibration error of zero samples")
    used = table[table["count"] > 0]
    return float((used["count"] * used["gap"].abs()).sum() / n)


@dataclass(frozen=True)
class TemperatureFit:
    """A temperature fitted on one split, with its effect there.

    Attributes:
        temperature: The fitted ``T`` (> 0).
        split: The split it was fitted on (PublicTest).
        n: Faces in that split.
        nll_before: Mean negative log-likelihood at ``T = 1``.
        nll_after: Mean negative log-likelihood at the fitted ``T``.
        ece_before: ECE at ``T = 1`` (``n_bins`` bins).
        ece_after: ECE at the fitted ``T``.
        n_bins: Bins used for the ECE.
    """

    temperature: float
    split: str
    n: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    n_bins: int = N_BINS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_temperature(
    labels: np.ndarray | Any,
    probs: np.ndarray,
    *,
    split: str = "PublicTest",
    n_bins: int = N_BINS,
    tol: float = 1e-5,
) -> TemperatureFit:
    """Fit the temperature minimising the negative log-likelihood.

    The NLL is convex in ``1/T``, hence unimodal in ``log T``; a golden-section
    search over ``log T`` in :data:`TEMPERATURE_RANGE` finds the minimum without
    an optimiser dependency.

    Args:
        labels: True labels (N,) of the fitting split.
        probs: The model's probabilities (N, C) on it (as from
            ``fer_utils.evaluate.predictions``, with the TTA used for evaluation).
        split: Name of the fitting split, recorded in the result. Fit on
            PublicTest; fitting on the evaluated split would flatter the result.
        n_bins: Bins for the ECE in the result.
        tol: Precision of ``log T``.

    Returns:
        :class:`TemperatureFit`.
    """
    y, p = _check(labels, probs)
    if y.size == 0:
        raise ValueError(f"cannot fit a temperature on zero samples ({split})")
    z = logits_from_probs(p)
    lo, hi = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(z, y, math.exp(c)), _nll(z, y, math.exp(d))
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(z, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(z, y, math.exp(d))
    t = math.exp((a + b) / 2.0)
    if min(abs(math.log(t) - lo), abs(math.log(t) - hi)) < 1e-3:
        logger.warning(
            "fitted temperature %.3g is at the end of the search range %s: the fit is unreliable "
            "(too few %s samples, or a degenerate model)",
            t,
            TEMPERATURE_RANGE,
            split,
        )
    nll_before, nll_after = _nll(z, y, 1.0), _nll(z, y, t)
    if nll_after > nll_before:  # numerical safety: T = 1 is always a candidate
        t, nll_after = 1.0, nll_before
    return TemperatureFit(
        temperature=float(t),
        split=split,
        n=int(y.size),
        nll_before=nll_before,
        nll_after=nll_after,
        ece_before=expected_calibration_error(y, p, n_bins),
        ece_after=expected_calibration_error(y, apply_temperature(p, t), n_bins),
        n_bins=n_bins,
    )


def calibration_summary(
    labels: np.ndarray | Any, probs: np.ndarray, temperature: float, *, split: str, n_bins: int = N_BINS
) -> dict[str, Any]:
    """ECE and NLL on an evaluated split before and after applying a (previously fitted) temperature.

    Returns:
        JSON-ready dict: ``split``, ``n``, ``temperature``, ``ece_before``,
        ``ece_after``, ``nll_before``, ``nll_after``, ``n_bins``.
    """
    y, p = _check(labels, probs)
    z = logits_from_probs(p)
    return {
        "split": split,
        "n": int(y.size),
        "temperature": float(temperature),
        "ece_before": expected_calibration_error(y, p, n_bins),
        "ece_after": expected_calibration_error(y, apply_temperature(p, temperature), n_bins),
        "nll_before": _nll(z, y, 1.0),
        "nll_after": _nll(z, y, temperature),
        "n_bins": n_bins,
    }


def save_temperature(
    path: str | os.PathLike[str],
    fit: TemperatureFit,
    *,
    checkpoint: str | os.PathLike[str],
    tta: str,
    data_md5: str,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted temperature as JSON (atomically), with what it belongs to.

    Args:
        path: Usually ``<report_dir>/temperature.json``, next to ``error_metrics.json``.
        fit: From :func:`fit_temperature`.
        checkpoint: The checkpoint whose probabilities were fitted.
        tta: The TTA mode of those probabilities (the temperature is only valid for it).
        data_md5: ``FERData.content_md5`` of the data set.
        evaluation: Optional :func:`calibration_summary` on the evaluated split.

    Returns:
        The path. JSON keys: ``temperature``, ``fit`` (the :class:`TemperatureFit`
        fields), ``checkpoint``, ``tta``, ``data_md5``, and ``evaluation`` if given.
    """
    obj: dict[str, Any] = {
        "temperature": fit.temperature,
        "fit": fit.to_dict(),
        "checkpoint": str(checkpoint),
        "tta": tta,
        "data_md5": data_md5,
    }
    if evaluation is not None:
        obj["evaluation"] = evaluation
    return atomic_write_json(paths.resolve(path), obj)


def load_temperature(path: str | os.PathLike[str]) -> float:
    """The temperature stored by :func:`save_temperature`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON or has no positive ``temperature``, naming the file and field.
    """
    p = paths.resolve(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from None
    t = obj.get("temperature") if isinstance(obj, dict) else None
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0 or not math.isfinite(t):
        raise ValueError(f"{p}: field 'temperature' must be a positive number, got {t!r}")
    return float(t)
