"""Figures for the notebooks.

Every function returns a ``matplotlib.figure.Figure`` and, given ``save_to`` (a
PNG path), also writes it there (atomically). Face arrays are uint8 (N, 48, 48),
gray levels 0-255, and ``class_names`` are names in label order. Figures are made with ``pyplot`` so a
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fer_utils.constants import CLASS_NAMES
from fer_utils.files import atomic_write

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
        labels: int (N,).
        per_class: Faces per row (fewer when a class has fewer).
        seed: Seed of the random choice.
        class_names: Row titles, in label order.
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
        labels: int (N,).
        class_names: Titles, in label order.
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
    brightness_bins: int = 32,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Per-class distributions of pixel values (left) and of each image's mean brightness (right).

    Args:
        labels: int (N,).
        brightness_bins: Bins of the brightness histogram over 0-255.
        class_names: Legend entries, in label order.
    """
    if brightness_bins < 1:
        raise ValueError(f"brightness_bins must be at least 1, got {brightness_bins}")
    labels = np.asarray(labels)
    flat = np.asarray(images).reshape(len(images), -1)
    fig, (ax_pix, ax_mean) = plt.subplots(1, 2, figsize=(10, 3.5))
    bins = np.linspace(0, 255, brightness_bins + 1)
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
    """
    x = summary_df["epoch"] if "epoch" in summary_df.columns else pd.Series(np.arange(len(summary_df)))
    groups = _curve_groups([c for c in summary_df.columns if c != "epoch"])
    shown = [(k, cols) for k, cols in groups.items() if cols]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(4.5 * max(len(shown), 1), 3.5), squeeze=False)
    for ax, (kind, cols) in zip(axes[0], shown, strict=False):
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
    """
    rows = mis_df.head(n)
    fig, axes = _face_grid(max(1, -(-len(rows) // ncols)), ncols, cell=1.4)
    for ax, (_, r) in zip(axes.ravel(), rows.iterrows(), strict=False):
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
    """
    shown = groups.head(n_groups)
    fig, axes = _face_grid(max(1, len(shown)), max_members, cell=1.3)
    for row, (_, g) in enumerate(shown.iterrows()):
        for col, (i, split, label) in enumerate(
            list(zip(g["rows"], g["splits"], g["labels"], strict=True))[:max_members]
        ):
            _face(axes[row, col], images[i], f"{split}\n{class_names[label]}")
    return _finish(fig, save_to)


# --------------------------------------------------------------------------- error analysis (notebook 04)
# Static counterparts of fer_utils.browser's interactive views, for papermill reports where widgets do not run.


def _heat_overlay(ax: Axes, image: np.ndarray, heat: np.ndarray, title: str = "") -> None:
    """A face with its Grad-CAM map (float (48, 48) in [0, 1]) drawn over it in colour."""
    ax.imshow(image, **FACE_STYLE)
    ax.imshow(heat, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.45, interpolation="bilinear")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _heat_scale(fig: Figure, axes: np.ndarray, caption: str) -> None:
    """A colour bar of the Grad-CAM overlays beside ``axes`` and ``caption`` (layer, map resolution) beneath."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), ax=list(np.ravel(axes)), fraction=0.02, pad=0.01
    )
    bar.set_label("Grad-CAM evidence (1 = the face's maximum)", fontsize=8)
    if caption:
        fig.text(0.01, 0.0, caption, fontsize=8, va="bottom", wrap=True)


def confused_pairs_gradcam(
    images: np.ndarray,
    examples: pd.DataFrame,
    heat_maps: np.ndarray,
    *,
    caption: str = "",
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """The most confident mistakes of each confused pair, each face above its Grad-CAM overlay.

    Two figure rows per pair: the faces titled with their source row and
    confidence, then the Grad-CAM map of the (wrong) predicted class over them.

    Args:
        images: uint8 (N, 48, 48), the evaluated split; ``images[examples.position]`` are the faces.
        examples: ``browser.pair_examples(...)``: columns ``pair``, ``position``,
            ``index``, ``confidence`` (and ``pair_count``, the pair's number of
            mistakes, shown with its name), in display order.
        heat_maps: float (len(examples), 48, 48) in [0, 1], aligned with ``examples``.
        caption: What the maps are (layer, native resolution), printed under the faces with the colour bar.
    """
    heat_maps = np.asarray(heat_maps)
    if len(heat_maps) != len(examples):
        raise ValueError(f"{len(heat_maps)} heat maps for {len(examples)} examples")
    pairs = list(dict.fromkeys(examples["pair"])) if len(examples) else []
    ncols = max([int((examples["pair"] == p).sum()) for p in pairs] + [1])
    fig, axes = _face_grid(max(1, 2 * len(pairs)), ncols, cell=1.35)
    if not pairs:
        axes[0, 0].text(0.0, 0.5, "no mistakes", fontsize=10)
    for k, pair in enumerate(pairs):
        rows = examples[examples["pair"] == pair]
        for j, (i, r) in enumerate(rows.iterrows()):
            face = images[int(r["position"])]
            _face(axes[2 * k, j], face, f"#{int(r['index'])} {float(r['confidence']):.2f}")
            _heat_overlay(axes[2 * k + 1, j], face, heat_maps[examples.index.get_loc(i)])
        total = int(rows["pair_count"].iloc[0]) if "pair_count" in rows.columns else len(rows)
        axes[2 * k, 0].text(
            -0.12,
            0.0,
            f"{pair}  ({total} faces)",
            transform=axes[2 * k, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.55 / height)  # the title sits just above the faces, whatever the number of rows
    fig.suptitle(
        "Most confident mistakes per confused pair (true → predicted), with Grad-CAM of the prediction",
        fontsize=10,
        y=1 - 0.12 / height,
    )
    _heat_scale(fig, axes[1::2], caption)
    return _finish(fig, save_to)


def mistake_details(
    images: np.ndarray,
    rows: pd.DataFrame,
    heat_maps: np.ndarray,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    caption: str = "",
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """One line per face: the face, its Grad-CAM overlay and the probabilities of all classes.

    Args:
        images: uint8 (N, 48, 48), the evaluated split.
        rows: ``browser.sample_table``/``select`` rows (or ``evaluate.misclassified``):
            ``position``, ``index``, ``true``, ``pred``, ``true_name``, ``pred_name``
            and one probability column per class name.
        heat_maps: float (len(rows), 48, 48) in [0, 1], aligned with ``rows``.
        caption: What the maps are (layer, native resolution), printed under the figure with the colour bar.
    """
    n = max(len(rows), 1)
    fig, axes = plt.subplots(n, 3, figsize=(8.0, 1.9 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 1, 2.6]})
    for ax in axes.ravel():
        ax.axis("off")
    y = np.arange(len(class_names))
    for k, (_, r) in enumerate(rows.iterrows()):
        face = images[int(r["position"])]
        _face(axes[k, 0], face, f"row {int(r['index'])}\ntrue {r['true_name']}")
        _heat_overlay(axes[k, 1], face, np.asarray(heat_maps)[k], f"Grad-CAM\n{r['pred_name']}")
        ax = axes[k, 2]
        ax.axis("on")
        probs = np.array([r[name] for name in class_names], dtype=np.float64)
        colours = [
            "#2e8540" if i == int(r["true"]) else "#c9302c" if i == int(r["pred"]) else "#7a8ca3"
            for i in range(len(class_names))
        ]
        ax.barh(y, probs, color=colours)
        ax.set_yticks(y, list(class_names), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=7)
        for i, p in enumerate(probs):
            ax.text(min(p + 0.02, 0.9), i, f"{p:.2f}", va="center", fontsize=6)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 2].set_title("probabilities (green: true, red: predicted)", fontsize=8)
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    _heat_scale(fig, axes[:, 1], caption)
    return _finish(fig, save_to)


def reliability_diagram(
    labels: np.ndarray,
    probs_by_name: dict[str, np.ndarray],
    *,
    n_bins: int = 15,
    title: str | None = None,
    save_to: str | os.PathLike[str] | None = None,
) -> Figure:
    """Reliability diagrams side by side (e.g. before and after temperature scaling).

    Each panel shows, per equal-width confidence bin, the accuracy (bars) against
    the diagonal of perfect calibration, the gap to the bin's mean confidence
    (hatched), the share of faces per bin (grey steps) and the ECE in the title.

    Args:
        labels: True labels (N,).
        probs_by_name: Panel title -> probabilities (N, C).
        n_bins: Confidence bins.
        title: Figure title.
    """
    from fer_utils.evaluate.calibration import expected_calibration_error, reliability_table

    k = max(len(probs_by_name), 1)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 4.0), squeeze=False)
    for ax, (name, probs) in zip(axes[0], probs_by_name.items(), strict=False):
        table = reliability_table(labels, probs, n_bins)
        width = 1.0 / n_bins
        centres = (table["lower"] + table["upper"]).to_numpy() / 2
        acc = table["accuracy"].fillna(0).to_numpy()
        conf = table["confidence"].to_numpy()
        used = table["count"].to_numpy() > 0
        ax.bar(centres[used], acc[used], width=width, color="#4a7ab5", edgecolor="white", label="accuracy")
        ax.bar(
            centres[used],
            (conf - acc)[used],
            bottom=acc[used],
            width=width,
            color="none",
            edgecolor="#c9302c",
            hatch="//",
            lw=0.6,
            label="gap to confidence",
        )
        ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
        share = table["count"].to_numpy() / max(int(table["count"].sum()), 1)
        ax.step(table["upper"], share, where="pre", color="0.5", lw=1, label="share of faces")
        ece = expected_calibration_error(labels, probs, n_bins)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (probability of the prediction)",
            ylabel="accuracy",
            title=f"{name}\nECE {ece:.3f}",
        )
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, save_to)


