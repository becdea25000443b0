"""Notebook 04's misclassification browser in a real browser, as a person would use it on a laptop.

The test trains a small checkpoint on a synthetic CSV, starts JupyterLab on 127.0.0.1 (a token, a free port)
serving a temporary copy of the notebooks folder with notebook 04's parameters set to that checkpoint and data
(plus a FER+ votes file written for it), opens the notebook in Debian's headless Chromium driven by Playwright
at 1280x800 with JupyterLab's file browser open, and runs all cells. Then

- with the mouse: it changes the true-class filter and checks that every thumbnail now shows that class, that
  they are the first page of the library's own selection and that the match count equals the library's count;
  pages forward and back; clicks a thumbnail and checks the detail view (one probability bar per class summing
  to 100 %, the Grad-CAM maps as loaded images, the FER+ votes); exports the selection and checks the file holds
  all of it; clicks a confusion-matrix cell and checks that the filters follow;
- from the keyboard: nothing in the widget overflows sideways; a face focused, arrows move (with a visible
  focus ring), Enter opens the detail beside the grid and in view, f flags the face, n turns the page, Shift+Tab
  reaches the matrix and the go-to box, and a row typed there opens on its page; a filter that excludes the
  shown face clears the detail; an export to /proc/forbidden.csv says why in the status line, with no
  traceback; run again, the notebook's new browser still shows the flag (read back from the review file);
- it saves screenshots under the test's temporary folder.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); never `playwright install`. Requests to anything
but the local server are blocked, so the test works offline.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from jupyter_lab import (
    block_outside_requests,
    launch_chromium,
    open_and_run_all,
    rerun_all,
    running_lab,
    show_file_browser,
)
from playwright.sync_api import sync_playwright

from fer_utils import CLASS_NAMES, paths

pytestmark = pytest.mark.browser

NOTEBOOK = "04_error_analysis"
PAGE_SIZE = 12
LAPTOP = {"width": 1280, "height": 800}


def _write_votes(csv: Path, out: Path) -> Path:
    """FER+ votes for every row of ``csv``: mostly for the row's own label, sometimes for another class."""
    from fer_utils.data import FERPLUS_COLUMNS, load_dataset
    from fer_utils.data.ferplus import FERPLUS_TO_FER

    data = load_dataset(csv)
    column_of = {label: FERPLUS_COLUMNS.index(c) for c, label in FERPLUS_TO_FER.items() if label is not None}
    rng = np.random.default_rng(7)
    votes = np.zeros((len(data), len(FERPLUS_COLUMNS)), dtype=np.int64)
    label = np.where(rng.random(len(data)) < 0.7, data.labels, rng.integers(0, len(CLASS_NAMES), len(data)))
    votes[np.arange(len(data)), [column_of[int(k)] for k in label]] = 6
    votes += rng.integers(0, 2, size=votes.shape)
    df = pd.DataFrame(votes, columns=list(FERPLUS_COLUMNS))
    df.insert(0, "Image name", [f"fer{i:07d}.png" for i in range(len(data))])
    df.insert(0, "Usage", data.usage)
    df.to_csv(out, index=False)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A synthetic CSV (90 faces per class), its FER+ votes and a resnet10t trained one epoch on 300 faces."""
    from fer_utils.data import make_synthetic_csv
    from fer_utils.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("browser_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_UTILS_CACHE", str(root / "cache"))
        n_per_class = {"Training": 60, "PublicTest": 15, "PrivateTest": 15}
        csv = make_synthetic_csv(root / "synthetic.csv", n_per_class=n_per_class, seed=1)
        votes = _write_votes(csv, root / "fer2013new.csv")
        fit(
            TrainConfig(
                data=str(csv),
                out_dir=str(root / "run"),
                arch="resnet10t",
                epochs=1,
                limit_train=300,
                batch_size=32,
                lr=3e-3,
                warmup_epochs=0.2,
                drop_path_rate=0.0,
                tta="none",
                num_threads=1,
                progress=False,
            )
        )
    return {"csv": csv, "votes": votes, "checkpoint": root / "run" / "best.pt", "cache": root / "cache", "root": root}


@pytest.fixture(scope="module")
def lab(trained, tmp_path_factory):
    """JupyterLab serving a copy of the notebooks folder, notebook 04 set to the trained checkpoint."""
    root = tmp_path_factory.mktemp("lab")
    notebooks = root / "notebooks"
    shutil.copytree(paths.NOTEBOOKS_DIR, notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(notebooks / f"{NOTEBOOK}.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    params = {
        "checkpoint_path": str(trained["checkpoint"]),
        "data_path": str(trained["csv"]),
        "split": "PrivateTest",
        "report_dir": str(root / "report"),
        "ferplus_path": str(trained["votes"]),
        "page_size": PAGE_SIZE,
    }
    injected = "\n".join(f"{k} = {v!r}" for k, v in params.items())  # as papermill would inject them
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(nb, notebooks / f"{NOTEBOOK}.ipynb")
    env = {"FER_UTILS_CACHE": str(trained["cache"]), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    with running_lab(root, tmp_path_factory.mktemp("jupyter_home"), env) as server:
        yield {**server, "report": root / "report"}


@pytest.fixture(scope="module")
def library_view(trained):
    """The library's own browser on the same checkpoint and split (no widgets needed for counting)."""
    from fer_utils.browser import MisclassificationBrowser

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_UTILS_CACHE", str(trained["cache"]))
        return MisclassificationBrowser(
            trained["checkpoint"],
            trained["csv"],
            "PrivateTest",
            page_size=PAGE_SIZE,
            review_path=trained["root"] / "library_review.csv",
        )


