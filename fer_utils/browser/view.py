"""The misclassification browser's controls wired to its state: what a click, a key or a typed value does.

:class:`BrowserView` connects the controls of ``browser_widgets.build_ui`` to a
:class:`fer_utils.browser.MisclassificationBrowser`, pushes the browser's state to
them (:meth:`BrowserView.refresh`) and says in the status line what an action did
or why it failed: a problem a person can fix (a path that cannot be written, a row
not in the selection) is never shown as a traceback, and every action rewrites
the status, so it never shows an earlier success as current.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fer_utils import paths
from fer_utils.browser.selection import CORRECTED_COLUMN, FLAGGED_COLUMN, FaceNotFound, Selection
from fer_utils.browser.widgets import build_ui, thumbnail_item

FILTERS: tuple[str, ...] = ("true", "pred", "outcome", "sort", "confidence", "reviewed")
"""The controls that make up the selection."""


class BrowserState(Protocol):
    """What the view reads and calls of a browser (:class:`fer_utils.browser.MisclassificationBrowser`)."""

    class_names: tuple[str, ...]
    table: pd.DataFrame
    selection: Selection
    page: int
    selected: int | None
    thumb_px: int
    ncols: int
    export_path: Path
    review_path: Path
    matches: pd.DataFrame

    @property
    def n_pages(self) -> int: ...
    def current_page(self) -> pd.DataFrame: ...
    def confusion_counts(self) -> np.ndarray: ...
    def select(self, selection: Selection | None = None, **changes: Any) -> pd.DataFrame: ...
    def go_to_page(self, page: int) -> pd.DataFrame: ...
    def show(self, row: int | None = None, *, position: int | None = None) -> dict[str, Any]: ...
    def flag(self, row: int | None = None, *, position: int | None = None, flagged: bool = True) -> Path: ...
    def relabel(self, row: int | None = None, *, position: int | None = None, label: int | str | None) -> Path: ...
    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path: ...
    def detail(self, position: int) -> dict[str, Any]: ...
    def thumbnail(self, position: int) -> str: ...


class BrowserView:
    """The widget of one browser: its controls (``ui``, by name) and what they do.

    Args:
        browser: The browser whose state the controls show and change.
    """

    def __init__(self, browser: BrowserState) -> None:
        self.browser = browser
        self.ui: dict[str, Any] = build_ui(
            class_names=browser.class_names,
            selection=browser.selection,
            confusion=browser.confusion_counts(),
            thumb_px=browser.thumb_px,
            ncols=browser.ncols,
            export_path=browser.export_path,
        )
        self._syncing = False
        self._connect()

    # ------------------------------------------------------------------ state -> controls

    def refresh(self) -> None:
        """Show the browser's state: filters, counts, page, thumbnails, detail and review controls."""
        b, ui = self.browser, self.ui
        sel = b.selection
        face = None if b.selected is None else b.table.iloc[b.selected]
        self._syncing = True  # values set here are not requests
        try:
            ui["true"].value = -1 if sel.true_class is None else sel.true_class
            ui["pred"].value = -1 if sel.pred_class is None else sel.pred_class
            ui["outcome"].value = sel.outcome
            ui["sort"].value = sel.sort_by
            ui["confidence"].value = [sel.confidence[0], sel.confidence[1]]
            ui["reviewed"].value = sel.reviewed_only
            ui["page_jump"].max = b.n_pages
            ui["page_jump"].value = b.page + 1
            ui["flag"].disabled = ui["relabel"].disabled = face is None
            ui["flag"].value = bool(face[FLAGGED_COLUMN]) if face is not None else False
            ui["relabel"].value = int(face[CORRECTED_COLUMN]) if face is not None else -1
        finally:
            self._syncing = False
        n = len(b.matches)
        count = f"<b>{n:,}</b> of {len(b.table):,} faces match"
        ui["count"].value = f'<span class="fer-count" data-count="{n}">{count}</span>'
        ui["page"].value = f"page {b.page + 1} of {b.n_pages}"
        ui["prev"].disabled = b.page == 0
        ui["next"].disabled = b.page >= b.n_pages - 1
        ui["confusion"].selected = [
            -1 if sel.true_class is None else sel.true_class,
            -1 if sel.pred_class is None else sel.pred_class,
        ]
        ui["grid"].items = [
            thumbnail_item(r, b.thumbnail(int(r["position"])), b.class_names)
            for r in b.current_page().to_dict("records")
        ]
        ui["grid"].selected = -1 if b.selected is None else b.selected
        ui["detail"].face = {} if b.selected is None else b.detail(b.selected)

    def status(self, text: str, error: bool = False) -> None:
        """Write the status line (an empty ``text`` clears it)."""
        cls = "fer-status-text fer-error" if error else "fer-status-text"
        self.ui["status"].value = f'<span class="{cls}">{html.escape(text)}</span>' if text else ""

    def act(self, action: str, fn: Callable[[], str | None]) -> None:
        """Run what a control asked for and say in the status line what came of it.

        Args:
            action: What was asked, for the message ("export", "go to", ...).
            fn: Does it; returns the status text (``None``: an empty status). An
                ``OSError``, ``ValueError`` or ``FaceNotFound`` becomes "<action>
                failed: why"; anything else is a bug and shows as such.
        """
        with self.ui["log"]:
            try:
                message = fn()
            except OSError as err:
                self.refresh()  # the controls show what is, not what was asked for
                self.status(f"{action} failed: {err.strerror or err}", error=True)
            except (ValueError, FaceNotFound) as err:
                self.refresh()
                self.status(f"{action} failed: {err}", error=True)
            else:
                self.status(message or "")

    # ------------------------------------------------------------------ controls -> state

    def _connect(self) -> None:
        ui, b = self.ui, self.browser

        def on(action: str, fn: Callable[[Any], str | None]) -> Callable[[Any], None]:
            def handler(change: Any) -> None:
                if not self._syncing:
                    self.act(action, lambda: fn(change))

            return handler

        def turn(delta: int) -> Callable[[Any], None]:
            return lambda _button: self._turn(delta)

        for key in FILTERS:
            ui[key].observe(on("filter", self._filters), names="value")
        ui["prev"].on_click(on("page", turn(-1)))
        ui["next"].on_click(on("page", turn(+1)))
        ui["page_jump"].observe(on("go to page", lambda ch: self._turn(int(ch["new"]) - 1 - b.page)), names="value")
        ui["jump"].observe(on("go to", lambda _: self._jump()), names="value")
        ui["go"].on_click(on("go to", lambda _: self._jump()))
        ui["export"].on_click(on("export", lambda _: self._export()))
        ui["flag"].observe(on("flag", lambda ch: self._mark(FLAGGED_COLUMN, bool(ch["new"]))), names="value")
        ui["relabel"].observe(on("relabel", lambda ch: self._mark(CORRECTED_COLUMN, int(ch["new"]))), names="value")
        ui["grid"].on_msg(lambda _w, content, _b: self.act(str(content.get("kind")), lambda: self._on_grid(content)))
        ui["confusion"].on_msg(lambda _w, content, _b: self.act("matrix", lambda: self._on_cell(content)))

    def _filters(self, _change: Any) -> None:
        v = {k: self.ui[k].value for k in FILTERS}
        self.browser.select(
            true_class=None if v["true"] < 0 else int(v["true"]),
            pred_class=None if v["pred"] < 0 else int(v["pred"]),
            outcome=v["outcome"],
            sort_by=v["sort"],
            confidence=(float(v["confidence"][0]), float(v["confidence"][1])),
            reviewed_only=bool(v["reviewed"]),
        )

    def _turn(self, delta: int) -> None:
        self.browser.go_to_page(self.browser.page + delta)

    def _on_grid(self, content: dict[str, Any]) -> str:
        """A message of the thumbnail grid: open a face, flag it (the f key), or turn the page."""
        kind, b = content.get("kind"), self.browser
        if kind == "open":
            b.show(position=int(content["position"]))
        elif kind == "flag":
            pos = int(content["position"])
            return self._mark(FLAGGED_COLUMN, not bool(b.table[FLAGGED_COLUMN].iat[pos]), pos)
        elif kind == "page":
            self._turn(int(content["delta"]))
        return ""

    def _on_cell(self, content: dict[str, Any]) -> str:
        t, p = int(content["true"]), int(content["pred"])
        self.browser.select(true_class=t, pred_class=p, outcome="correct" if t == p else "incorrect")
        return ""

    def _jump(self) -> str:
        """Open the face typed in the go-to box (a file row, or a position with the box's kind set so)."""
        text = self.ui["jump"].value.strip()
        if not text:
            return ""
        kind = self.ui["jump_kind"].value
        try:
            number = int(text.lstrip("#"))
        except ValueError:
            raise ValueError(f"{text!r} is not a {'row' if kind == 'row' else 'position'} number") from None
        b = self.browser
        face = b.show(**{kind: number})
        at = int(np.flatnonzero(b.matches["position"].to_numpy() == face["position"])[0])
        return f"#{face['row']}: face {at + 1:,} of {len(b.matches):,} in this selection (page {b.page + 1})"

    def _export(self) -> str:
        b = self.browser
        path = paths.resolve(self.ui["export_path"].value.strip() or b.export_path)
        try:
            out = b.export_csv(path)
        except OSError as err:
            raise OSError(err.errno, f"cannot write {path} ({err.strerror or err})") from err
        return f"wrote {len(b.matches):,} rows to {out.name}"

    def _mark(self, column: str, value: Any, position: int | None = None) -> str:
        """Flag or relabel a face (the shown one unless ``position`` is given); the status says it was saved."""
        b = self.browser
        pos = b.selected if position is None else position
        if pos is None:
            raise ValueError("open a face first")
        try:
            if column == FLAGGED_COLUMN:
                b.flag(position=pos, flagged=bool(value))
            else:
                b.relabel(position=pos, label=int(value))
        except OSError as err:
            raise OSError(err.errno, f"cannot save the review to {b.review_path} ({err.strerror or err})") from err
        row = int(b.table["index"].iat[pos])
        if column == FLAGGED_COLUMN:
            what = "flagged" if value else "unflagged"
        else:
            what = f"relabelled {b.class_names[value]}" if value >= 0 else "correction removed"
        return f"#{row} {what}; saved to {b.review_path.name}"
