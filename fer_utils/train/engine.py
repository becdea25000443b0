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

import csv
import io
import json
import logging
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fer_utils import paths
from fer_utils.constants import __version__
from fer_utils.data.ferplus import FERPLUS_CLASS_NAMES
from fer_utils.evaluate.metrics import compute_metrics  # at import: a long run never reads the source tree again
from fer_utils.evaluate.predictions import predict
from fer_utils.files import atomic_write_json, atomic_write_text
from fer_utils.model.averaging import keep_epoch_weights
from fer_utils.model.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from fer_utils.model.network import ModelConfig, channels_last, create_model, pretrained_stats
from fer_utils.model.transforms import GrayAugment, Preprocess, pixel_stats
from fer_utils.train.distributed import Dist, barrier, init_distributed, sync_buffers
from fer_utils.train.monitor import ResourceMonitor, Usage, warn_if_contended
from fer_utils.train.recipe import TrainConfig, config_from_args
from fer_utils.train.targets import (
    correct_labels,
    ferplus_distribution_targets,
    ferplus_targets,
    mix_batch,
    soft_targets,
    weighted_soft_ce,
)
from fer_utils.train.warm_start import continue_from, init_from_checkpoint

if TYPE_CHECKING:
    from timm.utils import ModelEmaV3

logger = logging.getLogger(__name__)


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

# ---------------------------------------------------------------- pieces


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
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
    step: int,
    total_steps: int,
    warmup_steps: int,
    min_ratio: float,
    rewarm_from: int | None = None,
    rewarm_steps: int = 0,
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


def make_ema(model: nn.Module, decay: float) -> ModelEmaV3:
    """timm's moving average of ``model``'s weights and buffers, its decay warming up with the step count.

    ``ema.update(model, step=global_step)`` after each optimiser step; the average is ``ema.module``.
    """
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=3 / 4)


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

    return {
        "fer_utils": __version__,
        "torch": str(torch.__version__),
        "timm": str(timm.__version__),
        "python": sys.version.split()[0],
    }


# ---------------------------------------------------------------- evaluation during training