def test_lab_runs_notebooks_with_this_environments_python(lab):
    """The kernel "python3" must be the venv's (``ipykernel install --sys-prefix``), or fer_utils is missing."""
    import json

    with urllib.request.urlopen(f"{lab['url']}/api/kernelspecs?token={lab['token']}", timeout=10) as r:
        specs = json.load(r)
    argv0 = specs["kernelspecs"]["python3"]["spec"]["argv"][0]
    # jupyter_client runs a bare "python" with the server's own interpreter, which is this test's.
    assert argv0 in ("python", "python3", sys.executable) or argv0.startswith(sys.prefix), argv0


def _thumbs(page) -> list[dict[str, str]]:
    return page.locator(".fer-browser .fer-thumb").evaluate_all(
        "els => els.map(e => ({position: e.dataset.position, true: e.dataset.true, pred: e.dataset.pred}))"
    )


def _count(page) -> int:
    return int(page.locator(".fer-browser .fer-count").get_attribute("data-count"))


@contextlib.contextmanager
def notebook_in_chromium(lab, errors: list[str]):
    """Chromium at laptop size with JupyterLab's file browser open and notebook 04 run.

    Yields the page and the misclassification browser's root; page errors are appended to ``errors``.
    """
    with sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            page = chromium.new_page(viewport=LAPTOP)
            page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
            block_outside_requests(page)
            open_and_run_all(
                page,
                f"{lab['url']}/lab/tree/notebooks/{NOTEBOOK}.ipynb?token={lab['token']}",
                ".fer-browser .fer-thumb",
                timeout_ms=180_000,
            )
            show_file_browser(page)
            browser_el = page.locator(".fer-browser")
            browser_el.scroll_into_view_if_needed()
            yield page, browser_el
        finally:
            chromium.close()