LABEL_NOISE_LEGEND: dict[str, str] = {
    "agrees_with_model": "FER+ majority = model's prediction",
    "agrees_with_label": "FER+ majority = FER2013 label",
    "other_class": "FER+ majority: another class",
    "no_majority": "no FER+ majority (tie, contempt, unknown, not a face)",
}
"""Legend text of :func:`label_noise_plot`, keyed by ``browser.LABEL_NOISE_CATEGORIES``."""


def label_noise_plot(table: pd.DataFrame, *, save_to: str | os.PathLike[str] | None = None) -> Figure:
    """Stacked bars: for the mistakes of each true class, whom the FER+ majority agrees with.

    Args:
        table: ``browser.label_noise_table(...)``: rows = true classes plus
            ``"all"``, columns = the four categories (counts of mistakes).
    """
    counts = table.reindex(columns=list(LABEL_NOISE_LEGEND), fill_value=0)
    totals = counts.sum(axis=1).replace(0, 1)
    shares = counts.div(totals, axis=0)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(shares) + 1.6))
    colours = ["#2e8540", "#4a7ab5", "#e8a400", "#b0b0b0"]
    left = np.zeros(len(shares))
    y = np.arange(len(shares))
    for col, colour in zip(LABEL_NOISE_LEGEND, colours, strict=True):
        ax.barh(y, shares[col], left=left, color=colour, label=LABEL_NOISE_LEGEND[col])
        for i, (v, x0) in enumerate(zip(shares[col], left, strict=True)):
            if v >= 0.07:
                ax.text(x0 + v / 2, i, f"{v:.0%}", ha="center", va="center", fontsize=7, color="white")
        left += shares[col].to_numpy()
    ax.set_yticks(y, [f"{name} (n={int(n)})" for name, n in zip(shares.index, counts.sum(axis=1), strict=True)])
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1),
        xlabel="share of the model's mistakes",
        title="Mistakes by true class: does FER+ side with the model?",
    )
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.tight_layout()
    return _finish(fig, save_to)


