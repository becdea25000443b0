"""Evaluation: metrics on hand-checked predictions, mistakes table, predict, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import fer_utils.model.transforms
from fer_utils import CLASS_NAMES, NUM_CLASSES
from fer_utils.evaluate import (
    compute_metrics,
    evaluate_checkpoint,
    misclassified,
    most_confused_pairs,
    predict,
    save_metrics,
)
from fer_utils.evaluate.predictions import main
from fer_utils.model import Preprocess


def one_hot_probs(pred: list[int], confidence: float = 0.9) -> np.ndarray:
    """Probabilities whose arg-max is ``pred``, with ``confidence`` on it."""
    p = np.full((len(pred), NUM_CLASSES), (1 - confidence) / (NUM_CLASSES - 1), dtype=np.float32)
    p[np.arange(len(pred)), pred] = confidence
    return p


# Six faces of classes 0, 1 and 3; two mistakes (Angry -> Disgust, Disgust -> Angry).
Y_TRUE = np.array([0, 0, 0, 1, 1, 3])
Y_PRED = [0, 0, 1, 1, 0, 3]


def test_metrics_on_known_predictions() -> None:
    m = compute_metrics(Y_TRUE, one_hot_probs(Y_PRED))
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1: Angry 2/3 (P = R = 2/3), Disgust 1/2, Happy 1; absent classes do not count.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    angry = m["per_class"]["Angry"]
    assert angry == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["per_class"]["Fear"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["nll"] == pytest.approx(-(4 * np.log(0.9) + 2 * np.log(0.1 / 6)) / 6, rel=1e-5)


def test_confusion_has_a_row_for_every_class() -> None:
    m = compute_metrics(Y_TRUE, one_hot_probs(Y_PRED))
    cm = np.array(m["confusion"])
    assert cm.shape == (NUM_CLASSES, NUM_CLASSES)
    assert cm[0, :2].tolist() == [2, 1] and cm[1, :2].tolist() == [1, 1] and cm[3, 3] == 1
    assert cm.sum() == 6
    norm = np.array(m["confusion_normalized"])
    np.testing.assert_allclose(norm[0, :2], [2 / 3, 1 / 3])
    assert norm[2].tolist() == [0.0] * NUM_CLASSES  # Fear is absent: a zero row, not NaN


def test_metrics_are_json_ready() -> None:
    m = compute_metrics(Y_TRUE, one_hot_probs(Y_PRED))
    assert json.loads(json.dumps(m)) == m


def test_most_confused_pairs_sorted_by_count_without_the_diagonal() -> None:
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    cm[2, 2] = 50  # correct predictions never count
    cm[2, 4] = 7  # Fear -> Sad
    cm[6, 4] = 9  # Neutral -> Sad
    cm[0, 6] = 3  # Angry -> Neutral
    cm[6, 6] = 1
    pairs = most_confused_pairs(cm, CLASS_NAMES, k=2)
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [("Neutral", "Sad", 9), ("Fear", "Sad", 7)]
    assert pairs[0]["rate"] == pytest.approx(9 / 10)
    assert len(most_confused_pairs(cm, CLASS_NAMES, k=None)) == 3


def test_most_confused_ties_keep_row_major_order() -> None:
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    cm[5, 0] = cm[1, 2] = 4
    pairs = most_confused_pairs(cm, CLASS_NAMES)
    assert [(p["true"], p["pred"]) for p in pairs] == [("Disgust", "Fear"), ("Surprise", "Angry")]


def test_misclassified_table_lists_mistakes_most_confident_first() -> None:
    probs = one_hot_probs(Y_PRED)
    probs[4] = one_hot_probs([0], confidence=0.95)[0]  # the Disgust -> Angry mistake is the surer one
    file_index = np.array([10, 11, 12, 13, 14, 15])
    df = misclassified(Y_TRUE, probs, file_index, CLASS_NAMES)
    assert len(df) == 2
    assert df["index"].tolist() == [14, 12] and df["position"].tolist() == [4, 2]
    assert df.loc[0, ["true_name", "pred_name"]].tolist() == ["Disgust", "Angry"]
    assert df["confidence"].tolist() == pytest.approx([0.95, 0.9])
    assert df.loc[0, "p_true"] == pytest.approx(0.05 / 6)
    assert df.loc[0, "loss"] == pytest.approx(-np.log(0.05 / 6))
    expected = ["index", "position", "true", "pred", "true_name", "pred_name", "confidence", "p_true", "loss"]
    assert list(df.columns) == expected + list(CLASS_NAMES)
    assert df.loc[0, "Angry"] == pytest.approx(0.95)


def test_misclassified_is_empty_when_all_correct() -> None:
    df = misclassified(Y_TRUE, one_hot_probs(list(Y_TRUE)))
    assert len(df) == 0 and "loss" in df.columns


def test_save_metrics_writes_json(tmp_path: Path) -> None:
    m = compute_metrics(Y_TRUE, one_hot_probs(Y_PRED))
    m["n_np"] = np.int64(3)
    path = save_metrics(tmp_path / "sub" / "metrics.json", m)
    assert json.loads(path.read_text())["n_np"] == 3


# --------------------------------------------------------------------------- predict


class TinyNet(nn.Module):
    """Any input size -> NUM_CLASSES logits; records whether it ran under inference mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, NUM_CLASSES)
        self.saw_inference_mode: list[bool] = []
        self.saw_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.saw_inference_mode.append(torch.is_inference_mode_enabled())
        self.saw_training.append(self.training)
        return self.head(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture
def faces() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(7, 48, 48), dtype=np.uint8)