def test_browser_filters_pages_and_opens_details_in_jupyterlab(lab, library_view, tmp_path):
    from fer_utils.browser.selection import Selection, select

    errors: list[str] = []
    table = library_view.table
    default = select(table, Selection())
    # The class with the most mistakes, so the filtered page is full and differs from the default one.
    true_class = int(default["true"].value_counts().idxmax())
    name = CLASS_NAMES[true_class]
    expected = select(table, Selection(true_class=true_class))

    with notebook_in_chromium(lab, errors) as (page, browser_el):
        before = _thumbs(page)
        count_before = _count(page)

        # A person picks a true class in the dropdown.
        browser_el.locator(".fer-true-filter select").select_option(label=name)
        page.wait_for_function(
            """name => { const t = [...document.querySelectorAll('.fer-browser .fer-thumb')];
                         return t.length > 0 && t.every(e => e.dataset.true === name); }""",
            arg=name,
            timeout=30_000,
        )
        after = _thumbs(page)
        count_after = _count(page)
        # The label is redrawn apart from the thumbnails: wait for it to say page 1.
        _wait_for_page_label(page, "page 1 of")
        page_label = browser_el.locator(".fer-page").text_content()

        # A person pages forward and back.
        paged: list[list[int]] = []
        if len(expected) > PAGE_SIZE:
            for button, label in ((".fer-next", "page 2 of"), (".fer-prev", "page 1 of")):
                shown = [t["position"] for t in _thumbs(page)]
                browser_el.locator(button).click()
                # The page label and the thumbnails are redrawn separately: wait for both.
                page.wait_for_function(
                    """([label, shown]) => {
                         const now = [...document.querySelectorAll('.fer-browser .fer-thumb')]
                             .map(e => e.dataset.position);
                         return document.querySelector('.fer-browser .fer-page').textContent.startsWith(label)
                                && now.length > 0 && now.join() !== shown.join(); }""",
                    arg=[label, shown],
                    timeout=30_000,
                )
                paged.append([int(t["position"]) for t in _thumbs(page)])

        # A person clicks the first face.
        first = browser_el.locator(".fer-thumb").first
        clicked_index = first.get_attribute("data-index")
        first.click()
        page.wait_for_selector(".fer-browser .fer-detail .fer-heatmap", timeout=60_000)
        page.wait_for_function(
            """() => { const imgs = [...document.querySelectorAll('.fer-browser .fer-detail img')];
                       return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            timeout=30_000,
        )
        detail = browser_el.locator(".fer-detail")
        bars = detail.locator(".fer-prob-bar").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
        rendered = detail.locator(".fer-prob-bar").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
        heat = detail.locator(".fer-heatmap").evaluate_all(
            "els => els.map(e => [e.naturalWidth, e.getBoundingClientRect().width])"
        )
        title = detail.locator(".fer-detail-title").text_content()
        has_votes = detail.locator(".fer-ferplus").count() == 1
        browser_el.screenshot(path=str(tmp_path / "browser_detail.png"))
        page.screenshot(path=str(tmp_path / "page.png"))

        # A person exports the selection (all pages of it).
        browser_el.locator(".fer-export").click()
        page.wait_for_function(
            "() => document.querySelector('.fer-browser .fer-status').textContent.startsWith('wrote')", timeout=30_000
        )
        exported = pd.read_csv(lab["report"] / "browser_selection.csv")

        # A person clicks a confusion-matrix cell (true = first class, predicted = most frequent prediction).
        pred_class = int(table["pred"].value_counts().idxmax())
        browser_el.locator(f".fer-cm-cell[data-true='0'][data-pred='{pred_class}']").click()
        page.wait_for_function(
            """v => document.querySelector('.fer-browser .fer-pred-filter select').selectedOptions[0].text === v""",
            arg=CLASS_NAMES[pred_class],
            timeout=30_000,
        )
        cell_filters = (
            browser_el.locator(".fer-true-filter select").evaluate("s => s.selectedOptions[0].text"),
            _count(page),
        )

    print(f"screenshots: {tmp_path / 'browser_detail.png'}, {tmp_path / 'page.png'}")
    assert count_before == len(default) and len(before) == min(PAGE_SIZE, len(default))
    # the thumbnails changed to the chosen class, in the library's order, with the library's count
    assert [t["position"] for t in after] != [t["position"] for t in before]
    assert {t["true"] for t in after} == {name}
    assert [int(t["position"]) for t in after] == list(expected["position"][:PAGE_SIZE])
    assert count_after == len(expected)
    assert page_label == f"page 1 of {max(1, -(-len(expected) // PAGE_SIZE))}"
    if len(expected) > PAGE_SIZE:
        assert paged == [list(expected["position"][PAGE_SIZE : 2 * PAGE_SIZE]), list(expected["position"][:PAGE_SIZE])]
    # the detail view: one bar per class summing to 100 %, heat maps drawn enlarged, the row and the votes
    assert len(bars) == len(CLASS_NAMES) and sum(bars) == pytest.approx(100, abs=0.1)
    assert max(rendered) > 0
    assert heat and all(natural == 48 and shown >= 96 for natural, shown in heat)  # at least twice native
    assert re.search(rf"Row {clicked_index} of synthetic\.csv \(PrivateTest\): true {name}", title), title
    assert has_votes
    assert list(exported["position"]) == list(expected["position"]) and set(exported["true_name"]) == {name}
    outcome = "correct" if pred_class == 0 else "incorrect"
    expected_cell = select(table, Selection(true_class=0, pred_class=pred_class, outcome=outcome))
    assert cell_filters == (CLASS_NAMES[0], len(expected_cell))
    assert not errors, errors
    # headless parts of the notebook ran too: the reports hold the static fallback and calibration
    for name in (
        "confused_pairs_gradcam.png",
        "mistake_details.png",
        "reliability_diagram.png",
        "label_noise.png",
        "temperature.json",
        "classification_report.txt",
        "confusion_counts.png",
    ):
        assert (lab["report"] / name).is_file(), name


OVERFLOW_JS = """root => {
    const r = root.getBoundingClientRect();
    const out = [];
    if (r.right > window.innerWidth + 1)
        out.push(`the widget ends at ${r.right}px, past the window's ${window.innerWidth}px`);
    const output = root.closest('.jp-OutputArea-output');
    if (output && r.right > output.getBoundingClientRect().right + 1)
        out.push(`the widget ends at ${r.right}px, past its output area's ${output.getBoundingClientRect().right}px`);
    if (output && output.scrollWidth > output.clientWidth + 1)
        out.push(`the output area scrolls sideways: ${output.scrollWidth} > ${output.clientWidth}`);
    if (root.scrollWidth > root.clientWidth + 1)
        out.push(`the widget scrolls sideways: ${root.scrollWidth} > ${root.clientWidth}`);
    for (const e of root.querySelectorAll('*')) {
        const b = e.getBoundingClientRect();
        if (b.width === 0 || b.height === 0) continue;
        const name = `${e.tagName.toLowerCase()}.${String(e.className).trim().split(/\\s+/).join('.')}`;
        if (b.right > r.right + 1 || b.left < r.left - 1)
            out.push(`${name} spans ${Math.round(b.left)}-${Math.round(b.right)}px, `
                     + `outside ${Math.round(r.left)}-${Math.round(r.right)}px`);
        const style = getComputedStyle(e);
        if (!['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName) && style.textOverflow !== 'ellipsis'
            && ['auto', 'scroll', 'hidden'].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1)
            out.push(`${name} cuts off or scrolls its content sideways (${e.scrollWidth} > ${e.clientWidth})`);
    }
    return out.slice(0, 12);
}"""

LAYOUT_JS = """() => {
    const rect = s => document.querySelector(s).getBoundingClientRect();
    const grid = document.querySelector('.fer-browser .fer-grid');
    return {grid: rect('.fer-browser .fer-grid-widget').toJSON(),
            panel: rect('.fer-browser .fer-detail-panel').toJSON(),
            detail: rect('.fer-browser .fer-detail').toJSON(),
            columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length,
            viewport: [window.innerWidth, window.innerHeight], sidebar: rect('#filebrowser').width};
}"""

ACTIVE_JS = """() => {
    const a = document.activeElement;
    if (!a) return null;
    const s = getComputedStyle(a);
    return {thumb: a.classList.contains('fer-thumb'), cell: a.classList.contains('fer-cm-cell'),
            jump: !!a.closest('.fer-jump'), position: a.dataset.position || null, index: a.dataset.index || null,
            outline: [s.outlineStyle, parseFloat(s.outlineWidth)]};
}"""


def _wait_for_detail_of(page, row: int | str) -> None:
    page.wait_for_function(
        """row => { const t = document.querySelector('.fer-browser .fer-detail .fer-detail-title');
                    return !!t && t.textContent.startsWith('Row ' + row + ' '); }""",
        arg=str(row),
        timeout=60_000,
    )


def _wait_for_page_label(page, label: str) -> None:
    page.wait_for_function(
        "label => document.querySelector('.fer-browser .fer-page').textContent.startsWith(label)",
        arg=label,
        timeout=30_000,
    )


def test_browser_fits_a_laptop_and_works_from_the_keyboard(lab, library_view, tmp_path):
    from fer_utils.browser.selection import Selection, select
    from fer_utils.data import load_review

    errors: list[str] = []
    default = select(library_view.table, Selection())
    assert len(default) > 2 * PAGE_SIZE, "the test needs a third page of mistakes to jump to"
    target = default.iloc[2 * PAGE_SIZE + 1]  # on page 3
    with notebook_in_chromium(lab, errors) as (page, browser_el):
        overflow_before = browser_el.evaluate(OVERFLOW_JS)

        # Keyboard only from here: a face holds the grid's tab stop, as Tab would reach it.
        browser_el.locator(".fer-thumb").first.focus()
        page.keyboard.press("ArrowRight")
        second = page.evaluate(ACTIVE_JS)
        page.keyboard.press("Enter")
        _wait_for_detail_of(page, second["index"])
        page.wait_for_function(
            "() => [...document.querySelectorAll('.fer-browser .fer-detail img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        page.wait_for_timeout(300)  # the scroll into view runs on the next frame
        layout = page.evaluate(LAYOUT_JS)
        overflow_detail = browser_el.evaluate(OVERFLOW_JS)
        page.screenshot(path=str(tmp_path / "laptop_detail.png"))

        page.keyboard.press("f")
        page.wait_for_selector(
            f".fer-browser .fer-thumb.fer-flagged[data-position='{second['position']}']", timeout=30_000
        )
        flag_status = browser_el.locator(".fer-status").text_content()

        page.keyboard.press("n")
        _wait_for_page_label(page, "page 2 of")
        # The page label can change before the grid is redrawn: wait for focus to leave the first page's faces.
        page.wait_for_function(
            """(old) => document.activeElement && document.activeElement.classList.contains('fer-thumb')
                        && document.activeElement.dataset.position !== old""",
            arg=str(second["position"]),
            timeout=30_000,
        )
        after_page = page.evaluate(ACTIVE_JS)

        # Shift+Tab walks back from the grid through the confusion matrix to the go-to box.
        walked = []
        for _ in range(30):
            page.keyboard.press("Shift+Tab")
            walked.append(page.evaluate(ACTIVE_JS))
            if walked[-1] and walked[-1]["jump"]:
                break
        page.keyboard.type(str(target["index"]))
        page.keyboard.press("Enter")
        _wait_for_detail_of(page, target["index"])
        _wait_for_page_label(page, "page 3 of")
        jump_status = browser_el.locator(".fer-status").text_content()

        # A filter that excludes the shown face clears the detail.
        other = next(n for n in CLASS_NAMES if n != target["true_name"])
        browser_el.locator(".fer-true-filter select").select_option(label=other)
        page.wait_for_selector(".fer-browser .fer-detail .fer-detail-empty", timeout=30_000)
        titles_after_filter = browser_el.locator(".fer-detail-title").count()

        # An export that cannot be written says so in the status line.
        browser_el.locator(".fer-export-path input").fill("/proc/forbidden.csv")
        browser_el.locator(".fer-export").click()
        page.wait_for_selector(".fer-browser .fer-status .fer-error", timeout=30_000)
        export_error = browser_el.locator(".fer-status").text_content()
        stderr_boxes = browser_el.locator("[data-mime-type='application/vnd.jupyter.stderr']").count()
        notebook_text = page.locator(".jp-Notebook").text_content()
        page.screenshot(path=str(tmp_path / "laptop_error.png"))

        # The notebook run again: its new browser reads the flag back from the review file.
        rerun_all(page, ".fer-browser .fer-thumb", timeout_ms=180_000)
        flagged_thumb = f".fer-browser .fer-thumb.fer-flagged[data-position='{second['position']}']"
        flagged_again = page.locator(flagged_thumb).count()

    print(f"screenshots: {tmp_path / 'laptop_detail.png'}, {tmp_path / 'laptop_error.png'}; layout {layout}")
    assert overflow_before == [] and overflow_detail == [], (overflow_before, overflow_detail)
    assert layout["viewport"] == [1280, 800] and layout["sidebar"] > 150  # the file browser is open
    assert 2 <= layout["columns"] < 8  # the columns follow the width
    grid, panel, detail = layout["grid"], layout["panel"], layout["detail"]
    assert panel["left"] >= grid["right"] - 1 and panel["top"] < grid["bottom"], layout  # beside the grid
    assert 0 <= detail["top"] < 800 and detail["bottom"] > 0, layout  # in view
    first_two = default.iloc[:2]
    assert second["thumb"] and int(second["position"]) == first_two["position"].iat[1]  # arrows move the focus
    assert second["outline"][0] != "none" and second["outline"][1] >= 2  # a visible focus ring
    assert f"#{second['index']} flagged" in flag_status
    assert after_page["thumb"] and int(after_page["position"]) == default["position"].iat[PAGE_SIZE]
    assert any(w and w["cell"] for w in walked) and walked[-1]["jump"]  # matrix cells and the go-to box reachable
    assert f"#{target['index']}: face {2 * PAGE_SIZE + 2} of {len(default)}" in jump_status
    assert titles_after_filter == 0
    assert "export failed: cannot write /proc/forbidden.csv" in export_error
    assert stderr_boxes == 0 and "Traceback" not in notebook_text
    assert flagged_again == 1
    review = load_review(lab["report"] / "review.csv")
    assert review["row"].tolist() == [int(second["index"])] and review["flagged"].tolist() == [True]
    assert not errors, errors
