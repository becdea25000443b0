"""Where a run's first weights come from when not from random initialisation or its own ``last.pt``.

- ``init_checkpoint``: another run's checkpoint of the same network and input starts a new run
  (new optimiser, new schedule) from its weights and normalisation; a FER2013 checkpoint can start an
  eight-class FER+ run, its classifier's seven rows copied and a fresh Contempt row added;
- ``continue_from``: an exported checkpoint of this same recipe carries the run on at the epoch
  it records, with fresh optimiser moments (the engine re-warms the learning rate).

Both refuse a checkpoint that does not fit, naming the field that differs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_utils.model.checkpoint import float_state_dict, load_checkpoint
from fer_utils.model.network import ModelConfig
from fer_utils.train.recipe import RUN_FIELDS, TrainConfig


def init_from_checkpoint(
    model: nn.Module, path: Path, cfg: TrainConfig, mcfg: ModelConfig
) -> tuple[str, tuple[float, float]]:
    """Load a fer_utils checkpoint's weights into ``model`` for a new run on top of it.

    The checkpoint must describe the same network and input size as ``cfg``; the crop may differ, so a
    short fine-tune can train at the test-time input (FixRes: ``crop_size: 48``). Returns the run's ``init``
    description and the checkpoint's normalisation ``(mean, std)``, so the new run feeds the network the
    inputs it was trained on. Not a resume: the optimiser and the schedule start afresh.

    Raises:
        ValueError: naming the checkpoint field that differs from this run.
    """
    ck = load_checkpoint(path)
    theirs = ModelConfig.from_dict(ck["model_config"])  # fields a checkpoint predates take their defaults
    pairs = [
        (f"model_config.{k}", getattr(theirs, k), getattr(mcfg, k))
        for k in ("arch", "in_chans", "stem_stride", "output_stride")
    ]
    pairs.append(("preprocess.img_size", ck["preprocess"].get("img_size"), cfg.img_size))
    names, ours = list(ck["class_names"]), list(cfg.class_names())
    grows = len(names) < len(ours) and ours[: len(names)] == names  # FER2013's seven -> FER+'s eight
    if not grows:
        pairs.append(("class_names", names, ours))
    for field, their_value, our_value in pairs:
        if their_value != our_value:
            raise ValueError(f"{path}: field '{field}' is {their_value!r}, this run's is {our_value!r}")
    state = float_state_dict(ck)
    if grows:
        state = _grown_classifier(model, state, len(names), path)
    model.load_state_dict(state)
    init = f"checkpoint: {cfg.init_checkpoint} (epoch {ck.get('epoch', '?')}, which started from {ck.get('init', '?')})"
    if grows:
        init += (
            f"; classifier grown from {len(names)} to {len(ours)} classes, new rows: {', '.join(ours[len(names) :])}"
        )
    return init, (float(ck["preprocess"]["mean"]), float(ck["preprocess"]["std"]))


def _grown_classifier(
    model: nn.Module, state: dict[str, torch.Tensor], n_old: int, path: Path
) -> dict[str, torch.Tensor]:
    """``state`` with its classifier's rows copied into the new, larger classifier of ``model``.

    The first ``n_old`` rows (weights and biases) come from the checkpoint; the rest keep ``model``'s
    fresh initialisation.

    Raises:
        ValueError: a tensor other than a classifier row block differs in shape (naming it).
    """
    ours = model.state_dict()
    grown = dict(state)
    for key, theirs in state.items():
        if key not in ours:
            raise ValueError(f"{path}: field 'state_dict.{key}' is not in this run's network")
        mine = ours[key]
        if theirs.shape == mine.shape:
            continue
        if theirs.shape[0] != n_old or theirs.shape[1:] != mine.shape[1:]:
            raise ValueError(
                f"{path}: field 'state_dict.{key}' has shape {tuple(theirs.shape)}, this run's is {tuple(mine.shape)}"
            )
        new = mine.detach().clone()
        new[:n_old] = theirs
        grown[key] = new
    return grown


def continue_from(model: nn.Module, path: Path, cfg: TrainConfig, mcfg: ModelConfig, data_md5: str) -> dict[str, Any]:
    """Load a checkpoint of this same recipe to carry its run on at the epoch it records.

    Returns:
        ``{"path", "epoch", "normalisation"}`` for the new run's records and preprocessing.

    Raises:
        ValueError: naming the checkpoint field that differs from this run (data, network or
            any training setting outside :data:`RUN_FIELDS`).
    """
    ck = load_checkpoint(path)
    if ck.get("data", {}).get("content_md5") != data_md5:
        raise ValueError(
            f"{path}: field 'data.content_md5' is {ck.get('data', {}).get('content_md5')!r}, "
            f"this run's data has {data_md5!r}"
        )
    if ModelConfig.from_dict(ck["model_config"]) != mcfg:
        raise ValueError(f"{path}: field 'model_config' is {ck['model_config']}, this run's is {mcfg.to_dict()}")
    theirs, ours = ck.get("train_config", {}), asdict(cfg)
    for key in sorted(set(ours) - RUN_FIELDS):
        if theirs.get(key, ours[key]) != ours[key]:
            raise ValueError(
                f"{path}: field 'train_config.{key}' is {theirs.get(key)!r}, this run's is {ours[key]!r}: "
                "continue_from carries on the same recipe only"
            )
    epoch = int(ck.get("epoch", 0))
    if not 0 < epoch < cfg.epochs:
        raise ValueError(f"{path}: field 'epoch' is {epoch}: nothing left to continue in a run of {cfg.epochs} epochs")
    model.load_state_dict(float_state_dict(ck))
    return {
        "path": str(path),
        "epoch": epoch,
        "normalisation": (float(ck["preprocess"]["mean"]), float(ck["preprocess"]["std"])),
    }
