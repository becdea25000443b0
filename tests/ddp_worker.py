"""Run under torchrun by tests/test_train.py: trains briefly, then saves this rank's weights."""

import sys
from pathlib import Path

import torch

from fer_utils.train import TrainConfig, fit

if __name__ == "__main__":
    data, out = sys.argv[1], Path(sys.argv[2])
    cfg = TrainConfig(
        data=data,
        out_dir=str(out / "run"),
        arch="resnet10t",
        epochs=1,
        batch_size=8,
        limit_train=64,
        limit_val=16,
        num_threads=1,
        progress=False,
        drop_path_rate=0.0,
    )
    model, result = fit(cfg)
    torch.save(model.state_dict(), out / f"rank{result['rank']}.pt")
