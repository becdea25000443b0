"""An eight-class FER+ model fine-tuned from a seven-class FER2013 checkpoint with the training engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ferplus_votes import write_votes

from fer_utils.data import FERPLUS_CLASS_NAMES, ferplus_distribution, read_fer2013, read_ferplus
from fer_utils.model import load_checkpoint, load_model
from fer_utils.train import TrainConfig, fit

TRAINING_KINDS = ("label", "label", "contempt", "not_a_face", "label", "label", "label")


def config(data, out, **kw):
    base = dict(
        data=str(data),
        out_dir=str(out),
        arch="test_efficientnet",
        zero_init_last=False,
        epochs=1,
        batch_size=16,
        num_threads=1,
        progress=False,
        ema_decay=0.0,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def votes(tiny_csv, tmp_path_factory):
    data = read_fer2013(tiny_csv)
    kinds = ["label", "label", "contempt", "tie", "not_a_face", "label", "label"]
    return write_votes(
        tmp_path_factory.mktemp("votes") / "fer2013new.csv", data.usage, data.labels, kinds, TRAINING_KINDS
    )


@pytest.fixture(scope="module")
def fer2013_checkpoint(tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("fer2013")
    fit(config(tiny_csv, out))
    return out / "best.pt"


@pytest.fixture(scope="module")
def ferplus_run(tiny_csv, votes, fer2013_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("ferplus")
    model, result = fit(
        config(tiny_csv, out, label_set="ferplus", ferplus=str(votes), init_checkpoint=str(fer2013_checkpoint), lr=0.0)
    )
    return out, model, result


def test_vote_distribution_drops_single_votes_and_unusable_faces():
    import pandas as pd

    from fer_utils.data import FERPLUS_COLUMNS

    #           neu hap sur sad ang dis fea con unk NF
    rows = [[6, 1, 0, 0, 0, 0, 0, 3, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0, 0, 8], [0, 0, 0, 0, 0, 0, 0, 0, 5, 5]]
    dist, usable = ferplus_distribution(pd.DataFrame(rows, columns=list(FERPLUS_COLUMNS)))
    assert usable.tolist() == [True, False, False]
    expected = np.zeros(8, dtype=np.float32)
    expected[FERPLUS_CLASS_NAMES.index("Neutral")], expected[FERPLUS_CLASS_NAMES.index("Contempt")] = 6 / 9, 3 / 9
    np.testing.assert_allclose(dist[0], expected, rtol=1e-6)


def test_ferplus_run_records_eight_classes_with_contempt_last(ferplus_run):
    out, _, _ = ferplus_run
    _, meta = load_model(out / "best.pt")
    assert meta["class_names"] == FERPLUS_CLASS_NAMES
    assert meta["class_names"][7] == "Contempt" and meta["model_config"].num_classes == 8


def test_ferplus_run_copies_the_seven_shared_classifier_rows(ferplus_run, fer2013_checkpoint):
    out, _, _ = ferplus_run
    source = load_checkpoint(fer2013_checkpoint)["state_dict"]
    grown = load_checkpoint(out / "best.pt")["state_dict"]
    changed = [k for k in source if source[k].shape != grown[k].shape]
    assert changed and all(grown[k].shape[0] == 8 and source[k].shape[0] == 7 for k in changed)
    for k in changed:  # lr 0: the copied rows are still the source's
        assert torch.equal(grown[k][:7].float(), source[k].float())


def test_ferplus_run_trains_on_usable_votes_and_selects_on_majority_faces(ferplus_run, tiny_csv, votes):
    out, _, _ = ferplus_run
    info = load_checkpoint(out / "best.pt")["data"]
    data = read_fer2013(tiny_csv)
    _, usable = ferplus_distribution(read_ferplus(votes).iloc[np.flatnonzero(data.usage == "Training")])
    assert info["label_set"] == "ferplus"
    assert info["n_train"] == int(usable.sum()) == 84 - 12  # every 7th Training face is not a face
    assert info["n_val"] == 28 - 8  # the PublicTest ties and not-a-face faces have no majority; Contempt counts


def test_ferplus_run_needs_the_votes_and_refuses_seven_class_weights(tiny_csv, tmp_path):
    with pytest.raises(ValueError, match="field 'ferplus' is empty"):
        config(tiny_csv, tmp_path, label_set="ferplus")
    with pytest.raises(ValueError, match="'class_weights' and 'label_corrections'"):
        config(tiny_csv, tmp_path, label_set="ferplus", ferplus="v.csv", class_weights="w.json")
