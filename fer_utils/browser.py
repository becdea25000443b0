"""Browse a model's mistakes in Jupyter: :class:`MisclassificationBrowser`.

Like fastai's ``ImageClassifierCleaner``, the widget lives here and the notebook
only writes::

    browser = MisclassificationBrowser(pred, ferplus_path=...)   # pred from evaluate.predict_split
    browser

Predictions are computed once (or taken from ``predict_split``); everything the
controls do afterwards is filtering and sorting a table, so it is instant.
The browser offers

- filters: true class, predicted class (each with "any"), incorrect / correct /
  all, a confidence range; clicking a cell of the confusion matrix sets the
  true/predicted pair;
- sorting by the confidence of the prediction (most confident mistakes first),
  by loss (-log p(true class)), or by row index;
- a page of enlarged, crisp grayscale thumbnails titled with true label,
  prediction and confidence, with previous/next buttons, the page count and the
  number of matching faces;
- a detail view on click: the face, Grad-CAM heat maps (``fer_utils.gradcam``)
  for the predicted and the true class, the probability bars of all classes,
  the FER+ votes when a votes file is given, and the row index in the source file;
- export of the current selection to CSV.

The table logic (:func:`sample_table`, :class:`Selection`, :func:`select`,
:func:`page_rows`, :func:`export_selection`) and the error-analysis summaries
(:func:`pair_examples`, :func:`label_noise`, :func:`label_noise_table`) are plain
functions, used by the static figures of papermill reports, where widgets do not
run, and testable without a browser.

ipywidgets, anywidget and torch are imported only when a browser is built.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import CLASS_NAMES, paths
from .files import atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from .data import FERData
    from .evaluate import SplitPredictions

logger = logging.getLogger(__name__)

OUTCOMES: tuple[str, ...] = ("incorrect", "correct", "all")
"""Values of :attr:`Selection.outcome`."""

SORT_KEYS: dict[str, tuple[str, bool]] = {
    "confidence": ("confidence", False),  # probability of the prediction, most confident first
    "loss": ("loss", False),  # -log p(true class), worst first
    "index": ("index", True),  # row in the source file, ascending
}
"""Sort key name -> (table column, ascending)."""

FERPLUS_COLUMN = "ferplus"
"""Table column holding the FER+ majority label (-1: none) when votes are given."""

_EPS = 1e-12


# --------------------------------------------------------------------------- tables


def sample_table(
    labels: np.ndarray | Sequence[int],
    probs: np.ndarray,
    index: np.ndarray | Sequence[int] | None = None,
    *,
    ferplus_majority: np.ndarray | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> pd.DataFrame:
    """One row per evaluated face, right or wrong, in data order.

    Args:
        labels: True labels (N,) in ``0..C-1``.
        probs: Class probabilities (N, C).
        index: Row of each face in the source file (``FERData.index``); ``None``
            uses 0..N-1.
        ferplus_majority: FER+ majority label per face (N,), -1 where there is
            none (``ferplus.ferplus_majority`` of the aligned votes), or ``None``.
        class_names: C names.

    Returns:
        DataFrame with ``index``, ``position`` (0..N-1, into the evaluated
        arrays), ``true``, ``pred``, ``true_name``, ``pred_name``, ``correct``,
        ``confidence`` (probability of the prediction), ``p_true``, ``loss``
        (-log p_true), one probability column per class, and ``ferplus`` /
        ``ferplus_name`` when ``ferplus_majority`` is given ("" where -1).
    """
    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] != len(class_names):
        raise ValueError(f"probs must have shape (N, {len(class_names)}), got {p.shape}")
    if y.shape != (len(p),):
        raise ValueError(f"labels must have shape ({len(p)},) to match probs, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= len(class_names)):
        raise ValueError(f"labels must be in 0..{len(class_names) - 1}")
    idx = np.arange(len(y), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if idx.shape != y.shape:
        raise ValueError(f"index must have shape {y.shape}, got {idx.shape}")
    rows = np.arange(len(y))
    pred = p.argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
    names = np.asarray(class_names, dtype=object)
    p_true = p[rows, y].astype(np.float64)
    df = pd.DataFrame(
        {
            "index": idx,
            "position": rows,
            "true": y,
            "pred": pred.astype(np.int64),
            "true_name": names[y],
            "pred_name": names[pred],
            "correct": pred == y,
            "confidence": p[rows, pred].astype(np.float64),
            "p_true": p_true,
            "loss": -np.log(np.clip(p_true, _EPS, 1.0)),
        }
    )
    for i, name in enumerate(class_names):
        df[name] = p[:, i].astype(np.float64)
    if ferplus_majority is not None:
        m = np.asarray(ferplus_majority, dtype=np.int64)
        if m.shape != y.shape:
            raise ValueError(f"ferplus_majority must have shape {y.shape}, got {m.shape}")
        df[FERPLUS_COLUMN] = m
        df[f"{FERPLUS_COLUMN}_name"] = np.where(m >= 0, names[np.clip(m, 0, None)], "")
    return df


@dataclass(frozen=True)
class Selection:
    """What the browser shows.

    Attributes:
        true_class: Label to keep, or ``None`` for any.
        pred_class: Predicted label to keep, or ``None`` for any.
        outcome: ``"incorrect"``, ``"correct"`` or ``"all"``.
        confidence: Inclusive range (low, high) of the prediction's probability, in [0, 1].
        sort_by: ``"confidence"`` (descending), ``"loss"`` (descending) or ``"index"`` (ascending).
    """

    true_class: int | None = None
    pred_class: int | None = None
    outcome: str = "incorrect"
    confidence: tuple[float, float] = (0.0, 1.0)
    sort_by: str = "confidence"

    def __post_init__(self) -> None:
        for field, value in (("true_class", self.true_class), ("pred_class", self.pred_class)):
            if value is not None and not 0 <= value < len(CLASS_NAMES):
                raise ValueError(f"{field} must be None or a label in 0..{len(CLASS_NAMES) - 1}, got {value}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.sort_by not in SORT_KEYS:
            raise ValueError(f"sort_by must be one of {tuple(SORT_KEYS)}, got {self.sort_by!r}")
        lo, hi = self.confidence
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"confidence must be a range within [0, 1] with low <= high, got {self.confidence}")

    def describe(self, class_names: Sequence[str] = CLASS_NAMES) -> str:
        """A short human-readable summary, e.g. ``"incorrect, true Fear, confidence 0.50-1.00, by loss"``."""
        parts = [self.outcome]
        if self.true_class is not None:
            parts.append(f"true {class_names[self.true_class]}")
        if self.pred_class is not None:
            parts.append(f"predicted {class_names[self.pred_class]}")
        parts.append(f"confidence {self.confidence[0]:.2f}-{self.confidence[1]:.2f}")
        parts.append(f"by {self.sort_by}")
        return ", ".join(parts)


def select(table: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The rows of ``table`` (from :func:`sample_table`) matching ``selection``, sorted.

    Ties keep data order (``position``), so the result is deterministic.

    Returns:
        A filtered, sorted copy with the index reset.
    """
    mask = np.ones(len(table), dtype=bool)
    if selection.true_class is not None:
        mask &= table["true"].to_numpy() == selection.true_class
    if selection.pred_class is not None:
        mask &= table["pred"].to_numpy() == selection.pred_class
    if selection.outcome != "all":
        mask &= table["correct"].to_numpy() == (selection.outcome == "correct")
    lo, hi = selection.confidence
    conf = table["confidence"].to_numpy()
    # slider values are rounded to 0.01; a small tolerance keeps a face at exactly 1.0 in range
    mask &= (conf >= lo - 1e-9) & (conf <= hi + 1e-9)
    column, ascending = SORT_KEYS[selection.sort_by]
    out = table[mask]
    return out.sort_values([column, "position"], ascending=[ascending, True], kind="stable").reset_index(drop=True)


