"""Class weights for the loss, computed from the Training split only, and saved as JSON.

FER2013 is imbalanced (Training has about 16 Happy faces for every Disgust
face). A weighted cross-entropy counters that; the weights are *derived* from
the Training counts every time, never typed in, and never computed over the
validation or test splits (that would leak their label distribution into
training).

Schemes (``n_c`` = Training count of class ``c``):

=====================  ===================================================
scheme                 raw weight of class ``c``
=====================  ===================================================
``none``               1
``inverse``            1 / n_c
``sqrt_inverse``       1 / sqrt(n_c) (a milder correction)
``effective_number``   (1 - beta) / (1 - beta ** n_c)  (Cui et al., CVPR 2019,
                       "Class-Balanced Loss Based on Effective Number of
                       Samples"); beta = 0 gives ``none``, beta -> 1 gives
                       ``inverse``
=====================  ===================================================

Every scheme is then rescaled so that ``sum(w * n) / sum(n) == 1``: the mean
weight per *training sample* is 1, so the loss keeps its scale and the learning
rate needs no retuning when the scheme changes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.constants import CLASS_NAMES, NUM_CLASSES
from fer_utils.files import atomic_write_json

logger = logging.getLogger(__name__)

SCHEMES: tuple[str, ...] = ("none", "inverse", "sqrt_inverse", "effective_number")

DEFAULT_BETA = 0.999
"""Cui et al.'s suggested beta for data sets of FER2013's size (thousands per class)."""

TRAINING_SPLIT = "Training"
"""The only split class weights may be computed from."""


class ClassWeightsError(ValueError):
    """A class-weights JSON file is malformed.

    ``str(e)`` is ``"{file}: field '{field}': {problem}"`` (the field part is
    omitted when the problem is not tied to one field), like
    ``fer_utils.data.FERDataError``.

    Attributes:
        file: The JSON file.
        field: The offending field, or ``None``.
    """

    def __init__(self, file: str | os.PathLike[str], field: str | None, problem: str) -> None:
        self.file = str(file)
        self.field = field
        where = f"{self.file}: field '{field}'" if field is not None else self.file
        super().__init__(f"{where}: {problem}")


def class_counts(labels: np.ndarray | Sequence[int], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Count the samples of each class.

    Args:
        labels: Integer labels in ``0..num_classes-1``, shape (N,).
        num_classes: Length of the result.

    Returns:
        int64 array (num_classes,); classes with no samples count 0.

    Raises:
        ValueError: non-integer labels or labels outside ``0..num_classes-1``.
    """
    y = np.asarray(labels)
    if y.size == 0:
        return np.zeros(num_classes, dtype=np.int64)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values {y.min()}..{y.max()}")
    return np.bincount(y, minlength=num_classes).astype(np.int64)


def _check_counts(counts: np.ndarray | Sequence[int], class_names: Sequence[str] | None) -> np.ndarray:
    n = np.asarray(counts)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {n.shape}")
    if not np.issubdtype(n.dtype, np.number) or not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError(f"counts must be finite and non-negative, got {n.tolist()}")
    if np.any(n != np.round(n)):
        raise ValueError(f"counts must be whole numbers, got {n.tolist()}")
    if class_names is not None and len(class_names) != n.size:
        raise ValueError(f"got {n.size} counts for {len(class_names)} classes {list(class_names)}")
    return n.astype(np.float64)


