"""Post-hoc logit adjustment for class priors: the adjustment, the choice of tau, and its record in a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from fer_utils.evaluate import adjustment_table, choose_tau, class_prior, logit_adjust


def test_class_prior_is_the_label_frequency_and_refuses_an_empty_class():
    assert class_prior([0, 0, 1, 2], 3).tolist() == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"classes \[2\] have no faces"):
        class_prior([0, 1], 3)


def test_tau_zero_changes_nothing_and_a_positive_tau_favours_rare_classes():
    probs = np.array([[0.6, 0.4], [0.55, 0.45]])
    prior = np.array([0.9, 0.1])
    np.testing.assert_allclose(logit_adjust(probs, prior, 0.0), probs, rtol=1e-6)
    adjusted = logit_adjust(probs, prior, 1.0)
    np.testing.assert_allclose(adjusted.sum(axis=1), 1.0)
    assert (adjusted.argmax(axis=1) == 1).all()  # the rare class wins once its prior is divided out
    expected = probs[0] / prior / (probs[0] / prior).sum()
    np.testing.assert_allclose(adjusted[0], expected, rtol=1e-6)


def test_the_chosen_tau_maximises_macro_f1_on_the_table():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 90 + [1] * 10)
    logits = rng.normal(size=(100, 2))
    logits[:, 0] += 1.5  # a model that leans to the frequent class
    logits[labels == 1, 1] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    table = adjustment_table(labels, probs, class_prior(labels, 2), taus=(0.0, 0.5, 1.0), class_names=["a", "b"])
    assert list(table["tau"]) == [0.0, 0.5, 1.0]
    assert {"accuracy", "macro_f1", "recall_a", "recall_b"} <= set(table.columns)
    assert table["recall_b"].is_monotonic_increasing  # more adjustment, more of the rare class found
    tau = choose_tau(table)
    assert table.loc[table["tau"] == tau, "macro_f1"].item() == table["macro_f1"].max()


def test_export_records_the_adjustment_and_evaluation_applies_it_only_when_asked(tmp_path, tiny_csv, capsys):
    import json

    from fer_utils.data import load_dataset
    from fer_utils.evaluate import evaluate_checkpoint
    from fer_utils.model import ModelConfig, Preprocess, create_model, save_checkpoint
    from fer_utils.model import checkpoint as ck
    from fer_utils.model.cli import main as model_cli

    cfg = ModelConfig(arch="test_efficientnet", zero_init_last=False)
    model, _ = create_model(cfg)
    src = save_checkpoint(
        tmp_path / "best.pt",
        {
            "format": ck.FORMAT,
            "model_config": cfg.to_dict(),
            "state_dict": model.state_dict(),
            "class_names": ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"],
            "preprocess": Preprocess(crop_size=44).to_dict(),
            "tta": "none",
        },
    )
    dst = tmp_path / "release.pt"
    assert model_cli(["export", str(src), str(dst), "--logit-adjust", "0.7", "--prior-data", str(tiny_csv)]) == 0
    capsys.readouterr()
    setting = ck.load_checkpoint(dst)["logit_adjustment"]
    assert setting["tau"] == 0.7 and setting["prior_from"]["split"] == "Training"
    np.testing.assert_allclose(setting["prior"], np.full(7, 1 / 7))  # the tiny set: 12 Training faces per class
    data = load_dataset(tiny_csv)
    plain = evaluate_checkpoint(dst, data, "PublicTest", tta="none", progress=False)
    adjusted = evaluate_checkpoint(dst, data, "PublicTest", tta="none", progress=False, logit_adjust=True)
    assert plain["logit_adjustment"] is None and adjusted["logit_adjustment"]["tau"] == 0.7
    with pytest.raises(ValueError, match="field 'logit_adjustment' is missing"):
        evaluate_checkpoint(src, data, "PublicTest", tta="none", progress=False, logit_adjust=True)
    assert json.dumps(adjusted)  # JSON-ready