def n_pages(n_rows: int, page_size: int) -> int:
    """Pages needed for ``n_rows`` rows (at least 1, so an empty selection has page 1 of 1)."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    return max(1, math.ceil(n_rows / page_size))


def page_rows(rows: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Rows of the 0-based ``page``.

    Raises:
        IndexError: ``page`` is outside ``0..n_pages-1``.
    """
    total = n_pages(len(rows), page_size)
    if not 0 <= page < total:
        raise IndexError(f"page {page} is outside 0..{total - 1} ({len(rows)} rows, {page_size} per page)")
    return rows.iloc[page * page_size : (page + 1) * page_size]


EXPORT_COLUMNS: tuple[str, ...] = (
    "index", "position", "true", "true_name", "pred", "pred_name", "correct", "confidence", "p_true", "loss",
)
"""Leading columns of an exported selection; the class probabilities (and FER+ majority) follow."""


def export_selection(
    rows: pd.DataFrame, path: str | os.PathLike[str], class_names: Sequence[str] = CLASS_NAMES
) -> Path:
    """Write selected rows to CSV atomically, in their current order.

    Args:
        rows: From :func:`select`.
        path: Destination (relative paths from the repository root).
        class_names: Names of the probability columns.

    Returns:
        The path. Columns: :data:`EXPORT_COLUMNS`, one probability column per
        class (``p_<name>``), then ``ferplus``/``ferplus_name`` if present.
    """
    out = rows.loc[:, list(EXPORT_COLUMNS)].copy()
    for name in class_names:
        out[f"p_{name}"] = rows[name].to_numpy()
    for col in (FERPLUS_COLUMN, f"{FERPLUS_COLUMN}_name"):
        if col in rows.columns:
            out[col] = rows[col].to_numpy()
    return atomic_write_text(paths.resolve(path), out.to_csv(index=False, float_format="%.6g"))


def pair_examples(
    table: pd.DataFrame, pairs: Sequence[dict[str, Any]], per_pair: int = 6, class_names: Sequence[str] = CLASS_NAMES
) -> pd.DataFrame:
    """The most confident mistakes of each confused pair, for the static figures.

    Args:
        table: From :func:`sample_table` (or ``evaluate.misclassified``: it has the needed columns).
        pairs: ``metrics["most_confused"]`` entries ({"true", "pred", ...} with class names).
        per_pair: Faces per pair at most.
        class_names: Names in label order.

    Returns:
        The selected rows, pair by pair, most confident first, with added
        columns ``pair`` ("Fear → Sad") and ``pair_count`` (the pair's
        ``count``, else the rows shown).
    """
    parts = []
    for pair in pairs:
        t, p = class_names.index(pair["true"]), class_names.index(pair["pred"])
        rows = select(table if "correct" in table.columns else table.assign(correct=False),
                      Selection(true_class=t, pred_class=p, outcome="incorrect")).head(per_pair)
        parts.append(rows.assign(pair=f"{pair['true']} → {pair['pred']}", pair_count=int(pair.get("count", len(rows)))))
    if not parts:
        return table.head(0).assign(pair=pd.Series(dtype=object), pair_count=pd.Series(dtype=np.int64))
    return pd.concat(parts, ignore_index=True)


