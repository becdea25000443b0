"""Predictions with test-time augmentation, metrics, and the evaluation CLI.

Typical use::

    model, meta = checkpoint.load_model("models/run/best.pt")
    probs = predict(model, test.images, meta["preprocess"], tta=meta["tta"])
    metrics = compute_metrics(test.labels, probs)
    mistakes = misclassified(test.labels, probs, test.index)

or, from a shell (prints one JSON object)::

    python -m fer_utils.evaluate --checkpoint models/run/best.pt --data data/fer2013.csv --split PublicTest --tta

Model selection and tuning use PublicTest; PrivateTest is the held-out test split.

Metrics are plain Python values (lists, floats, ints) so they go straight into JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import CLASS_NAMES, paths
from .calibration import EPS
from .files import atomic_write_json, to_jsonable

if TYPE_CHECKING:  # torch is imported only when a model is run
    import torch
    from torch import nn

    from .data import FERData
    from .transforms import Preprocess

logger = logging.getLogger(__name__)

TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")
"""Test-time augmentation modes understood by ``fer_utils.transforms.tta_views``."""


# --------------------------------------------------------------------------- prediction


def _progress(items: Sequence[int], desc: str) -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="batch", file=sys.stdout, mininterval=2.0, ascii=True)


def predict(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    preprocess: Preprocess,
    *,
    tta: str = "none",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities, averaged over test-time views.

    The model is moved to ``device`` and run in eval mode under
    ``torch.inference_mode``; its previous train/eval mode is restored after.

    Args:
        model: Maps float32 (B, 1, S, S) to logits (B, C).
        images: uint8 faces (N, 48, 48), values 0-255.
        preprocess: The checkpoint's ``fer_utils.transforms.Preprocess``.
        tta: ``"none"``, ``"flip"`` or ``"tencrop"`` (see ``transforms.tta_views``).
        batch_size: Faces per forward pass (each view is a separate pass).
        device: Where to run the model.
        progress: Show a progress bar over the batches, written to stdout: plain text that
            JupyterLab updates in place (not a red stderr box) and papermill's log keeps.

    Returns:
        float32 array (N, C): mean over views of the softmax probabilities; rows sum to 1.
    """
    import torch

    from .transforms import tta_views

    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; choose one of {TTA_MODES}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    was_training = model.training
    model.to(device).eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            starts = range(0, len(x), batch_size)
            for start in _progress(starts, f"predicting {len(x):,} faces, TTA {tta}") if progress else starts:
                views = tta_views(x[start : start + batch_size], preprocess, tta)
                probs = torch.stack([torch.softmax(model(v.to(device)).float(), dim=1) for v in views]).mean(dim=0)
                out.append(probs.cpu().numpy().astype(np.float32))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
    return np.concatenate(out)


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
    from .selection import sample_table

    y, p = _check_inputs(y_true, probs, class_names)
    table = sample_table(y, p, index, class_names=class_names)
    columns = ["index", "position", "true", "pred", "true_name", "pred_name", "confidence", "p_true", "loss"]
    wrong = table.loc[~table["correct"], columns + list(class_names)]
    return wrong.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class SplitPredictions:
    """A checkpoint's probabilities on one split.

    Attributes:
        probs: float32 (N, C).
        data: The evaluated split (a ``FERData``), aligned with ``probs``.
        tta: The TTA mode used.
        meta: The checkpoint metadata from ``checkpoint.load_model``.
        checkpoint: The checkpoint path.
    """

    probs: np.ndarray
    data: FERData
    tta: str
    meta: dict[str, Any]
    checkpoint: Path


def _load_data(data: FERData | str | os.PathLike[str]) -> FERData:
    if isinstance(data, (str, os.PathLike)):
        from .data import load_dataset

        return load_dataset(data)
    return data