def test_predict_returns_probabilities_in_eval_and_inference_mode(faces: np.ndarray) -> None:
    model = TinyNet().train()
    probs = predict(model, faces, Preprocess(mean=0.5, std=0.25), batch_size=3)
    assert probs.shape == (7, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert len(model.saw_inference_mode) == 3  # batches of 3, 3, 1
    assert all(model.saw_inference_mode) and not any(model.saw_training)
    assert model.training  # the caller's mode is restored


def test_predict_does_not_depend_on_batch_size(faces: np.ndarray) -> None:
    pre = Preprocess(mean=0.5, std=0.25)
    a = predict(TinyNet(), faces, pre, tta="tencrop", batch_size=2)
    b = predict(TinyNet(), faces, pre, tta="tencrop", batch_size=256)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_predict_averages_softmax_over_views(faces: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    def two_views(x: torch.Tensor, preprocess: object, mode: str) -> list[torch.Tensor]:
        v = x[:, None].float() / 255
        return [v, 1 - v]

    monkeypatch.setattr(fer_utils.model.transforms, "tta_views", two_views)  # predict() imports it when called
    model = TinyNet()
    probs = predict(model, faces, preprocess=None, tta="flip")  # type: ignore[arg-type]
    with torch.no_grad():
        v = torch.from_numpy(faces)[:, None].float() / 255
        expected = (model(v).softmax(1) + model(1 - v).softmax(1)) / 2
    np.testing.assert_allclose(probs, expected.numpy(), rtol=1e-5)


def test_predict_refuses_an_unknown_tta_mode(faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match="TTA"):
        predict(TinyNet(), faces, preprocess=None, tta="mirror")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- checkpoint + CLI


@dataclass(frozen=True)
class FakeData:
    """The parts of ``fer_utils.data.FERData`` that evaluation uses."""

    images: np.ndarray
    labels: np.ndarray
    content_md5: str = "d41d8cd98f00b204e9800998ecf8427e"
    source: Path = Path("fake.csv")
    is_canonical: bool = False
    is_synthetic: bool = True

    def split(self, name: str) -> FakeData:
        if name != "PublicTest":
            raise ValueError(f"fake.csv: split {name!r} is absent; present: ['PublicTest']")
        return self


@pytest.fixture
def fake_checkpoint(tmp_path: Path, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoint path whose loading is replaced by a TinyNet with recorded TTA "flip"."""
    import fer_utils.data
    import fer_utils.model.checkpoint

    path = tmp_path / "best.pt"
    path.write_bytes(b"stand-in")
    meta = {"class_names": CLASS_NAMES, "preprocess": Preprocess(mean=0.5, std=0.25), "tta": "flip"}
    monkeypatch.setattr(fer_utils.model.checkpoint, "load_model", lambda p, device="cpu": (TinyNet(), meta))
    data = FakeData(faces, np.arange(7) % NUM_CLASSES)
    monkeypatch.setattr(fer_utils.data, "load_dataset", lambda path, **kw: data)
    return path


def test_evaluate_checkpoint_uses_the_recorded_tta_by_default(fake_checkpoint: Path) -> None:
    m = evaluate_checkpoint(fake_checkpoint, "fake.csv", "PublicTest")
    assert m["tta"] == "flip" and m["split"] == "PublicTest" and m["n"] == 7
    assert m["checkpoint"] == str(fake_checkpoint) and m["data_md5"] == FakeData.content_md5
    assert evaluate_checkpoint(fake_checkpoint, "fake.csv", "PublicTest", tta="none")["tta"] == "none"


def test_evaluate_checkpoint_scores_at_another_crop_when_asked(fake_checkpoint: Path) -> None:
    default = evaluate_checkpoint(fake_checkpoint, "fake.csv", "PublicTest", tta="none")
    at_40 = evaluate_checkpoint(fake_checkpoint, "fake.csv", "PublicTest", tta="none", crop_size=40)
    assert default["crop_size"] == 48 and at_40["crop_size"] == 40
    assert default["nll"] != at_40["nll"]  # another input, other probabilities


@pytest.mark.parametrize(("tta_args", "mode"), [([], "none"), (["--tta"], "flip"), (["--tta", "tencrop"], "tencrop")])
def test_cli_prints_one_json_object(
    fake_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tta_args: list[str], mode: str
) -> None:
    out = tmp_path / "metrics.json"
    argv = ["--checkpoint", str(fake_checkpoint), "--data", "fake.csv", "--split", "PublicTest", "--out", str(out)]
    assert main(argv + tta_args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["tta"] == mode and printed["n"] == 7
    assert {"accuracy", "macro_f1", "split", "per_class"} <= set(printed)
    assert json.loads(out.read_text())["accuracy"] == printed["accuracy"]


def test_cli_reports_an_absent_split_without_traceback(
    fake_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--checkpoint", str(fake_checkpoint), "--data", "fake.csv", "--split", "PrivateTest"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "PrivateTest" in captured.err and "Traceback" not in captured.err


def test_cli_reports_a_corrupt_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a checkpoint")
    assert main(["--checkpoint", str(path), "--data", "x.csv", "--split", "PublicTest"]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and len(err.strip().splitlines()) == 1


def test_cli_missing_checkpoint_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    cmd = [sys.executable, "-m", "fer_utils.evaluate", "--checkpoint", str(missing), "--data", "x.csv",
           "--split", "PublicTest"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "nope.pt" in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compute_metrics_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="y_true"):
        compute_metrics(Y_TRUE[:3], one_hot_probs(Y_PRED))
    with pytest.raises(ValueError, match="probs"):
        compute_metrics(Y_TRUE, np.ones((6, 3)))


def test_misclassified_returns_a_dataframe() -> None:
    assert isinstance(misclassified(Y_TRUE, one_hot_probs(Y_PRED)), pd.DataFrame)


def test_tta_modes_match_transforms() -> None:
    from fer_utils.evaluate.predictions import TTA_MODES
    from fer_utils.model import transforms

    assert TTA_MODES == transforms.TTA_MODES


def test_cli_scores_against_ferplus_majority_labels(
    tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferplus_votes import write_votes

    import fer_utils.model.checkpoint
    from fer_utils.data import read_fer2013
    from fer_utils.evaluate import predict_split

    data = read_fer2013(tiny_csv)
    kinds = ["label", "label", "label", "label", "contempt", "tie", "not_a_face"]
    votes = write_votes(tmp_path / "fer2013new.csv", data.usage, data.labels, kinds)
    meta = {"class_names": CLASS_NAMES, "preprocess": Preprocess(mean=0.5, std=0.25), "tta": "none"}
    monkeypatch.setattr(fer_utils.model.checkpoint, "load_model", lambda p, device="cpu": (TinyNet(), meta))
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"stand-in")
    argv = ["--checkpoint", str(checkpoint), "--data", str(tiny_csv), "--split", "PublicTest", "--ferplus", str(votes)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)["ferplus"]
    assert printed["protocol"] == "FERPlus majority"
    assert printed["n_kept"] == 16 and printed["n_left_out"] == 12  # 28 PublicTest faces, 4 of each kind
    assert printed["left_out"] == {"no_majority": 4, "unknown": 0, "not_a_face": 4, "contempt": 4}
    pred = predict_split(checkpoint, data, "PublicTest", tta="none", progress=False)
    kept = (np.arange(28) % 7) < 4
    expected = float((pred.probs[kept].argmax(1) == pred.data.labels[kept]).mean())
    assert printed["accuracy"] == pytest.approx(expected)
    assert set(printed["per_class"]) == set(CLASS_NAMES)
