"""Browse a model's predictions in Jupyter, mistakes first: :class:`MisclassificationBrowser`.

Like fastai's ``ImageClassifierCleaner``, the widget lives here and the notebook
only writes::

    browser = MisclassificationBrowser(pred, ferplus_path=..., review_path=out / "review.csv")
    browser

Predictions are computed once (or taken from ``evaluate.predict_split``); the
controls then filter and sort a table, so they answer at once: filters (true and
predicted class, also by a confusion-matrix cell; outcome; confidence; reviewed
faces), sort orders (confidence, loss, likely label error, row), pages with a
go-to-page and a go-to-row, a detail view (face, Grad-CAM for the predicted and
true class, probabilities, FER+ votes) that follows the selection, keyboard
navigation, per-face flags and corrected labels saved to a review CSV beside the
report (``fer_utils.data.review``, read back when the browser is opened again), and
CSV export. A problem a person can fix (a path that cannot be written, a row not
in the selection) is said in the widget's status line, not as a traceback.

It composes ``selection`` (the table logic), ``evaluate.label_noise``, ``data.review``,
``widgets`` (the front end; its JavaScript and CSS are in
``fer_utils/browser/static/``) and ``view`` (what the controls do). ipywidgets,
anywidget and torch are imported only when a widget is built or a heat map computed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.browser.selection import (
    CORRECTED_COLUMN,
    FLAGGED_COLUMN,
    FaceNotFound,
    Selection,
    export_selection,
    face_position,
    n_pages,
    page_rows,
    pair_examples,
    place_in,
    select,
)
from fer_utils.browser.view import BrowserView
from fer_utils.browser.widgets import detail_payload, png_data_uri
from fer_utils.constants import CLASS_NAMES
from fer_utils.data.ferplus import FERPLUS_COLUMNS
from fer_utils.data.review import apply_review, from_table, load_review, save_review
from fer_utils.evaluate.label_noise import label_noise
from fer_utils.evaluate.metrics import sample_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from fer_utils.data import FERData
    from fer_utils.evaluate.predictions import SplitPredictions

logger = logging.getLogger(__name__)


def _label_issue_note(splits: Sequence[str], out_of_sample: bool) -> str:
    """What the likely-label-error scores rest on, in words ("" when nothing needs saying)."""
    if out_of_sample:
        return "Likely-label-error scores: out-of-sample probabilities (each face scored by a model that never saw it)."
    if "Training" in splits:
        return (
            "Likely-label-error scores are in-sample here: the model trained on these faces, so its probabilities "
            "agree with their labels and the ranking finds little. Give out_of_sample= (python -m fer_utils.train "
            "crossfit) for a ranking that can find label errors."
        )
    return ""


class MisclassificationBrowser:
    """Interactive browser of a model's predictions on one split, mistakes first.

    Display it by making it the last expression of a cell. Everything the widget
    does is also available from code (:meth:`select`, :meth:`go_to_page`,
    :meth:`show`, :meth:`flag`, :meth:`relabel`, :meth:`export_csv`), which the tests use.
    Faces are named as the widget names them: by their row in the source file
    (the ``index`` column, ``#29915``), or by ``position=`` in the evaluated split.

    Args:
        predictions: ``evaluate.predict_split(...)`` result (reused: no second
            prediction pass), or a checkpoint path to predict with.
        data: With a checkpoint path: a ``FERData`` or data path (``None``: the
            default lookup, else synthetic data). Ignored otherwise.
        split: With a checkpoint path: the split to evaluate.
        tta: With a checkpoint path: TTA mode (``None``: the checkpoint's).
        ferplus_path: FER+ ``fer2013new.csv`` for the same file, or ``None``;
            adds the FER+ majority and the ten vote counts to the table.
        selection: The initial :class:`Selection` (``None``: all mistakes, most confident first).
        page_size: Thumbnails per page.
        ncols: The most thumbnails per row (fewer where the output is narrower).
        thumb_px: Displayed thumbnail side in pixels (faces are 48 px).
        export_path: Default CSV path of "Export CSV" (relative paths from the
            repository root); ``None``: ``reports/browser_selection.csv``.
        review_path: The review CSV (``fer_utils.data.review``): read if it exists,
            written on every flag or correction; ``None``: ``reports/review.csv``.
        model: The network for Grad-CAM; ``None`` loads it from the checkpoint
            on the first detail view.
        gradcam_layer: Layer explained by Grad-CAM (``None``: the last feature map).
        device: Where Grad-CAM runs.
        out_of_sample: Probabilities (N, C) of the same faces from models that did not train on
            them (``fer_utils.train.crossfit(...).probs_for(data)``): the likely-label-error sort and
            score use them. Without them, on the Training split the scores are in-sample, and
            :attr:`label_issue_note` says so.

    Attributes:
        table: ``selection.sample_table`` of all faces of the split, with the
            FER+ vote columns (given votes) and the review columns ``flagged``
            and ``corrected`` (-1: none).
        images: uint8 (N, 48, 48), aligned with ``table.position``.
        selection: The current :class:`Selection`.
        matches: The current selection's rows, sorted.
        page: Current 0-based page.
        selected: Position of the face in the detail view, or ``None``.

    Raises:
        FERDataError: the review file is malformed or was made on other data.
    """

    def __init__(
        self,
        predictions: SplitPredictions | str | os.PathLike[str],
        data: FERData | str | os.PathLike[str] | None = None,
        split: str = "PrivateTest",
        *,
        tta: str | None = None,
        ferplus_path: str | os.PathLike[str] | None = None,
        selection: Selection | None = None,
        page_size: int = 24,
        ncols: int = 8,
        thumb_px: int = 96,
        export_path: str | os.PathLike[str] | None = None,
        review_path: str | os.PathLike[str] | None = None,
        model: nn.Module | None = None,
        gradcam_layer: str | None = None,
        device: str = "cpu",
        out_of_sample: np.ndarray | None = None,
    ) -> None:
        from fer_utils.evaluate.predictions import predict_split

        if isinstance(predictions, (str, os.PathLike)):
            if data is None:
                from fer_utils.data import load_dataset

                data = load_dataset(None)
            predictions = predict_split(predictions, data, split, tta=tta, device=device)
        if page_size < 1 or ncols < 1 or thumb_px < 8:
            raise ValueError(
                f"page_size and ncols must be >= 1 and thumb_px >= 8, got {page_size}, {ncols}, {thumb_px}"
            )
        self.predictions = predictions
        self.images: np.ndarray = predictions.data.images
        self.usage = np.asarray(predictions.data.usage).astype(str)
        splits = sorted(set(self.usage))
        self.split = "+".join(splits)
        self.class_names: tuple[str, ...] = tuple(predictions.meta.get("class_names", CLASS_NAMES))
        table = self._sample_table(predictions, ferplus_path, out_of_sample)
        self.label_issue_note = _label_issue_note(splits, out_of_sample is not None)
        self.review_path = paths.resolve(review_path) if review_path else paths.REPORTS_DIR / "review.csv"
        self._other_reviews: pd.DataFrame | None = None
        if self.review_path.is_file():
            review = load_review(self.review_path)
            table = apply_review(table, review, splits, self.review_path)
            self._other_reviews = review[~review["split"].isin(splits)]
            logger.info(
                "read review marks of %d faces from %s", len(review) - len(self._other_reviews), self.review_path
            )
        else:
            table = table.assign(**{FLAGGED_COLUMN: False, CORRECTED_COLUMN: -1})
        self.table = table
        self.page_size, self.ncols, self.thumb_px = page_size, ncols, thumb_px
        self.export_path = paths.resolve(export_path) if export_path else paths.REPORTS_DIR / "browser_selection.csv"
        self.gradcam_layer, self.device = gradcam_layer, device
        self._model = model
        self._heat: dict[tuple[int, int], np.ndarray] = {}
        self._gradcam_note: str | None = None
        self._thumbs: dict[int, str] = {}
        self.selection = selection or Selection()
        self.matches = select(self.table, self.selection)
        self.page = 0
        self.selected: int | None = None
        self._view: BrowserView | None = None

    def _sample_table(
        self, predictions: SplitPredictions, ferplus_path: str | os.PathLike[str] | None, oos: np.ndarray | None
    ) -> pd.DataFrame:
        """The split's table with the FER+ plurality and votes (given a votes file); sets :attr:`votes`."""
        self.votes: pd.DataFrame | None = None
        plurality = None
        if ferplus_path:
            from fer_utils.data.ferplus import align_votes, ferplus_plurality, read_ferplus

            self.votes = align_votes(read_ferplus(ferplus_path), predictions.data)
            plurality = ferplus_plurality(self.votes)
        table = sample_table(
            predictions.data.labels,
            predictions.probs,
            predictions.data.index,
            ferplus_labels=plurality,
            class_names=self.class_names,
            issue_probs=oos,
        )
        if self.votes is not None:
            table = pd.concat([table, self.votes[list(FERPLUS_COLUMNS)].reset_index(drop=True)], axis=1)
        return table

    # ------------------------------------------------------------------ selection and pages

    @property
    def n_pages(self) -> int:
        return n_pages(len(self.matches), self.page_size)

    def current_page(self) -> pd.DataFrame:
        """The rows shown now."""
        return page_rows(self.matches, self.page, self.page_size)

    def select(self, selection: Selection | None = None, **changes: Any) -> pd.DataFrame:
        """Change the selection (a new :class:`Selection`, or fields to change) and go to page 1.

        The detail view is cleared if its face is no longer selected.

        Returns:
            The matching rows, sorted.
        """
        new = selection if selection is not None else self.selection
        self.selection = dataclasses.replace(new, **changes) if changes else new
        self.matches = select(self.table, self.selection)
        self.page = 0
        self._follow_selection()
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

    def _follow_selection(self) -> None:
        if self.selected is not None and place_in(self.matches, self.selected) is None:
            self.selected = None

    def _position(self, row: int | None, position: int | None) -> int:
        return face_position(self.table, row=row, position=position, split=self.split)

    def show(self, row: int | None = None, *, position: int | None = None) -> dict[str, Any]:
        """Open the detail view of a face of the selection and turn to its page.

        Args:
            row: Its row in the source file, as the widget shows it (``#29915``).
            position: Or its position in the evaluated split.

        Returns:
            What the detail view shows (``browser_widgets.detail_payload``).

        Raises:
            FaceNotFound: the split has no such face, or the selection does not hold it.
        """
        pos = self._position(row, position)
        at = place_in(self.matches, pos)
        if at is None:
            what = f"row {row}" if row is not None else f"position {position}"
            raise FaceNotFound(
                f"{what} is in {self.split} but not in the current selection "
                f"({self.selection.describe(self.class_names)}): widen the filters, "
                "e.g. select(outcome='all')"
            )
        self.page = at // self.page_size
        self.selected = pos
        self._refresh()
        return self.detail(pos)

    def close_detail(self) -> None:
        """Clear the detail view."""
        self.selected = None
        self._refresh()

    # ------------------------------------------------------------------ review

    def flag(self, row: int | None = None, *, position: int | None = None, flagged: bool = True) -> Path:
        """Flag (or with ``flagged=False`` unflag) a face of the split, and save the review file.

        Returns:
            The review file.
        """
        return self._mark(self._position(row, position), FLAGGED_COLUMN, bool(flagged))

    def relabel(self, row: int | None = None, *, position: int | None = None, label: int | str | None) -> Path:
        """Give a face of the split a corrected label (``None`` or -1 removes it), and save the review file.

        Args:
            row: Its row in the source file.
            position: Or its position in the split.
            label: A class index or name.

        Returns:
            The review file.
        """
        if isinstance(label, str):
            if label not in self.class_names:
                raise ValueError(f"label {label!r} is not a class name ({', '.join(self.class_names)})")
            label = self.class_names.index(label)
        label = -1 if label is None else int(label)
        if not -1 <= label < len(self.class_names):
            raise ValueError(f"label must be a class index in 0..{len(self.class_names) - 1} or None, got {label}")
        return self._mark(self._position(row, position), CORRECTED_COLUMN, label)

    @property
    def review(self) -> pd.DataFrame:
        """This split's review marks in the review file's columns (``review.REVIEW_COLUMNS``)."""
        return from_table(self.table, self.usage, self.class_names)

    def _mark(self, position: int, column: str, value: Any) -> Path:
        at = self.table.columns.get_loc(column)
        before = self.table.iat[position, at]
        self.table.iat[position, at] = value
        try:
            path = self._save_review()
        except BaseException:
            self.table.iat[position, at] = before  # the table never claims what the file does not hold
            raise
        self.matches = select(self.table, self.selection)
        self.page = min(self.page, self.n_pages - 1)
        self._follow_selection()
        self._refresh()
        return path

    def _save_review(self) -> Path:
        parts = [df for df in (self._other_reviews, self.review) if df is not None and len(df)]
        review = pd.concat(parts, ignore_index=True).sort_values(["split", "row"]) if parts else self.review
        return save_review(self.review_path, review)

    # ------------------------------------------------------------------ outputs

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current selection (all matching rows, not only this page) to CSV; returns the path.

        Raises:
            OSError: the file cannot be written.
        """
        out = export_selection(self.matches, path or self.export_path, self.class_names)
        logger.info("wrote %d rows (%s) to %s", len(self.matches), self.selection.describe(self.class_names), out)
        return out

    def label_noise(self) -> dict[str, Any]:
        """``label_noise.label_noise`` of this split (needs ``ferplus_path``)."""
        return label_noise(self.table)

    # ------------------------------------------------------------------ Grad-CAM

    def _get_model(self) -> nn.Module:
        if self._model is None:
            from fer_utils.model.checkpoint import load_model

            self._model, _ = load_model(self.predictions.checkpoint, device=self.device)
        return self._model

    @property
    def gradcam_note(self) -> str:
        """Which feature map Grad-CAM explains and its native resolution, for captions."""
        if self._gradcam_note is None:
            from fer_utils.evaluate.gradcam import map_sides

            name = self.gradcam_layer or "(last)"
            side = map_sides(self._get_model(), self.predictions.meta["preprocess"], [name])[name]
            what = "the last feature map" if name == "(last)" else f"layer {name}"
            self._gradcam_note = (
                f"Grad-CAM of {what}: a {side}x{side} map, resized to the face's centre crop; "
                "colour from blue (no evidence) to red (the face's most evidence for that class)"
            )
        return self._gradcam_note

    def heat_maps(self, positions: Sequence[int] | np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
        """Grad-CAM maps (len, 48, 48) in [0, 1] of faces at ``positions`` for classes ``targets`` (cached)."""
        from fer_utils.evaluate.gradcam import grad_cam

        pos = [int(p) for p in positions]
        tgt = [int(t) for t in targets]
        todo = [(p, t) for p, t in zip(pos, tgt, strict=True) if (p, t) not in self._heat]
        if todo:
            maps = grad_cam(
                self._get_model(),
                self.images[[p for p, _ in todo]],
                self.predictions.meta["preprocess"],
                [t for _, t in todo],
                layer=self.gradcam_layer,
                device=self.device,
            )
            self._heat.update(dict(zip(todo, maps, strict=True)))
        if not pos:
            return np.zeros((0, *self.images.shape[1:]), dtype=np.float32)
        return np.stack([self._heat[(p, t)] for p, t in zip(pos, tgt, strict=True)])

    def detail(self, position: int) -> dict[str, Any]:
        """What the detail view shows of the face at ``position`` (``browser_widgets.detail_payload``)."""
        row = self.table.iloc[position]
        true, pred = int(row["true"]), int(row["pred"])
        targets = [pred] if true == pred else [pred, true]
        titles = [f"Grad-CAM: {self.class_names[pred]} (predicted)"]
        if true != pred:
            titles.append(f"Grad-CAM: {self.class_names[true]} (true)")
        maps = self.heat_maps([position] * len(targets), targets)
        votes = row[list(FERPLUS_COLUMNS)] if self.votes is not None else None
        return detail_payload(
            row,
            self.images[position],
            dict(zip(titles, maps, strict=True)),
            source=Path(self.predictions.data.source).name,
            split=str(self.usage[position]),
            votes=votes,
            class_names=self.class_names,
            gradcam_note=self.gradcam_note,
        )

    # ------------------------------------------------------------------ static figures

    def confused_pairs_figure(
        self,
        pairs: Sequence[dict[str, Any]] | None = None,
        n_pairs: int = 3,
        per_pair: int = 6,
        *,
        save_to: str | os.PathLike[str] | None = None,
    ) -> Figure:
        """Static fallback: the most confident mistakes of the most confused pairs, with Grad-CAM overlays.

        Args:
            pairs: ``metrics["most_confused"]``-style entries; ``None`` computes them from this split.
            n_pairs: Pairs shown (the first ones).
            per_pair: Faces per pair.
            save_to: PNG path, or ``None``.
        """
        from fer_utils import plots
        from fer_utils.evaluate.metrics import most_confused_pairs

        if pairs is None:
            pairs = most_confused_pairs(self.confusion_counts(), self.class_names, k=None)
        examples = pair_examples(self.table, list(pairs)[:n_pairs], per_pair, self.class_names)
        heat = self.heat_maps(examples["position"], examples["pred"])
        return plots.confused_pairs_gradcam(self.images, examples, heat, caption=self.gradcam_note, save_to=save_to)

    def details_figure(self, n: int = 6, *, save_to: str | os.PathLike[str] | None = None) -> Figure:
        """Static fallback of the detail view for the first ``n`` faces of the current selection."""
        from fer_utils import plots

        rows = self.matches.head(n)
        heat = self.heat_maps(rows["position"], rows["pred"])
        return plots.mistake_details(
            self.images, rows, heat, class_names=self.class_names, caption=self.gradcam_note, save_to=save_to
        )

    def confusion_counts(self) -> np.ndarray:
        """(C, C) int64 counts of the split: rows true class, columns prediction."""
        cm = np.zeros((len(self.class_names), len(self.class_names)), dtype=np.int64)
        np.add.at(cm, (self.table["true"].to_numpy(), self.table["pred"].to_numpy()), 1)
        return cm

    # ------------------------------------------------------------------ the widget

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

    def thumbnail(self, position: int) -> str:
        """The face at ``position`` as a PNG data URI at its native size (cached)."""
        if position not in self._thumbs:
            self._thumbs[position] = png_data_uri(self.images[position])
        return self._thumbs[position]

    def _build(self) -> dict[str, Any]:
        """The widget's controls by name (built on first use)."""
        if self._view is None:
            self._view = BrowserView(self)
            self._view.refresh()
            if "in-sample" in self.label_issue_note:  # before the first sort by likely label error
                self._view.status(self.label_issue_note)
        return self._view.ui

    def _refresh(self) -> None:
        """Push the state to the widget, if it is built."""
        if self._view is not None:
            self._view.refresh()
