"""Short recipe probe: train a few hundred steps, print PublicTest accuracy as it goes.

Compares training settings before committing hours to a run. Every probe sees the
same batches (one fixed shuffle of Training) and is scored on the same fixed sample
of PublicTest faces, without test-time augmentation. Settings are TrainConfig fields
given as key=value; the learning-rate schedule is the one a full run of ``epochs``
epochs would have, so a probe shows the start of that run.

    .venv/bin/python benchmarks/recipe_probe.py DATA [steps=150] [every=50] [n_val=1000] [name=...] [FIELD=VALUE ...]

e.g. ``benchmarks/recipe_probe.py data/fer2013.csv epochs=7 warmup_epochs=0.3 zero_init_last=1``.
Prints one line per ``every`` steps; asserts nothing.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import torch
from torch import nn

from fer_utils.data import load_dataset
from fer_utils.model import channels_last, create_model
from fer_utils.train import TrainConfig, _make_optimizer, lr_factor, make_batch, weighted_soft_ce
from fer_utils.transforms import GrayAugment, Preprocess, pixel_stats


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    if not argv or "=" in argv[0]:
        raise SystemExit(__doc__)
    return argv[0], dict(a.split("=", 1) for a in argv[1:])


def main() -> None:
    data_path, args = parse(sys.argv[1:])
    steps, every = int(args.pop("steps", 150)), int(args.pop("every", 50))
    n_val, name = int(args.pop("n_val", 1000)), args.pop("name", "probe")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    kw = {}
    for k, v in args.items():
        default = fields[k].default
        kw[k] = v.lower() in ("1", "true") if isinstance(default, bool) else type(default)(v)
    cfg = TrainConfig(**kw)

    data = load_dataset(data_path)
    tr, va = data.split(cfg.train_split), data.split(cfg.val_split)
    vi = np.random.default_rng(1).choice(len(va.labels), min(n_val, len(va.labels)), replace=False)
    xv, yv = va.images[vi], va.labels[vi]

    torch.manual_seed(cfg.seed)
    model, _ = create_model(cfg.model_config())
    model = channels_last(model)
    mean, std = pixel_stats(tr.images)
    pre = Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=mean, std=std)
    augment = GrayAugment(pre, cfg.augment_config())
    opt = _make_optimizer(model, cfg)
    per_epoch = len(tr.labels) // cfg.batch_size
    total, warmup = cfg.epochs * per_epoch, int(cfg.warmup_epochs * per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, cfg.min_lr_ratio))
    xt, yt = torch.from_numpy(tr.images), torch.from_numpy(tr.labels.astype(np.int64))
    order = torch.randperm(len(yt), generator=torch.Generator().manual_seed(0)).repeat(steps * cfg.batch_size // len(yt) + 1)
    gen = torch.Generator().manual_seed(1)

    @torch.no_grad()
    def accuracy() -> float:
        model.eval()
        correct = 0
        for i in range(0, len(yv), 250):
            x = pre(xv[i : i + 250]).contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1).numpy() == yv[i : i + 250]).sum())
        model.train()
        return correct / len(yv)

    t0, loss_sum, right, seen = time.time(), 0.0, 0, 0
    for s in range(steps):
        idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        x, t, y = make_batch(xt[idx], yt[idx], augment, cfg, gen)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = weighted_soft_ce(logits, t, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        loss_sum, right, seen = loss_sum + loss.item() * len(y), right + int((logits.argmax(1) == y).sum()), seen + len(y)
        if (s + 1) % every == 0:
            print(f"{name} step {s + 1} train_loss {loss_sum / seen:.3f} train_acc {right / seen:.3f} "
                  f"lr {sched.get_last_lr()[0]:.2e} publictest_acc {accuracy():.3f} {time.time() - t0:.0f}s", flush=True)
            loss_sum, right, seen = 0.0, 0, 0


if __name__ == "__main__":
    main()
