"""Training engine: ``train(TrainConfig(...))`` or ``python -m fer_utils.train``.

What a run writes to ``out_dir``:

- ``config.json``: the effective configuration, the model's initialisation
  (including any warning that pretrained weights were unavailable), the data
  checksum and library versions;
- ``summary.csv``: one row per epoch (learning rate, train loss/accuracy,
  validation loss/accuracy/macro-F1 of the raw weights and of their moving
  average, seconds, images/s, the share of the machine's CPU time other
  processes took, and the process's peak resident memory);
- ``last.pt`` after every epoch and ``best.pt`` whenever the named validation
  metric improves (``eval_metric``; lower is better for ``loss``, higher for the
  others, unless ``eval_decreasing`` says otherwise).
  With ``ema_decay`` set, the raw weights and their exponential moving average
  (timm's ``ModelEmaV3``) are both scored every epoch; ``best.pt`` holds
  whichever scored better and says which in ``best.weights``.

Checkpoints are written atomically. Re-running with the same ``out_dir``
resumes from ``last.pt``, so an interruption costs at most the epoch in
progress, and raising ``epochs`` continues a finished run. Each epoch's
shuffling, augmentation and dropout are seeded from ``(seed, epoch)``, so on
CPU a seed gives the same run, interrupted or not.

A run whose ``last.pt`` is gone (a new machine) can carry on from an exported
checkpoint of the same recipe with ``continue_from``: its weights, at the
schedule position it records, with fresh optimiser moments and a short
re-warm-up of the learning rate.

Under ``torchrun --nproc_per_node=N`` the engine uses DistributedDataParallel
(gloo on CPU, NCCL on GPU); each rank trains on its own shard of every epoch's
permutation and rank 0 evaluates and writes files.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import numbers
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import CLASS_NAMES, NUM_CLASSES, __version__, paths
from .checkpoint import FORMAT, float_state_dict, load_checkpoint, save_checkpoint
from .monitor import ResourceMonitor, warn_if_contended
from .files import atomic_write_json, atomic_write_text
from .model import ModelConfig, channels_last, create_model, pretrained_stats
from .transforms import TTA_MODES, AugmentConfig, GrayAugment, Preprocess, pixel_stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Parameters of one training run (saved as ``config.json`` and inside checkpoints)."""

    # data
    data: str = ""  # FER2013 CSV/CSV.gz/folder; "" = $FER2013_CSV, data/fer2013.csv, else the synthetic set
    out_dir: str = "models/runs/default"  # relative paths are taken from the repository root
    train_split: str = "Training"  # the only split the model learns from
    val_split: str = "PublicTest"  # model selection happens here, never on PrivateTest
    limit_train: int = 0  # use at most this many training images (0 = all); for smoke runs
    limit_val: int = 0  # use at most this many validation images (0 = all)
    class_weights: str = ""  # JSON from notebook 02 / fer_utils.class_weights; "" = unweighted loss
    # model
    arch: str = "efficientnet_b3"  # any timm model name
    img_size: int = 48  # model input side; faces are resized to it
    crop_size: int = 44  # random crop during training, centre crop at test time (48 = none)
    stem_stride: int = 2  # 1 keeps more resolution for small faces, at ~4x compute
    output_stride: int = 32  # 16 dilates the last stage instead of striding it: a 3x3 final map at 48 px
    zero_init_last: bool = False  # from scratch: residual blocks start as the identity (zero last-BN scale)
    drop_rate: float = 0.3  # dropout before the classifier
    drop_path_rate: float = 0.1  # stochastic depth
    pretrained: bool = False  # try ImageNet weights from the hub (falls back to random, loudly)
    weights_path: str = ""  # local pretrained weights file, used instead of the hub
    init_checkpoint: str = ""  # start from this checkpoint's weights and normalisation (same network and input), new schedule
    continue_from: str = ""  # without out_dir/last.pt: carry on from this same-recipe checkpoint at the epoch it records
    rewarm_epochs: float = 0.3  # continue_from: linear re-warm-up of the learning rate (fresh optimiser moments)
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adamw"  # "adamw" or "sgd" (Nesterov momentum)
    lr: float = 2e-3  # peak learning rate after warm-up
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.05  # not applied to biases and normalisation weights
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0  # linear warm-up from ~0, may be fractional
    grad_clip: float = 5.0  # max gradient norm (0 = off); guards the first steps from scratch
    label_smoothing: float = 0.1
    ferplus: str = ""  # FER+ votes file (fer2013new.csv): mix its vote shares into the Training targets
    ferplus_weight: float = 0.5  # target = (1 - w) * FER2013 label + w * FER+ vote shares
    ema_decay: float = 0.999  # moving average of the weights, scored next to them (0 = off)
    mixup_alpha: float = 0.0  # 0 = off
    cutmix_alpha: float = 0.0  # 0 = off
    mix_prob: float = 0.5  # share of batches that get mixup/cutmix when enabled
    # augmentation (see fer_utils.transforms.AugmentConfig)
    aug_rotate_deg: float = 10.0
    aug_scale: float = 0.1  # zoom range 1 +- aug_scale
    aug_translate: float = 0.08
    aug_erasing: float = 0.25  # probability of random erasing
    # evaluation
    eval_metric: str = "accuracy"  # validation metric that picks best.pt: "accuracy", "macro_f1" or "loss"
    eval_decreasing: bool | None = None  # lower is better; None = from the metric (True for "loss" only)
    tta: str = "flip"  # test-time augmentation recorded for evaluation ("none", "flip", "tencrop")
    # run
    seed: int = 0
    device: str = "auto"  # "auto" = cuda if available, else cpu
    num_threads: int = 0  # torch CPU threads (0 = torch's default)
    resume: bool = True  # continue from out_dir/last.pt when it exists
    progress: bool = True  # tqdm progress bar per epoch

    def __post_init__(self) -> None:
        """Converts numeric strings (YAML reads ``1e-3`` as text) and rejects a bad value before any work.

        Raises:
            ValueError: naming the field and the value.
        """
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), str(f.type)))
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig field '{name}' is {getattr(self, name)!r}; "
                                 f"choose one of {', '.join(map(str, allowed))}")
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"TrainConfig field '{name}' is {getattr(self, name)!r}; it must lie in [{low}, {high}]")
        import timm

        if not timm.is_model(self.arch):
            raise ValueError(f"TrainConfig field 'arch' is {self.arch!r}, which is not a timm model name")
        if self.eval_decreasing is None:
            object.__setattr__(self, "eval_decreasing", self.eval_metric == "loss")

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            arch=self.arch,
            in_chans=1,
            num_classes=NUM_CLASSES,
            drop_rate=self.drop_rate,
            drop_path_rate=self.drop_path_rate,
            stem_stride=self.stem_stride,
            output_stride=self.output_stride,
            zero_init_last=self.zero_init_last,
        )

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(
            scale=(1 - self.aug_scale, 1 + self.aug_scale),
            rotate_deg=self.aug_rotate_deg,
            translate=self.aug_translate,
            erasing=self.aug_erasing,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training parameters: {sorted(unknown)}")
        return cls(**d)


_CHOICES: dict[str, tuple[Any, ...]] = {
    "optimizer": ("adamw", "sgd"),
    "tta": TTA_MODES,
    "eval_metric": ("accuracy", "macro_f1", "loss"),
    "stem_stride": (1, 2),
    "output_stride": (8, 16, 32),
}
_RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, math.inf), "batch_size": (1, math.inf), "img_size": (8, math.inf), "crop_size": (8, math.inf),
    "lr": (0.0, math.inf), "min_lr_ratio": (0.0, 1.0), "weight_decay": (0.0, math.inf), "warmup_epochs": (0.0, math.inf),
    "rewarm_epochs": (0.0, math.inf), "label_smoothing": (0.0, 1.0), "mix_prob": (0.0, 1.0), "ema_decay": (0.0, 0.999999),
    "ferplus_weight": (0.0, 1.0), "drop_rate": (0.0, 1.0), "drop_path_rate": (0.0, 1.0), "aug_erasing": (0.0, 1.0),
    "limit_train": (0, math.inf), "limit_val": (0, math.inf), "num_threads": (0, math.inf),
}


