"""Weight averaging over a run's last epochs (SWA): the kept epochs, the average, and BatchNorm recomputed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fer_utils.model import Preprocess, average_weights, load_model, update_batchnorm
from fer_utils.model.averaging import epoch_file
from fer_utils.train import TrainConfig, fit


def save_state(path, epoch, **tensors):
    state = {"epoch": epoch, "state_dict": {k: v for k, v in tensors.items()}}
    torch.save(state, path)
    return path


def test_average_of_two_epochs_is_their_element_wise_mean(tmp_path):
    a = save_state(tmp_path / "a.pt", 1, w=torch.tensor([1.0, 2.0]), n=torch.tensor(3))
    b = save_state(tmp_path / "b.pt", 2, w=torch.tensor([3.0, 6.0]), n=torch.tensor(5))
    avg, epochs = average_weights([a, b])
    assert epochs == [1, 2]
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0]))
    assert avg["n"].item() == 5  # integer buffers (BatchNorm's batch count) come from the last file


def test_average_refuses_files_of_different_networks_naming_the_file(tmp_path):
    a = save_state(tmp_path / "a.pt", 1, w=torch.zeros(2))
    b = save_state(tmp_path / "b.pt", 2, v=torch.zeros(2))
    with pytest.raises(ValueError, match="b.pt"):
        average_weights([a, b])


def test_raw_average_refuses_a_file_that_holds_the_moving_average(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"epoch": 3, "weights": "ema", "state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match="best.pt: field 'weights' is 'ema'"):
        average_weights([path], weights="raw")


def test_average_of_moving_averages_needs_them_in_every_file(tmp_path):
    a = save_state(tmp_path / "a.pt", 1, w=torch.zeros(2))
    with pytest.raises(ValueError, match="a.pt: field 'ema_state_dict' is missing"):
        average_weights([a], weights="ema")


def test_batchnorm_statistics_are_recomputed_over_all_the_faces_each_face_weighted_alike():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3), nn.Dropout(0.5))
    images = np.random.default_rng(0).integers(0, 256, size=(50, 48, 48), dtype=np.uint8)
    pre = Preprocess(img_size=48, crop_size=44, mean=0.5, std=0.25)
    update_batchnorm(model, images, pre, batch_size=16)  # batches of 16, 16, 16 and 2
    with torch.no_grad():
        features = model[0](pre(images))
    bn = model[1]
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1  # restored after the cumulative pass
    assert not model.training


@pytest.fixture(scope="module")
def run_keeping_two_epochs(tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("swa")
    cfg = TrainConfig(
        data=str(tiny_csv),
        out_dir=str(out),
        arch="test_efficientnet",
        zero_init_last=False,
        epochs=3,
        batch_size=16,
        num_threads=1,
        progress=False,
        keep_last_epochs=2,
    )
    fit(cfg)
    return out


def test_a_run_keeps_the_weights_of_its_last_epochs_only(run_keeping_two_epochs):
    out = run_keeping_two_epochs
    assert not epoch_file(out, 1).exists()
    for epoch in (2, 3):
        kept = torch.load(epoch_file(out, epoch), weights_only=True)
        assert kept["epoch"] == epoch
        assert set(kept) == {"epoch", "weights", "state_dict", "ema_state_dict"}


def test_averaging_command_writes_a_loadable_checkpoint_that_records_its_epochs(run_keeping_two_epochs, tiny_csv):
    out = run_keeping_two_epochs
    dst = out / "swa.pt"
    files = [str(epoch_file(out, e)) for e in (2, 3)]
    cmd = [sys.executable, "-m", "fer_utils.model", "average", *files, "--template", str(out / "last.pt")]
    cmd += ["--data", str(tiny_csv), "--out", str(dst), "--weights", "ema"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["averaged"] == 2
    model, meta = load_model(dst)
    assert meta["class_names"] == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    ck = torch.load(dst, weights_only=True)
    assert ck["averaged"]["epochs"] == [2, 3]
    assert ck["averaged"]["weights"] == "ema"
    assert "metrics" not in ck  # the template's scores were for other weights
    assert ck["averaged"]["batchnorm_faces"] == 12 * 7


def test_averaging_command_names_a_missing_file(tmp_path, tiny_csv):
    cmd = [sys.executable, "-m", "fer_utils.model", "average", str(tmp_path / "nope.pt"), "--template"]
    cmd += [str(tmp_path / "nope.pt"), "--data", str(tiny_csv), "--out", str(tmp_path / "o.pt")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "nope.pt" in done.stderr
