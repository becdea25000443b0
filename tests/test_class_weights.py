"""Class weights: each scheme on hand-computed counts, normalisation, JSON round trip, load errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_utils import CLASS_NAMES, NUM_CLASSES
from fer_utils.data import (
    ClassWeightsError,
    class_counts,
    compute_class_weights,
    load_class_weights,
    read_class_weights,
    save_class_weights,
    weights_table,
)
from fer_utils.data.class_weights import SCHEMES

# Disgust (label 1) is rare and Happy (label 3) common, as in FER2013.
COUNTS = np.array([100, 25, 100, 400, 100, 100, 100])
TOTAL = COUNTS.sum()  # 925


def test_class_counts_counts_each_label_and_keeps_absent_classes() -> None:
    counts = class_counts(np.array([3, 3, 0, 6, 3]))
    assert counts.dtype == np.int64
    assert counts.tolist() == [1, 0, 0, 3, 0, 0, 1]


def test_class_counts_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match="0..6"):
        class_counts(np.array([0, NUM_CLASSES]))


def test_none_scheme_is_all_ones() -> None:
    assert compute_class_weights(COUNTS, "none").tolist() == [1.0] * NUM_CLASSES


def test_inverse_frequency_gives_every_class_the_same_total_weight() -> None:
    w = compute_class_weights(COUNTS, "inverse")
    # raw 1/n, so w*n is constant; normalised so that sum(w*n) = N: w*n = N/7.
    np.testing.assert_allclose(w * COUNTS, TOTAL / NUM_CLASSES)
    assert w[1] == pytest.approx(37 / 7)


def test_sqrt_inverse_hand_computed() -> None:
    w = compute_class_weights(COUNTS, "sqrt_inverse")
    # raw 1/sqrt(n); sum(raw*n) = sum(sqrt(n)) = 10+5+10+20+10+10+10 = 75.
    expected = 1 / np.sqrt(COUNTS) * TOTAL / 75
    np.testing.assert_allclose(w, expected)
    assert w[1] == pytest.approx(0.2 * 925 / 75)


def test_effective_number_hand_computed() -> None:
    counts = [1, 2, 1, 1, 1, 1, 1]
    # beta = 0.5: E_1 = 1, E_2 = (1 - 0.25) / 0.5 = 1.5; raw = 1, 2/3; sum(raw*n) = 22/3; N = 8.
    w = compute_class_weights(counts, "effective_number", beta=0.5)
    np.testing.assert_allclose(w, [12 / 11, 8 / 11, 12 / 11, 12 / 11, 12 / 11, 12 / 11, 12 / 11])


def test_effective_number_spans_none_to_inverse() -> None:
    np.testing.assert_allclose(compute_class_weights(COUNTS, "effective_number", beta=0.0), 1.0)
    np.testing.assert_allclose(
        compute_class_weights(COUNTS, "effective_number", beta=1 - 1e-9),
        compute_class_weights(COUNTS, "inverse"),
        rtol=1e-5,
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_keeps_the_mean_weight_per_sample_at_one(scheme: str) -> None:
    w = compute_class_weights(COUNTS, scheme)
    assert w.dtype == np.float64 and w.shape == (NUM_CLASSES,)
    assert np.sum(w * COUNTS) / TOTAL == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", ["inverse", "sqrt_inverse", "effective_number"])
def test_weighted_schemes_refuse_a_class_with_no_samples(scheme: str) -> None:
    counts = COUNTS.copy()
    counts[1] = 0
    with pytest.raises(ValueError, match="Disgust"):
        compute_class_weights(counts, scheme)


def test_unknown_scheme_and_bad_beta_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        compute_class_weights(COUNTS, "focal")
    with pytest.raises(ValueError, match="beta"):
        compute_class_weights(COUNTS, "effective_number", beta=1.0)


def test_weights_table_has_classes_as_rows_and_schemes_as_columns() -> None:
    table = weights_table(COUNTS)
    assert list(table.index) == list(CLASS_NAMES)
    assert list(table.columns) == list(SCHEMES)
    np.testing.assert_allclose(table["inverse"], compute_class_weights(COUNTS, "inverse"))


def _save(path: Path, scheme: str = "inverse") -> np.ndarray:
    w = compute_class_weights(COUNTS, scheme)
    save_class_weights(path, w, scheme=scheme, counts=COUNTS, data_md5="abc")
    return w


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    w = _save(path)
    np.testing.assert_allclose(load_class_weights(path), w)
    record = json.loads(path.read_text())
    assert set(record) == {"scheme", "beta", "split", "data_md5", "class_names", "counts", "weights"}
    assert record["split"] == "Training" and record["class_names"] == list(CLASS_NAMES)
    assert record["counts"] == COUNTS.tolist() and record["beta"] is None


def test_effective_number_records_its_beta(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    w = compute_class_weights(COUNTS, "effective_number", beta=0.99)
    save_class_weights(path, w, scheme="effective_number", counts=COUNTS, data_md5="abc", beta=0.99)
    assert read_class_weights(path)["beta"] == 0.99


def test_saving_weights_from_a_test_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Training"):
        save_class_weights(tmp_path / "w.json", np.ones(NUM_CLASSES), scheme="none", counts=COUNTS,
                           data_md5="abc", split="PublicTest")  # fmt: skip


def _tamper(path: Path, **changes: object) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"class_names": list(reversed(CLASS_NAMES))}, "class_names"),
        ({"weights": [1.0] * (NUM_CLASSES - 1)}, "weights"),
        ({"weights": [-1.0] + [1.0] * (NUM_CLASSES - 1)}, "weights"),
        ({"counts": [1, 2]}, "counts"),
        ({"split": "PrivateTest"}, "split"),
        ({"scheme": "magic"}, "scheme"),
    ],
)
def test_load_names_the_file_and_the_bad_field(tmp_path: Path, changes: dict, field: str) -> None:
    path = tmp_path / "w.json"
    _save(path)
    _tamper(path, **changes)
    with pytest.raises(ClassWeightsError, match=f"{path}: field '{field}'") as info:
        load_class_weights(path)
    assert info.value.field == field and info.value.file == str(path)


def test_load_reports_a_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"scheme": "none"}))
    with pytest.raises(ClassWeightsError, match="field 'split': missing"):
        load_class_weights(path)


def test_load_reports_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text("{not json")
    with pytest.raises(ClassWeightsError, match="not valid JSON"):
        load_class_weights(path)