def _png_writer(face: np.ndarray) -> Callable[[Path], None]:
    """Writes ``face`` (uint8, gray levels 0-255) as a grayscale PNG to the path it is given."""

    def write(tmp: Path) -> None:
        plt.imsave(tmp, face, cmap="gray", vmin=0, vmax=255, format="png")

    return write


def save_face_pngs(
    images: np.ndarray,
    mis_df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    n: int = 10,
    *,
    scale: int = 4,
) -> list[Path]:
    """Write the first ``n`` faces of a mistakes table as individual enlarged grayscale PNGs.

    File names: ``NN_row<index>_<true>_as_<pred>_<confidence>.png`` (``NN`` = rank in the table).

    Args:
        images: uint8 (N, 48, 48), the evaluated split.
        mis_df: ``evaluate.misclassified(...)`` (or a filtered/sorted copy).
        out_dir: Folder (created).
        n: Faces written at most.
        scale: Integer enlargement (nearest neighbour, so pixels stay crisp).

    Returns:
        The written paths, in table order.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    out = Path(out_dir)
    written = []
    for rank, (_, r) in enumerate(mis_df.head(n).iterrows()):
        face = np.asarray(images[int(r["position"])], dtype=np.uint8)
        big = np.repeat(np.repeat(face, scale, axis=0), scale, axis=1)
        name = f"{rank:02d}_row{int(r['index'])}_{r['true_name']}_as_{r['pred_name']}_{float(r['confidence']):.2f}.png"
        written.append(atomic_write(out / name, _png_writer(big)))
    return written
