"""Specification of the synthetic FER2013-format data set (fer_utils.data.synthetic and its face_drawing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_utils import NUM_CLASSES, SPLITS
from fer_utils.data import is_synthetic, make_synthetic_csv, synthetic
from fer_utils.data.face_drawing import draw_face

# Tiny counts keep every test well under a second.
SMALL = {"Training": 2, "PublicTest": 1}


def read_rows(path: Path) -> tuple[str, list[tuple[int, np.ndarray, str]]]:
    """Header line and (label, pixels (48, 48) int, usage) rows, parsed independently of fer_utils.data."""
    header, *lines = path.read_bytes().decode("ascii").split("\n")
    assert lines[-1] == "", "file must end with a newline"
    rows = []
    for line in lines[:-1]:
        label, pixels, usage = line.split(",")
        rows.append((int(label), np.array(pixels.split(" "), dtype=np.int64).reshape(48, 48), usage))
    return header, rows


def test_draw_face_returns_uint8_image_of_requested_size() -> None:
    img = draw_face(3, np.random.default_rng(0), size=64)
    assert img.shape == (64, 64) and img.dtype == np.uint8


def test_draw_face_rejects_unknown_label() -> None:
    with pytest.raises(ValueError, match="label"):
        draw_face(NUM_CLASSES, np.random.default_rng(0))


def test_label_changes_the_face_drawn_from_the_same_random_state() -> None:
    faces = [draw_face(label, np.random.default_rng(7)) for label in range(NUM_CLASSES)]
    for a in range(NUM_CLASSES):
        for b in range(a + 1, NUM_CLASSES):
            assert not np.array_equal(faces[a], faces[b]), (a, b)


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    a = make_synthetic_csv(tmp_path / "a.csv", n_per_class=SMALL, seed=3)
    b = make_synthetic_csv(tmp_path / "b.csv", n_per_class=SMALL, seed=3)
    assert a.read_bytes() == b.read_bytes()


def test_different_seeds_write_different_images(tmp_path: Path) -> None:
    _, rows_a = read_rows(make_synthetic_csv(tmp_path / "a.csv", n_per_class=SMALL, seed=1))
    _, rows_b = read_rows(make_synthetic_csv(tmp_path / "b.csv", n_per_class=SMALL, seed=2))
    images_a = {r[1].tobytes() for r in rows_a}
    assert not images_a & {r[1].tobytes() for r in rows_b}


def test_csv_has_fer2013_header_and_valid_rows(tmp_path: Path) -> None:
    path = make_synthetic_csv(tmp_path / "s.csv", n_per_class=SMALL, seed=0)
    assert b"\r" not in path.read_bytes()
    header, rows = read_rows(path)
    assert header == "emotion,pixels,Usage"
    for label, pixels, usage in rows:
        assert 0 <= label < NUM_CLASSES
        assert pixels.min() >= 0 and pixels.max() <= 255
        assert usage in SPLITS


def test_counts_per_split_and_class_are_as_requested(tmp_path: Path) -> None:
    requested = {"Training": [3, 1, 0, 2, 1, 1, 1], "PrivateTest": 2}
    _, rows = read_rows(make_synthetic_csv(tmp_path / "s.csv", n_per_class=requested, seed=0))
    counts = {
        split: np.bincount([label for label, _, usage in rows if usage == split], minlength=NUM_CLASSES).tolist()
        for split in SPLITS
    }
    assert counts == {
        "Training": [3, 1, 0, 2, 1, 1, 1],
        "PublicTest": [0] * NUM_CLASSES,
        "PrivateTest": [2] * NUM_CLASSES,
    }


def test_rows_come_in_split_order(tmp_path: Path) -> None:
    n = {"PrivateTest": 1, "Training": 1, "PublicTest": 1}  # dict order must not matter
    _, rows = read_rows(make_synthetic_csv(tmp_path / "s.csv", n_per_class=n, seed=0))
    usages = [r[2] for r in rows]
    assert usages == sorted(usages, key=SPLITS.index)


def test_test_split_images_do_not_depend_on_training_count(tmp_path: Path) -> None:
    _, small = read_rows(make_synthetic_csv(tmp_path / "a.csv", n_per_class={"Training": 1, "PublicTest": 1}))
    _, large = read_rows(make_synthetic_csv(tmp_path / "b.csv", n_per_class={"Training": 3, "PublicTest": 1}))
    public = [{r[1].tobytes() for r in rows if r[2] == "PublicTest"} for rows in (small, large)]
    assert public[0] == public[1]


def test_unknown_split_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Validation"):
        make_synthetic_csv(tmp_path / "s.csv", n_per_class={"Validation": 1})


def test_default_counts_follow_fer2013_imbalance() -> None:
    training = synthetic.DEFAULT_N_PER_CLASS["Training"]
    assert sum(training) == pytest.approx(synthetic.DEFAULT_BASE_PER_CLASS["Training"] * NUM_CLASSES, abs=3)
    assert np.argmin(training) == 1 and np.argmax(training) == 3  # fewest Disgust, most Happy, as in FER2013


def test_sidecar_records_generator_seed_and_counts(tmp_path: Path) -> None:
    path = make_synthetic_csv(tmp_path / "s.csv", n_per_class=SMALL, seed=5)
    meta = json.loads((tmp_path / "s.csv.synthetic.json").read_text())
    assert meta["generator"] == "fer_utils.data.synthetic"
    assert meta["seed"] == 5
    assert meta["n_per_class"] == {"Training": [2] * NUM_CLASSES, "PublicTest": [1] * NUM_CLASSES}
    assert "not FER2013" in meta["note"]
    assert is_synthetic(path)


def test_plain_csv_is_not_synthetic(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n")
    assert not is_synthetic(path)


def test_ensure_default_dataset_generates_once_and_regenerates_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "synthetic" / "default.csv"
    monkeypatch.setattr(synthetic, "DEFAULT_PATH", target)
    monkeypatch.setattr(synthetic, "DEFAULT_N_PER_CLASS", {"Training": 1})
    assert synthetic.ensure_default_dataset() == target and is_synthetic(target)
    first_write = target.stat().st_mtime_ns
    synthetic.ensure_default_dataset()
    assert target.stat().st_mtime_ns == first_write  # current: reused, not rewritten

    side = synthetic.sidecar_path(target)
    side.write_text(json.dumps({**json.loads(side.read_text()), "seed": 99}))
    synthetic.ensure_default_dataset()
    assert json.loads(side.read_text())["seed"] == synthetic.DEFAULT_SEED


def test_classes_differ_on_average() -> None:
    """Held-out faces are nearest to their own class's mean HOG descriptor far more often than chance.

    Pixel means are dominated by pose and lighting, so the class means are compared in
    HOG space (local edge orientations: the shapes of brows, eyes and mouth).
    """
    import cv2

    hog = cv2.HOGDescriptor((48, 48), (16, 16), (8, 8), (8, 8), 9)

    def describe(seed: int, n: int) -> np.ndarray:  # (classes, n, features)
        return np.array(
            [
                [hog.compute(draw_face(c, np.random.default_rng([seed, c, i]))).ravel() for i in range(n)]
                for c in range(NUM_CLASSES)
            ]
        )

    means = describe(0, 20).mean(axis=1)
    held_out = describe(1, 10)
    dist = ((held_out[:, :, None, :] - means[None, None]) ** 2).sum(-1)  # (class, i, candidate class)
    accuracy = (dist.argmin(-1) == np.arange(NUM_CLASSES)[:, None]).mean()
    assert accuracy > 2.0 / NUM_CLASSES  # measured ~0.5; chance is 1/7
