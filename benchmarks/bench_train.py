"""Training throughput at 48x48: the model step alone vs the full pipeline.

The model step is forward, backward and optimiser step on a ready tensor. The full
pipeline adds what the engine does per batch: indexing the uint8 faces, batched
augmentation, soft targets (and mixup/cutmix if configured). Prints images/s for both
and their ratio; asserts nothing.

    .venv/bin/python benchmarks/bench_train.py [--arch efficientnet_b3] [--batch-size 64] [--steps 10]

Run it with the allocator settings ``make train`` uses to see the numbers training gets:
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 .venv/bin/python benchmarks/bench_train.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fer_utils.model import GrayAugment, Preprocess, channels_last, create_model
from fer_utils.train import TrainConfig
from fer_utils.train.engine import _make_optimizer, make_batch
from fer_utils.train.targets import weighted_soft_ce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="efficientnet_b3")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (after 3 warm-up steps)")
    parser.add_argument("--img-size", type=int, default=48)
    args = parser.parse_args()

    cfg = TrainConfig(arch=args.arch, batch_size=args.batch_size, img_size=args.img_size)
    model, _ = create_model(cfg.model_config())
    model = channels_last(model).train()
    opt = _make_optimizer(model, cfg)
    pre = Preprocess(img_size=cfg.img_size, crop_size=cfg.crop_size, mean=0.5, std=0.25)
    augment = GrayAugment(pre, cfg.augment_config())
    rng = np.random.default_rng(0)
    faces = torch.from_numpy(rng.integers(0, 256, (4096, 48, 48), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 7, 4096))
    gen = torch.Generator().manual_seed(0)
    fixed = make_batch(faces[: args.batch_size], labels[: args.batch_size], augment, cfg, gen)

    def step(x: torch.Tensor, t: torch.Tensor) -> None:
        loss = weighted_soft_ce(model(x.contiguous(memory_format=torch.channels_last)), t, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def model_only(i: int) -> None:
        step(fixed[0], fixed[1])

    def full(i: int) -> None:
        idx = torch.randint(len(faces), (args.batch_size,), generator=gen)
        x, t, _ = make_batch(faces[idx], labels[idx], augment, cfg, gen)
        step(x, t)

    def rate(fn) -> float:
        for i in range(3):
            fn(i)
        t0 = time.perf_counter()
        for i in range(args.steps):
            fn(i)
        return args.steps * args.batch_size / (time.perf_counter() - t0)

    # Interleave to spread any drift in machine load over both measurements.
    r_model, r_full = [], []
    for _ in range(2):
        r_model.append(rate(model_only))
        r_full.append(rate(full))
    m, f = max(r_model), max(r_full)
    t0 = time.perf_counter()
    for _ in range(20):
        make_batch(faces[: args.batch_size], labels[: args.batch_size], augment, cfg, gen)
    aug_rate = 20 * args.batch_size / (time.perf_counter() - t0)
    print(f"arch={args.arch} img_size={args.img_size} batch={args.batch_size} threads={torch.get_num_threads()}")
    print(f"model step alone:        {m:8.1f} images/s")
    print(f"full pipeline:           {f:8.1f} images/s  ({100 * f / m:.0f}% of the model step)")
    print(f"batch preparation alone: {aug_rate:8.0f} images/s")


if __name__ == "__main__":
    main()