LABEL_NOISE_CATEGORIES: tuple[str, ...] = ("agrees_with_model", "agrees_with_label", "other_class", "no_majority")
"""How the FER+ majority relates to a mistake: it is the model's prediction, the FER2013 label, another class, or none."""


def _noise_categories(table: pd.DataFrame) -> pd.Series:
    if FERPLUS_COLUMN not in table.columns:
        raise ValueError(f"the table has no '{FERPLUS_COLUMN}' column: build it with FER+ votes "
                         "(sample_table(..., ferplus_majority=...) or MisclassificationBrowser(..., ferplus_path=...))")
    m = table[FERPLUS_COLUMN].to_numpy()
    cat = np.select(
        [m < 0, m == table["pred"].to_numpy(), m == table["true"].to_numpy()],
        ["no_majority", "agrees_with_model", "agrees_with_label"],
        default="other_class",
    )
    return pd.Series(cat, index=table.index)


def label_noise(table: pd.DataFrame) -> dict[str, Any]:
    """On the mistakes, whom does the FER+ majority side with: the model or the FER2013 label?

    Args:
        table: From :func:`sample_table` with ``ferplus_majority``.

    Returns:
        JSON-ready dict: ``n_mistakes``; ``n_with_majority`` (mistakes whose FER+
        majority is a FER emotion); a count per :data:`LABEL_NOISE_CATEGORIES`;
        ``share_agrees_with_model`` (of the mistakes with a majority: the
        headline number), ``share_agrees_with_label``, ``share_other_class``;
        and for contrast ``correct_agreement``: on correctly classified faces
        with a majority, the share where FER+ agrees with the (common) label.
    """
    cats = _noise_categories(table)
    wrong = ~table["correct"].to_numpy()
    counts = cats[wrong].value_counts()
    n_wrong = int(wrong.sum())
    out: dict[str, Any] = {"n_mistakes": n_wrong}
    for c in LABEL_NOISE_CATEGORIES:
        out[c] = int(counts.get(c, 0))
    with_majority = n_wrong - out["no_majority"]
    out["n_with_majority"] = with_majority
    for c in ("agrees_with_model", "agrees_with_label", "other_class"):
        out[f"share_{c}"] = out[c] / with_majority if with_majority else 0.0
    right = ~wrong & (table[FERPLUS_COLUMN].to_numpy() >= 0)
    out["n_correct_with_majority"] = int(right.sum())
    out["correct_agreement"] = float((table.loc[right, FERPLUS_COLUMN] == table.loc[right, "true"]).mean()) if right.any() else 0.0
    return out


