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
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import CLASS_NAMES, __version__, paths
from .checkpoint import FORMAT, load_checkpoint, save_checkpoint
from .distributed import barrier, init_distributed, sync_buffers
from .evaluate import compute_metrics, predict  # at import: a long run never reads the source tree again
from .files import atomic_write_json, atomic_write_text
from .model import ModelConfig, channels_last, create_model, pretrained_stats
from .monitor import ResourceMonitor, warn_if_contended
from .recipe import TrainConfig, config_from_args
from .targets import correct_labels, ferplus_targets, mix_batch, soft_targets, weighted_soft_ce
from .transforms import GrayAugment, Preprocess, pixel_stats
from .warm_start import continue_from, init_from_checkpoint

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
    m = compute_metrics(labels, probs)
    return {"loss": m["nll"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


# ---------------------------------------------------------------- the loop


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
    dist = init_distributed(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = paths.resolve(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = load_dataset(cfg.data or None)
    tr, va = data.split(cfg.train_split), data.split(cfg.val_split)
    corrections = None
    if cfg.label_corrections:
        tr, corrections = correct_labels(tr, paths.resolve(cfg.label_corrections))
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
        "label_corrections": corrections,
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
        raise ValueError(
            f"{last_path}: field 'train_config.init_checkpoint' is {started_from!r}, this run's is "
            f"{cfg.init_checkpoint!r}; use a new out_dir"
        )

    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    model, init = create_model(
        mcfg, pretrained=cfg.pretrained, weights_path=paths.resolve(cfg.weights_path) if cfg.weights_path else None
    )
    stats = pretrained_stats(model) if init.startswith(("imagenet", "file")) else None
    continued: dict[str, Any] | None = None  # where a continue_from run picked up its recipe's schedule
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
    mean, std = stats if stats else pixel_stats(x_tr)
    pre = Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=mean, std=std)
    augment = GrayAugment(pre, cfg.augment_config())
    weights = (
        torch.tensor(load_class_weights(paths.resolve(cfg.class_weights)), dtype=torch.float32)
        if cfg.class_weights
        else None
    )

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
    rewarm_from, rewarm_steps = (
        (continued["step"], int(cfg.rewarm_epochs * steps_per_epoch)) if continued else (None, 0)
    )
    first_step = continued["step"] if continued is not None and resume is None else 0
    for group in opt.param_groups:  # LambdaLR starting past step 0 reads the peak from here
        group.setdefault("initial_lr", group["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: lr_factor(s, total_steps, warmup_steps, cfg.min_lr_ratio, rewarm_from, rewarm_steps),
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
            raise ValueError(
                f"{last_path}: was trained on different data (field 'data.content_md5'); use a new out_dir"
            )
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
        logger.info(
            "resumed %s at epoch %d (best %s=%s at epoch %s)",
            last_path,
            start_epoch,
            cfg.eval_metric,
            best_value,
            best_epoch,
        )
    elif continued is not None:
        start_epoch = continued["epoch"]
        logger.info(
            "continuing %s at epoch %d of %d with fresh optimiser moments", cfg.continue_from, start_epoch, cfg.epochs
        )

    if dist.main:
        atomic_write_json(
            out / "config.json",
            {
                "train_config": asdict(cfg),
                "model_config": mcfg.to_dict(),
                "preprocess": pre.to_dict(),
                "init": init,
                "continued": continued,
                "data": data_info,
                "versions": _versions(),
                "world_size": dist.world,
            },
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
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and dist.main),
            mininterval=2.0,
            leave=False,
        )
        for step in bar:
            idx = shard[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x, t, y = make_batch(
                x_tr_t[idx], y_tr_t[idx], augment, cfg, gen, None if targets_tr is None else targets_tr[idx]
            )
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

        sync_buffers(model, dist)
        if not dist.main:
            barrier(dist)
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
        row: dict[str, Any] = {
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
        ckpt: dict[str, Any] = {
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
            "best": {
                "metric": f"val_{cfg.eval_metric}",
                "decreasing": cfg.eval_decreasing,
                "value": best_value,
                "epoch": best_epoch,
                "weights": best_weights,
            },
            "versions": _versions(),
        }
        if improved:
            best_state = model.state_dict() if chosen == "raw" or ema is None else ema.module.state_dict()
            save_checkpoint(
                best_path,
                {
                    **ckpt,
                    "state_dict": best_state,
                    "weights": chosen,
                    "metrics": {**ckpt["metrics"], **{f"val_{m}": v for m, v in scored[chosen].items()}},
                    "raw_metrics": {f"val_{m}": v for m, v in val.items()},
                },
            )
        training_state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict()}
        if ema is not None:
            training_state["ema_state_dict"] = ema.module.state_dict()
        save_checkpoint(last_path, {**ckpt, **training_state})
        _write_summary(summary_path, rows)
        logger.info(
            "epoch %d/%d  train_loss %s  val_acc %.4f%s  val_f1 %.4f  %.0f img/s  peak %s MB%s",
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            val["accuracy"],
            f"  ema_val_acc {ema_val['accuracy']:.4f}" if ema_val else "",
            scored[chosen]["macro_f1"],
            float(row["images_per_s"]),
            row["peak_rss_mb"] or "?",
            f"  (best: {chosen} weights)" if improved else "",
        )
        barrier(dist)

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


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import FERDataError

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


if __name__ == "__main__":
    sys.exit(main())
