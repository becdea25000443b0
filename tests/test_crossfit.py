"""K-fold cross-fitting: every Training face scored once, by the one run that never trained on it; cached; a CLI."""

import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fer_utils.data import load_dataset, make_synthetic_csv
from fer_utils.evaluate import predict
from fer_utils.model import load_model
from fer_utils.train import TrainConfig, crossfit, load_crossfit
from fer_utils.train.engine import fold_assignment, load_training_data

# The package re-exports the function crossfit under the module's own name: reach the module through sys.modules.
crossfit_module = importlib.import_module("fer_utils.train.folds")

FOLDS = 3
TINY = dict(
    arch="test_efficientnet",
    zero_init_last=False,
    epochs=1,
    batch_size=16,
    lr=0.01,
    warmup_epochs=0.5,
    drop_path_rate=0.0,
    ema_decay=0,
    tta="none",
    limit_val=14,
    num_threads=1,
    progress=False,
    device="cpu",  # predictions compared across calls: one device
)


def config(data, **kw):
    return TrainConfig(data=str(data), **{**TINY, **kw})


def no_training(cfg):
    raise AssertionError(f"trained {cfg.out_dir} again")


@pytest.fixture(scope="module")
def fitted(tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("crossfit")
    with pytest.MonkeyPatch.context() as mp:  # the autouse isolation is per test; this fixture outlives one
        mp.setenv("FER_UTILS_CACHE", str(tmp_path_factory.getbasetemp() / "fer_cache"))
        mp.delenv("FER2013_CSV", raising=False)
        return out, crossfit(config(tiny_csv), FOLDS, out)


@pytest.fixture
def training(tiny_csv):
    return load_dataset(tiny_csv).split("Training")


def copy_without_cache(out: Path, dest: Path) -> Path:
    shutil.copytree(out, dest)
    (dest / crossfit_module.CACHE_FILE).unlink()
    return dest


def test_every_training_face_gets_exactly_one_out_of_sample_row(fitted, training):
    _, result = fitted
    assert result.probs.shape == (len(training), 7)
    np.testing.assert_array_equal(result.index, training.index)  # Training-split order, each file row once
    np.testing.assert_array_equal(result.labels, training.labels)
    np.testing.assert_array_equal(result.fold, fold_assignment(len(training), FOLDS))


def test_out_of_sample_probabilities_are_rows_summing_to_one(fitted):
    probs = fitted[1].probs
    assert probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_each_fold_run_held_out_exactly_the_faces_of_its_fold(fitted, training):
    out, _ = fitted
    assignment = fold_assignment(len(training), FOLDS)
    for f in range(FOLDS):
        recorded = json.loads((out / f"fold_{f}" / "config.json").read_text())["data"]
        assert recorded["holdout"] == {"folds": FOLDS, "fold": f}
        assert recorded["n_train"] == len(training) - int((assignment == f).sum())


def test_no_fold_run_trains_on_a_face_it_holds_out(tiny_csv, training):
    assignment = fold_assignment(len(training), FOLDS)
    for f in range(FOLDS):
        run = load_training_data(config(tiny_csv, holdout_folds=FOLDS, holdout_fold=f))
        held = {face.tobytes() for face in training.images[assignment == f]}
        assert held.isdisjoint(face.tobytes() for face in run.x_train)


def test_each_face_is_scored_by_the_run_that_held_it_out(fitted, training):
    out, result = fitted
    held = result.fold == 1
    model, meta = load_model(out / "fold_1" / "best.pt")
    expected = predict(model, training.images[held], meta["preprocess"], tta="none")
    np.testing.assert_allclose(result.probs[held], expected, atol=1e-6)


def test_fold_accuracy_is_each_run_on_its_held_out_faces_and_their_mean_is_recorded(fitted):
    _, result = fitted
    for f in range(FOLDS):
        held = result.fold == f
        assert result.fold_accuracy[f] == pytest.approx(np.mean(result.probs[held].argmax(1) == result.labels[held]))
    assert result.mean_accuracy == pytest.approx(np.mean(result.fold_accuracy))
    record = json.loads(result.record_path.read_text())
    assert record["fold_accuracy"] == pytest.approx(result.fold_accuracy)
    assert record["folds"] == FOLDS and record["recipe"]["arch"] == "test_efficientnet"
    assert "out_dir" not in record["recipe"] and "holdout_fold" not in record["recipe"]


def test_rerunning_without_the_cache_reuses_every_finished_fold(fitted, tiny_csv, tmp_path, monkeypatch):
    out, first = fitted
    copy = copy_without_cache(out, tmp_path / "copy")
    monkeypatch.setattr(crossfit_module, "fit", no_training)
    again = crossfit(config(tiny_csv), FOLDS, copy)
    np.testing.assert_allclose(again.probs, first.probs, atol=1e-6)
    assert (copy / "oos_training.npz").is_file()


def test_rerunning_with_the_cache_returns_it_without_training_or_predicting(fitted, tiny_csv, monkeypatch):
    out, first = fitted
    monkeypatch.setattr(crossfit_module, "fit", no_training)
    monkeypatch.setattr(crossfit_module, "predict", no_training)
    again = crossfit(config(tiny_csv), FOLDS, out)
    np.testing.assert_array_equal(again.probs, first.probs)
    assert again.fold_accuracy == first.fold_accuracy


def test_a_fold_folder_of_another_number_of_folds_is_refused(fitted, tiny_csv, tmp_path, monkeypatch):
    copy = copy_without_cache(fitted[0], tmp_path / "copy")
    monkeypatch.setattr(crossfit_module, "fit", no_training)
    with pytest.raises(ValueError, match=r"fold_0/config\.json: field 'train_config\.holdout_folds' is 3"):
        crossfit(config(tiny_csv), FOLDS + 1, copy)


def test_load_crossfit_returns_the_cache_whatever_the_run_fields(fitted, tiny_csv, training):
    _, result = fitted
    cfg = config(tiny_csv, out_dir="elsewhere", num_threads=2, progress=True)
    loaded = load_crossfit(result.path, load_dataset(tiny_csv), cfg, folds=FOLDS)
    np.testing.assert_array_equal(loaded.probs, result.probs)
    np.testing.assert_array_equal(loaded.index, training.index)


def test_load_crossfit_refuses_a_cache_of_other_data(fitted, tmp_path):
    other = make_synthetic_csv(tmp_path / "other.csv", n_per_class={"Training": 12, "PublicTest": 4}, seed=99)
    with pytest.raises(ValueError, match="field 'data_md5'"):
        load_crossfit(fitted[1].path, load_dataset(other))


def test_load_crossfit_refuses_a_cache_of_another_recipe_or_other_folds_naming_the_field(fitted, tiny_csv):
    path, data = fitted[1].path, load_dataset(tiny_csv)
    with pytest.raises(ValueError, match=r"field 'recipe\.lr' is 0\.01, expected 0\.02"):
        load_crossfit(path, data, config(tiny_csv, lr=0.02))
    with pytest.raises(ValueError, match="field 'folds' is 3, expected 5"):
        load_crossfit(path, data, folds=5)


@pytest.mark.parametrize(
    "field, value", [("holdout_folds", 2), ("init_checkpoint", "models/other.pt"), ("continue_from", "models/other.pt")]
)
def test_crossfit_refuses_a_recipe_whose_runs_could_see_held_out_faces(tiny_csv, tmp_path, field, value):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        crossfit(config(tiny_csv, **{field: value}), FOLDS, tmp_path)


def test_fewer_than_two_folds_are_refused(tiny_csv, tmp_path):
    with pytest.raises(ValueError, match="field 'folds' is 1"):
        crossfit(config(tiny_csv), 1, tmp_path)


def test_a_held_out_fold_outside_the_folds_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="field 'holdout_fold' is 3"):
        TrainConfig(arch="test_efficientnet", holdout_folds=3, holdout_fold=3)