def label_noise_table(table: pd.DataFrame, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """:func:`label_noise` counts per true class, plus an ``all`` row.

    Returns:
        int DataFrame: index = class names with mistakes, then ``"all"``;
        columns = :data:`LABEL_NOISE_CATEGORIES`.
    """
    cats = _noise_categories(table)
    wrong = ~table["correct"].to_numpy()
    sub = pd.DataFrame({"true": table.loc[wrong, "true_name"].to_numpy(), "category": cats[wrong].to_numpy()})
    counts = pd.crosstab(sub["true"], sub["category"]).reindex(columns=list(LABEL_NOISE_CATEGORIES), fill_value=0)
    counts = counts.reindex([n for n in class_names if n in counts.index])
    counts.loc["all"] = counts.sum(axis=0)
    counts.index.name = "true"
    counts.columns.name = None
    return counts.astype(np.int64)


# --------------------------------------------------------------------------- HTML pieces


def png_data_uri(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 image, (H, W) grayscale or (H, W, 3) RGB, at its own size.

    The browser enlarges it with CSS ``image-rendering: pixelated``, so pixels stay crisp.
    """
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(a, mode="L" if a.ndim == 2 else "RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PIXELATED = "image-rendering: crisp-edges; image-rendering: pixelated;"


def probability_bars_html(
    probs: np.ndarray, true: int, pred: int, class_names: Sequence[str] = CLASS_NAMES
) -> str:
    """HTML bars of all class probabilities; the true class in green, a wrong prediction in red."""
    rows = []
    for i, (name, p) in enumerate(zip(class_names, np.asarray(probs, dtype=np.float64))):
        colour = "#2e8540" if i == true else ("#c9302c" if i == pred else "#7a8ca3")
        mark = " (true)" if i == true else (" (predicted)" if i == pred else "")
        rows.append(
            f'<div class="fer-prob-row" data-class="{html.escape(name)}" data-prob="{p:.6f}" '
            'style="display:flex;align-items:center;gap:6px;margin:2px 0;">'
            f'<span style="width:11em;text-align:right;white-space:nowrap;">{html.escape(name)}{mark}</span>'
            '<span style="flex:1;min-width:140px;height:12px;background:rgba(127,127,127,0.18);">'
            f'<span class="fer-prob-bar" style="display:block;height:100%;width:{100 * p:.2f}%;background:{colour};"></span>'
            f'</span><span style="width:3.2em;">{p:.3f}</span></div>'
        )
    return '<div class="fer-prob-bars">' + "".join(rows) + "</div>"


def _img(src: str, px: int, cls: str, alt: str) -> str:
    return (f'<img class="{cls}" src="{src}" width="{px}" height="{px}" alt="{html.escape(alt)}" '
            f'style="{_PIXELATED} display:block;">')


def detail_html(
    row: pd.Series,
    face: np.ndarray,
    heat_maps: dict[str, np.ndarray],
    *,
    source: str,
    split: str,
    votes: pd.Series | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
    px: int = 192,
) -> str:
    """The detail view of one face.

    Args:
        row: Its :func:`sample_table` row.
        face: uint8 (48, 48).
        heat_maps: Title -> float (48, 48) in [0, 1] (e.g. "Grad-CAM: Sad (predicted)").
        source: Name of the source file (shown with the row index).
        split: Split name.
        votes: Its FER+ votes (the ten vote columns), or ``None``.
        class_names: Names in label order.
        px: Displayed side of the images in pixels.
    """
    from .gradcam import overlay

    verdict = "correct" if bool(row["correct"]) else "wrong"
    head = (
        f'<div class="fer-detail-title" style="font-weight:600;margin-bottom:4px;">'
        f"Row {int(row['index'])} of {html.escape(source)} ({html.escape(split)}): "
        f"true {html.escape(str(row['true_name']))}, predicted {html.escape(str(row['pred_name']))} "
        f"({float(row['confidence']):.3f}, {verdict}); loss {float(row['loss']):.3f}</div>"
    )
    figs = [f'<figure style="margin:0;">{_img(png_data_uri(face), px, "fer-detail-face", "face")}'
            '<figcaption style="text-align:center;">face</figcaption></figure>']
    for title, heat in heat_maps.items():
        src = png_data_uri(overlay(face, heat))
        # An all-zero map is not an error: the class got no positive evidence anywhere.
        caption = html.escape(title) + ("<br><i>no positive evidence</i>" if float(np.max(heat)) <= 0 else "")
        figs.append(f'<figure style="margin:0;">{_img(src, px, "fer-heatmap", title)}'
                    f'<figcaption style="text-align:center;max-width:{px}px;">{caption}</figcaption></figure>')
    images = '<div style="display:flex;gap:10px;flex-wrap:wrap;">' + "".join(figs) + "</div>"
    probs = np.array([row[name] for name in class_names], dtype=np.float64)
    bars = probability_bars_html(probs, int(row["true"]), int(row["pred"]), class_names)
    extra = ""
    if votes is not None:
        cells = "".join(f"<td style='padding:0 6px;text-align:center;'>{int(v)}</td>" for v in votes.to_numpy())
        heads = "".join(f"<th style='padding:0 6px;'>{html.escape(str(k))}</th>" for k in votes.index)
        majority = row.get(f"{FERPLUS_COLUMN}_name", "") or "none"
        extra = (f'<div class="fer-ferplus" style="margin-top:6px;"><b>FER+ votes</b> (majority: {html.escape(majority)})'
                 f"<table><tr>{heads}</tr><tr>{cells}</tr></table></div>")
    return (f'<div class="fer-detail-body">{head}{images}<div style="margin-top:8px;">{bars}</div>{extra}'
            '<div style="opacity:0.7;margin-top:4px;">Grad-CAM of the centre view (red: most evidence for that class).</div></div>')


# --------------------------------------------------------------------------- anywidget front ends

_GRID_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "fer-grid";
  el.appendChild(root);
  function draw() {
    const items = model.get("items");
    const px = model.get("thumb_px");
    root.style.gridTemplateColumns = `repeat(${model.get("ncols")}, ${px + 8}px)`;
    root.replaceChildren();
    if (!items.length) {
      const empty = document.createElement("div");
      empty.className = "fer-grid-empty";
      empty.textContent = "No faces match this selection.";
      root.appendChild(empty);
      return;
    }
    const selected = model.get("selected");
    for (const it of items) {
      const fig = document.createElement("figure");
      fig.className = "fer-thumb" + (it.correct ? " fer-correct" : " fer-wrong") + (it.position === selected ? " fer-selected" : "");
      fig.dataset.position = it.position;
      fig.dataset.index = it.index;
      fig.dataset.true = it.true_name;
      fig.dataset.pred = it.pred_name;
      fig.title = `row ${it.index}: true ${it.true_name}, predicted ${it.pred_name} (${it.confidence.toFixed(3)}) - click for details`;
      const img = document.createElement("img");
      img.src = it.src; img.width = px; img.height = px; img.alt = fig.title;
      const cap = document.createElement("figcaption");
      const l1 = document.createElement("div"); l1.className = "fer-thumb-labels";
      l1.textContent = `${it.true_name} → ${it.pred_name}`;
      const l2 = document.createElement("div"); l2.className = "fer-thumb-conf";
      l2.textContent = `${it.confidence.toFixed(2)} · #${it.index}`;
      cap.append(l1, l2);
      fig.append(img, cap);
      fig.addEventListener("click", () => {
        model.set("clicked", [it.position, (model.get("clicked")[1] || 0) + 1]);
        model.save_changes();
      });
      root.appendChild(fig);
    }
  }
  model.on("change:items", draw);
  model.on("change:selected", draw);
  draw();
  return () => { model.off("change:items", draw); model.off("change:selected", draw); };
}
export default { render };
"""

_GRID_CSS = """
.fer-grid { display: grid; gap: 6px; align-items: start; }
.fer-thumb { margin: 0; padding: 2px; cursor: pointer; border: 2px solid transparent; border-radius: 4px;
  font: 11px/1.3 var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color1, #222); text-align: center; }
.fer-thumb:hover { border-color: var(--jp-brand-color1, #1976d2); }
.fer-thumb.fer-selected { border-color: #e8a400; }
.fer-thumb img { display: block; margin: 0 auto; background: #000;
  image-rendering: crisp-edges; image-rendering: pixelated; }
.fer-thumb.fer-wrong .fer-thumb-labels { color: #c9302c; }
.fer-thumb.fer-correct .fer-thumb-labels { color: #2e8540; }
.fer-thumb-conf { opacity: 0.75; }
.fer-grid-empty { padding: 1em; opacity: 0.7; }
"""

_CONFUSION_ESM = r"""
function render({ model, el }) {
  const table = document.createElement("table");
  table.className = "fer-confusion";
  el.appendChild(table);
  function draw() {
    const cm = model.get("counts"); const names = model.get("class_names"); const sel = model.get("selected");
    table.replaceChildren();
    const cap = document.createElement("caption");
    cap.textContent = "rows: true, columns: predicted; click a cell";
    table.appendChild(cap);
    const head = document.createElement("tr");
    head.appendChild(document.createElement("th"));
    for (const n of names) { const th = document.createElement("th"); th.textContent = n.slice(0, 3); th.title = "predicted " + n; head.appendChild(th); }
    table.appendChild(head);
    cm.forEach((row, t) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = names[t]; th.className = "fer-cm-rowhead"; tr.appendChild(th);
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((v, p) => {
        const td = document.createElement("td");
        td.className = "fer-cm-cell" + (t === p ? " fer-cm-diag" : "") + (sel[0] === t && sel[1] === p ? " fer-cm-selected" : "");
        td.dataset.true = t; td.dataset.pred = p; td.textContent = v;
        const rate = v / total;
        td.style.background = t === p ? `rgba(46,133,64,${0.15 + 0.7 * rate})` : `rgba(201,48,44,${v ? 0.1 + 0.8 * rate : 0})`;
        td.title = `true ${names[t]}, predicted ${names[p]}: ${v} (${(100 * rate).toFixed(1)}%)`;
        td.addEventListener("click", () => { model.set("clicked", [t, p, (model.get("clicked")[2] || 0) + 1]); model.save_changes(); });
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
  }
  model.on("change:counts", draw); model.on("change:selected", draw);
  draw();
  return () => { model.off("change:counts", draw); model.off("change:selected", draw); };
}
export default { render };
"""

_CONFUSION_CSS = """
.fer-confusion { border-collapse: collapse; font: 11px var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color1, #222); }
.fer-confusion caption { caption-side: bottom; opacity: 0.7; padding-top: 3px; }
.fer-confusion th { font-weight: 600; padding: 1px 4px; }
.fer-confusion .fer-cm-rowhead { text-align: right; }
.fer-cm-cell { min-width: 2.6em; padding: 2px 4px; text-align: center; cursor: pointer; border: 1px solid rgba(127,127,127,0.3); }
.fer-cm-cell:hover { outline: 2px solid var(--jp-brand-color1, #1976d2); }
.fer-cm-selected { outline: 2px solid #e8a400; }
"""


@functools.lru_cache(maxsize=1)
def _widget_classes() -> tuple[type, type]:
    """(ThumbnailGrid, ConfusionGrid) anywidget classes, defined on first use (imports anywidget)."""
    import anywidget
    import traitlets

    class ThumbnailGrid(anywidget.AnyWidget):
        """Clickable grid of face thumbnails; ``clicked`` = [position, click counter]."""

        _esm = _GRID_ESM
        _css = _GRID_CSS
        items = traitlets.List([]).tag(sync=True)
        thumb_px = traitlets.Int(96).tag(sync=True)
        ncols = traitlets.Int(8).tag(sync=True)
        selected = traitlets.Int(-1).tag(sync=True)
        clicked = traitlets.List([-1, 0]).tag(sync=True)

    class ConfusionGrid(anywidget.AnyWidget):
        """Clickable confusion matrix; ``clicked`` = [true, pred, click counter]."""

        _esm = _CONFUSION_ESM
        _css = _CONFUSION_CSS
        counts = traitlets.List([]).tag(sync=True)
        class_names = traitlets.List([]).tag(sync=True)
        selected = traitlets.List([-1, -1]).tag(sync=True)
        clicked = traitlets.List([-1, -1, 0]).tag(sync=True)

    return ThumbnailGrid, ConfusionGrid


# --------------------------------------------------------------------------- the browser


class MisclassificationBrowser:
    """Interactive browser of a model's predictions on one split, mistakes first.

    Display it by making it the last expression of a cell. Everything the widget
    does is also available from code (:meth:`select`, :meth:`go_to_page`,
    :meth:`show`, :meth:`export_csv`), which the tests use.

    Args:
        predictions: ``evaluate.predict_split(...)`` result (reused: no second
            prediction pass), or a checkpoint path to predict with.
        data: With a checkpoint path: a ``FERData`` or data path (``None``: the
            default lookup, else synthetic data). Ignored otherwise.
        split: With a checkpoint path: the split to evaluate.
        tta: With a checkpoint path: TTA mode (``None``: the checkpoint's).
        ferplus_path: FER+ ``fer2013new.csv`` for the same file, or ``None``;
            adds the FER+ majority to the table and the votes to the detail view.
        selection: The initial :class:`Selection` (default: all mistakes, most confident first).
        page_size: Thumbnails per page.
        ncols: Thumbnails per row.
        thumb_px: Displayed thumbnail side in pixels (faces are 48 px).
        export_path: Default CSV path of "Export CSV" (relative paths from the
            repository root); ``None``: ``reports/browser_selection.csv``.
        model: The network for Grad-CAM; ``None`` loads it from the checkpoint
            on the first detail view.
        gradcam_layer: Layer explained by Grad-CAM (``None``: the last feature map).
        device: Where Grad-CAM runs.

    Attributes:
        table: :func:`sample_table` of all faces of the split.
        images: uint8 (N, 48, 48), aligned with ``table.position``.
        selection: The current :class:`Selection`.
        matches: The current selection's rows, sorted.
        page: Current 0-based page.
        selected: Position of the face in the detail view, or ``None``.
    """

    def __init__(
        self,
        predictions: SplitPredictions | str | os.PathLike[str],
        data: FERData | str | os.PathLike[str] | None = None,
        split: str = "PrivateTest",
        *,
        tta: str | None = None,
        ferplus_path: str | os.PathLike[str] | None = None,
        selection: Selection = Selection(),
        page_size: int = 24,
        ncols: int = 8,
        thumb_px: int = 96,
        export_path: str | os.PathLike[str] | None = None,
        model: nn.Module | None = None,
        gradcam_layer: str | None = None,
        device: str = "cpu",
    ) -> None:
        from .evaluate import predict_split

        if isinstance(predictions, (str, os.PathLike)):
            if data is None:
                from .data import load_dataset

                data = load_dataset(None)
            predictions = predict_split(predictions, data, split, tta=tta, device=device)
        if page_size < 1 or ncols < 1 or thumb_px < 8:
            raise ValueError(f"page_size and ncols must be >= 1 and thumb_px >= 8, got {page_size}, {ncols}, {thumb_px}")
        self.predictions = predictions
        self.images: np.ndarray = predictions.data.images
        self.split = self._split_name(predictions)
        self.class_names: tuple[str, ...] = tuple(predictions.meta.get("class_names", CLASS_NAMES))
        self.votes: pd.DataFrame | None = None
        majority = None
        if ferplus_path:
            from .ferplus import align_votes, ferplus_majority, read_ferplus

            self.votes = align_votes(read_ferplus(ferplus_path), predictions.data)
            majority = ferplus_majority(self.votes)
        self.table = sample_table(predictions.data.labels, predictions.probs, predictions.data.index,
                                  ferplus_majority=majority, class_names=self.class_names)
        self.page_size, self.ncols, self.thumb_px = page_size, ncols, thumb_px
        self.export_path = paths.resolve(export_path) if export_path else paths.REPORTS_DIR / "browser_selection.csv"
        self.gradcam_layer, self.device = gradcam_layer, device
        self._model = model
        self._heat: dict[tuple[int, int], np.ndarray] = {}
        self._thumbs: dict[int, str] = {}
        self.selection = selection
        self.matches = select(self.table, selection)
        self.page = 0
        self.selected: int | None = None
        self._syncing = False
        self._ui: dict[str, Any] | None = None

    @staticmethod
    def _split_name(pred: SplitPredictions) -> str:
        usage = np.unique(pred.data.usage)
        return str(usage[0]) if len(usage) == 1 else "+".join(map(str, usage))

    # ------------------------------------------------------------------ state

    @property
    def n_pages(self) -> int:
        return n_pages(len(self.matches), self.page_size)

    def current_page(self) -> pd.DataFrame:
        """The rows shown now."""
        return page_rows(self.matches, self.page, self.page_size)

    def select(self, selection: Selection | None = None, **changes: Any) -> pd.DataFrame:
        """Change the selection (a new :class:`Selection`, or fields to change) and go to page 1.

        Returns:
            The matching rows, sorted.
        """
        new = selection if selection is not None else self.selection
        new = dataclasses.replace(new, **changes) if changes else new
        self.selection = new
        self.matches = select(self.table, new)
        self.page = 0
        self._refresh()
        return self.matches

    def go_to_page(self, page: int) -> pd.DataFrame:
        """Show the 0-based ``page`` (clamped to the pages there are); returns its rows."""
        self.page = min(max(page, 0), self.n_pages - 1)
        self._refresh()
        return self.current_page()

    def next_page(self) -> pd.DataFrame:
        return self.go_to_page(self.page + 1)

    def previous_page(self) -> pd.DataFrame:
        return self.go_to_page(self.page - 1)

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current selection (all matching rows, not only this page) to CSV; returns the path."""
        out = export_selection(self.matches, path or self.export_path, self.class_names)
        logger.info("wrote %d rows (%s) to %s", len(self.matches), self.selection.describe(self.class_names), out)
        return out

    def label_noise(self) -> dict[str, Any]:
        """:func:`label_noise` of this split (needs ``ferplus_path``)."""
        return label_noise(self.table)

    # ------------------------------------------------------------------ Grad-CAM

    def _get_model(self) -> nn.Module:
        if self._model is None:
            from .checkpoint import load_model

            self._model, _ = load_model(self.predictions.checkpoint, device=self.device)
        return self._model

    def heat_maps(self, positions: Sequence[int] | np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
        """Grad-CAM maps (len, 48, 48) in [0, 1] of faces at ``positions`` for classes ``targets`` (cached)."""
        from .gradcam import grad_cam

        pos = [int(p) for p in positions]
        tgt = [int(t) for t in targets]
        todo = [(p, t) for p, t in zip(pos, tgt) if (p, t) not in self._heat]
        if todo:
            maps = grad_cam(self._get_model(), self.images[[p for p, _ in todo]], self.predictions.meta["preprocess"],
                            [t for _, t in todo], layer=self.gradcam_layer, device=self.device)
            self._heat.update({key: m for key, m in zip(todo, maps)})
        if not pos:
            return np.zeros((0, *self.images.shape[1:]), dtype=np.float32)
        return np.stack([self._heat[(p, t)] for p, t in zip(pos, tgt)])

    # ------------------------------------------------------------------ static figures

    def confused_pairs_figure(
        self, pairs: Sequence[dict[str, Any]] | None = None, n_pairs: int = 3, per_pair: int = 6, *, save_to: str | os.PathLike[str] | None = None
    ) -> Figure:
        """Static fallback: the most confident mistakes of the most confused pairs, with Grad-CAM overlays.

        Args:
            pairs: ``metrics["most_confused"]``-style entries; ``None`` computes them from this split.
            n_pairs: Pairs shown (the first ones).
            per_pair: Faces per pair.
            save_to: PNG path, or ``None``.
        """
        from . import plots
        from .evaluate import most_confused_pairs

        if pairs is None:
            cm = pd.crosstab(self.table["true"], self.table["pred"]).reindex(
                index=range(len(self.class_names)), columns=range(len(self.class_names)), fill_value=0)
            pairs = most_confused_pairs(cm.to_numpy(), self.class_names, k=None)
        examples = pair_examples(self.table, list(pairs)[:n_pairs], per_pair, self.class_names)
        heat = self.heat_maps(examples["position"], examples["pred"])
        return plots.confused_pairs_gradcam(self.images, examples, heat, save_to=save_to)

    def details_figure(self, n: int = 6, *, save_to: str | os.PathLike[str] | None = None) -> Figure:
        """Static fallback of the detail view for the first ``n`` faces of the current selection."""
        from . import plots

        rows = self.matches.head(n)
        heat = self.heat_maps(rows["position"], rows["pred"])
        return plots.mistake_details(self.images, rows, heat, class_names=self.class_names, save_to=save_to)

    # ------------------------------------------------------------------ widgets

    @property
    def widget(self) -> Any:
        """The root ipywidgets box (built on first use)."""
        return self._build()["root"]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # Where widgets cannot render (papermill, nbconvert HTML) the text says what this is.
        bundle["text/plain"] = (
            f"MisclassificationBrowser: {len(self.matches):,} of {len(self.table):,} faces match "
            f"({self.selection.describe(self.class_names)}). Interactive in a live Jupyter session; "
            "the static figures below show the same views."
        )
        return bundle

    def _thumb_src(self, position: int) -> str:
        if position not in self._thumbs:
            self._thumbs[position] = png_data_uri(self.images[position])
        return self._thumbs[position]

    def _build(self) -> dict[str, Any]:
        if self._ui is not None:
            return self._ui
        import ipywidgets as w

        grid_cls, confusion_cls = _widget_classes()
        names = self.class_names
        any_options = [("any", -1)] + [(n, i) for i, n in enumerate(names)]
        sel = self.selection
        ui: dict[str, Any] = {}
        ui["true"] = w.Dropdown(options=any_options, value=-1 if sel.true_class is None else sel.true_class,
                                description="true", layout=w.Layout(width="170px"))
        ui["pred"] = w.Dropdown(options=any_options, value=-1 if sel.pred_class is None else sel.pred_class,
                                description="predicted", layout=w.Layout(width="190px"))
        ui["outcome"] = w.ToggleButtons(options=list(OUTCOMES), value=sel.outcome, description="show",
                                        style={"button_width": "90px"})
        ui["sort"] = w.Dropdown(options=[("confidence ↓", "confidence"), ("loss ↓", "loss"), ("row index ↑", "index")],
                                value=sel.sort_by, description="sort by", layout=w.Layout(width="210px"))
        ui["confidence"] = w.FloatRangeSlider(value=list(sel.confidence), min=0.0, max=1.0, step=0.01,
                                              description="confidence", continuous_update=False, readout_format=".2f",
                                              layout=w.Layout(width="380px"))
        ui["count"] = w.HTML()
        ui["prev"] = w.Button(description="previous", icon="chevron-left", layout=w.Layout(width="110px"))
        ui["next"] = w.Button(description="next", icon="chevron-right", layout=w.Layout(width="110px"))
        ui["page"] = w.Label()
        ui["export_path"] = w.Text(value=str(self.export_path), description="CSV", layout=w.Layout(width="420px"))
        ui["export"] = w.Button(description="Export CSV", icon="download", layout=w.Layout(width="120px"))
        ui["status"] = w.Label()
        ui["grid"] = grid_cls(thumb_px=self.thumb_px, ncols=self.ncols)
        cm = np.zeros((len(names), len(names)), dtype=np.int64)
        np.add.at(cm, (self.table["true"].to_numpy(), self.table["pred"].to_numpy()), 1)
        ui["confusion"] = confusion_cls(counts=cm.tolist(), class_names=list(names))
        ui["detail"] = w.HTML(value='<div class="fer-detail-empty" style="opacity:0.7;">Click a face for details.</div>')
        ui["log"] = w.Output()
        for key, cls in (("true", "fer-true-filter"), ("pred", "fer-pred-filter"), ("outcome", "fer-outcome"),
                         ("sort", "fer-sort"), ("confidence", "fer-confidence"), ("count", "fer-match-count"),
                         ("prev", "fer-prev"), ("next", "fer-next"), ("page", "fer-page"), ("export", "fer-export"),
                         ("export_path", "fer-export-path"), ("status", "fer-status"), ("detail", "fer-detail"),
                         ("grid", "fer-grid-widget"), ("confusion", "fer-confusion-widget")):
            ui[key].add_class(cls)

        controls = w.VBox([
            w.HBox([ui["true"], ui["pred"], ui["sort"]]),
            ui["outcome"],
            w.HBox([ui["confidence"], ui["count"]]),
            w.HBox([ui["prev"], ui["page"], ui["next"]], layout=w.Layout(align_items="center")),
            w.HBox([ui["export_path"], ui["export"], ui["status"]]),
        ])
        ui["root"] = w.VBox(
            [w.HBox([controls, ui["confusion"]], layout=w.Layout(justify_content="space-between", flex_flow="row wrap")),
             w.HBox([ui["grid"], ui["detail"]], layout=w.Layout(align_items="flex-start", flex_flow="row wrap")),
             ui["log"]],
        )
        ui["root"].add_class("fer-browser")
        self._ui = ui

        def on_filter(_change: Any) -> None:
            if self._syncing:
                return
            with ui["log"]:
                self.select(
                    true_class=None if ui["true"].value < 0 else int(ui["true"].value),
                    pred_class=None if ui["pred"].value < 0 else int(ui["pred"].value),
                    outcome=ui["outcome"].value,
                    sort_by=ui["sort"].value,
                    confidence=(float(ui["confidence"].value[0]), float(ui["confidence"].value[1])),
                )

        for key in ("true", "pred", "outcome", "sort", "confidence"):
            ui[key].observe(on_filter, names="value")

        def on_page(delta: int) -> Any:
            def handler(_button: Any) -> None:
                with ui["log"]:
                    self.go_to_page(self.page + delta)
            return handler

        ui["prev"].on_click(on_page(-1))
        ui["next"].on_click(on_page(+1))

        def on_export(_button: Any) -> None:
            with ui["log"]:
                out = self.export_csv(ui["export_path"].value or None)
                ui["status"].value = f"wrote {len(self.matches):,} rows to {out.name}"

        ui["export"].on_click(on_export)

        def on_thumb(change: Any) -> None:
            with ui["log"]:
                self.show(int(change["new"][0]))

        ui["grid"].observe(on_thumb, names="clicked")

        def on_cell(change: Any) -> None:
            t, p = int(change["new"][0]), int(change["new"][1])
            with ui["log"]:
                self.select(true_class=t, pred_class=p, outcome="correct" if t == p else "incorrect")

        ui["confusion"].observe(on_cell, names="clicked")
        self._refresh()
        return ui

    def show(self, position: int) -> str:
        """Open the detail view of the face at ``position`` (into the evaluated split); returns its HTML."""
        if not 0 <= position < len(self.table):
            raise IndexError(f"position {position} is outside 0..{len(self.table) - 1}")
        row = self.table.iloc[position]
        true, pred = int(row["true"]), int(row["pred"])
        targets = [pred] if true == pred else [pred, true]
        maps = self.heat_maps([position] * len(targets), targets)
        titles = [f"Grad-CAM: {self.class_names[pred]} (predicted)"]
        if true != pred:
            titles.append(f"Grad-CAM: {self.class_names[true]} (true)")
        votes = None
        if self.votes is not None:
            from .ferplus import FERPLUS_COLUMNS

            votes = self.votes.iloc[position][list(FERPLUS_COLUMNS)]
        text = detail_html(row, self.images[position], dict(zip(titles, maps)),
                           source=Path(self.predictions.data.source).name, split=self.split, votes=votes,
                           class_names=self.class_names)
        self.selected = position
        if self._ui is not None:
            self._ui["detail"].value = text
            self._ui["grid"].selected = position
        return text

    def _refresh(self) -> None:
        """Push the state to the widgets (if built)."""
        ui = self._ui
        if ui is None:
            return
        sel = self.selection
        self._syncing = True
        try:
            ui["true"].value = -1 if sel.true_class is None else sel.true_class
            ui["pred"].value = -1 if sel.pred_class is None else sel.pred_class
            ui["outcome"].value = sel.outcome
            ui["sort"].value = sel.sort_by
            ui["confidence"].value = [sel.confidence[0], sel.confidence[1]]
        finally:
            self._syncing = False
        n = len(self.matches)
        ui["count"].value = (f'<span class="fer-count" data-count="{n}"><b>{n:,}</b> of {len(self.table):,} '
                             f"faces match</span>")
        ui["page"].value = f"page {self.page + 1} of {self.n_pages}"
        ui["prev"].disabled = self.page == 0
        ui["next"].disabled = self.page >= self.n_pages - 1
        ui["confusion"].selected = [-1 if sel.true_class is None else sel.true_class,
                                    -1 if sel.pred_class is None else sel.pred_class]
        ui["grid"].items = [
            {
                "position": int(r["position"]),
                "index": int(r["index"]),
                "true_name": str(r["true_name"]),
                "pred_name": str(r["pred_name"]),
                "confidence": float(r["confidence"]),
                "correct": bool(r["correct"]),
                "src": self._thumb_src(int(r["position"])),
            }
            for r in self.current_page().to_dict("records")
        ]
