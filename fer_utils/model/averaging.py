"""Weight averaging over the last epochs of a run (SWA, Izmailov et al. 2018).

With ``keep_last_epochs: N`` a run keeps each of its last N epochs' weights in
``out_dir/epochs/epoch_NNN.pt`` (:func:`keep_epoch_weights`). :func:`average_weights` averages such
files (or ``last.pt`` files), and :func:`update_batchnorm` recomputes the BatchNorm statistics of the
averaged network on Training faces, as the average of the epochs' statistics is not the statistics of
the averaged weights. :func:`average_checkpoint` does both and writes a checkpoint
(``python -m fer_utils.model average``). After raising a finished run's ``epochs``, ``epochs/`` also
holds the kept epochs of the earlier schedule: name the files to average.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_utils.files import atomic_write
from fer_utils.model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from fer_utils.model.transforms import Preprocess

logger = logging.getLogger(__name__)

WEIGHTS = ("raw", "ema")
"""Which weights of a kept epoch to average: the optimiser's (``raw``) or their moving average (``ema``)."""

_DESCRIPTION_KEYS = ("format", "model_config", "class_names", "preprocess", "tta", "train_config", "init",
                     "continued", "data", "versions")  # fmt: skip
"""What an averaged checkpoint takes over from its template: the network and how it was trained, not scores."""


def epoch_file(out_dir: Path, epoch: int) -> Path:
    """``out_dir/epochs/epoch_NNN.pt``: the kept weights of 1-based ``epoch``."""
    return out_dir / "epochs" / f"epoch_{epoch:03d}.pt"


def keep_epoch_weights(out_dir: Path, epoch: int, model: nn.Module, ema: nn.Module | None) -> Path:
    """Write one epoch's raw weights (and their moving average) atomically to :func:`epoch_file`."""
    state: dict[str, Any] = {"epoch": epoch, "weights": "raw", "state_dict": model.state_dict()}
    if ema is not None:
        state["ema_state_dict"] = ema.state_dict()
    path = epoch_file(out_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _weights_of(path: Path, weights: str) -> tuple[dict[str, torch.Tensor], int]:
    """One file's ``state_dict`` (raw) or ``ema_state_dict``, and its epoch: a kept epoch or a ``last.pt``."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for missing, corrupt or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    key = "ema_state_dict" if weights == "ema" else "state_dict"
    if not isinstance(ck, dict) or key not in ck:
        raise ValueError(f"{path}: field '{key}' is missing")
    if weights == "raw" and ck.get("weights", "raw") != "raw":  # a best.pt may hold the moving average
        raise ValueError(f"{path}: field 'weights' is {ck['weights']!r}, not the raw weights asked for")
    return ck[key], int(ck.get("epoch", -1))


def average_weights(
    files: Sequence[str | os.PathLike[str]], weights: str = "raw"
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """The element-wise mean of the files' floating-point weights (float32), and the files' epochs.

    Integer buffers (BatchNorm's ``num_batches_tracked``) are taken from the last file; the
    BatchNorm statistics are to be recomputed with :func:`update_batchnorm`.

    Raises:
        ValueError: no file, an unknown ``weights``, or files whose tensors differ in name or shape.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if not files:
        raise ValueError("average_weights needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    epochs: list[int] = []
    first = Path(files[0])
    for file in map(Path, files):
        state, epoch = _weights_of(file, weights)
        epochs.append(epoch)
        if total and set(state) != set(total):
            raise ValueError(f"{file}: its weights have other names than {first}'s")
        for name, t in state.items():
            if name in total and total[name].shape != t.shape:
                shapes = f"{tuple(t.shape)}, {first} has {tuple(total[name].shape)}"
                raise ValueError(f"{file}: field 'state_dict.{name}' has shape {shapes}")
            if not t.is_floating_point():
                total[name] = t.clone()
            elif name in total:
                total[name] += t.float()
            else:
                total[name] = t.float().clone()
    return {k: v / len(files) if v.is_floating_point() else v for k, v in total.items()}, epochs


@torch.no_grad()
def update_batchnorm(
    model: nn.Module, images: np.ndarray, pre: Preprocess, *, batch_size: int = 256, device: str = "cpu"
) -> nn.Module:
    """Recompute every BatchNorm layer's running mean and variance over ``images``, each face weighted alike.

    Only the BatchNorm layers run in training mode; dropout and drop-path stay off, so the result
    depends on the faces alone.

    Args:
        model: The network (its weights already averaged).
        images: (N, 48, 48) uint8 Training faces, preprocessed as at test time (centre crop, no
            augmentation), so the statistics match the inputs the model is scored on.
        pre: The checkpoint's preprocessing.

    Returns:
        ``model`` on ``device`` in eval mode, its BatchNorm statistics the average over ``images``.
    """
    model.to(device).eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = {bn: bn.momentum for bn in bns}
    for bn in bns:
        bn.reset_running_stats()
        bn.train()
    seen = 0
    for start in range(0, len(images), batch_size):
        x = pre(images[start : start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
        seen += len(x)
        for bn in bns:  # a running mean weighted by batch size: the last, shorter batch counts per face
            bn.momentum = len(x) / seen
        model(x)
    for bn, momentum in momenta.items():
        bn.momentum = momentum
    logger.info("recomputed BatchNorm statistics of %d layers over %d faces", len(bns), len(images))
    return model.eval()


def average_checkpoint(
    files: Sequence[str | os.PathLike[str]],
    dst: str | os.PathLike[str],
    images: np.ndarray,
    *,
    template: str | os.PathLike[str],
    weights: str = "raw",
) -> Path:
    """Average the weights of ``files``, recompute BatchNorm on ``images``, and save a checkpoint.

    Args:
        files: Kept epochs (:func:`keep_epoch_weights`) or ``last.pt`` files of one run.
        dst: The averaged checkpoint, written atomically.
        images: (N, 48, 48) uint8 Training faces for the BatchNorm statistics.
        template: A checkpoint of the same run (``last.pt`` or ``best.pt``) whose description
            (network, preprocessing, class names, recipe, data) the average takes over.
        weights: ``"raw"`` or ``"ema"``: which weights of each file to average.

    Returns:
        ``dst``. The checkpoint records ``averaged`` (files, epochs, weights, faces for BatchNorm);
        the template's scores are left out, since they belonged to other weights.

    Raises:
        ValueError: unreadable files, or weights that do not fit the template's network (naming it).
    """
    ck = load_checkpoint(template)
    state, epochs = average_weights(files, weights)
    try:
        model = model_from_checkpoint({**ck, "state_dict": state})
    except RuntimeError as err:  # load_state_dict: missing, unexpected or differently shaped tensors
        raise ValueError(f"{template}: the averaged weights do not fit this template's network ({err})") from err
    update_batchnorm(model, images, Preprocess.from_dict(ck["preprocess"]))
    out = {k: ck[k] for k in _DESCRIPTION_KEYS if k in ck}
    out.update(
        state_dict=model.state_dict(),
        weights=f"average-{weights}",
        epoch=max(epochs),
        averaged={
            "files": [Path(f).name for f in files],
            "epochs": epochs,
            "weights": weights,
            "batchnorm_faces": int(len(images)),
        },
    )
    return save_checkpoint(dst, out)
