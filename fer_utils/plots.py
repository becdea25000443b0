"""Figures for the notebooks.

Every function returns a ``matplotlib.figure.Figure`` and, given ``save_to``,
also writes it as PNG (atomically). Figures are made with ``pyplot`` so a
notebook shows them; assign the result (``fig = plots.mean_faces(...)``) or end
the line with ``;`` to avoid showing it twice. No backend is chosen here: a
notebook keeps its inline backend, and headless runs get matplotlib's
automatic fallback (or set ``MPLBACKEND=Agg``).

Faces are drawn at their true gray levels (``vmin=0, vmax=255``, no
per-image contrast stretch) with ``interpolation="nearest"`` so 48x48 pixels stay
visible. Figures showing real faces must not be committed (see the data README).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import CLASS_NAMES
from .files import atomic_write

FACE_STYLE: dict[str, Any] = {"cmap": "gray", "vmin": 0, "vmax": 255, "interpolation": "nearest"}
"""``imshow`` arguments for uint8 faces."""

DPI = 100
"""Resolution of saved PNGs (dots per inch)."""


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG atomically (``dpi`` defaults to :data:`DPI`); returns the path."""
    dpi = DPI if dpi is None else dpi
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


def _finish(fig: Figure, save_to: str | os.PathLike[str] | None) -> Figure:
    if save_to is not None:
        save_figure(fig, save_to)
    return fig


def _face(ax: Axes, image: np.ndarray | None, title: str = "") -> None:
    if image is not None:
        ax.imshow(image, **FACE_STYLE)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _face_grid(n_rows: int, n_cols: int, cell: float = 1.1) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * cell, n_rows * cell * 1.15), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes


def class_counts_bar(
    counts: pd.DataFrame, *, log: bool = False, save_to: str | os.PathLike[str] | None = None
) -> Figure:
    """Grouped bars of samples per class and split.

    Args:
        counts: ``FERData.counts()``: rows = splits, columns = class names (a
            ``total`` column is ignored).
        log: Logarithmic count axis.
        save_to: PNG path, or ``None``.
    """
    table = counts.drop(columns=["total"], errors="ignore")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(len(table), 1)
    x = np.arange(table.shape[1])
    for i, (split, row) in enumerate(table.iterrows()):
        bars = ax.bar(x + i * width - 0.4 + width / 2, row.to_numpy(), width, label=str(split))
        ax.bar_label(bars, fontsize=6, rotation=90, padding=2)
    ax.set_xticks(x, [str(c) for c in table.columns])
    ax.set_ylabel("images")
    ax.set_yscale("log" if log else "linear")
    ax.margins(y=0.15)
    ax.legend(frameon=False)
    ax.set_title("Images per class and split")
    return _finish(fig, save_to)


def sample_grid(
    images: np.ndarray,
    labels: np.ndarray,
    per_class: int = 8,
    seed: int = 0,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Random faces of each class, one class per row.

    Args:
        images: uint8 (N, 48, 48).
        labels: int (N,).
        per_class: Faces per row (fewer when a class has fewer).
        seed: Seed of the random choice.
        class_names: Row titles, in label order.
        save_to: PNG path, or ``None``.
    """
    rng = np.random.default_rng(seed)
    fig, axes = _face_grid(len(class_names), per_class)
    for c, name in enumerate(class_names):
        members = np.flatnonzero(np.asarray(labels) == c)
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for j, i in enumerate(pick):
            _face(axes[c, j], images[i], name if j == 0 else "")
    return _finish(fig, save_to)


def mean_faces(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """The pixel-wise mean face of each class (0-255 gray scale), titled with the class and its count.

    Args:
        images: uint8 (N, 48, 48).
        labels: int (N,).
        class_names: Titles, in label order.
        save_to: PNG path, or ``None``.
    """
    labels = np.asarray(labels)
    fig, axes = _face_grid(1, len(class_names), cell=1.6)
    for c, name in enumerate(class_names):
        members = labels == c
        mean = images[members].mean(axis=0, dtype=np.float64) if members.any() else None
        _face(axes[0, c], mean, f"{name}\nn={int(members.sum())}")
    return _finish(fig, save_to)


def intensity_histograms(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Per-class distributions of pixel values (left) and of each image's mean brightness (right).

    Args:
        images: uint8 (N, 48, 48).
        labels: int (N,).
        class_names: Legend entries, in label order.
        save_to: PNG path, or ``None``.
    """
    labels = np.asarray(labels)
    flat = np.asarray(images).reshape(len(images), -1)
    fig, (ax_pix, ax_mean) = plt.subplots(1, 2, figsize=(10, 3.5))
    bins = np.linspace(0, 255, 33)
    for c, name in enumerate(class_names):
        members = flat[labels == c]
        if len(members) == 0:
            continue
        density = np.bincount(members.ravel(), minlength=256) / members.size
        ax_pix.plot(np.arange(256), density, label=name, lw=1)
        ax_mean.hist(members.mean(axis=1), bins=bins, density=True, histtype="step", label=name)
    ax_pix.set(xlabel="pixel value (0-255)", ylabel="fraction of pixels", title="Pixel values")
    ax_mean.set(xlabel="mean pixel value of an image", ylabel="density", title="Image brightness")
    ax_pix.legend(fontsize=7, frameon=False)
    return _finish(fig, save_to)


def class_weights_plot(table: pd.DataFrame, *, save_to: str | os.PathLike[str] | None = None) -> Figure:
    """Grouped bars of the class weights of each scheme.

    Args:
        table: ``class_weights.weights_table(counts)``: rows = classes, columns = schemes.
        save_to: PNG path, or ``None``.
    """
    fig, ax = plt.subplots(figsize=(8, 3.5))
    table.plot.bar(ax=ax, rot=0, width=0.8)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="", ylabel="weight (mean per Training sample = 1)", title="Class weights by scheme")
    ax.legend(frameon=False, fontsize=8)
    return _finish(fig, save_to)


