"""The model shipped in models/: small, checked against its SHA-256, usable with no arguments,
and described by numbers that the model card and the README repeat exactly."""

import re

import cv2
import numpy as np
import pytest
import torch

from fer_utils import CLASS_NAMES, paths
from fer_utils.evaluate import predict
from fer_utils.files import sha256_file
from fer_utils.live.sources import SAMPLE_FACE
from fer_utils.model import checkpoint as ck


@pytest.fixture(scope="module")
def shipped():
    return ck.load_model()


def test_shipped_file_is_at_most_25_mb_and_matches_the_recorded_sha256():
    assert ck.SHIPPED_MODEL.is_file()
    assert ck.SHIPPED_MODEL.stat().st_size <= 25_000_000
    assert ck.SHIPPED_SHA256 == sha256_file(ck.SHIPPED_MODEL)


def test_shipped_file_loads_with_weights_only_and_holds_no_training_state():
    raw = torch.load(ck.SHIPPED_MODEL, map_location="cpu", weights_only=True)
    assert raw["format"] == ck.FORMAT
    assert not set(ck.TRAINING_STATE_KEYS) & raw.keys()
    assert raw["weights_dtype"] == "float16"


def test_load_model_without_arguments_is_an_efficientnet_b3_chosen_on_publictest(shipped):
    model, meta = shipped
    assert meta["model_config"].arch == "efficientnet_b3"
    # trained from scratch (no ImageNet weights were reachable), possibly in two runs (--init_checkpoint),
    # or a run carried on across machines from its own exported checkpoint (--continue_from)
    assert meta["init"] == "random" or meta["init"].startswith(("checkpoint: ", "continued: "))
    assert meta["data"]["train_split"] == "Training" and meta["data"]["val_split"] == "PublicTest"
    assert meta["evaluation"]["split"] == "PublicTest"
    assert meta["evaluation"]["tta"] == meta["tta"]
    assert meta["evaluation"]["data_md5"] == meta["data"]["content_md5"]
    assert meta["class_names"] == CLASS_NAMES
    assert not model.training


def test_shipped_model_classifies_a_real_face(shipped):
    model, meta = shipped
    face = cv2.resize(cv2.imread(str(SAMPLE_FACE), cv2.IMREAD_GRAYSCALE), (48, 48), interpolation=cv2.INTER_AREA)
    probs = predict(model, face[None], meta["preprocess"], tta=meta["tta"])
    assert probs.shape == (1, len(CLASS_NAMES))
    assert np.isclose(probs.sum(), 1.0, atol=1e-5) and (probs > 0).all()


def test_a_tampered_shipped_file_is_refused(tmp_path, monkeypatch):
    data = bytearray(ck.SHIPPED_MODEL.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    (tmp_path / "shipped.pt").write_bytes(bytes(data))
    monkeypatch.setattr(ck, "SHIPPED_MODEL", tmp_path / "shipped.pt")
    with pytest.raises(ck.CheckpointError, match="SHA-256"):
        ck.load_model()


def test_model_card_and_readme_state_the_recorded_publictest_numbers(shipped):
    ev = shipped[1]["evaluation"]
    card = (paths.MODELS_DIR / "README.md").read_text()
    readme = (paths.REPO_ROOT / "README.md").read_text()
    accuracy = f"{100 * ev['accuracy']:.1f}%"
    assert accuracy in card and accuracy in readme
    assert f"{ev['macro_f1']:.3f}" in card and f"{ev['macro_f1']:.3f}" in readme
    for name in CLASS_NAMES:
        recall = ev["per_class"][name]["recall"]
        assert re.search(rf"\| {name} \| {100 * recall:.1f}% \|", card), f"{name} recall missing from the model card"
    assert ck.SHIPPED_SHA256 in card
    assert ev["data_md5"] in card
    assert "python -m fer_utils.evaluate --checkpoint models/fer2013_efficientnet_b3.pt" in card