def predict_split(
    checkpoint: str | os.PathLike[str],
    data: FERData | str | os.PathLike[str],
    split: str,
    *,
    tta: str | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> SplitPredictions:
    """Load a checkpoint and predict one split of a data set.

    Args:
        checkpoint: Checkpoint file (relative paths are taken from the repository root).
        data: A ``FERData`` or a data path for ``fer_utils.data.load_dataset``.
        split: Split name, e.g. ``"PublicTest"``.
        tta: TTA mode; ``None`` uses the mode recorded in the checkpoint.
        batch_size: Faces per forward pass.
        device: Where to run the model.
        progress: Show a progress bar over the batches (see :func:`predict`).

    Raises:
        fer_utils.checkpoint.CheckpointError: unreadable checkpoint.
        fer_utils.data.FERDataError: bad data file or absent split.
        FileNotFoundError: missing data file.
        ValueError: unknown TTA mode, or the checkpoint's classes are not ``CLASS_NAMES``.
    """
    from .checkpoint import load_model

    path = paths.resolve(checkpoint)
    # The checkpoint first: it fails fast, whereas parsing a CSV takes seconds.
    model, meta = load_model(path, device=device)
    if tuple(meta["class_names"]) != tuple(CLASS_NAMES):
        raise ValueError(f"{path}: checkpoint classes {list(meta['class_names'])} are not {list(CLASS_NAMES)}")
    subset = _load_data(data).split(split)
    mode = meta.get("tta", "none") if tta is None else tta
    probs = predict(
        model, subset.images, meta["preprocess"], tta=mode, batch_size=batch_size, device=device, progress=progress
    )
    return SplitPredictions(probs=probs, data=subset, tta=mode, meta=meta, checkpoint=path)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str], data: FERData | str | os.PathLike[str], split: str, **options: Any
) -> dict[str, Any]:
    """Metrics of a checkpoint on one split.

    Args: as :func:`predict_split`, whose keyword arguments (``tta``, ``batch_size``,
    ``device``, ``progress``) ``options`` passes on.

    Returns:
        :func:`compute_metrics` plus ``split``, ``checkpoint`` (path),
        ``tta`` (mode used), ``data_md5``, ``data_file``, ``is_canonical``,
        ``is_synthetic``.
    """
    res = predict_split(checkpoint, data, split, **options)
    metrics = compute_metrics(res.data.labels, res.probs)
    metrics.update(
        split=split,
        checkpoint=str(res.checkpoint),
        tta=res.tta,
        data_md5=res.data.content_md5,
        data_file=str(res.data.source),
        is_canonical=bool(res.data.is_canonical),
        is_synthetic=bool(res.data.is_synthetic),
    )
    return metrics


def save_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> Path:
    """Write ``metrics`` as JSON atomically (numpy values converted); returns the path."""
    return atomic_write_json(paths.resolve(path), metrics)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.evaluate",
        description="Evaluate a checkpoint on one split; prints one JSON object of metrics.",
    )
    ap.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    ap.add_argument("--data", required=True, help="fer2013.csv(.gz), icml_face_data.csv or image folder")
    ap.add_argument("--split", required=True, help="split name, e.g. PublicTest")
    ap.add_argument(
        "--tta",
        nargs="?",
        choices=TTA_MODES,
        default="none",
        const=None,
        help="test-time augmentation; --tta alone uses the checkpoint's recorded mode (default: none)",
    )
    ap.add_argument("--out", help="also write the metrics to this JSON file")
    ap.add_argument("--batch-size", type=int, default=256, help="faces per forward pass (default: 256)")
    ap.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    checkpoint = paths.resolve_cli(args.checkpoint)
    if not checkpoint.is_file():
        return _fail(f"{checkpoint}: checkpoint file not found")
    try:
        metrics = evaluate_checkpoint(
            checkpoint,
            paths.resolve_cli(args.data),
            args.split,
            tta=args.tta,
            batch_size=args.batch_size,
            device=args.device,
            progress=False,  # stdout carries the JSON
        )
    # Bad input, known where it is raised: checkpoint.CheckpointError and data.FERDataError are
    # ValueErrors, a missing or unreadable file an OSError. Anything else is a bug: let it show.
    except (OSError, ValueError) as err:
        return _fail(str(err))
    if args.out:
        metrics["out"] = str(save_metrics(Path(args.out).expanduser().resolve(), metrics))
    print(json.dumps(to_jsonable(metrics)))
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
