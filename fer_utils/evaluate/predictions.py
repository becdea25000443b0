"""Predictions with test-time augmentation, a checkpoint scored on a split, and the evaluation CLI.

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
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES
from fer_utils.data.ferplus import FERPLUS_CLASS_NAMES
from fer_utils.evaluate.metrics import compute_metrics, fer2013_probs, ferplus_metrics
from fer_utils.files import atomic_write_json, to_jsonable

if TYPE_CHECKING:  # torch is imported only when a model is run
    import torch
    from torch import nn

    from fer_utils.data import FERData
    from fer_utils.evaluate.calibration import TemperatureFit
    from fer_utils.model.transforms import Preprocess

logger = logging.getLogger(__name__)

TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")
"""Test-time augmentation modes understood by ``fer_utils.model.transforms.tta_views``."""


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
        preprocess: The checkpoint's ``fer_utils.model.transforms.Preprocess``.
        tta: ``"none"``, ``"flip"`` or ``"tencrop"`` (see ``transforms.tta_views``).
        batch_size: Faces per forward pass (each view is a separate pass).
        device: Where to run the model.
        progress: Show a progress bar over the batches, written to stdout: plain text that
            JupyterLab updates in place (not a red stderr box) and papermill's log keeps.

    Returns:
        float32 array (N, C): mean over views of the softmax probabilities; rows sum to 1.
    """
    import torch

    from fer_utils.model.transforms import tta_views

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
        from fer_utils.data import load_dataset

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
    crop_size: int | None = None,
    logit_adjust: bool = False,
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
        crop_size: Score at this centre crop instead of the checkpoint's (e.g. 48, the full face, for a
            model trained on random 44-pixel crops: FixRes's train-test resolution question).
        logit_adjust: Apply the checkpoint's recorded ``logit_adjustment`` for class priors
            (:mod:`fer_utils.evaluate.priors`); a checkpoint without one is an error.

    Raises:
        fer_utils.model.checkpoint.CheckpointError: unreadable checkpoint.
        fer_utils.data.FERDataError: bad data file or absent split.
        FileNotFoundError: missing data file.
        ValueError: unknown TTA mode, or the checkpoint's classes are not ``CLASS_NAMES``.
    """
    from fer_utils.model.checkpoint import load_model

    path = paths.resolve(checkpoint)
    # The checkpoint first: it fails fast, whereas parsing a CSV takes seconds.
    model, meta = load_model(path, device=device)
    if tuple(meta["class_names"]) not in (tuple(CLASS_NAMES), FERPLUS_CLASS_NAMES):
        raise ValueError(
            f"{path}: checkpoint classes {list(meta['class_names'])} are neither FER2013's {list(CLASS_NAMES)} "
            f"nor FER+'s {list(FERPLUS_CLASS_NAMES)}"
        )
    if crop_size is not None:
        meta = {**meta, "preprocess": dataclasses.replace(meta["preprocess"], crop_size=crop_size)}
    subset = _load_data(data).split(split)
    mode = meta.get("tta", "none") if tta is None else tta
    probs = predict(
        model, subset.images, meta["preprocess"], tta=mode, batch_size=batch_size, device=device, progress=progress
    )
    if logit_adjust:
        from fer_utils.evaluate.priors import logit_adjust as adjust

        setting = meta.get("logit_adjustment")
        if not setting:
            raise ValueError(f"{path}: field 'logit_adjustment' is missing; export with --logit-adjust TAU")
        probs = adjust(probs, setting["prior"], setting["tau"])
    return SplitPredictions(probs=probs, data=subset, tta=mode, meta=meta, checkpoint=path)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: FERData | str | os.PathLike[str],
    split: str,
    *,
    ferplus: str | os.PathLike[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Metrics of a checkpoint on one split, against FER2013's labels and, with ``ferplus``, FER+'s.

    Args: as :func:`predict_split`, whose keyword arguments (``tta``, ``batch_size``,
    ``device``, ``progress``) ``options`` passes on; ``ferplus`` is the FER+ votes file
    (``fer2013new.csv``) of the same FER2013 file.

    Returns:
        :func:`compute_metrics` on FER2013's seven classes (an eight-class FER+ model's Contempt
        column dropped, :func:`fer2013_probs`), plus ``split``, ``checkpoint`` (path), ``tta``
        (mode used), ``crop_size`` (of the centre crop scored), ``model_class_names``, ``data_md5``,
        ``data_file``, ``is_canonical``,
        ``is_synthetic``; with ``ferplus``, ``ferplus``: :func:`ferplus_metrics` under the FERPlus
        majority protocol.
    """
    res = predict_split(checkpoint, data, split, **options)
    metrics = compute_metrics(res.data.labels, fer2013_probs(res.probs))
    if ferplus is not None:
        from fer_utils.data import align_votes, ferplus_majority_labels, read_ferplus

        full = _load_data(data)
        votes = align_votes(read_ferplus(ferplus, n_rows=len(full)), res.data)
        metrics["ferplus"] = {"votes_file": str(ferplus), **ferplus_metrics(res.probs, ferplus_majority_labels(votes))}
    metrics.update(
        model_class_names=list(res.meta["class_names"]),
        crop_size=int(res.meta["preprocess"].crop_size),
        logit_adjustment=res.meta.get("logit_adjustment") if options.get("logit_adjust") else None,
        split=split,
        checkpoint=str(res.checkpoint),
        tta=res.tta,
        data_md5=res.data.content_md5,
        data_file=str(res.data.source),
        is_canonical=bool(res.data.is_canonical),
        is_synthetic=bool(res.data.is_synthetic),
    )
    return metrics