def compute_class_weights(
    counts: np.ndarray | Sequence[int],
    scheme: str,
    *,
    beta: float = DEFAULT_BETA,
    class_names: Sequence[str] | None = CLASS_NAMES,
) -> np.ndarray:
    """Per-class loss weights from Training-split class counts.

    Args:
        counts: Training samples per class, shape (C,), e.g. from :func:`class_counts`.
        scheme: One of :data:`SCHEMES` (see the module docstring).
        beta: Effective-number hyper-parameter in [0, 1); used by ``effective_number`` only.
        class_names: Names used in error messages and to check the length of
            ``counts``; ``None`` skips the length check (other class sets).

    Returns:
        float64 array (C,) with ``sum(w * counts) / sum(counts) == 1``.

    Raises:
        ValueError: unknown scheme, beta outside [0, 1), no samples at all, or a
            weighted scheme asked for a class with no samples (its weight
            would be infinite: the class cannot be learned from this split).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown class-weight scheme {scheme!r}; choose one of {SCHEMES}")
    n = _check_counts(counts, class_names)
    if n.sum() == 0:
        raise ValueError("counts are all zero: no samples to compute class weights from")
    if scheme == "none":
        return np.ones_like(n)
    absent = np.flatnonzero(n == 0)
    if absent.size:
        names = [class_names[int(i)] if class_names is not None else str(i) for i in absent]
        raise ValueError(f"class weights ({scheme}) are undefined for classes with no Training samples: {names}")
    if scheme == "inverse":
        raw = 1.0 / n
    elif scheme == "sqrt_inverse":
        raw = 1.0 / np.sqrt(n)
    else:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        # 1 - beta**n via expm1 keeps precision when beta is close to 1.
        effective = -np.expm1(n * np.log(beta)) / (1.0 - beta) if beta > 0 else np.ones_like(n)
        raw = 1.0 / effective
    return raw * (n.sum() / np.sum(raw * n))


def weights_table(
    counts: np.ndarray | Sequence[int],
    *,
    beta: float = DEFAULT_BETA,
    class_names: Sequence[str] = CLASS_NAMES,
) -> pd.DataFrame:
    """Weights of every scheme side by side.

    Args:
        counts: Training samples per class, shape (C,).
        beta: For ``effective_number``.
        class_names: Row labels, length C.

    Returns:
        DataFrame, index = class names (named "class"), columns = :data:`SCHEMES`.
    """
    data = {s: compute_class_weights(counts, s, beta=beta, class_names=class_names) for s in SCHEMES}
    return pd.DataFrame(data, index=pd.Index(list(class_names), name="class"))


def class_weights_from_data(data: Any, scheme: str, *, beta: float = DEFAULT_BETA) -> tuple[np.ndarray, np.ndarray]:
    """Weights and counts from the Training split of a ``fer_utils.data.FERData``.

    Args:
        data: A ``FERData`` holding a Training split.
        scheme: One of :data:`SCHEMES`.
        beta: For ``effective_number``.

    Returns:
        ``(weights, counts)``: float64 (C,) and int64 (C,).
    """
    counts = class_counts(data.split(TRAINING_SPLIT).labels)
    return compute_class_weights(counts, scheme, beta=beta), counts


def save_class_weights(
    path: str | os.PathLike[str],
    weights: np.ndarray | Sequence[float],
    *,
    scheme: str,
    counts: np.ndarray | Sequence[int],
    data_md5: str,
    split: str = TRAINING_SPLIT,
    beta: float | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> Path:
    """Write the weights and their provenance as JSON (atomically).

    Args:
        path: Destination ``.json``.
        weights: float (C,), from :func:`compute_class_weights`.
        scheme: The scheme that produced them.
        counts: The Training counts they were computed from, (C,).
        data_md5: ``FERData.content_md5`` of the data file.
        split: Must be ``"Training"``; recorded so a reader can check.
        beta: The beta used (recorded for ``effective_number``; ``null`` otherwise).
        class_names: Names in label order.

    Returns:
        The path written. Content: ``{"scheme", "beta", "split", "data_md5",
        "class_names", "counts", "weights"}``.

    Raises:
        ValueError: split other than Training, unknown scheme, or lengths that
            do not match ``class_names``.
    """
    if split != TRAINING_SPLIT:
        raise ValueError(f"class weights must come from the {TRAINING_SPLIT} split only, got split={split!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown class-weight scheme {scheme!r}; choose one of {SCHEMES}")
    w = np.asarray(weights, dtype=np.float64)
    c = _check_counts(counts, class_names)
    if w.shape != (len(class_names),) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be {len(class_names)} finite non-negative numbers, got {w.tolist()}")
    if scheme == "effective_number" and beta is None:
        beta = DEFAULT_BETA
    record = {
        "scheme": scheme,
        "beta": float(beta) if scheme == "effective_number" and beta is not None else None,
        "split": split,
        "data_md5": data_md5,
        "class_names": list(class_names),
        "counts": [int(x) for x in c],
        "weights": [float(x) for x in w],
    }
    return atomic_write_json(path, record)


def read_class_weights(path: str | os.PathLike[str], class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """Read and validate a file written by :func:`save_class_weights`.

    Args:
        path: The JSON file.
        class_names: The class names the weights must be for, in order.

    Returns:
        The record, with ``weights`` (float64) and ``counts`` (int64) as arrays.

    Raises:
        FileNotFoundError: no such file.
        ClassWeightsError: not JSON, a missing field, wrong class names or length,
            negative or non-finite weights, a split other than Training, an
            unknown scheme.
    """
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ClassWeightsError(p, None, f"not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ClassWeightsError(p, None, f"expected a JSON object, got {type(record).__name__}")
    for field in ("scheme", "split", "class_names", "counts", "weights"):
        if field not in record:
            raise ClassWeightsError(p, field, "missing")
    if record["scheme"] not in SCHEMES:
        raise ClassWeightsError(p, "scheme", f"unknown scheme {record['scheme']!r}; expected one of {SCHEMES}")
    if record["split"] != TRAINING_SPLIT:
        raise ClassWeightsError(p, "split", f"weights must come from {TRAINING_SPLIT!r}, got {record['split']!r}")
    if list(record["class_names"]) != list(class_names):
        raise ClassWeightsError(p, "class_names", f"expected {list(class_names)}, got {record['class_names']}")
    record["weights"] = _number_array(p, "weights", record["weights"], len(class_names), np.float64)
    record["counts"] = _number_array(p, "counts", record["counts"], len(class_names), np.int64)
    return record


def _number_array(p: Path, field: str, values: Any, length: int, dtype: type) -> np.ndarray:
    if not isinstance(values, list) or len(values) != length:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise ClassWeightsError(p, field, f"expected a list of {length} numbers, got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ClassWeightsError(p, field, f"expected numbers, got {values}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ClassWeightsError(p, field, f"values must be finite and non-negative, got {values}")
    if dtype is np.int64 and np.any(arr != np.round(arr)):
        raise ClassWeightsError(p, field, f"values must be whole numbers, got {values}")
    return arr.astype(dtype)


def load_class_weights(path: str | os.PathLike[str], class_names: Sequence[str] = CLASS_NAMES) -> np.ndarray:
    """The weights from a file written by :func:`save_class_weights`, validated.

    Args:
        path: The JSON file.
        class_names: The class names the weights must be for, in order.

    Returns:
        float64 array (C,), in ``class_names`` order.

    Raises:
        FileNotFoundError, ClassWeightsError: see :func:`read_class_weights`.
    """
    return read_class_weights(path, class_names)["weights"]