@torch.no_grad()
def _validate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, pre: Preprocess, device: torch.device, batch: int
) -> dict[str, float]:
    probs = predict(model, images, pre, tta="none", batch_size=batch, device=device)
    m = compute_metrics(labels, probs, FERPLUS_CLASS_NAMES[: probs.shape[1]])  # FER2013's seven, or FER+'s eight
    return {"loss": m["nll"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


# ---------------------------------------------------------------- setup


@dataclass
class TrainingData:
    """The faces a run trains and scores on, after corrections and subsetting."""

    x_train: np.ndarray  # (N, 48, 48) uint8
    y_train: np.ndarray  # (N,) int64
    x_val: np.ndarray
    y_val: np.ndarray
    targets: torch.Tensor | None  # (N, NUM_CLASSES) FER+ targets, or None for the smoothed labels
    content_md5: str
    info: dict[str, Any]  # recorded in config.json and every checkpoint


@dataclass
class Run:
    """Everything :func:`setup` builds for a run; :func:`train_one_epoch` and
    :func:`evaluate_and_checkpoint` advance it one epoch at a time."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    dist: Dist
    data: TrainingData
    pre: Preprocess
    augment: GrayAugment
    class_weights: torch.Tensor | None
    model: nn.Module  # this rank's model (raw weights)
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    ema: ModelEmaV3 | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype
    steps_per_epoch: int
    per_rank: int
    init: str
    continued: dict[str, Any] | None  # where a continue_from run picked up its recipe's schedule
    start_epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_weights: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    epoch_started: float = 0.0  # perf_counter() at the start of the epoch in progress

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"

    @property
    def summary_path(self) -> Path:
        return self.out / "summary.csv"

    @property
    def use_amp(self) -> bool:
        return self.device.type == "cuda"


def load_training_data(cfg: TrainConfig) -> TrainingData:
    """The run's Training and validation faces: label corrections applied, subsets drawn, FER+ targets built.

    With ``label_set: ferplus`` the targets are the Training faces' FER+ vote distributions (faces with
    no usable votes are left out) and the validation labels are the FER+ majority labels (faces without
    a majority are left out), so ``best.pt`` is chosen on FER+ majority accuracy.
    """
    from fer_utils.data import align_votes, load_dataset, read_ferplus

    data = load_dataset(cfg.data or None)
    tr, va = data.split(cfg.train_split), data.split(cfg.val_split)
    corrections = None
    if cfg.label_corrections:
        tr, corrections = correct_labels(tr, paths.resolve(cfg.label_corrections))
    i_tr, i_va = _subset(len(tr), cfg.limit_train, cfg.seed), _subset(len(va), cfg.limit_val, cfg.seed + 1)
    if cfg.holdout_folds:  # cross-fitting: this run never sees its held-out fold
        i_tr = i_tr[fold_assignment(len(tr), cfg.holdout_folds)[i_tr] != cfg.holdout_fold]
    y_tr, x_va, y_va = tr.labels[i_tr], va.images[i_va], va.labels[i_va]
    targets = None
    if cfg.ferplus:
        votes_all = read_ferplus(cfg.ferplus, n_rows=len(data))
        votes = align_votes(votes_all, tr).iloc[i_tr]
        if cfg.label_set == "ferplus":
            targets, usable = ferplus_distribution_targets(votes, cfg.label_smoothing)
            i_tr, targets = i_tr[usable], targets[torch.from_numpy(usable)]
            y_tr = targets.argmax(1).numpy().astype(np.int64)
            x_va, y_va = _ferplus_majority_faces(align_votes(votes_all, va).iloc[i_va], x_va)
        else:
            targets = ferplus_targets(y_tr, votes, cfg.ferplus_weight, cfg.label_smoothing)
    info = {
        "source": data.source.name,
        "content_md5": data.content_md5,
        "canonical": bool(data.is_canonical),
        "synthetic": bool(data.is_synthetic),
        "train_split": cfg.train_split,
        "val_split": cfg.val_split,
        "label_set": cfg.label_set,
        "n_train": int(len(y_tr)),
        "n_val": int(len(y_va)),
        "label_corrections": corrections,
        "holdout": {"folds": cfg.holdout_folds, "fold": cfg.holdout_fold} if cfg.holdout_folds else None,
    }
    x_tr = np.ascontiguousarray(tr.images[i_tr])
    return TrainingData(x_tr, y_tr.astype(np.int64), x_va, y_va, targets, data.content_md5, info)


FOLD_SEED = 20131
"""Seed of the fold assignment: the same folds for every recipe, so cross-fitted runs can be compared."""


def fold_assignment(n: int, folds: int) -> np.ndarray:
    """(n,) int64: the fold (0..folds-1) of each face of a split, balanced and fixed by :data:`FOLD_SEED`."""
    order = np.random.default_rng(FOLD_SEED).permutation(n)
    assignment = np.empty(n, dtype=np.int64)
    assignment[order] = np.arange(n) % folds
    return assignment


def _ferplus_majority_faces(votes: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The faces with a FERPlus majority label (all eight classes), and those labels."""
    from fer_utils.data import ferplus_majority_labels

    labels = ferplus_majority_labels(votes)
    kept = labels >= 0
    return images[kept], labels[kept]


def _check_start(cfg: TrainConfig, out: Path, resume: dict[str, Any] | None) -> None:
    """Refuse starting-point settings that contradict each other or the run being resumed."""
    if cfg.init_checkpoint and (cfg.pretrained or cfg.weights_path):
        raise ValueError("init_checkpoint sets the starting weights: leave pretrained and weights_path unset")
    if cfg.init_checkpoint and cfg.continue_from:
        raise ValueError("continue_from carries on a run of this recipe, init_checkpoint starts a new one: give one")
    if cfg.init_checkpoint and paths.resolve(cfg.init_checkpoint).resolve().parent == out.resolve():
        raise ValueError(f"{cfg.init_checkpoint}: init_checkpoint is in this run's out_dir; give the new run its own")
    started_from = resume.get("train_config", {}).get("init_checkpoint", "") if resume is not None else ""
    if resume is not None and started_from != cfg.init_checkpoint:
        raise ValueError(
            f"{out / 'last.pt'}: field 'train_config.init_checkpoint' is {started_from!r}, this run's is "
            f"{cfg.init_checkpoint!r}; use a new out_dir"
        )


def _initial_model(
    cfg: TrainConfig, data: TrainingData, resume: dict[str, Any] | None
) -> tuple[nn.Module, str, Preprocess, dict[str, Any] | None]:
    """The network with its starting weights, how they were obtained, its preprocessing, and the continued run."""
    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    model, init = create_model(
        mcfg, pretrained=cfg.pretrained, weights_path=paths.resolve(cfg.weights_path) if cfg.weights_path else None
    )
    stats = pretrained_stats(model) if init.startswith(("imagenet", "file")) else None
    continued: dict[str, Any] | None = None
    if resume is not None:  # the normalisation the run was trained with
        stats = (float(resume["preprocess"]["mean"]), float(resume["preprocess"]["std"]))
        continued = resume.get("continued")
    elif cfg.init_checkpoint:
        init, stats = init_from_checkpoint(model, paths.resolve(cfg.init_checkpoint), cfg, mcfg)
    elif cfg.continue_from:
        c = continue_from(model, paths.resolve(cfg.continue_from), cfg, mcfg, data.content_md5)
        stats = c.pop("normalisation")
        continued = c
        init = f"continued: {cfg.continue_from} (epoch {c['epoch']} of this recipe)"
    mean, std = stats if stats else pixel_stats(data.x_train)
    return model, init, Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=mean, std=std), continued


