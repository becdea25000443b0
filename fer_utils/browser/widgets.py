"""The misclassification browser's front end: three anywidgets and the data they draw.

The JavaScript and CSS live in ``fer_utils/static/`` (``browser_grid.js``,
``browser_confusion.js``, ``browser_detail.js``, ``browser.css``); this module
defines the widget classes that load them (on first use, so importing it needs
no anywidget) and turns table rows into what they draw:

- :func:`png_data_uri`: a face as a PNG at its native 48 px (the browser enlarges it, pixelated);
- :func:`thumbnail_item`: one face of the grid;
- :func:`detail_payload`: everything the detail view shows of one face;
- :func:`build_ui`: the controls (ipywidgets) and the three widgets, laid out.

The widgets answer with custom messages: the grid ``{"kind": "open" | "flag",
"position"}`` and ``{"kind": "page", "delta"}``, the matrix ``{"kind": "cell",
"true", "pred"}``; ``browser_view.BrowserView`` acts on them.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_utils.browser.selection import CORRECTED_COLUMN, FLAGGED_COLUMN, OUTCOMES, Selection
from fer_utils.constants import CLASS_NAMES
from fer_utils.evaluate.label_noise import FERPLUS_COLUMN

STATIC_DIR = Path(__file__).resolve().parent / "static"

DETAIL_PLACEHOLDER = "Click a face, or focus it and press Enter, for its details."


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


def _corrected_name(row: dict[str, Any] | pd.Series, class_names: Sequence[str]) -> str:
    corrected = int(row.get(CORRECTED_COLUMN, -1))
    return class_names[corrected] if corrected >= 0 else ""


def thumbnail_item(row: dict[str, Any], src: str, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """One face of the grid, from its table row (as a dict) and its thumbnail URI."""
    return {
        "position": int(row["position"]),
        "index": int(row["index"]),
        "true_name": str(row["true_name"]),
        "pred_name": str(row["pred_name"]),
        "confidence": float(row["confidence"]),
        "correct": bool(row["correct"]),
        "flagged": bool(row.get(FLAGGED_COLUMN, False)),
        "corrected_name": _corrected_name(row, class_names),
        "src": src,
    }


def detail_payload(
    row: pd.Series,
    face: np.ndarray,
    heat_maps: dict[str, np.ndarray],
    *,
    source: str,
    split: str,
    votes: pd.Series | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
    gradcam_note: str = "",
) -> dict[str, Any]:
    """What the detail view shows of one face (JSON-ready).

    Args:
        row: Its ``selection.sample_table`` row (with the review columns, if any).
        face: uint8 (48, 48).
        heat_maps: Title -> float (48, 48) in [0, 1] (e.g. "Grad-CAM: Sad (predicted)").
        source: Name of the source file (shown with the row).
        split: Split name.
        votes: Its ten FER+ vote counts (indexed by vote column), or ``None``.
        class_names: Names in label order.
        gradcam_note: The maps' layer and native resolution, shown under them with a colour scale.
    """
    from fer_utils.evaluate.gradcam import overlay

    true, pred = int(row["true"]), int(row["pred"])
    probs = [
        {"name": name, "p": float(row[name]), "role": "true" if i == true else "pred" if i == pred else ""}
        for i, name in enumerate(class_names)
    ]
    # An all-zero map is not an error: the class got no positive evidence anywhere.
    maps = [
        {"title": title, "src": png_data_uri(overlay(face, heat)), "empty": bool(np.max(heat) <= 0)}
        for title, heat in heat_maps.items()
    ]
    return {
        "position": int(row["position"]),
        "row": int(row["index"]),
        "source": source,
        "split": split,
        "true_name": str(row["true_name"]),
        "pred_name": str(row["pred_name"]),
        "confidence": float(row["confidence"]),
        "loss": float(row["loss"]),
        "correct": bool(row["correct"]),
        "label_issue": float(row["label_issue"]),
        "face": png_data_uri(face),
        "maps": maps,
        "probs": probs,
        "votes": None if votes is None else [{"name": str(k), "n": int(v)} for k, v in votes.items()],
        "ferplus_name": str(row.get(f"{FERPLUS_COLUMN}_name", "") or ""),
        "flagged": bool(row.get(FLAGGED_COLUMN, False)),
        "corrected_name": _corrected_name(row, class_names),
        "gradcam_note": gradcam_note,
    }


@functools.lru_cache(maxsize=1)
def widget_classes() -> tuple[type, type, type]:
    """(ThumbnailGrid, ConfusionGrid, DetailView) anywidget classes, defined on first use (imports anywidget)."""
    import anywidget
    import traitlets

    css = STATIC_DIR / "browser.css"

    class ThumbnailGrid(anywidget.AnyWidget):
        """A page of face thumbnails; keyboard and clicks answer with custom messages."""

        _esm = STATIC_DIR / "browser_grid.js"
        _css = css
        items = traitlets.List(traitlets.Dict()).tag(sync=True)
        thumb_px = traitlets.Int(96).tag(sync=True)
        ncols = traitlets.Int(8).tag(sync=True)
        selected = traitlets.Int(-1).tag(sync=True)

    class ConfusionGrid(anywidget.AnyWidget):
        """The confusion matrix; a click or Enter on a cell sends ``{"kind": "cell", "true", "pred"}``."""

        _esm = STATIC_DIR / "browser_confusion.js"
        _css = css
        counts = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
        class_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
        selected = traitlets.List([-1, -1]).tag(sync=True)

    class DetailView(anywidget.AnyWidget):
        """One face in detail (``face``: a :func:`detail_payload`, or ``{}`` for none)."""

        _esm = STATIC_DIR / "browser_detail.js"
        _css = css
        face = traitlets.Dict({}).tag(sync=True)
        placeholder = traitlets.Unicode(DETAIL_PLACEHOLDER).tag(sync=True)

    return ThumbnailGrid, ConfusionGrid, DetailView


SORT_OPTIONS: tuple[tuple[str, str], ...] = (
    ("confidence ↓", "confidence"),
    ("loss ↓", "loss"),
    ("likely label error ↓", "label_issue"),
    ("row ↑", "index"),
)
"""The sort dropdown: label -> ``Selection.sort_by``."""

CONTROL_CLASSES: dict[str, str] = {
    "true": "fer-true-filter",
    "pred": "fer-pred-filter",
    "outcome": "fer-outcome",
    "sort": "fer-sort",
    "confidence": "fer-confidence",
    "reviewed": "fer-reviewed",
    "count": "fer-match-count",
    "prev": "fer-prev",
    "next": "fer-next",
    "page": "fer-page",
    "page_jump": "fer-page-jump",
    "jump": "fer-jump",
    "jump_kind": "fer-jump-kind",
    "go": "fer-go",
    "export_path": "fer-export-path",
    "export": "fer-export",
    "status": "fer-status",
    "flag": "fer-flag",
    "relabel": "fer-relabel",
    "grid": "fer-grid-widget",
    "confusion": "fer-confusion-widget",
    "detail": "fer-detail",
}
"""CSS class of each control, for the stylesheet and the browser tests."""


_COMPACT = {"description_width": "initial"}
"""Description style of the labelled controls: the label takes only the width it needs."""


def _filter_controls(class_names: Sequence[str], sel: Selection) -> dict[str, Any]:
    """The filter and sort controls, set to ``sel``, and the match count beside them."""
    import ipywidgets as w

    any_options = [("any", -1)] + [(n, i) for i, n in enumerate(class_names)]
    return {
        "true": w.Dropdown(
            options=any_options,
            value=-1 if sel.true_class is None else sel.true_class,
            description="true",
            style=_COMPACT,
            layout=w.Layout(width="150px"),
        ),
        "pred": w.Dropdown(
            options=any_options,
            value=-1 if sel.pred_class is None else sel.pred_class,
            description="predicted",
            style=_COMPACT,
            layout=w.Layout(width="180px"),
        ),
        "sort": w.Dropdown(
            options=list(SORT_OPTIONS),
            value=sel.sort_by,
            description="sort by",
            style=_COMPACT,
            layout=w.Layout(width="200px"),
        ),
        "outcome": w.ToggleButtons(options=list(OUTCOMES), value=sel.outcome, style={"button_width": "76px"}),
        "reviewed": w.Checkbox(
            value=sel.reviewed_only,
            description="flagged or relabelled only",
            indent=False,
            layout=w.Layout(width="auto"),
        ),
        "confidence": w.FloatRangeSlider(
            value=list(sel.confidence),
            min=0.0,
            max=1.0,
            step=0.01,
            description="confidence",
            style=_COMPACT,
            continuous_update=False,
            readout_format=".2f",
            layout=w.Layout(width="300px"),
        ),
        "count": w.HTML(),
    }


def _navigation_controls() -> dict[str, Any]:
    """Paging (previous / next / go to page) and the jump to one face by row number or position."""
    import ipywidgets as w

    return {
        "prev": w.Button(
            description="previous",
            icon="chevron-left",
            tooltip="previous page (p in the grid)",
            layout=w.Layout(width="100px"),
        ),
        "page": w.Label(),
        "next": w.Button(
            description="next",
            icon="chevron-right",
            tooltip="next page (n in the grid)",
            layout=w.Layout(width="100px"),
        ),
        "page_jump": w.BoundedIntText(
            value=1,
            min=1,
            max=1,
            description="go to page",
            style=_COMPACT,
            continuous_update=False,
            layout=w.Layout(width="140px"),
        ),
        "jump": w.Text(
            placeholder="e.g. 29915",
            description="go to",
            style=_COMPACT,
            continuous_update=False,
            layout=w.Layout(width="150px"),
        ),
        "jump_kind": w.Dropdown(
            options=[("row #", "row"), ("position", "position")], value="row", layout=w.Layout(width="95px")
        ),
        "go": w.Button(
            description="go", tooltip="open that face (Enter in the box does the same)", layout=w.Layout(width="50px")
        ),
    }


def _review_controls(class_names: Sequence[str], export_path: Path) -> dict[str, Any]:
    """The CSV export, the status line, and the flag and corrected-label controls of the open face."""
    import ipywidgets as w

    return {
        "export_path": w.Text(
            value=str(export_path), description="CSV", style=_COMPACT, layout=w.Layout(flex="1 1 200px", min_width="0")
        ),
        "export": w.Button(description="Export CSV", icon="download", layout=w.Layout(width="120px")),
        "status": w.HTML(layout=w.Layout(width="100%", margin="2px 0px")),
        "flag": w.ToggleButton(
            description="flag",
            icon="flag",
            tooltip="flag this face for review (f in the grid)",
            layout=w.Layout(width="80px"),
        ),
        "relabel": w.Dropdown(
            options=[("none", -1)] + [(n, i) for i, n in enumerate(class_names)],
            description="corrected label",
            style=_COMPACT,
            layout=w.Layout(width="210px"),
        ),
    }


def _views(
    classes: tuple[type, type, type], class_names: Sequence[str], confusion: np.ndarray, thumb_px: int, ncols: int
) -> dict[str, Any]:
    """The three anywidgets (grid, confusion matrix, detail) and the output for unexpected errors."""
    import ipywidgets as w

    grid_cls, confusion_cls, detail_cls = classes
    return {
        "grid": grid_cls(thumb_px=thumb_px, ncols=ncols, layout=w.Layout(flex="3 1 300px", min_width="0")),
        "confusion": confusion_cls(
            counts=np.asarray(confusion).tolist(), class_names=list(class_names), layout=w.Layout(flex="0 0 auto")
        ),
        "detail": detail_cls(layout=w.Layout(width="100%")),
        "log": w.Output(),
    }


def _row(ui: dict[str, Any], *keys: str) -> Any:
    """The controls ``keys`` in a row that wraps when narrow."""
    import ipywidgets as w

    box = w.HBox([ui[k] for k in keys], layout=w.Layout(flex_flow="row wrap", align_items="center"))
    box.add_class("fer-row")
    return box


def _layout(ui: dict[str, Any]) -> Any:
    """The browser's root box: controls and matrix on top, then the status line, grid and detail panel, the log."""
    import ipywidgets as w

    controls = w.VBox(
        [
            _row(ui, "true", "pred", "sort"),
            _row(ui, "outcome", "reviewed"),
            _row(ui, "confidence", "count"),
            _row(ui, "prev", "page", "next", "page_jump", "jump", "jump_kind", "go"),
            _row(ui, "export_path", "export"),
        ],
        layout=w.Layout(flex="1 1 400px", min_width="0"),
    )
    top = w.HBox(
        [controls, ui["confusion"]],
        layout=w.Layout(flex_flow="row wrap", justify_content="space-between", align_items="flex-start"),
    )
    panel = w.VBox(
        [_row(ui, "flag", "relabel"), ui["detail"]],
        layout=w.Layout(flex="1 1 320px", min_width="0", max_width="620px"),
    )
    panel.add_class("fer-detail-panel")
    main = w.HBox([ui["grid"], panel], layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
    main.add_class("fer-main")
    root = w.VBox([top, ui["status"], main, ui["log"]])
    root.add_class("fer-browser")
    return root


def build_ui(
    *,
    class_names: Sequence[str],
    selection: Selection,
    confusion: np.ndarray,
    thumb_px: int,
    ncols: int,
    export_path: Path,
) -> dict[str, Any]:
    """The browser's controls, laid out to fit the width they get (imports ipywidgets and anywidget).

    The filters and the confusion matrix share the top row, the matrix moving
    below only where both do not fit; the grid takes as many columns as its
    width allows, and the detail sits beside it, below it only in a narrow output.

    Returns:
        Controls by name (the keys of :data:`CONTROL_CLASSES`, plus ``log``, an
        output for unexpected errors, and ``root``), not yet connected to a browser.
    """
    classes = widget_classes()  # before any widget exists, so a missing anywidget leaves none half-made
    ui: dict[str, Any] = {
        **_filter_controls(class_names, selection),
        **_navigation_controls(),
        **_review_controls(class_names, export_path),
        **_views(classes, class_names, confusion, thumb_px, ncols),
    }
    for key, cls in CONTROL_CLASSES.items():
        ui[key].add_class(cls)
    ui["root"] = _layout(ui)
    return ui
