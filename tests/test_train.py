import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fer_utils.train.engine as train_mod
from fer_utils.model import export_model, load_checkpoint, load_model, save_checkpoint
from fer_utils.train import TrainConfig, fit, train
from fer_utils.train.engine import lr_factor, make_batch
from fer_utils.train.targets import ferplus_targets, mix_batch, soft_targets


def config(data, out, **kw):
    base = dict(
        data=str(data),
        out_dir=str(out),
        arch="resnet10t",
        epochs=2,
        batch_size=16,
        limit_val=28,
        num_threads=1,
        progress=False,
        drop_path_rate=0.0,
        warmup_epochs=0.5,
        lr=3e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def finished_run(tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model, result = fit(config(tiny_csv, out))
    return out, model, result


def test_run_writes_config_summary_last_and_best(finished_run):
    out, _, result = finished_run
    for name in ("config.json", "summary.csv", "last.pt", "best.pt"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(train_mod.SUMMARY_FIELDS) == set(rows[0])
    assert result["init"] == "random"


def test_best_checkpoint_is_the_epoch_with_highest_validation_accuracy(finished_run):
    out, _, result = finished_run
    rows = list(csv.DictReader(open(out / "summary.csv")))
    accs = [max(float(r["val_accuracy"]), float(r["ema_val_accuracy"])) for r in rows]  # raw or averaged weights
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == result["best_epoch"] == int(np.argmax(accs)) + 1
    assert best["best"]["metric"] == "val_accuracy"
    assert "optimizer" not in best and "optimizer" in load_checkpoint(out / "last.pt")


def test_checkpoint_alone_rebuilds_the_trained_model(finished_run, tiny_csv):
    out, model, _ = finished_run
    loaded, meta = load_model(out / "last.pt")
    x = torch.randn(3, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    assert meta["class_names"][3] == "Happy"
    assert meta["preprocess"].crop_size == 44
    assert meta["tta"] == "tencrop"  # the recipe's, recorded for evaluation
    assert meta["data"]["synthetic"] is True
    assert "val_accuracy" in meta["metrics"]


def test_same_seed_gives_identical_weights_on_cpu(finished_run, tiny_csv, tmp_path):
    _, model, _ = finished_run
    again, _ = fit(config(tiny_csv, tmp_path))
    assert same_weights(model.state_dict(), again.state_dict())


def test_different_seed_gives_different_weights(finished_run, tiny_csv, tmp_path):
    _, model, _ = finished_run
    other, _ = fit(config(tiny_csv, tmp_path, seed=1))
    assert not same_weights(model.state_dict(), other.state_dict())


def test_interrupted_run_resumes_and_ends_like_an_uninterrupted_one(finished_run, tiny_csv, tmp_path, monkeypatch):
    _, model, _ = finished_run
    real_loss, calls = train_mod.weighted_soft_ce, []
    steps_per_epoch = (12 * 7) // 16

    def interrupt_in_second_epoch(*args):
        calls.append(1)
        if len(calls) == steps_per_epoch + 2:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(train_mod, "weighted_soft_ce", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(config(tiny_csv, tmp_path))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    monkeypatch.setattr(train_mod, "weighted_soft_ce", real_loss)
    resumed, result = fit(config(tiny_csv, tmp_path))
    assert same_weights(model.state_dict(), resumed.state_dict())
    assert len(list(csv.DictReader(open(tmp_path / "summary.csv")))) == 2
    uninterrupted = load_checkpoint(finished_run[0] / "last.pt")["ema_state_dict"]
    assert same_weights(uninterrupted, load_checkpoint(tmp_path / "last.pt")["ema_state_dict"])


def test_raising_epochs_continues_a_finished_run(finished_run, tiny_csv, tmp_path):
    out, _, _ = finished_run
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    train(config(tiny_csv, tmp_path / "copy", epochs=3))
    assert load_checkpoint(tmp_path / "copy" / "last.pt")["epoch"] == 3


def test_resume_on_different_data_is_refused(finished_run, tmp_path):
    out, _, _ = finished_run
    from fer_utils.data import make_synthetic_csv

    other = make_synthetic_csv(tmp_path / "other.csv", n_per_class={"Training": 12, "PublicTest": 4}, seed=99)
    with pytest.raises(ValueError, match="different data"):
        train(config(other, out))


def test_class_weights_json_is_used_in_the_loss(tiny_csv, tmp_path, monkeypatch):
    from fer_utils.data import save_class_weights

    w = np.array([1.0, 5.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    save_class_weights(tmp_path / "w.json", w, scheme="inverse", counts=np.full(7, 12), data_md5="x")
    seen = []
    real = train_mod.weighted_soft_ce
    monkeypatch.setattr(train_mod, "weighted_soft_ce", lambda lg, t, wt: seen.append(wt) or real(lg, t, wt))
    train(config(tiny_csv, tmp_path / "run", epochs=1, class_weights=str(tmp_path / "w.json")))
    assert torch.allclose(seen[0], torch.tensor(w, dtype=torch.float32))


def test_lr_schedule_warms_up_then_decays_to_minimum():
    f = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_soft_targets_sum_to_one_with_smoothing():
    t = soft_targets(torch.tensor([0, 6]), 0.1)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert t[0, 0] == pytest.approx(0.9 + 0.1 / 7)


def test_mixup_mixes_targets_consistently():
    cfg = TrainConfig(mixup_alpha=0.4, mix_prob=1.0)
    x = torch.randn(8, 1, 48, 48)
    t = soft_targets(torch.arange(8) % 7, 0.0)
    mx, mt = mix_batch(x, t, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(mt.sum(1), torch.ones(8))
    assert not torch.equal(mx, x)


def test_cli_reports_missing_data_without_traceback(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_utils.train",
            "--data",
            str(tmp_path / "none.csv"),
            "--out_dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "none.csv" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_two_process_distributed_training_keeps_ranks_identical(tiny_csv, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("ddp_worker.py")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(worker),
            str(tiny_csv),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert same_weights(w0, w1)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


@pytest.fixture(scope="module")
def source_checkpoint(finished_run, tmp_path_factory):
    """The finished run's best.pt with a normalisation no run on tiny_csv would compute."""
    out, _, _ = finished_run
    ck = load_checkpoint(out / "best.pt")
    ck["preprocess"]["mean"], ck["preprocess"]["std"] = 0.123, 0.321
    return save_checkpoint(tmp_path_factory.mktemp("source") / "best.pt", ck), ck


def learned_weights(state):
    return {k: v for k, v in state.items() if v.is_floating_point() and "running" not in k}


def test_init_checkpoint_starts_from_its_weights_and_normalisation(source_checkpoint, tiny_csv, tmp_path):
    path, source = source_checkpoint
    # lr 0: the weights stay the loaded ones (BatchNorm running statistics still move)
    model, result = fit(config(tiny_csv, tmp_path, epochs=1, lr=0.0, weight_decay=0.0, init_checkpoint=str(path)))
    expected = learned_weights(source["state_dict"])
    assert expected and same_weights(expected, model.state_dict())
    new = load_checkpoint(tmp_path / "last.pt")
    assert (new["preprocess"]["mean"], new["preprocess"]["std"]) == (0.123, 0.321)
    assert result["init"] == f"checkpoint: {path} (epoch {source['epoch']}, which started from random)"


def test_init_checkpoint_run_has_its_own_optimiser_and_schedule(finished_run, tiny_csv, tmp_path):
    out, _, _ = finished_run
    steps_per_epoch = (12 * 7) // 16
    assert load_checkpoint(out / "last.pt")["scheduler"]["last_epoch"] == 2 * steps_per_epoch
    fit(config(tiny_csv, tmp_path, epochs=1, init_checkpoint=str(out / "last.pt")))
    new = load_checkpoint(tmp_path / "last.pt")
    assert new["scheduler"]["last_epoch"] == steps_per_epoch  # not resumed at step 2 * steps_per_epoch
    assert {int(v["step"]) for v in new["optimizer"]["state"].values()} == {steps_per_epoch}


def test_init_checkpoint_may_be_a_float16_export(source_checkpoint, tiny_csv, tmp_path):
    path, source = source_checkpoint
    export_model(path, tmp_path / "half.pt", half=True)
    model, _ = fit(
        config(
            tiny_csv, tmp_path / "run", epochs=1, lr=0.0, weight_decay=0.0, init_checkpoint=str(tmp_path / "half.pt")
        )
    )
    expected = {k: v.half().float() for k, v in learned_weights(source["state_dict"]).items()}
    assert same_weights(expected, model.state_dict())


def test_init_checkpoint_of_another_network_is_refused(source_checkpoint, tiny_csv, tmp_path):
    path, _ = source_checkpoint
    with pytest.raises(
        ValueError, match=r"best\.pt: field 'model_config\.arch' is 'resnet10t', this run's is 'test_efficientnet'"
    ):
        fit(config(tiny_csv, tmp_path, arch="test_efficientnet", init_checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"field 'preprocess\.img_size' is 48, this run's is 40"):
        fit(config(tiny_csv, tmp_path, img_size=40, init_checkpoint=str(path)))


def test_init_checkpoint_may_fine_tune_at_another_crop(source_checkpoint, tiny_csv, tmp_path):
    path, _ = source_checkpoint
    fit(config(tiny_csv, tmp_path, epochs=1, crop_size=48, init_checkpoint=str(path)))
    _, meta = load_model(tmp_path / "best.pt")
    assert meta["preprocess"].crop_size == 48  # FixRes: trained, and scored, at the full face


def test_a_run_is_not_resumed_with_another_init_checkpoint(finished_run, source_checkpoint, tiny_csv, tmp_path):
    out, _, _ = finished_run
    path, _ = source_checkpoint
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    with pytest.raises(ValueError, match=r"last\.pt: field 'train_config\.init_checkpoint' is ''"):
        fit(config(tiny_csv, tmp_path / "copy", epochs=3, init_checkpoint=str(path)))
    with pytest.raises(ValueError, match="in this run's out_dir"):
        fit(config(tiny_csv, tmp_path / "copy", resume=False, init_checkpoint=str(tmp_path / "copy" / "best.pt")))


def validation_accuracy(ckpt_path, tiny_csv, limit_val=28, seed=0):
    """Accuracy of a checkpoint's weights on the validation faces a run with ``config()`` scores."""
    from fer_utils.data import load_dataset

    va = load_dataset(tiny_csv).split("PublicTest")
    idx = train_mod._subset(len(va), limit_val, seed + 1)
    model, meta = load_model(ckpt_path)
    return train_mod._validate(model, va.images[idx], va.labels[idx], meta["preprocess"], torch.device("cpu"), 256)[
        "accuracy"
    ]


def test_weight_average_differs_from_the_raw_weights_and_is_kept_for_resuming(finished_run):
    out, _, _ = finished_run
    last = load_checkpoint(out / "last.pt")
    assert set(last["ema_state_dict"]) == set(last["state_dict"])
    assert not same_weights(learned_weights(last["ema_state_dict"]), learned_weights(last["state_dict"]))


def test_summary_scores_raw_and_averaged_weights_and_records_cpu_share_and_memory(finished_run):
    out, _, _ = finished_run
    for row in csv.DictReader(open(out / "summary.csv")):
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0 and 0.0 <= float(row["ema_val_accuracy"]) <= 1.0
        assert float(row["ema_val_loss"]) > 0
        assert 0.0 <= float(row["other_cpu_share"]) <= 1.0
        assert float(row["peak_rss_mb"]) > 100  # torch alone is larger than that


def test_best_checkpoint_holds_the_better_of_raw_and_averaged_weights(finished_run, tiny_csv):
    out, _, _ = finished_run
    best = load_checkpoint(out / "best.pt")
    row = list(csv.DictReader(open(out / "summary.csv")))[best["epoch"] - 1]
    raw, ema = float(row["val_accuracy"]), float(row["ema_val_accuracy"])
    assert best["weights"] == best["best"]["weights"] == ("ema" if ema > raw else "raw")
    assert best["metrics"]["val_accuracy"] == pytest.approx(max(raw, ema), abs=1e-5)
    assert validation_accuracy(out / "best.pt", tiny_csv) == pytest.approx(max(raw, ema), abs=1e-5)


def test_averaged_weights_are_saved_as_best_when_they_score_higher(tiny_csv, tmp_path, monkeypatch):
    real, calls = train_mod._validate, []

    def ema_scores_higher(model, *args):
        calls.append(model)
        m = real(model, *args)
        return {**m, "accuracy": 0.9 if len(calls) % 2 == 0 else 0.1}  # raw is scored first, then the average

    monkeypatch.setattr(train_mod, "_validate", ema_scores_higher)
    result = train(config(tiny_csv, tmp_path, epochs=1))
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert result["best_weights"] == best["weights"] == "ema" and last["weights"] == "raw"
    assert same_weights(best["state_dict"], last["ema_state_dict"])
    assert best["raw_metrics"]["val_accuracy"] == pytest.approx(0.1) and best["metrics"]["val_accuracy"] == 0.9


def test_without_averaging_there_is_no_averaged_score(tiny_csv, tmp_path):
    train(config(tiny_csv, tmp_path, epochs=1, ema_decay=0.0))
    row = next(csv.DictReader(open(tmp_path / "summary.csv")))
    assert row["ema_val_accuracy"] == "" and "ema_state_dict" not in load_checkpoint(tmp_path / "last.pt")


def test_lr_rewarms_linearly_where_a_run_is_continued():
    plain = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    rewarm = [lr_factor(s, 100, 10, 0.01, rewarm_from=40, rewarm_steps=5) for s in range(100)]
    assert rewarm[:40] == plain[:40] and rewarm[45:] == plain[45:]
    assert [r / p for r, p in zip(rewarm[40:45], plain[40:45], strict=True)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.fixture(scope="module")
def stopped_run(tiny_csv, tmp_path_factory):
    """A 3-epoch run stopped after its first epoch, and its float16 export (what a new machine has)."""
    out = tmp_path_factory.mktemp("stopped")
    fit(config(tiny_csv, out, epochs=1))
    ck = load_checkpoint(out / "last.pt")
    ck["train_config"]["epochs"] = 3  # the same recipe, one epoch into a three-epoch schedule
    save_checkpoint(out / "last.pt", ck)
    export_model(out / "last.pt", out / "export.pt", half=True)
    return out / "export.pt"


def test_continue_from_carries_the_recipe_on_at_the_recorded_epoch(stopped_run, tiny_csv, tmp_path):
    steps_per_epoch = (12 * 7) // 16
    _, result = fit(config(tiny_csv, tmp_path, epochs=3, continue_from=str(stopped_run)))
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [int(r["epoch"]) for r in rows] == [2, 3]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["continued"] == {"path": str(stopped_run), "epoch": 1, "step": steps_per_epoch}
    assert last["scheduler"]["last_epoch"] == 3 * steps_per_epoch  # the schedule's position, not a new schedule
    assert {int(v["step"]) for v in last["optimizer"]["state"].values()} == {2 * steps_per_epoch}  # fresh moments
    assert result["init"] == f"continued: {stopped_run} (epoch 1 of this recipe)"


def test_continued_run_resumes_exactly_after_an_interruption(stopped_run, tiny_csv, tmp_path, monkeypatch):
    # the re-warm-up spans two epochs, so the interruption falls inside it
    whole, _ = fit(config(tiny_csv, tmp_path / "whole", epochs=3, rewarm_epochs=2, continue_from=str(stopped_run)))
    real_loss, calls = train_mod.weighted_soft_ce, []

    def interrupt_in_third_epoch(*args):
        calls.append(1)
        if len(calls) == (12 * 7) // 16 + 2:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(train_mod, "weighted_soft_ce", interrupt_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(config(tiny_csv, tmp_path / "split", epochs=3, rewarm_epochs=2, continue_from=str(stopped_run)))
    monkeypatch.setattr(train_mod, "weighted_soft_ce", real_loss)
    resumed, _ = fit(config(tiny_csv, tmp_path / "split", epochs=3, rewarm_epochs=2, continue_from=str(stopped_run)))
    assert same_weights(whole.state_dict(), resumed.state_dict())
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    assert same_weights(a["ema_state_dict"], b["ema_state_dict"])
    assert a["scheduler"] == b["scheduler"] and a["continued"] == b["continued"]
    lrs = [
        [float(r["lr"]) for r in csv.DictReader(open(d / "summary.csv"))]
        for d in (tmp_path / "whole", tmp_path / "split")
    ]
    assert lrs[0] == lrs[1]
    steps_per_epoch = (12 * 7) // 16
    # the learning rate after epoch 2 (step 10) is 6/10 of the way up the 10-step re-warm-up begun at step 5
    plain = 3e-3 * lr_factor(2 * steps_per_epoch, 3 * steps_per_epoch, int(0.5 * steps_per_epoch), 0.01)
    assert lrs[0][0] == pytest.approx(plain * 0.6, rel=1e-4)


def test_continue_from_refuses_another_recipe_or_other_data(stopped_run, tiny_csv, tmp_path):
    with pytest.raises(ValueError, match=r"export\.pt: field 'train_config\.lr' is 0\.003, this run's is 0\.001"):
        fit(config(tiny_csv, tmp_path / "a", epochs=3, lr=1e-3, continue_from=str(stopped_run)))
    finished = load_checkpoint(stopped_run)
    finished["epoch"] = 3
    save_checkpoint(tmp_path / "finished.pt", finished)
    with pytest.raises(ValueError, match=r"field 'epoch' is 3: nothing left to continue in a run of 3 epochs"):
        fit(config(tiny_csv, tmp_path / "b", epochs=3, continue_from=str(tmp_path / "finished.pt")))
    from fer_utils.data import make_synthetic_csv

    other = make_synthetic_csv(tmp_path / "other.csv", n_per_class={"Training": 12, "PublicTest": 4}, seed=99)
    with pytest.raises(ValueError, match=r"field 'data\.content_md5'"):
        fit(config(other, tmp_path / "c", epochs=3, continue_from=str(stopped_run)))


def test_continue_from_is_ignored_when_the_run_has_its_own_last_checkpoint(
    finished_run, stopped_run, tiny_csv, tmp_path
):
    import shutil

    out, _, _ = finished_run
    shutil.copytree(out, tmp_path / "copy")
    fit(config(tiny_csv, tmp_path / "copy", epochs=3, continue_from=str(stopped_run)))
    last = load_checkpoint(tmp_path / "copy" / "last.pt")
    assert last["epoch"] == 3 and last["continued"] is None  # resumed from its own epoch 2


def ferplus_votes_all_happy(tiny_csv, path):
    from fer_utils.data import FERPLUS_COLUMNS, read_fer2013

    usage = read_fer2013(tiny_csv).usage
    happy = ",".join("10" if c == "happiness" else "0" for c in FERPLUS_COLUMNS)
    path.write_text(
        "Usage,Image name,"
        + ",".join(FERPLUS_COLUMNS)
        + "\n"
        + "".join(f"{u},fer{i:07d}.png,{happy}\n" for i, u in enumerate(usage))
    )
    return path


def test_ferplus_targets_mix_the_label_with_the_vote_shares():
    import pandas as pd

    from fer_utils.data import FERPLUS_COLUMNS

    votes = pd.DataFrame(
        [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]], columns=list(FERPLUS_COLUMNS)
    )
    t = ferplus_targets(np.array([0, 0]), votes, weight=0.5, smoothing=0.0)
    assert t[0].tolist() == pytest.approx([0.5, 0, 0, 0.5, 0, 0, 0])  # half Angry (FER2013), half Happy (FER+)
    assert t[1].tolist() == pytest.approx([1, 0, 0, 0, 0, 0, 0])  # not a face: the FER2013 label alone


def test_training_with_ferplus_uses_vote_targets_and_never_changes_validation_labels(tiny_csv, tmp_path, monkeypatch):
    votes = ferplus_votes_all_happy(tiny_csv, tmp_path / "fer2013new.csv")
    seen, real = [], train_mod.weighted_soft_ce
    monkeypatch.setattr(train_mod, "weighted_soft_ce", lambda lg, t, w: seen.append(t) or real(lg, t, w))
    validated, real_validate = [], train_mod._validate
    monkeypatch.setattr(
        train_mod, "_validate", lambda m, x, y, *a: validated.append(y.copy()) or real_validate(m, x, y, *a)
    )
    train(config(tiny_csv, tmp_path / "run", epochs=1, ferplus=str(votes), label_smoothing=0.0))
    happy = torch.cat(seen)[:, 3]
    assert (happy >= 0.5).all() and (happy < 1).any()
    from fer_utils.data import load_dataset

    va = load_dataset(tiny_csv).split("PublicTest")
    assert np.array_equal(validated[0], va.labels[train_mod._subset(len(va), 28, 1)])


def review_file(path, rows):
    """A review CSV (fer_utils.data.review) relabelling each (file row, split, old label, new label) in ``rows``."""
    import pandas as pd

    from fer_utils import CLASS_NAMES
    from fer_utils.data import FERPLUS_COLUMNS, save_review

    df = pd.DataFrame(
        [
            {
                "row": r,
                "split": s,
                "fer2013_label": CLASS_NAMES[old],
                "corrected_label": CLASS_NAMES[new],
                "flagged": True,
                "pred_label": "",
                "confidence": float("nan"),
                **dict.fromkeys(FERPLUS_COLUMNS, ""),
            }
            for r, s, old, new in rows
        ]
    )
    return save_review(path, df)


def test_label_corrections_change_the_training_split_only(tiny_csv, tmp_path):
    from fer_utils.data import load_dataset
    from fer_utils.train.targets import correct_labels

    data = load_dataset(tiny_csv)
    tr, va = data.split("Training"), data.split("PublicTest")
    new_tr, new_va = (int(tr.labels[0]) + 1) % 7, (int(va.labels[0]) + 1) % 7
    path = review_file(
        tmp_path / "review.csv",
        [
            (int(tr.index[0]), "Training", int(tr.labels[0]), new_tr),
            (int(va.index[0]), "PublicTest", int(va.labels[0]), new_va),
        ],
    )
    fixed, record = correct_labels(tr, path)
    assert fixed.labels[0] == new_tr and np.array_equal(fixed.labels[1:], tr.labels[1:])
    assert np.array_equal(fixed.index, tr.index) and tr.labels[0] != new_tr  # the loaded data is not modified
    assert (record["applied"], record["ignored_other_splits"]) == (1, 1)
    with pytest.raises(Exception, match="row 1"):  # a bad file is refused before training, naming the row
        (tmp_path / "bad.csv").write_text(path.read_text().replace("Training", "Trainig"))
        correct_labels(tr, tmp_path / "bad.csv")


def test_corrections_of_evaluation_rows_never_change_evaluation(finished_run, tiny_csv, tmp_path):
    """Every PublicTest face relabelled in the review file: the run scores exactly as the run without it."""
    from fer_utils.data import load_dataset

    va = load_dataset(tiny_csv).split("PublicTest")
    path = review_file(
        tmp_path / "review.csv",
        [(int(r), "PublicTest", int(y), (int(y) + 1) % 7) for r, y in zip(va.index, va.labels, strict=True)],
    )
    _, result = fit(config(tiny_csv, tmp_path / "run", label_corrections=str(path)))
    theirs = list(csv.DictReader(open(finished_run[0] / "summary.csv")))
    ours = list(csv.DictReader(open(tmp_path / "run" / "summary.csv")))
    for key in ("train_loss", "val_loss", "val_accuracy", "ema_val_accuracy"):
        assert [r[key] for r in ours] == [r[key] for r in theirs], key
    import json

    record = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["label_corrections"]
    assert (record["applied"], record["ignored_other_splits"]) == (0, len(va))


def test_make_batch_uses_given_targets():
    from fer_utils.model import GrayAugment, Preprocess

    cfg = TrainConfig()
    augment = GrayAugment(Preprocess(mean=0.5, std=0.25), cfg.augment_config())
    targets = torch.full((4, 7), 1 / 7)
    _, t, _ = make_batch(
        torch.zeros(4, 48, 48, dtype=torch.uint8),
        torch.zeros(4, dtype=torch.int64),
        augment,
        cfg,
        torch.Generator().manual_seed(0),
        targets,
    )
    assert torch.equal(t, targets)


def test_loss_as_the_metric_keeps_the_epoch_with_the_lowest_loss(tiny_csv, tmp_path):
    result = train(config(tiny_csv, tmp_path, epochs=3, eval_metric="loss", ema_decay=0.0))
    losses = [float(r["val_loss"]) for r in csv.DictReader(open(tmp_path / "summary.csv"))]
    assert result["best_epoch"] == int(np.argmin(losses)) + 1


def test_a_run_from_before_weight_averaging_still_resumes(finished_run, tiny_csv, tmp_path):
    """A run started by an older version: config.json and last.pt without the newer fields."""
    import json
    import shutil

    out, _, _ = finished_run
    shutil.copytree(out, tmp_path / "old")
    newer = {
        "ema_decay",
        "ferplus",
        "ferplus_weight",
        "continue_from",
        "rewarm_epochs",
        "output_stride",
        "label_corrections",
    }
    last = load_checkpoint(tmp_path / "old" / "last.pt")
    for key in newer:
        last["train_config"].pop(key)
    last["train_config"]["eval_decreasing"] = False
    last["model_config"].pop("output_stride")
    del last["ema_state_dict"], last["continued"], last["best"]["weights"]
    save_checkpoint(tmp_path / "old" / "last.pt", last)
    old_config = json.loads((tmp_path / "old" / "config.json").read_text())["train_config"]
    old_config = {k: v for k, v in old_config.items() if k not in newer}
    fit(TrainConfig.from_dict({**old_config, "out_dir": str(tmp_path / "old"), "epochs": 3}))
    resumed = load_checkpoint(tmp_path / "old" / "last.pt")
    assert resumed["epoch"] == 3 and "ema_state_dict" in resumed