def test_cli_prints_one_json_line_and_writes_the_cache(fitted, tiny_csv, tmp_path):
    copy = copy_without_cache(fitted[0], tmp_path / "copy")  # finished folds: the command only predicts
    recipe = tmp_path / "crossfit.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    command = ["crossfit", "--config", str(recipe), "--data", str(tiny_csv), "--folds", "3", "--out_dir", str(copy)]
    r = subprocess.run([sys.executable, "-m", "fer_utils.train", *command], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["path"] == str(copy / "oos_training.npz") and Path(summary["path"]).is_file()
    assert summary["folds"] == FOLDS and summary["n_faces"] == 84
    assert summary["fold_accuracy"] == pytest.approx(fitted[1].fold_accuracy)
    assert summary["mean_accuracy"] == pytest.approx(np.mean(summary["fold_accuracy"]))


def test_cli_refuses_bad_input_in_one_line(tiny_csv, tmp_path):
    command = [
        "crossfit",
        "--data",
        str(tiny_csv),
        "--arch",
        "test_efficientnet",
        "--folds",
        "1",
        "--out_dir",
        str(tmp_path),
    ]
    r = subprocess.run([sys.executable, "-m", "fer_utils.train", *command], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: crossfit field 'folds' is 1")
    assert "Traceback" not in r.stderr


def test_probs_for_a_split_follow_its_order_and_name_a_face_not_cross_fitted(fitted, training, tiny_csv):
    _, result = fitted
    reversed_split = training
    order = np.arange(len(reversed_split))[::-1]
    reversed_split = dataclasses.replace(
        reversed_split,
        images=reversed_split.images[order],
        labels=reversed_split.labels[order],
        usage=reversed_split.usage[order],
        index=reversed_split.index[order],
    )
    np.testing.assert_array_equal(result.probs_for(reversed_split), result.probs[order])
    public = load_dataset(tiny_csv).split("PublicTest")
    with pytest.raises(ValueError, match=rf"file row {public.index[0] + 1} and {len(public) - 1} more"):
        result.probs_for(public)
