"""Self-describing checkpoints.

A checkpoint holds everything needed to use the model without any other
configuration: the architecture arguments, the class names, the preprocessing
(input size, crop, normalisation), the test-time augmentation to use, the
training parameters, the data checksum and the validation metrics. Only plain
Python values and tensors are stored, so ``torch.load(..., weights_only=True)``
reads it safely.

The shipped model (``models/fer2013_efficientnet_b3.pt``) is checked against the
SHA-256 recorded here before it is loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_utils import paths
from fer_utils.files import atomic_write, sha256_file
from fer_utils.model.network import ModelConfig, create_model
from fer_utils.model.transforms import Preprocess

logger = logging.getLogger(__name__)

FORMAT = "fer_utils.checkpoint/1"  # unchanged since the module moved: saved checkpoints still load

SHIPPED_MODEL = paths.MODELS_DIR / "fer2013_efficientnet_b3.pt"
"""The trained model shipped with the repository (see models/README.md)."""

SHIPPED_SHA256: str | None = "cf409bd6dd8f8d3d95fae192120dd5968b3c3fe80a4685111a63613abdb6e637"
"""SHA-256 of the shipped model (``None`` in a checkout without one)."""

DEFAULT_RUN_CHECKPOINT = paths.MODELS_DIR / "runs" / "manual" / "best.pt"
"""Where notebook 03 writes its best checkpoint by default; used when there is no shipped model."""

REQUIRED_KEYS = ("format", "model_config", "state_dict", "class_names", "preprocess")

TRAINING_STATE_KEYS = ("optimizer", "scheduler", "scaler", "rng", "ema_state_dict")
"""Fields that only resuming needs; :func:`export_model` drops them."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or not one of ours."""