def _schedule(
    cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int, continued: dict[str, Any] | None, resuming: bool
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up and cosine decay over the whole run; a continued run re-warms from where it picks up."""
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    if continued is not None:
        continued["step"] = continued["epoch"] * steps_per_epoch
    rewarm_from, rewarm_steps = (
        (continued["step"], int(cfg.rewarm_epochs * steps_per_epoch)) if continued else (None, 0)
    )
    first_step = continued["step"] if continued is not None and not resuming else 0
    for group in opt.param_groups:  # LambdaLR starting past step 0 reads the peak from here
        group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: lr_factor(s, total_steps, warmup_steps, cfg.min_lr_ratio, rewarm_from, rewarm_steps),
        last_epoch=first_step - 1,
    )


def _restore(run: Run, ck: dict[str, Any]) -> None:
    """Put a run back where its ``last.pt`` left it: weights, optimiser, schedule, average, best, summary."""
    if ck["data"].get("content_md5") != run.data.content_md5:
        raise ValueError(
            f"{run.last_path}: was trained on different data (field 'data.content_md5'); use a new out_dir"
        )
    if ModelConfig.from_dict(ck["model_config"]) != run.cfg.model_config():
        raise ValueError(f"{run.last_path}: model_config differs from this run's; use a new out_dir")
    run.model.load_state_dict(ck["state_dict"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    if "scaler" in ck:
        run.scaler.load_state_dict(ck["scaler"])
    if run.ema is not None and "ema_state_dict" in ck:
        run.ema.module.load_state_dict(ck["ema_state_dict"])
    elif run.ema is not None:  # a run from before weight averaging: the average starts here
        run.ema = make_ema(run.model, run.cfg.ema_decay)
    run.start_epoch = int(ck["epoch"])
    run.best_value, run.best_epoch = ck["best"]["value"], ck["best"]["epoch"]
    run.best_weights = ck["best"].get("weights", "raw")
    run.init = ck.get("init", run.init)
    run.rows = [r for r in _read_summary(run.summary_path) if int(r["epoch"]) <= run.start_epoch]
    logger.info(
        "resumed %s at epoch %d (best %s=%s at epoch %s)",
        run.last_path,
        run.start_epoch,
        run.cfg.eval_metric,
        run.best_value,
        run.best_epoch,
    )


def setup(cfg: TrainConfig) -> Run:
    """Build a run: data, model and starting weights, optimiser and schedule; resumed from ``last.pt`` when
    ``out_dir`` holds one. Rank 0 writes ``config.json``."""
    from fer_utils.data import load_class_weights

    device = _pick_device(cfg.device)
    dist = init_distributed(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = paths.resolve(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_training_data(cfg)
    resume = load_checkpoint(out / "last.pt") if cfg.resume and (out / "last.pt").is_file() else None
    _check_start(cfg, out, resume)
    model, init, pre, continued = _initial_model(cfg, data, resume)
    augment = GrayAugment(pre, cfg.augment_config())
    weights = (
        torch.tensor(load_class_weights(paths.resolve(cfg.class_weights)), dtype=torch.float32)
        if cfg.class_weights
        else None
    )
    model = channels_last(model.to(device))
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 and dist.main else None  # only rank 0 scores it
    opt = _make_optimizer(model, cfg)
    per_rank = len(data.y_train) // dist.world
    drop_last = per_rank >= 2 * cfg.batch_size
    steps_per_epoch = per_rank // cfg.batch_size if drop_last else math.ceil(per_rank / cfg.batch_size)
    sched = _schedule(cfg, opt, steps_per_epoch, continued, resume is not None)
    amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp_dtype == torch.float16)
    run = Run(
        cfg=cfg,
        out=out,
        device=device,
        dist=dist,
        data=data,
        pre=pre,
        augment=augment,
        class_weights=weights,
        model=model,
        net=model,
        ema=ema,
        opt=opt,
        sched=sched,
        scaler=scaler,
        amp_dtype=amp_dtype,
        steps_per_epoch=steps_per_epoch,
        per_rank=per_rank,
        init=init,
        continued=continued,
    )
    if resume is not None:
        _restore(run, resume)
    elif continued is not None:
        run.start_epoch = continued["epoch"]
        logger.info(
            "continuing %s at epoch %d of %d with fresh optimiser moments",
            cfg.continue_from,
            run.start_epoch,
            cfg.epochs,
        )
    if dist.main:
        atomic_write_json(out / "config.json", _run_record(run))
    if dist.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        run.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return run


def _run_record(run: Run) -> dict[str, Any]:
    """``config.json``: the effective configuration and where the run started from."""
    return {
        "train_config": asdict(run.cfg),
        "model_config": run.cfg.model_config().to_dict(),
        "preprocess": run.pre.to_dict(),
        "init": run.init,
        "continued": run.continued,
        "data": run.data.info,
        "versions": _versions(),
        "world_size": run.dist.world,
    }


# ---------------------------------------------------------------- one epoch


@dataclass
class EpochStats:
    """What one pass over Training measured on this rank."""

    loss_sum: float
    correct: int
    seen: int
    seconds: float


def train_one_epoch(run: Run, epoch: int) -> EpochStats:
    """One pass over this rank's shard of the epoch's permutation of Training (0-based ``epoch``).

    Shuffling, augmentation and dropout are seeded from ``(seed, epoch, rank)``, so a resumed run
    repeats the interrupted one exactly on CPU.
    """
    from tqdm.auto import tqdm

    cfg, dist, device = run.cfg, run.dist, run.device
    run.epoch_started = time.perf_counter()
    x_all, y_all = torch.from_numpy(run.data.x_train), torch.from_numpy(run.data.y_train)  # no copies
    t0 = time.perf_counter()
    run.net.train()
    base = cfg.seed * 1_000_003
    perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(base + epoch))
    shard = perm[dist.rank :: dist.world][: run.per_rank]
    gen = torch.Generator().manual_seed(base + 7919 * (epoch + 1) + dist.rank)
    torch.manual_seed(base + 104729 * (epoch + 1) + dist.rank)  # dropout / drop-path
    weights = run.class_weights.to(device) if run.class_weights is not None else None
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(run.steps_per_epoch),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and dist.main),
        mininterval=2.0,
        leave=False,
    )
    for step in bar:
        idx = shard[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        targets = None if run.data.targets is None else run.data.targets[idx]
        x, t, y = make_batch(x_all[idx], y_all[idx], run.augment, cfg, gen, targets)
        loss, logits = _step(run, x, t, weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}; lower lr")
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y.to(logits.device)).sum())
        seen += len(y)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    bar.close()
    return EpochStats(loss_sum, correct, seen, time.perf_counter() - t0)


def _step(
    run: Run, x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; returns the loss and the logits (no step when the loss is not finite)."""
    device = run.device
    x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    t = t.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=run.amp_dtype, enabled=run.use_amp):
        logits = run.net(x)
    loss = weighted_soft_ce(logits, t, weights)
    if not torch.isfinite(loss):
        return loss, logits
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.grad_clip:
        run.scaler.unscale_(run.opt)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    if run.ema is not None:
        run.ema.update(run.model, step=run.sched.last_epoch)
    return loss, logits


