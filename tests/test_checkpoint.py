import pytest
import torch

import fer_utils.checkpoint as ck
from fer_utils.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from fer_utils.model import ModelConfig, create_model
from fer_utils.transforms import Preprocess


def make_ckpt(**extra):
    cfg = ModelConfig(arch="resnet10t")
    model, _ = create_model(cfg)
    return {"format": ck.FORMAT, "model_config": cfg.to_dict(), "state_dict": model.state_dict(),
            "class_names": ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"],
            "preprocess": Preprocess(crop_size=44).to_dict(), "tta": "tencrop", **extra}


def test_round_trip_preserves_weights_and_metadata(tmp_path):
    c = make_ckpt(metrics={"val_accuracy": 0.5})
    save_checkpoint(tmp_path / "m.pt", c)
    model, meta = load_model(tmp_path / "m.pt")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in c["state_dict"].items())
    assert meta["preprocess"] == Preprocess(crop_size=44)
    assert meta["tta"] == "tencrop" and meta["metrics"] == {"val_accuracy": 0.5}
    assert not model.training


def test_half_precision_weights_load_as_float32(tmp_path):
    c = make_ckpt()
    c["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in c["state_dict"].items()}
    save_checkpoint(tmp_path / "h.pt", c)
    model, _ = load_model(tmp_path / "h.pt")
    assert next(model.parameters()).dtype == torch.float32


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, make_ckpt(epoch=1))

    def crash(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, make_ckpt(epoch=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_file_is_reported(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_foreign_checkpoint_is_reported(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="field 'format'"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checksum_mismatch_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m.pt", make_ckpt())
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "m.pt", expected_sha256="0" * 64)


def test_save_refuses_incomplete_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        save_checkpoint(tmp_path / "m.pt", {"format": ck.FORMAT})