@dataclass
class Calibrated:
    """Temperature scaling fitted on one split and measured on another (:func:`calibrate`)."""

    fit: TemperatureFit  # fitted on ``fit.split``
    summary: dict[str, Any]  # ECE and NLL on the evaluated split, before and after
    probs_after: np.ndarray  # the evaluated split's probabilities at the fitted temperature


def calibrate(
    pred: SplitPredictions, data: FERData, fit_split: str, *, n_bins: int, out_dir: Path | None = None
) -> Calibrated | None:
    """Fit a temperature on ``fit_split`` of ``data`` and measure it on ``pred``'s split.

    The fit reuses ``pred`` when it is that split (then the evaluated numbers are optimistic). With
    ``out_dir`` the temperature is saved there as ``temperature.json``, with this evaluation.

    Returns:
        ``None`` when ``data`` has no ``fit_split``.
    """
    from fer_utils.evaluate.calibration import (
        TEMPERATURE_FILE,
        apply_temperature,
        calibration_summary,
        fit_temperature,
        save_temperature,
    )

    if fit_split not in data.splits:
        return None
    split = str(pred.data.usage[0]) if len(pred.data) else fit_split
    fit_pred = pred if fit_split == split else predict_split(pred.checkpoint, data, fit_split, tta=pred.tta)
    fit = fit_temperature(fit_pred.data.labels, fit_pred.probs, split=fit_split, n_bins=n_bins)
    summary = calibration_summary(pred.data.labels, pred.probs, fit.temperature, split=split, n_bins=n_bins)
    if out_dir is not None:
        save_temperature(
            out_dir / TEMPERATURE_FILE,
            fit,
            checkpoint=pred.checkpoint,
            tta=pred.tta,
            data_md5=data.content_md5,
            evaluation=summary,
        )
    return Calibrated(fit, summary, apply_temperature(pred.probs, fit.temperature))


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
    ap.add_argument(
        "--ferplus",
        metavar="VOTES",
        help="FER+ votes file (fer2013new.csv) of the same data: also score against FER+ majority labels",
    )
    ap.add_argument(
        "--crop-size",
        type=int,
        help="score at this centre crop instead of the checkpoint's (e.g. 48: the full face)",
    )
    ap.add_argument(
        "--logit-adjust",
        action="store_true",
        help="apply the checkpoint's recorded logit adjustment for class priors (optional; the live demo never does)",
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
            ferplus=paths.resolve_cli(args.ferplus) if args.ferplus else None,
            tta=args.tta,
            crop_size=args.crop_size,
            logit_adjust=args.logit_adjust,
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
