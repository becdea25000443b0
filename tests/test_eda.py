"""EDA checks: duplicate groups within and across splits, blank images, FER vs FER+ agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_utils import CLASS_NAMES
from fer_utils.data import (
    FERPLUS_COLUMNS,
    duplicate_groups,
    duplicate_summary,
    ferplus_agreement,
    ferplus_confusion,
    image_keys,
    not_a_face,
    uniform_images,
)
from fer_utils.data.eda import NO_MAJORITY


@pytest.fixture
def crafted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eight faces: A at rows 0 and 5 (Training + PublicTest, same label), B at rows 1 and 2
    (both Training, labels differ), C at rows 3, 6, 7 (PublicTest + PrivateTest); row 4 is A
    with one pixel changed, which is not a duplicate."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 256, size=(48, 48), dtype=np.uint8) for _ in range(3))
    near_a = a.copy()
    near_a[10, 10] ^= 1
    images = np.stack([a, b, b, c, near_a, a, c, c])
    labels = np.array([3, 0, 4, 2, 3, 3, 2, 2])
    usage = np.array(["Training", "Training", "Training", "PublicTest", "Training", "PublicTest", "PrivateTest",
                      "PublicTest"])  # fmt: skip
    return images, labels, usage


def test_image_keys_match_exactly_identical_images(crafted: tuple) -> None:
    keys = image_keys(crafted[0])
    assert keys[0] == keys[5] and keys[1] == keys[2] and keys[3] == keys[6] == keys[7]
    assert len(set(keys.tolist())) == 4  # A, B, C, and the near-copy of A


def test_duplicate_groups_within_and_across_splits(crafted: tuple) -> None:
    groups = duplicate_groups(*crafted)
    assert groups["group"].tolist() == [0, 1, 2]
    assert groups["rows"].tolist() == [[0, 5], [1, 2], [3, 6, 7]]
    assert groups["size"].tolist() == [2, 2, 3]
    assert groups["splits"][2] == ["PublicTest", "PrivateTest", "PublicTest"]
    assert groups["split_set"].tolist() == ["Training+PublicTest", "Training", "PublicTest+PrivateTest"]
    assert groups["spans_splits"].tolist() == [True, False, True]


def test_duplicate_groups_flag_conflicting_labels(crafted: tuple) -> None:
    groups = duplicate_groups(*crafted)
    assert groups["conflicting_labels"].tolist() == [False, True, False]
    assert groups["labels"][1] == [0, 4]


def test_duplicate_summary_counts(crafted: tuple) -> None:
    s = duplicate_summary(duplicate_groups(*crafted))
    assert s["n_groups"] == 3 and s["n_rows"] == 7 and s["n_redundant"] == 4
    assert s["n_within_split"] == 1 and s["n_spanning"] == 2 and s["n_conflicting"] == 1
    assert s["n_spanning_training"] == 1 and s["n_test_rows_in_training"] == 1
    assert s["split_pairs"] == {"Training+PublicTest": 1, "PublicTest+PrivateTest": 1}


def test_no_duplicates_gives_an_empty_table() -> None:
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    groups = duplicate_groups(images, np.zeros(3, dtype=int), np.array(["Training"] * 3))
    assert len(groups) == 0 and "conflicting_labels" in groups.columns
    assert duplicate_summary(groups)["n_groups"] == 0


def test_uniform_images_finds_blank_and_near_blank_faces() -> None:
    rng = np.random.default_rng(1)
    black = np.zeros((48, 48), dtype=np.uint8)
    gray = np.full((48, 48), 200, dtype=np.uint8)
    almost = (128 + rng.integers(-1, 2, size=(48, 48))).astype(np.uint8)  # std about 0.8
    face = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    images = np.stack([face, black, almost, gray])
    assert uniform_images(images).tolist() == [1, 2, 3]
    assert uniform_images(images, max_std=0).tolist() == [1, 3]


# --------------------------------------------------------------------------- FER+


def _votes(rows: list[dict[str, int]]) -> pd.DataFrame:
    """FER+ vote counts, one row per dict; columns left out get no votes."""
    return pd.DataFrame([{c: r.get(c, 0) for c in FERPLUS_COLUMNS} for r in rows])


# Angry agreed; Happy agreed; Sad relabelled Neutral; not a face; contempt (no FER emotion).
FER_LABELS = np.array([0, 3, 4, 6, 2])
VOTES = [
    {"anger": 8, "neutral": 2},
    {"happiness": 10},
    {"neutral": 7, "sadness": 3},
    {"NF": 8, "neutral": 2},
    {"contempt": 6, "fear": 4},
]


def test_not_a_face_needs_a_strict_majority_of_votes() -> None:
    votes = _votes([{"NF": 6, "neutral": 4}, {"NF": 5, "neutral": 5}, {"NF": 4, "neutral": 3, "sadness": 3}])
    assert not_a_face(votes).tolist() == [True, False, False]


def test_ferplus_agreement_counts() -> None:
    a = ferplus_agreement(FER_LABELS, _votes(VOTES))
    assert (a["n"], a["n_majority"], a["n_agree"]) == (5, 3, 2)
    assert a["agreement"] == pytest.approx(2 / 3) and a["agreement_all"] == pytest.approx(2 / 5)
    assert a["n_not_a_face"] == 1 and a["n_no_majority"] == 1
    assert a["per_class"]["Angry"] == 1.0 and a["per_class"]["Sad"] == 0.0


def test_ferplus_confusion_table() -> None:
    table = ferplus_confusion(FER_LABELS, _votes(VOTES))
    assert list(table.index) == list(CLASS_NAMES)
    assert list(table.columns) == [*CLASS_NAMES, "NF", NO_MAJORITY]
    assert table.loc["Sad", "Neutral"] == 1 and table.loc["Neutral", "NF"] == 1
    assert table.loc["Fear", NO_MAJORITY] == 1 and table.to_numpy().sum() == 5


def test_ferplus_comparison_refuses_unaligned_rows() -> None:
    with pytest.raises(ValueError, match="align_votes"):
        ferplus_agreement(FER_LABELS[:3], _votes(VOTES))
