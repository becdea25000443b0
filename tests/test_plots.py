"""Plots: every figure function returns a Figure and writes a PNG when asked (small inputs)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # headless, set before pyplot is imported

from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from fer_utils import CLASS_NAMES, NUM_CLASSES, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    """Three random faces per class, except Disgust which has none."""
    rng = np.random.default_rng(0)
    labels = np.repeat([c for c in range(NUM_CLASSES) if c != 1], 3)
    return rng.integers(0, 256, size=(len(labels), 48, 48), dtype=np.uint8), labels


def _mistakes() -> pd.DataFrame:
    return pd.DataFrame(
        {"position": [0, 4], "true_name": ["Angry", "Fear"], "pred_name": ["Sad", "Neutral"],
         "confidence": [0.9, 0.6]}
    )  # fmt: skip


def _groups() -> pd.DataFrame:
    return pd.DataFrame(
        {"rows": [[0, 1], [2, 3, 4]], "splits": [["Training", "PublicTest"], ["Training"] * 3],
         "labels": [[0, 0], [2, 2, 3]]}
    )  # fmt: skip


CASES: dict[str, Callable[[np.ndarray, np.ndarray], dict]] = {
    "class_counts_bar": lambda x, y: {
        "counts": pd.DataFrame(
            [[5, 1, 4, 9, 6, 3, 6, 34], [1, 0, 1, 2, 1, 1, 1, 7]],
            index=["Training", "PublicTest"],
            columns=[*CLASS_NAMES, "total"],
        ),  # fmt: skip
    },
    "sample_grid": lambda x, y: {"images": x, "labels": y, "per_class": 2, "seed": 0},
    "mean_faces": lambda x, y: {"images": x, "labels": y},
    "intensity_histograms": lambda x, y: {"images": x, "labels": y},
    "class_weights_plot": lambda x, y: {
        "table": pd.DataFrame(
            {"none": np.ones(NUM_CLASSES), "inverse": np.linspace(0.5, 3, NUM_CLASSES)}, index=CLASS_NAMES
        )
    },
    "learning_curves": lambda x, y: {
        "summary_df": pd.DataFrame(
            {
                "epoch": [1, 2, 3],
                "train_loss": [1.8, 1.4, 1.2],
                "val_loss": [1.7, 1.5, 1.4],
                "val_accuracy": [0.3, 0.45, 0.5],
                "lr": [1e-3, 8e-4, 5e-4],
            }
        )  # fmt: skip
    },
    "confusion_matrix_plot": lambda x, y: {"cm": np.arange(NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)},
    "mistakes_grid": lambda x, y: {"images": x, "mis_df": _mistakes(), "n": 2},
    "duplicates_grid": lambda x, y: {"images": x, "groups": _groups()},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_returns_a_figure_and_writes_a_png_when_asked(
    name: str, faces: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "DPI", 30)  # small PNGs keep the test fast
    path = tmp_path / "figs" / f"{name}.png"
    fig = getattr(plots, name)(**CASES[name](*faces), save_to=path)
    assert isinstance(fig, Figure) and fig.axes
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_no_file_is_written_without_save_to(faces: tuple[np.ndarray, np.ndarray], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert isinstance(plots.sample_grid(*faces, per_class=1), Figure)
    assert list(tmp_path.iterdir()) == []


def test_faces_are_drawn_at_true_gray_levels(faces: tuple[np.ndarray, np.ndarray]) -> None:
    fig = plots.mean_faces(*faces)
    image = fig.axes[0].get_images()[0]
    assert image.get_clim() == (0, 255) and image.get_cmap().name == "gray"
    assert image.get_interpolation() == "nearest"


def test_brightness_histogram_has_the_bins_asked_for(faces: tuple[np.ndarray, np.ndarray]) -> None:
    def edges(fig: Figure) -> int:
        outline = fig.axes[1].patches[0].get_xy()  # a step histogram's outline visits every bin edge
        return len(np.unique(outline[:, 0]))

    assert edges(plots.intensity_histograms(*faces, brightness_bins=4)) == 5
    assert edges(plots.intensity_histograms(*faces, brightness_bins=10)) == 11
    with pytest.raises(ValueError, match="brightness_bins"):
        plots.intensity_histograms(*faces, brightness_bins=0)


def test_confusion_plot_normalises_rows() -> None:
    cm = np.eye(NUM_CLASSES, dtype=int) * 3
    cm[0, 1] = 1
    fig = plots.confusion_matrix_plot(cm, CLASS_NAMES, normalize=True)
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown[0, 0] == pytest.approx(0.75) and shown[0, 1] == pytest.approx(0.25)


def test_learning_curves_group_columns_by_kind() -> None:
    df = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.9], "val_macro_f1": [0.2, 0.3], "lr": [0.1, 0.05]})
    fig = plots.learning_curves(df)
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy / F1", "Learning rate"]
