"""Equal-time recipe probe: train a setting for a fixed wall-clock budget, score it on all of PublicTest.

Compares training settings before committing hours to one run. Each probe starts from the same
random initialisation and trains for ``--minutes`` of wall-clock time with one warm-up and cosine
schedule laid over that time (10% warm-up), so a slower setting gets fewer steps, as it would in
a run of fixed length. At the end both the raw weights and their moving average are scored on
every face of the validation split without test-time augmentation. Settings are the training
command's own flags (``python -m fer_utils.train --help``); class weights, ``limit_*``, ``device``,
``num_threads`` and starting weights (``pretrained``, ``weights_path``, ``init_checkpoint``) are not
applied: a probe is an unweighted CPU run from random weights. Every pass over Training it prints
images/s, the share of CPU time other processes took and the peak resident memory, so the same
script compares memory allocators (run it under each ``LD_PRELOAD``/``MALLOC_CONF``).

    .venv/bin/python benchmarks/recipe_probe.py --minutes 12 --name sgd -- \\
        --config configs/train.yaml --data data/fer2013.csv --optimizer sgd --lr 0.05

Prints one line per pass and a final JSON line; asserts nothing. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

from fer_utils import paths
from fer_utils.data import load_dataset
from fer_utils.model import GrayAugment, Preprocess, channels_last, create_model, pixel_stats
from fer_utils.train import config_from_args
from fer_utils.train.engine import _make_optimizer, _validate, make_batch, make_ema
from fer_utils.train.monitor import ResourceMonitor
from fer_utils.train.targets import ferplus_targets, weighted_soft_ce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget")
    parser.add_argument("--name", default="probe")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER, help="-- then flags of python -m fer_utils.train")
    args = parser.parse_args()
    cfg = config_from_args([f for f in args.train_flags if f != "--"])

    data = load_dataset(cfg.data or None)
    tr, va = data.split(cfg.train_split), data.split(cfg.val_split)
    targets = None
    if cfg.ferplus:
        from fer_utils.data import align_votes, read_ferplus

        votes = align_votes(read_ferplus(cfg.ferplus, n_rows=len(data)), tr)
        targets = ferplus_targets(tr.labels, votes, cfg.ferplus_weight, cfg.label_smoothing)

    torch.manual_seed(cfg.seed)
    model, _ = create_model(cfg.model_config())
    model = channels_last(model)
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    mean, std = pixel_stats(tr.images)
    pre = Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=mean, std=std)
    augment = GrayAugment(pre, cfg.augment_config())
    opt = _make_optimizer(model, cfg)
    peak_lrs = [g["lr"] for g in opt.param_groups]
    xt, yt = torch.from_numpy(tr.images), torch.from_numpy(tr.labels.astype(np.int64))
    steps_per_pass = len(yt) // cfg.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)
    monitor = ResourceMonitor()

    budget, step, t_start = args.minutes * 60, 0, time.perf_counter()
    t_pass, perm = t_start, torch.randperm(len(yt), generator=gen)
    while (elapsed := time.perf_counter() - t_start) < budget:
        frac = elapsed / budget  # the schedule follows the clock, so every probe ends annealed at the budget
        factor = (
            frac / 0.1
            if frac < 0.1
            else cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * (frac - 0.1) / 0.9))
        )
        for g, lr in zip(opt.param_groups, peak_lrs, strict=True):
            g["lr"] = lr * factor
        i = step % steps_per_pass
        idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        x, t, _ = make_batch(xt[idx], yt[idx], augment, cfg, gen, None if targets is None else targets[idx])
        loss = weighted_soft_ce(model(x.contiguous(memory_format=torch.channels_last)), t, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        if ema is not None:
            ema.update(model, step=step)
        if step % steps_per_pass == 0:
            now, usage = time.perf_counter(), monitor.lap()
            print(
                f"{args.name} pass {step // steps_per_pass}: "
                f"{steps_per_pass * cfg.batch_size / (now - t_pass):.1f} images/s, "
                f"other processes {'?' if usage.other_cpu_share is None else f'{usage.other_cpu_share:.1%}'} "
                "of the CPU, "
                f"peak {'?' if usage.peak_rss_mb is None else f'{usage.peak_rss_mb:.0f}'} MB, "
                f"loss {loss.item():.3f}, {now - t_start:.0f} s",
                flush=True,
            )
            t_pass, perm = now, torch.randperm(len(yt), generator=gen)

    train_seconds = time.perf_counter() - t_start
    scores = {"raw": _validate(model, va.images, va.labels, pre, torch.device("cpu"), 256)}
    if ema is not None:
        scores["ema"] = _validate(ema.module, va.images, va.labels, pre, torch.device("cpu"), 256)
    usage = monitor.lap()
    print(
        json.dumps(
            {
                "name": args.name,
                "minutes": round(train_seconds / 60, 1),
                "steps": step,
                "epochs": round(step * cfg.batch_size / len(yt), 2),
                "images_per_s": round(step * cfg.batch_size / train_seconds, 1),
                **{f"{k}_val_accuracy": round(v["accuracy"], 4) for k, v in scores.items()},
                **{f"{k}_val_macro_f1": round(v["macro_f1"], 4) for k, v in scores.items()},
                "peak_rss_mb_last": round(usage.peak_rss_mb or 0),
                "malloc": os.environ.get("LD_PRELOAD", "glibc"),
                "malloc_settings": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
                "data": str(paths.resolve(cfg.data)) if cfg.data else "",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