# ---------------------------------------------------------------- evaluate and checkpoint


def evaluate_and_checkpoint(run: Run, epoch: int, stats: EpochStats, monitor: ResourceMonitor) -> dict[str, Any]:
    """Score the raw and averaged weights on the validation split, keep the best, write ``last.pt``,
    ``best.pt`` when it improved, and the epoch's ``summary.csv`` row (rank 0 only). Returns the row."""
    cfg = run.cfg
    batch = max(256, cfg.batch_size)
    scored = {"raw": _validate(run.model, run.data.x_val, run.data.y_val, run.pre, run.device, batch)}
    if run.ema is not None:
        scored["ema"] = _validate(run.ema.module, run.data.x_val, run.data.y_val, run.pre, run.device, batch)
    better = min if cfg.eval_decreasing else max
    chosen = better(scored, key=lambda k: scored[k][cfg.eval_metric])  # raw on a tie
    value = scored[chosen][cfg.eval_metric]
    best = run.best_value
    improved = best is None or (value < best if cfg.eval_decreasing else value > best)
    if improved:
        run.best_value, run.best_epoch, run.best_weights = value, epoch + 1, chosen
    usage = monitor.lap()
    if run.dist.world == 1:  # under torchrun the other ranks are "other processes" too
        warn_if_contended(usage)
    row = _summary_row(run, epoch, stats, scored, usage)
    run.rows.append(row)
    ckpt = _checkpoint(run, epoch, scored)
    if improved:
        best_state = run.model.state_dict() if chosen == "raw" or run.ema is None else run.ema.module.state_dict()
        save_checkpoint(
            run.best_path,
            {
                **ckpt,
                "state_dict": best_state,
                "weights": chosen,
                "metrics": {**ckpt["metrics"], **{f"val_{m}": v for m, v in scored[chosen].items()}},
                "raw_metrics": {f"val_{m}": v for m, v in scored["raw"].items()},
            },
        )
    if cfg.keep_last_epochs and epoch + 1 > cfg.epochs - cfg.keep_last_epochs:  # before last.pt: never skipped
        keep_epoch_weights(run.out, epoch + 1, run.model, None if run.ema is None else run.ema.module)
    save_checkpoint(run.last_path, {**ckpt, **_training_state(run)})
    _write_summary(run.summary_path, run.rows)
    _log_epoch(run, epoch, row, scored, chosen, improved)
    return row


