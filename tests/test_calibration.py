"""Calibration: reliability bins, ECE and temperature scaling fitted on a validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_utils.evaluate import calibration as cal


def _constant_confidence(n: int, conf: float, accuracy: float, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Every face predicted as class 0 with probability ``conf``; a fraction ``accuracy`` really is class 0."""
    probs = np.full((n, k), (1 - conf) / (k - 1))
    probs[:, 0] = conf
    labels = np.where(np.arange(n) < round(accuracy * n), 0, 1)
    return labels, probs


@pytest.fixture(scope="module")
def overconfident() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), probabilities softmax(3 z): a model three times too sharp (T = 3 fixes it)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 7)) * 1.5
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in p_true])
    sharp = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    return labels, sharp, p_true


def test_a_calibrated_model_has_zero_ece():
    labels, probs = _constant_confidence(100, 0.8, 0.8)
    assert cal.expected_calibration_error(labels, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_the_gap_between_confidence_and_accuracy():
    labels, probs = _constant_confidence(100, 0.9, 0.6)
    assert cal.expected_calibration_error(labels, probs) == pytest.approx(0.3)


def test_reliability_table_has_every_bin_and_counts_every_face():
    labels, probs = _constant_confidence(10, 1.0, 0.5)
    table = cal.reliability_table(labels, probs, n_bins=10)
    assert len(table) == 10 and table["count"].sum() == 10
    assert table["count"].iloc[-1] == 10  # confidence exactly 1 falls in the last bin
    assert table["accuracy"].iloc[-1] == pytest.approx(0.5)
    assert np.isnan(table["accuracy"].iloc[0])  # empty bins are NaN, not 0


def test_temperature_recovers_a_known_overconfidence(overconfident):
    labels, sharp, _ = overconfident
    fit = cal.fit_temperature(labels, sharp, split="PublicTest")
    assert fit.temperature == pytest.approx(3.0, rel=0.1)
    assert fit.nll_after < fit.nll_before
    assert fit.ece_after < fit.ece_before
    assert fit.split == "PublicTest" and fit.n == len(labels)


def test_a_calibrated_model_keeps_a_temperature_near_one(overconfident):
    labels, _, p_true = overconfident
    assert cal.fit_temperature(labels, p_true).temperature == pytest.approx(1.0, rel=0.1)


def test_temperature_keeps_the_prediction_and_normalises_rows(overconfident):
    _, sharp, _ = overconfident
    scaled = cal.apply_temperature(sharp, 2.5)
    np.testing.assert_array_equal(scaled.argmax(1), sharp.argmax(1))
    np.testing.assert_allclose(scaled.sum(1), 1.0, rtol=1e-5)
    assert scaled.max(1).mean() < sharp.max(1).mean()  # T > 1 softens
    np.testing.assert_allclose(cal.apply_temperature(sharp, 1.0), sharp, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        cal.apply_temperature(sharp, 0.0)


def test_summary_on_another_split_reports_both_eces(overconfident):
    labels, sharp, _ = overconfident
    summary = cal.calibration_summary(labels[:500], sharp[:500], 3.0, split="PrivateTest")
    assert summary["split"] == "PrivateTest" and summary["n"] == 500
    assert summary["ece_after"] < summary["ece_before"]
    json.dumps(summary)  # JSON-ready


def test_temperature_round_trips_through_json(tmp_path, overconfident):
    labels, sharp, _ = overconfident
    fit = cal.fit_temperature(labels, sharp)
    path = cal.save_temperature(
        tmp_path / cal.TEMPERATURE_FILE, fit, checkpoint="models/x/best.pt", tta="flip", data_md5="abc"
    )
    stored = json.loads(path.read_text())
    assert stored["temperature"] == fit.temperature
    assert (
        stored["fit"]["split"] == "PublicTest"
        and stored["tta"] == "flip"
        and stored["checkpoint"] == "models/x/best.pt"
    )
    assert cal.load_temperature(path) == fit.temperature


def test_loading_a_bad_temperature_file_names_file_and_field(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text('{"temperature": -1}')
    with pytest.raises(ValueError, match=r"t\.json: field 'temperature'"):
        cal.load_temperature(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        cal.load_temperature(bad)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="labels must have shape"):
        cal.expected_calibration_error([0, 1], np.full((3, 7), 1 / 7))
    with pytest.raises(ValueError, match="zero samples"):
        cal.fit_temperature(np.zeros(0, dtype=int), np.zeros((0, 7)))


def split_predictions(tiny_csv, split, seed):
    from fer_utils.data import load_dataset
    from fer_utils.evaluate import SplitPredictions

    data = load_dataset(tiny_csv)
    part = data.split(split)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(part), 7)) * 3
    logits[np.arange(len(part)), part.labels] += 2.0  # right more often than not, over-confident
    probs = cal.softmax(logits).astype(np.float32)
    return data, SplitPredictions(probs=probs, data=part, tta="none", meta={}, checkpoint=Path("model.pt"))


def test_calibrate_is_none_when_the_data_lacks_the_fitting_split(tiny_csv):
    from dataclasses import replace

    from fer_utils.evaluate import calibrate

    data, pred = split_predictions(tiny_csv, "PrivateTest", 0)
    without = replace(data, usage=np.where(data.usage == "PublicTest", "Training", data.usage))
    assert calibrate(pred, without, "PublicTest", n_bins=5) is None


def test_calibrate_fits_on_another_split_measures_on_this_one_and_saves_the_temperature(
    tiny_csv, tmp_path, monkeypatch
):
    import fer_utils.evaluate.predictions as predictions
    from fer_utils.evaluate import calibrate

    data, pred = split_predictions(tiny_csv, "PrivateTest", 0)
    _, fit_pred = split_predictions(tiny_csv, "PublicTest", 1)
    asked = []
    monkeypatch.setattr(predictions, "predict_split", lambda ck, d, split, tta: asked.append(split) or fit_pred)
    done = calibrate(pred, data, "PublicTest", n_bins=5, out_dir=tmp_path)
    assert asked == ["PublicTest"]
    assert done.fit.split == "PublicTest"
    assert done.summary["split"] == "PrivateTest"
    assert np.allclose(done.probs_after, cal.apply_temperature(pred.probs, done.fit.temperature))
    saved = json.loads((tmp_path / cal.TEMPERATURE_FILE).read_text())
    assert saved["temperature"] == pytest.approx(done.fit.temperature)