def _curve_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """Split summary columns into losses, quality metrics and learning rates, by name."""
    groups: dict[str, list[str]] = {"loss": [], "metric": [], "lr": []}
    for col in columns:
        name = col.lower()
        if "loss" in name:
            groups["loss"].append(col)
        elif name == "lr" or name.endswith("_lr") or name.startswith("lr"):
            groups["lr"].append(col)
        elif any(k in name for k in ("acc", "f1", "top1", "top5")):
            groups["metric"].append(col)
    return groups


def learning_curves(summary_df: pd.DataFrame, *, save_to: str | os.PathLike[str] | None = None) -> Figure:
    """Training curves from a run's ``summary.csv`` (one row per epoch).

    Columns are grouped by name: every column containing "loss" in the left
    panel, every accuracy/F1 column ("acc", "f1", "top1", "top5") in the middle
    one, learning rates ("lr") in the right one; others are ignored. The x axis
    is the ``epoch`` column if present, else the row number.

    Args:
        summary_df: The run's per-epoch summary.
        save_to: PNG path, or ``None``.
    """
    x = summary_df["epoch"] if "epoch" in summary_df.columns else pd.Series(np.arange(len(summary_df)))
    groups = _curve_groups([c for c in summary_df.columns if c != "epoch"])
    shown = [(k, cols) for k, cols in groups.items() if cols]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(4.5 * max(len(shown), 1), 3.5), squeeze=False)
    for ax, (kind, cols) in zip(axes[0], shown):
        for col in cols:
            ax.plot(x, summary_df[col], marker=".", label=col)
        ax.set(xlabel="epoch", title={"loss": "Loss", "metric": "Accuracy / F1", "lr": "Learning rate"}[kind])
        ax.legend(fontsize=8, frameon=False)
    return _finish(fig, save_to)


def confusion_matrix_plot(
    cm: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] = CLASS_NAMES,
    normalize: bool = True,
    *,
    title: str | None = None,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Heat map of a confusion matrix (rows = true class, columns = predicted).

    Args:
        cm: Counts (C, C), e.g. ``metrics["confusion"]``.
        class_names: Axis labels.
        normalize: Show each row as fractions of its class (recall on the
            diagonal); otherwise counts.
        title: Figure title.
        save_to: PNG path, or ``None``.
    """
    counts = np.asarray(cm, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046)
    top = values.max() if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        text = f"{v:.2f}" if normalize else f"{int(v)}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if v > 0.6 * top else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, list(class_names))
    default_title = "Confusion (row-normalised)" if normalize else "Confusion (counts)"
    ax.set(xlabel="predicted", ylabel="true", title=title or default_title)
    return _finish(fig, save_to)


def mistakes_grid(
    images: np.ndarray,
    mis_df: pd.DataFrame,
    n: int = 32,
    *,
    ncols: int = 8,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """The first ``n`` rows of a mistakes table, as faces titled "true -> predicted (confidence)".

    Args:
        images: uint8 (N, 48, 48): the evaluated images, so that
            ``images[mis_df.position]`` are the misclassified faces.
        mis_df: ``evaluate.misclassified(...)`` (or a filtered/sorted copy).
        n: Faces to show.
        ncols: Faces per row.
        save_to: PNG path, or ``None``.
    """
    rows = mis_df.head(n)
    fig, axes = _face_grid(max(1, -(-len(rows) // ncols)), ncols, cell=1.4)
    for ax, (_, r) in zip(axes.ravel(), rows.iterrows()):
        _face(ax, images[int(r["position"])], f"{r['true_name']}→{r['pred_name']}\n{r['confidence']:.2f}")
    return _finish(fig, save_to)


def duplicates_grid(
    images: np.ndarray,
    groups: pd.DataFrame,
    n_groups: int = 8,
    *,
    max_members: int = 6,
    class_names: Sequence[str] = CLASS_NAMES,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Duplicate groups, one per row; each copy titled with its split and label.

    Args:
        images: uint8 (N, 48, 48), the array ``groups`` was computed on.
        groups: ``eda.duplicate_groups(...)`` (or a filtered copy, e.g. conflicting groups only).
        n_groups: Groups to show (the first ones).
        max_members: Copies shown per group.
        class_names: Label names.
        save_to: PNG path, or ``None``.
    """
    shown = groups.head(n_groups)
    fig, axes = _face_grid(max(1, len(shown)), max_members, cell=1.3)
    for row, (_, g) in enumerate(shown.iterrows()):
        for col, (i, split, label) in enumerate(list(zip(g["rows"], g["splits"], g["labels"]))[:max_members]):
            _face(axes[row, col], images[i], f"{split}\n{class_names[label]}")
    return _finish(fig, save_to)