def _coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` as the field's type (``kind`` is its annotation).

    Numeric and boolean strings (YAML reads ``1e-3`` as text) are converted, and so are NumPy
    numbers, 0/1 for a flag, paths for a text field, and an empty YAML value (``None``) for one.
    """
    if value is None and "None" in kind:
        return None
    base = kind.split("|")[0].strip()
    try:
        if base == "bool":
            if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _BOOLS:
                return _BOOLS[value.strip().lower()]
        elif base == "int" and not isinstance(value, bool):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, numbers.Real) and float(number).is_integer():
                return int(number)
        elif base == "float" and not isinstance(value, bool) and isinstance(value, (numbers.Real, str)):
            return float(value)
        elif base == "str" and (value is None or isinstance(value, (str, os.PathLike))):
            return "" if value is None else os.fspath(value)
    except ValueError:
        pass
    raise ValueError(f"TrainConfig field '{name}' is {value!r}, not a {base}")


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}

SUMMARY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "ema_val_loss",
    "ema_val_accuracy",
    "ema_val_macro_f1",
    "epoch_seconds",
    "images_per_s",
    "other_cpu_share",
    "peak_rss_mb",
)

RUN_FIELDS = frozenset({"data", "out_dir", "device", "num_threads", "resume", "progress", "continue_from", "rewarm_epochs"})
"""TrainConfig fields that say where and how a run executes, not what it learns: ``continue_from``
accepts a checkpoint whose recorded recipe differs from this run's only in these."""


# ---------------------------------------------------------------- distributed


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size())


def _sync_buffers(model: nn.Module, d: _Dist) -> None:
    """Give every rank rank 0's BatchNorm statistics (DDP syncs buffers only at the start of a forward)."""
    if d.world > 1:
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def _barrier(d: _Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


# ---------------------------------------------------------------- pieces


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {cfg.optimizer!r}")


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, min_ratio: float, rewarm_from: int | None = None, rewarm_steps: int = 0
) -> float:
    """Multiplier of the peak learning rate: linear warm-up, then cosine decay to ``min_ratio``.

    A run continued at step ``rewarm_from`` with fresh optimiser moments ramps linearly back up
    to the schedule over ``rewarm_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    factor = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if rewarm_from is not None and rewarm_from <= step < rewarm_from + rewarm_steps:
        factor *= (step - rewarm_from + 1) / rewarm_steps
    return factor


def soft_targets(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """One-hot targets (N, NUM_CLASSES) with label smoothing."""
    t = F.one_hot(labels, NUM_CLASSES).float()
    return t * (1 - smoothing) + smoothing / NUM_CLASSES


def mix_batch(
    x: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply mixup or cutmix to a batch with probability ``cfg.mix_prob``."""
    use = [a for a in (("mixup", cfg.mixup_alpha), ("cutmix", cfg.cutmix_alpha)) if a[1] > 0]
    if not use or torch.rand(1, generator=gen).item() >= cfg.mix_prob:
        return x, t
    kind, alpha = use[int(torch.randint(len(use), (1,), generator=gen))]
    lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=gen))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen)
    if kind == "mixup":
        return x * lam + x[perm] * (1 - lam), t * lam + t[perm] * (1 - lam)
    h, w = x.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, t * lam + t[perm] * (1 - lam)


def ferplus_targets(labels: np.ndarray, votes_df: Any, weight: float, smoothing: float) -> torch.Tensor:
    """Training targets that mix each face's FER2013 label with its FER+ vote shares.

    Faces whose votes are not usable (no emotion votes, or "not a face" voted at least as
    often as any emotion; see :func:`fer_utils.ferplus.vote_shares`) keep their FER2013 label.

    Args:
        labels: (N,) FER2013 labels.
        votes_df: The same faces' FER+ votes, row-aligned (:func:`fer_utils.ferplus.align_votes`).
        weight: Share of the target given to the votes, in [0, 1].
        smoothing: Label smoothing of the FER2013 part.

    Returns:
        (N, NUM_CLASSES) float32 targets, rows summing to 1.
    """
    from .ferplus import vote_shares

    shares, usable = vote_shares(votes_df)
    t = soft_targets(torch.from_numpy(labels.astype(np.int64)), smoothing)
    mask = torch.from_numpy(usable)
    t[mask] = (1 - weight) * t[mask] + weight * torch.from_numpy(shares[usable])
    return t


def make_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    augment: GrayAugment,
    cfg: TrainConfig,
    gen: torch.Generator,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment uint8 faces (B, 48, 48) and build soft targets, with mixup/cutmix when enabled.

    Args:
        targets: (B, NUM_CLASSES) targets to use instead of the smoothed one-hot labels
            (e.g. from :func:`ferplus_targets`).

    Returns:
        ``(x, targets, labels)``: float32 input (B, 1, S, S), targets (B, NUM_CLASSES), int64 labels (B,).
    """
    x = augment(images, gen)
    x, t = mix_batch(x, soft_targets(labels, cfg.label_smoothing) if targets is None else targets, cfg, gen)
    return x, t, labels


def make_ema(model: nn.Module, decay: float) -> nn.Module:
    """timm's moving average of ``model``'s weights and buffers, its decay warming up with the step count.

    ``ema.update(model, step=global_step)`` after each optimiser step; the average is ``ema.module``.
    """
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=3 / 4)


def weighted_soft_ce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy with soft targets; class weights scale each class's term."""
    logp = F.log_softmax(logits.float(), dim=1)
    if weights is not None:
        targets = targets * weights
    return -(targets * logp).sum(1).mean()


def _subset(n: int, limit: int, seed: int) -> np.ndarray:
    """Positions of at most ``limit`` of ``n`` items (all when ``limit`` is 0), in order."""
    if limit and limit < n:
        return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    return np.arange(n)


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_summary(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _versions() -> dict[str, str]:
    import timm

    return {"fer_utils": __version__, "torch": str(torch.__version__), "timm": str(timm.__version__), "python": sys.version.split()[0]}


# ---------------------------------------------------------------- evaluation during training


@torch.no_grad()
def _validate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, pre: Preprocess, device: torch.device, batch: int
) -> dict[str, float]:
    from .evaluate import compute_metrics, predict

    probs = predict(model, images, pre, tta="none", batch_size=batch, device=device)
    m = compute_metrics(labels, probs)
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)
    return {"loss": float(-np.log(p_true).mean()), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


# ---------------------------------------------------------------- the loop


def _init_from_checkpoint(
    model: nn.Module, path: Path, cfg: TrainConfig, mcfg: ModelConfig
) -> tuple[str, tuple[float, float]]:
    """Load a fer_utils checkpoint's weights into ``model`` for a new run on top of it.

    The checkpoint must describe the same network and input as ``cfg``. Returns the run's ``init``
    description and the checkpoint's normalisation ``(mean, std)``, so the new run feeds the network the
    inputs it was trained on. Not a resume: the optimiser and the schedule start afresh.

    Raises:
        ValueError: naming the checkpoint field that differs from this run.
    """
    ck = load_checkpoint(path)
    theirs = ModelConfig.from_dict(ck["model_config"])  # fields a checkpoint predates take their defaults
    pairs = [(f"model_config.{k}", getattr(theirs, k), getattr(mcfg, k))
             for k in ("arch", "in_chans", "num_classes", "stem_stride", "output_stride")]
    pairs += [(f"preprocess.{k}", ck["preprocess"].get(k), getattr(cfg, k)) for k in ("img_size", "crop_size")]
    pairs.append(("class_names", list(ck["class_names"]), list(CLASS_NAMES)))
    for field, theirs, ours in pairs:
        if theirs != ours:
            raise ValueError(f"{path}: field '{field}' is {theirs!r}, this run's is {ours!r}")
    model.load_state_dict(float_state_dict(ck))
    init = f"checkpoint: {cfg.init_checkpoint} (epoch {ck.get('epoch', '?')}, which started from {ck.get('init', '?')})"
    return init, (float(ck["preprocess"]["mean"]), float(ck["preprocess"]["std"]))


def _continue_from(model: nn.Module, path: Path, cfg: TrainConfig, mcfg: ModelConfig, data_md5: str) -> dict[str, Any]:
    """Load a checkpoint of this same recipe to carry its run on at the epoch it records.

    Returns:
        ``{"path", "epoch", "normalisation"}`` for the new run's records and preprocessing.

    Raises:
        ValueError: naming the checkpoint field that differs from this run (data, network or
            any training setting outside :data:`RUN_FIELDS`).
    """
    ck = load_checkpoint(path)
    if ck.get("data", {}).get("content_md5") != data_md5:
        raise ValueError(f"{path}: field 'data.content_md5' is {ck.get('data', {}).get('content_md5')!r}, "
                         f"this run's data has {data_md5!r}")
    if ModelConfig.from_dict(ck["model_config"]) != mcfg:
        raise ValueError(f"{path}: field 'model_config' is {ck['model_config']}, this run's is {mcfg.to_dict()}")
    theirs, ours = ck.get("train_config", {}), asdict(cfg)
    for key in sorted(set(ours) - RUN_FIELDS):
        if theirs.get(key, ours[key]) != ours[key]:
            raise ValueError(f"{path}: field 'train_config.{key}' is {theirs.get(key)!r}, this run's is {ours[key]!r}: "
                             "continue_from carries on the same recipe only")
    epoch = int(ck.get("epoch", 0))
    if not 0 < epoch < cfg.epochs:
        raise ValueError(f"{path}: field 'epoch' is {epoch}: nothing left to continue in a run of {cfg.epochs} epochs")
    model.load_state_dict(float_state_dict(ck))
    return {"path": str(path), "epoch": epoch,
            "normalisation": (float(ck["preprocess"]["mean"]), float(ck["preprocess"]["std"]))}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a run; returns a summary with the best epoch and metric.

    Raises:
        fer_utils.data.FERDataError: bad data or a missing split.
        ValueError: a resumed run whose data, architecture or ``init_checkpoint`` differ from ``cfg``; an
            ``init_checkpoint`` that does not describe this run's network and input.
        fer_utils.checkpoint.CheckpointError: a missing or unreadable ``init_checkpoint``.
    """
    return fit(cfg)[1]


def fit(cfg: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Like :func:`train`, but also returns this rank's model after the last epoch (the raw weights).

    Raises:
        fer_utils.data.FERDataError: bad data or a missing split.
        ValueError: a resumed run whose data, architecture or ``init_checkpoint`` differ from ``cfg``; an
            ``init_checkpoint`` that does not describe this run's network and input; a ``continue_from``
            checkpoint of another recipe.
        fer_utils.checkpoint.CheckpointError: a missing or unreadable ``init_checkpoint`` or ``continue_from``.
    """
    from tqdm.auto import tqdm

    from .class_weights import load_class_weights
    from .data import load_dataset

    device = _pick_device(cfg.device)
    dist = _init_distributed(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = paths.resolve(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = load_dataset(cfg.data or None)
    tr, va = data.split(cfg.train_split), data.split(cfg.val_split)
    i_tr, i_va = _subset(len(tr), cfg.limit_train, cfg.seed), _subset(len(va), cfg.limit_val, cfg.seed + 1)
    x_tr, y_tr = tr.images[i_tr], tr.labels[i_tr]
    x_va, y_va = va.images[i_va], va.labels[i_va]
    targets_tr = None
    if cfg.ferplus:
        from .ferplus import align_votes, read_ferplus

        votes = align_votes(read_ferplus(cfg.ferplus, n_rows=len(data)), tr).iloc[i_tr]
        targets_tr = ferplus_targets(y_tr, votes, cfg.ferplus_weight, cfg.label_smoothing)
    data_info = {
        "source": data.source.name,
        "content_md5": data.content_md5,
        "canonical": bool(data.is_canonical),
        "synthetic": bool(data.is_synthetic),
        "train_split": cfg.train_split,
        "val_split": cfg.val_split,
        "n_train": int(len(y_tr)),
        "n_val": int(len(y_va)),
    }

    last_path, best_path, summary_path = out / "last.pt", out / "best.pt", out / "summary.csv"
    resume = load_checkpoint(last_path) if cfg.resume and last_path.is_file() else None
    if cfg.init_checkpoint and (cfg.pretrained or cfg.weights_path):
        raise ValueError("init_checkpoint sets the starting weights: leave pretrained and weights_path unset")
    if cfg.init_checkpoint and cfg.continue_from:
        raise ValueError("continue_from carries on a run of this recipe, init_checkpoint starts a new one: give one")
    if cfg.init_checkpoint and paths.resolve(cfg.init_checkpoint).resolve().parent == out.resolve():
        raise ValueError(f"{cfg.init_checkpoint}: init_checkpoint is in this run's out_dir; give the new run its own")
    started_from = resume.get("train_config", {}).get("init_checkpoint", "") if resume is not None else ""
    if resume is not None and started_from != cfg.init_checkpoint:
        raise ValueError(f"{last_path}: field 'train_config.init_checkpoint' is {started_from!r}, this run's is "
                         f"{cfg.init_checkpoint!r}; use a new out_dir")

    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    model, init = create_model(mcfg, pretrained=cfg.pretrained, weights_path=paths.resolve(cfg.weights_path) if cfg.weights_path else None)
    stats = pretrained_stats(model) if init.startswith(("imagenet", "file")) else None
    continued: dict[str, Any] | None = None  # where a continue_from run picked up its recipe's schedule
    if resume is not None:  # the normalisation the run was trained with
        stats = (float(resume["preprocess"]["mean"]), float(resume["preprocess"]["std"]))
        continued = resume.get("continued")
    elif cfg.init_checkpoint:
        init, stats = _init_from_checkpoint(model, paths.resolve(cfg.init_checkpoint), cfg, mcfg)
    elif cfg.continue_from:
        c = _continue_from(model, paths.resolve(cfg.continue_from), cfg, mcfg, data.content_md5)
        stats = c.pop("normalisation")
        continued = c
        init = f"continued: {cfg.continue_from} (epoch {c['epoch']} of this recipe)"
    mean, std = stats if stats else pixel_stats(x_tr)
    pre = Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=mean, std=std)
    augment = GrayAugment(pre, cfg.augment_config())
    weights = torch.tensor(load_class_weights(paths.resolve(cfg.class_weights)), dtype=torch.float32) if cfg.class_weights else None

    model = channels_last(model.to(device))
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 and dist.main else None  # only rank 0 scores it
    opt = _make_optimizer(model, cfg)
    per_rank = len(y_tr) // dist.world
    drop_last = per_rank >= 2 * cfg.batch_size
    steps_per_epoch = per_rank // cfg.batch_size if drop_last else math.ceil(per_rank / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    if continued is not None:
        continued["step"] = continued["epoch"] * steps_per_epoch
    rewarm_from, rewarm_steps = (continued["step"], int(cfg.rewarm_epochs * steps_per_epoch)) if continued else (None, 0)
    first_step = continued["step"] if continued is not None and resume is None else 0
    for group in opt.param_groups:  # LambdaLR starting past step 0 reads the peak from here
        group.setdefault("initial_lr", group["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warmup_steps, cfg.min_lr_ratio, rewarm_from, rewarm_steps),
        last_epoch=first_step - 1,
    )
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_epoch, best_value, best_epoch, best_weights = 0, None, None, None
    rows: list[dict[str, Any]] = []
    if resume is not None:
        ck = resume
        if ck["data"].get("content_md5") != data.content_md5:
            raise ValueError(f"{last_path}: was trained on different data (field 'data.content_md5'); use a new out_dir")
        if ModelConfig.from_dict(ck["model_config"]) != mcfg:
            raise ValueError(f"{last_path}: model_config differs from this run's; use a new out_dir")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if "scaler" in ck:
            scaler.load_state_dict(ck["scaler"])
        if ema is not None and "ema_state_dict" in ck:
            ema.module.load_state_dict(ck["ema_state_dict"])
        elif ema is not None:  # a run from before weight averaging: the average starts here
            ema = make_ema(model, cfg.ema_decay)
        start_epoch = int(ck["epoch"])
        best_value, best_epoch = ck["best"]["value"], ck["best"]["epoch"]
        best_weights = ck["best"].get("weights", "raw")
        init = ck.get("init", init)
        rows = [r for r in _read_summary(summary_path) if int(r["epoch"]) <= start_epoch]
        logger.info("resumed %s at epoch %d (best %s=%s at epoch %s)", last_path, start_epoch, cfg.eval_metric, best_value, best_epoch)
    elif continued is not None:
        start_epoch = continued["epoch"]
        logger.info("continuing %s at epoch %d of %d with fresh optimiser moments", cfg.continue_from, start_epoch, cfg.epochs)

    if dist.main:
        atomic_write_json(
            out / "config.json",
            {"train_config": asdict(cfg), "model_config": mcfg.to_dict(), "preprocess": pre.to_dict(), "init": init,
             "continued": continued, "data": data_info, "versions": _versions(), "world_size": dist.world},
        )
    net: nn.Module = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    x_tr_t, y_tr_t = torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(y_tr.astype(np.int64))
    base = cfg.seed * 1_000_003
    monitor = ResourceMonitor()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(y_tr_t), generator=torch.Generator().manual_seed(base + epoch))
        shard = perm[dist.rank :: dist.world][:per_rank]
        gen = torch.Generator().manual_seed(base + 7919 * (epoch + 1) + dist.rank)
        torch.manual_seed(base + 104729 * (epoch + 1) + dist.rank)  # dropout / drop-path
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and dist.main),
                   mininterval=2.0, leave=False)
        for step in bar:
            idx = shard[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x, t, y = make_batch(x_tr_t[idx], y_tr_t[idx], augment, cfg, gen, None if targets_tr is None else targets_tr[idx])
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            t, y = t.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = net(x)
            loss = weighted_soft_ce(logits, t, weights.to(device) if weights is not None else None)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}; lower lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update(model, step=sched.last_epoch)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        train_seconds = time.perf_counter() - t0

        _sync_buffers(model, dist)
        if not dist.main:
            _barrier(dist)
            continue
        batch = max(256, cfg.batch_size)
        scored = {"raw": _validate(model, x_va, y_va, pre, device, batch)}
        if ema is not None:
            scored["ema"] = _validate(ema.module, x_va, y_va, pre, device, batch)
        better = min if cfg.eval_decreasing else max
        chosen = better(scored, key=lambda k: scored[k][cfg.eval_metric])  # raw on a tie
        value = scored[chosen][cfg.eval_metric]
        improved = best_value is None or (value < best_value if cfg.eval_decreasing else value > best_value)
        if improved:
            best_value, best_epoch, best_weights = value, epoch + 1, chosen
        usage = monitor.lap()
        if dist.world == 1:  # under torchrun the other ranks are "other processes" too
            warn_if_contended(usage)
        val, ema_val = scored["raw"], scored.get("ema")
        row = {
            "epoch": epoch + 1,
            "lr": f"{sched.get_last_lr()[0]:.6g}",
            "train_loss": f"{loss_sum / max(seen, 1):.5f}",
            "train_accuracy": f"{correct / max(seen, 1):.5f}",
            "val_loss": f"{val['loss']:.5f}",
            "val_accuracy": f"{val['accuracy']:.5f}",
            "val_macro_f1": f"{val['macro_f1']:.5f}",
            **({f"ema_val_{k}": f"{ema_val[k]:.5f}" for k in ("loss", "accuracy", "macro_f1")} if ema_val else {}),
            "epoch_seconds": f"{time.perf_counter() - t0:.1f}",
            "images_per_s": f"{seen * dist.world / train_seconds:.1f}",
            "other_cpu_share": "" if usage.other_cpu_share is None else f"{usage.other_cpu_share:.3f}",
            "peak_rss_mb": "" if usage.peak_rss_mb is None else f"{usage.peak_rss_mb:.0f}",
        }
        rows.append(row)
        ckpt = {
            "format": FORMAT,
            "model_config": mcfg.to_dict(),
            "state_dict": model.state_dict(),
            "class_names": list(CLASS_NAMES),
            "preprocess": pre.to_dict(),
            "tta": cfg.tta,
            "train_config": asdict(cfg),
            "init": init,
            "continued": continued,
            "data": data_info,
            "epoch": epoch + 1,
            "weights": "raw",
            "metrics": {f"{'' if k == 'raw' else 'ema_'}val_{m}": v for k, r in scored.items() for m, v in r.items()},
            "best": {"metric": f"val_{cfg.eval_metric}", "decreasing": cfg.eval_decreasing, "value": best_value,
                     "epoch": best_epoch, "weights": best_weights},
            "versions": _versions(),
        }
        if improved:
            best_state = model.state_dict() if chosen == "raw" else ema.module.state_dict()  # type: ignore[union-attr]
            save_checkpoint(best_path, {**ckpt, "state_dict": best_state, "weights": chosen,
                                        "metrics": {**ckpt["metrics"], **{f"val_{m}": v for m, v in scored[chosen].items()}},
                                        "raw_metrics": {f"val_{m}": v for m, v in val.items()}})
        training_state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict()}
        if ema is not None:
            training_state["ema_state_dict"] = ema.module.state_dict()
        save_checkpoint(last_path, {**ckpt, **training_state})
        _write_summary(summary_path, rows)
        logger.info(
            "epoch %d/%d  train_loss %s  val_acc %.4f%s  val_f1 %.4f  %.0f img/s  peak %s MB%s",
            epoch + 1, cfg.epochs, row["train_loss"], val["accuracy"],
            f"  ema_val_acc {ema_val['accuracy']:.4f}" if ema_val else "", scored[chosen]["macro_f1"],
            float(row["images_per_s"]), row["peak_rss_mb"] or "?", f"  (best: {chosen} weights)" if improved else "",
        )
        _barrier(dist)

    result = {
        "out_dir": str(out),
        "epochs": cfg.epochs,
        "best_metric": f"val_{cfg.eval_metric}",
        "best_value": best_value,
        "best_epoch": best_epoch,
        "best_weights": best_weights,
        "best_checkpoint": str(best_path),
        "last_checkpoint": str(last_path),
        "init": init,
        "rank": dist.rank,
    }
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return model, result


# ---------------------------------------------------------------- command line


def _parse_bool(s: str) -> bool:
    if s.strip().lower() in _BOOLS:
        return _BOOLS[s.strip().lower()]
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """``--config FILE.yaml`` gives defaults; every TrainConfig field is also a ``--flag``."""
    parser = argparse.ArgumentParser(prog="python -m fer_utils.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML file of TrainConfig fields")
    for f in dataclasses.fields(TrainConfig):
        kind = _parse_bool if f.type in ("bool", bool) else {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(f"--{f.name}", type=kind, default=None, help=f"(default: {f.default})")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        import yaml

        with open(paths.resolve(args.config)) as fh:
            values.update(yaml.safe_load(fh) or {})
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    return TrainConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import FERDataError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(argv)
        result = train(cfg)
    except (FERDataError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from last.pt", file=sys.stderr)
        return 130
    if result["rank"] == 0:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