def _summary_row(
    run: Run, epoch: int, stats: EpochStats, scored: dict[str, dict[str, float]], usage: Usage
) -> dict[str, Any]:
    val, ema_val = scored["raw"], scored.get("ema")
    seen = max(stats.seen, 1)
    return {
        "epoch": epoch + 1,
        "lr": f"{run.sched.get_last_lr()[0]:.6g}",
        "train_loss": f"{stats.loss_sum / seen:.5f}",
        "train_accuracy": f"{stats.correct / seen:.5f}",
        "val_loss": f"{val['loss']:.5f}",
        "val_accuracy": f"{val['accuracy']:.5f}",
        "val_macro_f1": f"{val['macro_f1']:.5f}",
        **({f"ema_val_{k}": f"{ema_val[k]:.5f}" for k in ("loss", "accuracy", "macro_f1")} if ema_val else {}),
        "epoch_seconds": f"{time.perf_counter() - run.epoch_started:.1f}",
        "images_per_s": f"{stats.seen * run.dist.world / stats.seconds:.1f}",
        "other_cpu_share": "" if usage.other_cpu_share is None else f"{usage.other_cpu_share:.3f}",
        "peak_rss_mb": "" if usage.peak_rss_mb is None else f"{usage.peak_rss_mb:.0f}",
    }


