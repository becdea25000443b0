import pytest
import torch

from fer_utils.model import (
    CheckpointError,
    ModelConfig,
    Preprocess,
    create_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from fer_utils.model import checkpoint as ck
from fer_utils.model.cli import main


def make_ckpt(**extra):
    cfg = ModelConfig(arch="resnet10t")
    model, _ = create_model(cfg)
    return {
        "format": ck.FORMAT,
        "model_config": cfg.to_dict(),
        "state_dict": model.state_dict(),
        "class_names": ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"],
        "preprocess": Preprocess(crop_size=44).to_dict(),
        "tta": "tencrop",
        **extra,
    }


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


def test_export_drops_training_state_and_halves_weights(tmp_path):
    from fer_utils.files import sha256_file

    c = make_ckpt(epoch=3, optimizer={"state": {}}, scheduler={"x": 1}, scaler={}, metrics={"val_accuracy": 0.4})
    save_checkpoint(tmp_path / "best.pt", c)
    evaluation = {"split": "PublicTest", "tta": "flip", "accuracy": 0.41}
    sha = ck.export_model(tmp_path / "best.pt", tmp_path / "release.pt", tta="flip", evaluation=evaluation)
    assert sha == sha256_file(tmp_path / "release.pt")
    raw = torch.load(tmp_path / "release.pt", weights_only=True)
    assert not {"optimizer", "scheduler", "scaler"} & raw.keys()
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    assert (
        raw["tta"] == "flip"
        and raw["evaluation"] == evaluation
        and raw["exported_from"] == {"file": "best.pt", "epoch": 3}
    )
    assert (tmp_path / "release.pt").stat().st_size < 0.6 * (tmp_path / "best.pt").stat().st_size

    full, _ = load_model(tmp_path / "best.pt")
    half, meta = load_model(tmp_path / "release.pt")
    x = torch.randn(4, 1, 44, 44)
    with torch.no_grad():
        assert torch.allclose(full(x).softmax(1), half(x).softmax(1), atol=2e-3)
    assert meta["tta"] == "flip" and meta["evaluation"]["accuracy"] == 0.41


def test_export_command_prints_checksum_and_refuses_bad_input(tmp_path, capsys):
    import json

    save_checkpoint(tmp_path / "best.pt", make_ckpt())
    (tmp_path / "eval.json").write_text(json.dumps({"accuracy": 0.5}))
    assert (
        main(["export", str(tmp_path / "best.pt"), str(tmp_path / "r.pt"), "--evaluation", str(tmp_path / "eval.json")])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert load_checkpoint(tmp_path / "r.pt", expected_sha256=out["sha256"])["evaluation"] == {"accuracy": 0.5}
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "r2.pt")]) == 2
    assert "missing.pt: checkpoint file not found" in capsys.readouterr().err
    assert not (tmp_path / "r2.pt").exists()


def test_export_of_a_continued_run_records_the_learning_curve_before_it_picked_up(tmp_path):
    previous = save_checkpoint(
        tmp_path / "shipped.pt", make_ckpt(epoch=3, history=[{"epoch": e, "val_accuracy": e / 10} for e in (1, 2, 3)])
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.csv").write_text("epoch,val_accuracy\n3,0.35\n4,0.45\n5,0.55\n")
    src = save_checkpoint(run / "best.pt", make_ckpt(epoch=4, continued={"path": str(previous), "epoch": 2}))
    ck.export_model(src, tmp_path / "release.pt")
    history = load_checkpoint(tmp_path / "release.pt")["history"]
    assert [(r["epoch"], r["val_accuracy"]) for r in history] == [(1, 0.1), (2, 0.2), (3, 0.35), (4, 0.45)]