def save_checkpoint(path: str | os.PathLike[str], ckpt: dict[str, Any]) -> Path:
    """Write ``ckpt`` atomically (temporary file, then rename), so a crash never leaves half a file."""
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint is missing {missing}")
    return atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Args:
        path: Checkpoint file.
        expected_sha256: If given, the file's SHA-256 must match.

    Raises:
        CheckpointError: missing file, checksum mismatch, unreadable or foreign file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    if expected_sha256 is not None:
        actual = sha256_file(p)
        if actual != expected_sha256:
            raise CheckpointError(f"{p}: SHA-256 {actual} does not match the expected {expected_sha256}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a fer_utils checkpoint (field 'format' is not {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks the fields {missing}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network described by ``ckpt`` and load its weights (eval mode, float32)."""
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    model, _ = create_model(cfg)
    model.load_state_dict(float_state_dict(ckpt))
    return model.to(device).eval()


def float_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint's weights in float32 (exported files hold float16)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}


def _metadata(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's fields without the weights and the state only resuming needs."""
    return {k: v for k, v in ckpt.items() if k != "state_dict" and k not in TRAINING_STATE_KEYS}


def describe(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's metadata: everything but weights and optimiser state."""
    meta = _metadata(ckpt)
    meta["preprocess"] = Preprocess.from_dict(ckpt["preprocess"])
    meta["model_config"] = ModelConfig.from_dict(ckpt["model_config"])
    meta["class_names"] = tuple(ckpt["class_names"])
    meta.setdefault("tta", "none")
    meta.setdefault("metrics", {})
    meta.setdefault("data", {})
    meta.setdefault("history", [])
    return meta


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint file's metadata (everything but weights and optimiser state) and its ``sha256``."""
    meta = _metadata(load_checkpoint(path))
    meta["sha256"] = sha256_file(Path(path))
    return meta


def load_model(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model ready for inference.

    Args:
        path: A checkpoint; ``None`` loads the shipped model after checking its SHA-256.
        device: Where to put the model.

    Returns:
        ``(model, meta)``: the model in eval mode, and metadata with
        ``class_names`` (tuple), ``preprocess`` (:class:`Preprocess`),
        ``model_config`` (:class:`ModelConfig`), ``tta`` (str), ``metrics``, ``data``.
    """
    if path is None:
        if not SHIPPED_MODEL.is_file():
            raise CheckpointError(f"{SHIPPED_MODEL}: no shipped model in this checkout; pass a checkpoint path")
        ckpt = load_checkpoint(SHIPPED_MODEL, expected_sha256=SHIPPED_SHA256)
    else:
        ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, device), describe(ckpt)


def resolve_checkpoint(path: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint to use: ``path``, else the shipped model, else notebook 03's default ``best.pt``.

    Args:
        path: A checkpoint file; relative paths are taken from the working directory
            when they exist there, else from the repository root
            (:func:`fer_utils.paths.resolve_cli`). ``None`` or ``""``: look for a default.

    Raises:
        CheckpointError: ``path`` does not exist, or no default checkpoint exists;
            the message says what was looked for and how to get a model.
    """
    if path is not None and str(path) != "":
        p = paths.resolve_cli(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: checkpoint file not found")
        return p
    for candidate in (SHIPPED_MODEL, DEFAULT_RUN_CHECKPOINT):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"no model to run: neither the shipped model ({SHIPPED_MODEL}) nor notebook 03's default checkpoint "
        f"({DEFAULT_RUN_CHECKPOINT}) exists. Train one (notebook 03 or `make train`) and pass its path, "
        "e.g. --checkpoint models/runs/default/best.pt"
    )


def run_history(summary_csv: Path, until_epoch: int | None = None) -> list[dict[str, float]]:
    """The rows of a run's ``summary.csv`` (one per epoch, numbers as floats) up to ``until_epoch``; [] without one."""
    import csv

    if not summary_csv.is_file():
        return []
    with open(summary_csv, newline="") as fh:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
    return [r for r in rows if until_epoch is None or r.get("epoch", 0) <= until_epoch]


def _history_before(continued: dict[str, Any] | None) -> list[dict[str, float]]:
    """A continued run's learning curve before it picked up: the rows its ``continue_from`` checkpoint
    recorded, up to the epoch it continued at ([] when it was not continued or that file is gone)."""
    if not continued or not Path(str(continued.get("path", ""))).is_file():
        return []
    before = load_checkpoint(continued["path"]).get("history", [])
    return [row for row in before if row.get("epoch", 0) <= continued["epoch"]]


def export_model(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    half: bool = True,
    tta: str | None = None,
    evaluation: dict[str, Any] | None = None,
    logit_adjustment: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint for release: inference fields only, optionally half precision.

    Args:
        src: A training checkpoint (``best.pt`` or ``last.pt``).
        dst: Output file, written atomically.
        half: Store floating-point weights as float16 (half the size; :func:`load_model`
            turns them back into float32).
        tta: Replace the recorded test-time augmentation (chosen on the validation split).
        evaluation: Measured metrics to record with the model (e.g. PublicTest with its TTA).
        logit_adjustment: An optional post-hoc adjustment for class priors to record
            (``{"tau", "prior", ...}``, :mod:`fer_utils.evaluate.priors`); applied only on request.

    The run's learning curve up to the exported epoch (the rows of ``summary.csv`` beside
    ``src``, after those of the checkpoint a ``continue_from`` run picked up from) is recorded as
    ``history``, so the model's training can be shown without its run folder.

    Returns:
        The SHA-256 of the written file (what :data:`SHIPPED_SHA256` records for the shipped model).
    """
    ckpt = load_checkpoint(src)
    out = {k: v for k, v in ckpt.items() if k not in TRAINING_STATE_KEYS}
    if "history" not in out:
        rows = run_history(Path(src).parent / "summary.csv", until_epoch=ckpt.get("epoch"))
        out["history"] = _history_before(ckpt.get("continued")) + rows
    if half:
        out["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    out["weights_dtype"] = "float16" if half else "float32"
    out["exported_from"] = {"file": Path(src).name, "epoch": ckpt.get("epoch")}
    if tta is not None:
        out["tta"] = tta
    if evaluation is not None:
        out["evaluation"] = evaluation
    if logit_adjustment is not None:
        out["logit_adjustment"] = logit_adjustment
    path = save_checkpoint(dst, out)
    return sha256_file(path)