def _checkpoint(run: Run, epoch: int, scored: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The self-describing part of every checkpoint of this epoch (the raw weights)."""
    cfg = run.cfg
    return {
        "format": FORMAT,
        "model_config": cfg.model_config().to_dict(),
        "state_dict": run.model.state_dict(),
        "class_names": list(cfg.class_names()),
        "preprocess": run.pre.to_dict(),
        "tta": cfg.tta,
        "train_config": asdict(cfg),
        "init": run.init,
        "continued": run.continued,
        "data": run.data.info,
        "epoch": epoch + 1,
        "weights": "raw",
        "metrics": {f"{'' if k == 'raw' else 'ema_'}val_{m}": v for k, r in scored.items() for m, v in r.items()},
        "best": {
            "metric": f"val_{cfg.eval_metric}",
            "decreasing": cfg.eval_decreasing,
            "value": run.best_value,
            "epoch": run.best_epoch,
            "weights": run.best_weights,
        },
        "versions": _versions(),
    }


def _training_state(run: Run) -> dict[str, Any]:
    """What ``last.pt`` adds to resume exactly: optimiser, schedule, loss scaler, moving average."""
    state = {"optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(), "scaler": run.scaler.state_dict()}
    if run.ema is not None:
        state["ema_state_dict"] = run.ema.module.state_dict()
    return state


def _log_epoch(
    run: Run, epoch: int, row: dict[str, Any], scored: dict[str, dict[str, float]], chosen: str, improved: bool
) -> None:
    ema_val = scored.get("ema")
    logger.info(
        "epoch %d/%d  train_loss %s  val_acc %.4f%s  val_f1 %.4f  %.0f img/s  peak %s MB%s",
        epoch + 1,
        run.cfg.epochs,
        row["train_loss"],
        scored["raw"]["accuracy"],
        f"  ema_val_acc {ema_val['accuracy']:.4f}" if ema_val else "",
        scored[chosen]["macro_f1"],
        float(row["images_per_s"]),
        row["peak_rss_mb"] or "?",
        f"  (best: {chosen} weights)" if improved else "",
    )


# ---------------------------------------------------------------- the loop


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a run; returns a summary with the best epoch and metric.

    Raises:
        fer_utils.data.FERDataError: bad data or a missing split.
        ValueError: a resumed run whose data, architecture or ``init_checkpoint`` differ from ``cfg``; an
            ``init_checkpoint`` that does not describe this run's network and input.
        fer_utils.model.checkpoint.CheckpointError: a missing or unreadable ``init_checkpoint``.
    """
    return fit(cfg)[1]


def fit(cfg: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Like :func:`train`, but also returns this rank's model after the last epoch (the raw weights).

    :func:`setup`, then per epoch :func:`train_one_epoch` and :func:`evaluate_and_checkpoint`.

    Raises:
        fer_utils.data.FERDataError: bad data or a missing split.
        ValueError: a resumed run whose data, architecture or ``init_checkpoint`` differ from ``cfg``; an
            ``init_checkpoint`` that does not describe this run's network and input; a ``continue_from``
            checkpoint of another recipe.
        fer_utils.model.checkpoint.CheckpointError: a missing or unreadable ``init_checkpoint`` or ``continue_from``.
    """
    run = setup(cfg)
    monitor = ResourceMonitor()
    for epoch in range(run.start_epoch, cfg.epochs):
        stats = train_one_epoch(run, epoch)
        sync_buffers(run.model, run.dist)
        if run.dist.main:
            evaluate_and_checkpoint(run, epoch, stats, monitor)
        barrier(run.dist)
    result = {
        "out_dir": str(run.out),
        "epochs": cfg.epochs,
        "best_metric": f"val_{cfg.eval_metric}",
        "best_value": run.best_value,
        "best_epoch": run.best_epoch,
        "best_weights": run.best_weights,
        "best_checkpoint": str(run.best_path),
        "last_checkpoint": str(run.last_path),
        "init": run.init,
        "rank": run.dist.rank,
    }
    if run.dist.world > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()
    return run.model, result


# ---------------------------------------------------------------- command line


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from fer_utils.data import FERDataError
    from fer_utils.model.checkpoint import CheckpointError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` (or a job scheduler) stops a run as Ctrl-C does
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
