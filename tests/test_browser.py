"""MisclassificationBrowser and its parts: the table, filters, sorting, pages, jumps, the detail view, review marks,
export, and label noise.

The widget is driven from Python here (no front end; a grid or matrix message is handed to the widget as the
browser would send it); tests/test_browser_playwright.py drives it in a real browser. Probabilities are made up,
so no model is trained; Grad-CAM uses a tiny timm-like network.
"""

from __future__ import annotations

import base64
import io
import os

os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fer_utils import CLASS_NAMES, NUM_CLASSES, plots
from fer_utils.browser import MisclassificationBrowser
from fer_utils.browser.selection import (
    FaceNotFound,
    Selection,
    export_selection,
    n_pages,
    page_rows,
    pair_examples,
    select,
)
from fer_utils.browser.widgets import png_data_uri
from fer_utils.data import FERPLUS_COLUMNS, FERDataError, ferplus_plurality, load_dataset, load_review
from fer_utils.evaluate import SplitPredictions, label_noise_table, misclassified, sample_table
from fer_utils.evaluate.label_noise import LABEL_NOISE_CATEGORIES, label_noise
from fer_utils.model import Preprocess


class TinyTimm(nn.Module):
    """Enough of a timm model for Grad-CAM: forward_features (B, 4, 6, 6) and forward_head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, stride=8, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, NUM_CLASSES)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.fixture(scope="module")
def pred(tiny_csv) -> SplitPredictions:
    """PrivateTest of the tiny synthetic set (28 faces) with made-up, mostly wrong probabilities."""
    data = load_dataset(tiny_csv).split("PrivateTest")
    probs = np.random.default_rng(0).dirichlet(np.full(NUM_CLASSES, 0.7), size=len(data)).astype(np.float32)
    meta = {"class_names": CLASS_NAMES, "preprocess": Preprocess(crop_size=44), "tta": "none"}
    return SplitPredictions(probs=probs, data=data, tta="none", meta=meta, checkpoint=Path("unused.pt"))


@pytest.fixture(scope="module")
def votes_csv(tiny_csv, tmp_path_factory) -> Path:
    """A FER+ votes file for the whole tiny CSV (row-aligned, same Usage), random votes with some ties."""
    full = load_dataset(tiny_csv)
    rng = np.random.default_rng(1)
    votes = rng.integers(0, 4, size=(len(full), len(FERPLUS_COLUMNS)))
    votes[:, 7:] = rng.integers(0, 2, size=(len(full), 3))  # contempt/unknown/NF rarely win
    df = pd.DataFrame(votes, columns=list(FERPLUS_COLUMNS))
    df.insert(0, "Image name", [f"fer{i:07d}.png" for i in range(len(full))])
    df.insert(0, "Usage", full.usage)
    path = tmp_path_factory.mktemp("ferplus") / "fer2013new.csv"
    df.to_csv(path, index=False)
    return path


def make_browser(pred, tmp_path, **kwargs) -> MisclassificationBrowser:
    """A browser whose export and review files are in the test's folder, never in the repository's reports/."""
    kwargs = {
        "page_size": 5,
        "export_path": tmp_path / "sel.csv",
        "review_path": tmp_path / "review.csv",
        "model": TinyTimm(),
        **kwargs,
    }
    return MisclassificationBrowser(pred, **kwargs)


@pytest.fixture
def browser(pred, tmp_path) -> MisclassificationBrowser:
    return make_browser(pred, tmp_path)


def send(widget, **content) -> None:
    """Hand the widget a custom message as its front end would send it."""
    widget._handle_custom_msg(content, [])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- table, filters, sorting


def test_table_has_one_row_per_face_with_prediction_confidence_and_loss(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    assert len(table) == len(pred.probs)
    np.testing.assert_array_equal(table["pred"], pred.probs.argmax(1))
    np.testing.assert_allclose(table["confidence"], pred.probs.max(1), rtol=1e-6)
    p_true = pred.probs[np.arange(len(table)), pred.data.labels]
    np.testing.assert_allclose(table["loss"], -np.log(p_true), rtol=1e-5)
    np.testing.assert_array_equal(table["index"], pred.data.index)
    assert list(table.columns[-NUM_CLASSES:]) == list(CLASS_NAMES)


@pytest.mark.parametrize(
    "true_class, pred_class, outcome, conf",
    [
        (None, None, "incorrect", (0.0, 1.0)),
        (2, None, "incorrect", (0.0, 1.0)),
        (None, 4, "all", (0.0, 1.0)),
        (3, 3, "correct", (0.0, 1.0)),
        (None, None, "all", (0.4, 0.7)),
        (1, 5, "incorrect", (0.3, 1.0)),
    ],
)
def test_filters_keep_exactly_the_matching_faces(pred, true_class, pred_class, outcome, conf):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    got = select(table, Selection(true_class, pred_class, outcome, conf))
    y, p = pred.data.labels, pred.probs.argmax(1)
    c = pred.probs.max(1)
    want = np.ones(len(y), bool)
    want &= (y == true_class) if true_class is not None else True
    want &= (p == pred_class) if pred_class is not None else True
    want &= {"incorrect": p != y, "correct": p == y, "all": np.ones(len(y), bool)}[outcome]
    want &= (c >= conf[0]) & (c <= conf[1])
    assert sorted(got["position"]) == list(np.flatnonzero(want))


def test_default_selection_is_all_mistakes_most_confident_first(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    got = select(table, Selection())
    ref = misclassified(pred.data.labels, pred.probs, pred.data.index)
    assert list(got["position"]) == list(ref["position"])
    assert got["confidence"].is_monotonic_decreasing


def test_sort_by_loss_puts_the_worst_first_and_by_index_ascends(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    assert select(table, Selection(outcome="all", sort_by="loss"))["loss"].is_monotonic_decreasing
    assert select(table, Selection(outcome="all", sort_by="index"))["index"].is_monotonic_increasing


def test_ties_keep_data_order():
    probs = np.tile(np.eye(NUM_CLASSES)[1] * 0.5 + 0.5 / NUM_CLASSES, (4, 1))
    table = sample_table(np.zeros(4, dtype=int), probs, index=[30, 10, 20, 0])
    assert list(select(table, Selection())["position"]) == [0, 1, 2, 3]


def test_invalid_selections_are_refused():
    with pytest.raises(ValueError, match="outcome"):
        Selection(outcome="wrong")
    with pytest.raises(ValueError, match="sort_by"):
        Selection(sort_by="size")
    with pytest.raises(ValueError, match="confidence"):
        Selection(confidence=(0.8, 0.2))
    with pytest.raises(ValueError, match="true_class"):
        Selection(true_class=NUM_CLASSES)


# --------------------------------------------------------------------------- paging


def test_pages_cover_the_selection_once_in_order(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    rows = select(table, Selection(outcome="all"))
    pages = [page_rows(rows, i, 8) for i in range(n_pages(len(rows), 8))]
    assert [len(p) for p in pages] == [8, 8, 8, 4]
    assert list(pd.concat(pages)["position"]) == list(rows["position"])
    with pytest.raises(IndexError, match="page 4"):
        page_rows(rows, 4, 8)


def test_an_empty_selection_has_one_empty_page():
    assert n_pages(0, 10) == 1
    assert len(page_rows(pd.DataFrame({"a": []}), 0, 10)) == 0


def test_browser_pages_forward_and_back_and_stops_at_the_ends(browser):
    browser.select(outcome="all")
    assert browser.n_pages == 6  # 28 faces, 5 per page
    assert len(browser.previous_page()) == 5 and browser.page == 0
    for _ in range(10):
        browser.next_page()
    assert browser.page == 5 and len(browser.current_page()) == 3


def test_changing_the_selection_goes_back_to_page_one(browser):
    browser.select(outcome="all")
    browser.next_page()
    browser.select(sort_by="loss")
    assert browser.page == 0


# --------------------------------------------------------------------------- export


def test_export_writes_the_whole_selection_in_order(browser, tmp_path):
    browser.select(outcome="all", sort_by="loss")
    path = browser.export_csv(tmp_path / "out" / "selection.csv")
    df = pd.read_csv(path)
    assert list(df["position"]) == list(browser.matches["position"])  # all pages, not only the shown one
    assert list(df.columns[:4]) == ["index", "position", "true", "true_name"]
    probs = df[[f"p_{n}" for n in CLASS_NAMES]].to_numpy()
    np.testing.assert_allclose(probs, browser.predictions.probs[df["position"]], rtol=1e-4)
    assert set(df["pred"]) <= set(range(NUM_CLASSES)) and (df["correct"] == (df["true"] == df["pred"])).all()


def test_export_of_an_empty_selection_writes_only_the_header(pred, tmp_path):
    table = sample_table(pred.data.labels, pred.probs)
    path = export_selection(select(table, Selection(confidence=(1.0, 1.0))), tmp_path / "empty.csv")
    assert pd.read_csv(path).empty


# --------------------------------------------------------------------------- widget state and detail view


def test_filter_widget_changes_the_thumbnails_and_the_match_count(browser):
    ui = browser._build()
    assert len(ui["grid"].items) == 5
    ui["true"].value = 2  # what a person's dropdown choice does
    assert browser.selection.true_class == 2
    expected = select(browser.table, Selection(true_class=2))
    assert f'data-count="{len(expected)}"' in ui["count"].value
    assert [it["position"] for it in ui["grid"].items] == list(expected["position"][:5])
    assert {it["true_name"] for it in ui["grid"].items} <= {CLASS_NAMES[2]}
    assert ui["page"].value == f"page 1 of {n_pages(len(expected), 5)}"


def test_code_and_widgets_stay_in_sync(browser):
    ui = browser._build()
    browser.select(Selection(pred_class=4, outcome="all", sort_by="index"))
    assert (ui["pred"].value, ui["outcome"].value, ui["sort"].value) == (4, "all", "index")
    assert ui["confusion"].selected == [-1, 4]


def test_clicking_a_confusion_cell_filters_to_that_pair(browser):
    ui = browser._build()
    send(ui["confusion"], kind="cell", true=1, pred=5)
    sel = browser.selection
    assert (sel.true_class, sel.pred_class, sel.outcome) == (1, 5, "incorrect")
    send(ui["confusion"], kind="cell", true=3, pred=3)
    assert browser.selection.outcome == "correct"


def test_clicking_a_thumbnail_opens_its_detail_with_bars_and_heat_maps(browser):
    ui = browser._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="open", position=first["position"])
    face = ui["detail"].face
    assert browser.selected == first["position"] and ui["grid"].selected == first["position"]
    assert [p["name"] for p in face["probs"]] == list(CLASS_NAMES)
    assert sum(p["p"] for p in face["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert {p["role"] for p in face["probs"]} == {"true", "pred", ""}
    assert [m["title"] for m in face["maps"]] == [
        f"Grad-CAM: {first['pred_name']} (predicted)",
        f"Grad-CAM: {first['true_name']} (true)",
    ]
    assert (face["row"], face["source"], face["split"]) == (first["index"], "tiny.csv", "PrivateTest")
    assert face["face"].startswith("data:image/png;base64,") and face["votes"] is None


def test_thumbnails_are_the_faces_at_native_resolution(browser):
    item = browser._build()["grid"].items[0]
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(item["src"].split(",", 1)[1])))
    assert img.mode == "L" and img.size == (48, 48)
    np.testing.assert_array_equal(np.asarray(img), browser.images[item["position"]])


def test_png_data_uri_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        png_data_uri(np.zeros((48, 48)))


def test_heat_maps_are_cached_per_face_and_class(browser):
    a = browser.heat_maps([0, 1], [2, 2])
    assert a.shape == (2, 48, 48) and len(browser._heat) == 2
    browser.heat_maps([0], [2])
    assert len(browser._heat) == 2


def test_text_fallback_says_what_matches(browser):
    bundle = browser._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert f"{len(browser.matches)} of 28 faces match" in bundle["text/plain"]


# --------------------------------------------------------------------------- FER+ and label noise


def test_ferplus_votes_join_by_row_and_show_in_the_detail(pred, votes_csv, tmp_path):
    b = make_browser(pred, tmp_path, ferplus_path=votes_csv)
    votes = pd.read_csv(votes_csv).iloc[pred.data.index]
    np.testing.assert_array_equal(b.table["ferplus"], ferplus_plurality(votes))
    np.testing.assert_array_equal(b.table[list(FERPLUS_COLUMNS)], votes[list(FERPLUS_COLUMNS)])
    row = b.matches["index"].iat[0]
    shown = b.show(row)["votes"]
    expected = votes.set_index(pred.data.index).loc[row, list(FERPLUS_COLUMNS)]
    assert [(v["name"], v["n"]) for v in shown] == list(expected.items())


def test_label_noise_counts_whom_fer_plus_sides_with(pred, votes_csv, tmp_path):
    table = make_browser(pred, tmp_path, ferplus_path=votes_csv).table
    s = label_noise(table)
    wrong = table[~table["correct"]]
    m, y, p = wrong["ferplus"].to_numpy(), wrong["true"].to_numpy(), wrong["pred"].to_numpy()
    assert s["n_mistakes"] == len(wrong)
    assert s["agrees_with_model"] == int(((m >= 0) & (m == p)).sum())
    assert s["agrees_with_label"] == int(((m >= 0) & (m == y)).sum())
    assert s["no_majority"] == int((m < 0).sum())
    assert sum(s[c] for c in LABEL_NOISE_CATEGORIES) == len(wrong)
    assert s["share_agrees_with_model"] == pytest.approx(s["agrees_with_model"] / s["n_with_majority"])
    per_class = label_noise_table(table)
    assert per_class.loc["all"].sum() == len(wrong)
    assert per_class.drop(index="all").sum().tolist() == per_class.loc["all"].tolist()


def test_label_noise_without_votes_says_what_is_missing(browser):
    with pytest.raises(ValueError, match="ferplus"):
        browser.label_noise()


# --------------------------------------------------------------------------- static fallback


def test_pair_examples_take_the_most_confident_mistakes_of_each_pair(pred):
    table = sample_table(pred.data.labels, pred.probs)
    mis = table[~table["correct"]]
    top = mis.groupby(["true_name", "pred_name"]).size().sort_values(ascending=False).index[:2]
    pairs = [{"true": t, "pred": p} for t, p in top]
    ex = pair_examples(table, pairs, per_pair=3)
    for t, p in top:
        rows = ex[ex["pair"] == f"{t} → {p}"]
        assert (rows["true_name"] == t).all() and (rows["pred_name"] == p).all()
        assert rows["confidence"].is_monotonic_decreasing and len(rows) <= 3


def test_static_figures_are_written(browser, tmp_path, votes_csv, pred):
    browser.confused_pairs_figure(n_pairs=2, per_pair=3, save_to=tmp_path / "pairs.png")
    browser.details_figure(n=3, save_to=tmp_path / "details.png")
    table = make_browser(pred, tmp_path, ferplus_path=votes_csv).table
    plots.label_noise_plot(label_noise_table(table), save_to=tmp_path / "noise.png")
    plots.reliability_diagram(pred.data.labels, {"before": pred.probs}, save_to=tmp_path / "rel.png")
    for name in ("pairs.png", "details.png", "noise.png", "rel.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_mistake_pngs_are_enlarged_crisp_faces(pred, tmp_path):
    mis = misclassified(pred.data.labels, pred.probs, pred.data.index)
    written = plots.save_face_pngs(pred.data.images, mis, tmp_path / "mistakes", n=3, scale=4)
    assert len(written) == 3 and written[0].name.startswith(f"00_row{mis['index'][0]}_")
    img = plt.imread(written[0])
    assert img.shape[:2] == (192, 192)
    face = pred.data.images[mis["position"][0]] / 255.0
    np.testing.assert_allclose(img[::4, ::4, 0], face, atol=1 / 255 + 1e-6)


# --------------------------------------------------------------------------- one table for the browser and evaluate


def test_misclassified_is_the_wrong_rows_of_the_browser_table(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    mis = misclassified(pred.data.labels, pred.probs, pred.data.index)
    wrong = select(table, Selection())  # all mistakes, most confident first
    pd.testing.assert_frame_equal(mis, wrong[list(mis.columns)], check_dtype=False)


def test_sort_by_label_issue_puts_the_likeliest_label_errors_first(pred):
    table = sample_table(pred.data.labels, pred.probs, pred.data.index)
    rows = select(table, Selection(outcome="all", sort_by="label_issue"))
    assert rows["label_issue"].is_monotonic_decreasing and len(rows) == len(table)


# --------------------------------------------------------------------------- jumps: file rows and positions


def test_show_takes_the_file_row_the_widget_shows_and_turns_to_its_page(browser):
    browser.select(outcome="all", sort_by="index")
    target = browser.matches.iloc[12]  # on page 3 of 5-face pages
    face = browser.show(int(target["index"]))
    assert face["row"] == target["index"] and browser.selected == target["position"] and browser.page == 2
    ui = browser._build()
    assert ui["grid"].selected == target["position"] and ui["page_jump"].value == 3
    assert target["position"] in [it["position"] for it in ui["grid"].items]


def test_show_also_takes_a_position_in_the_split(browser):
    browser.select(outcome="all")
    assert browser.show(position=7)["row"] == browser.table["index"].iat[7]


def test_show_says_when_a_row_is_in_the_split_but_not_in_the_selection(browser):
    correct = browser.table[browser.table["correct"]]["index"].iat[0]
    with pytest.raises(
        FaceNotFound,
        match=rf"row {correct} is in PrivateTest but not in the current selection "
        r"\(incorrect, .*widen the filters",
    ):
        browser.show(int(correct))


def test_show_says_when_a_row_is_not_in_the_split(browser):
    with pytest.raises(FaceNotFound, match=r"row 0 is not in PrivateTest \(28 faces, rows \d+-\d+ of the file\)"):
        browser.show(0)  # row 0 of the file is a Training face
    with pytest.raises(FaceNotFound, match="position 28 is outside PrivateTest's 0..27"):
        browser.show(position=28)


def test_jump_box_opens_a_row_and_says_in_the_status_where_it_is(browser):
    ui = browser._build()
    browser.select(outcome="all", sort_by="index")
    row = int(browser.matches["index"].iat[11])
    ui["jump"].value = f"#{row}"  # what Enter in the box sends
    assert browser.selected == browser.matches["position"].iat[11] and browser.page == 2
    assert f"#{row}: face 12 of 28 in this selection (page 3)" in ui["status"].value


def test_jump_box_reports_a_row_outside_the_selection_in_the_status(browser):
    ui = browser._build()
    correct = int(browser.table[browser.table["correct"]]["index"].iat[0])
    ui["jump"].value = str(correct)
    assert "fer-error" in ui["status"].value and f"row {correct} is in PrivateTest but not" in ui["status"].value
    ui["jump"].value = "twelve"
    assert "&#x27;twelve&#x27; is not a row number" in ui["status"].value
    assert ui["log"].outputs == ()  # no traceback under the widget


def test_jump_box_takes_positions_too(browser):
    ui = browser._build()
    browser.select(outcome="all")
    ui["jump_kind"].value = "position"
    ui["jump"].value = "5"
    assert browser.selected == 5


def test_page_box_goes_to_page_n(browser):
    ui = browser._build()
    browser.select(outcome="all")
    ui["page_jump"].value = 4
    assert browser.page == 3 and ui["page"].value == "page 4 of 6"
    assert [it["position"] for it in ui["grid"].items] == list(browser.matches["position"][15:20])


def test_grid_keys_turn_pages(browser):
    ui = browser._build()
    browser.select(outcome="all")
    send(ui["grid"], kind="page", delta=1)
    send(ui["grid"], kind="page", delta=1)
    send(ui["grid"], kind="page", delta=-1)
    assert browser.page == 1


# --------------------------------------------------------------------------- the detail follows the selection


def test_a_filter_that_excludes_the_shown_face_clears_the_detail(browser):
    ui = browser._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="open", position=first["position"])
    other = next(i for i, n in enumerate(CLASS_NAMES) if n != first["true_name"])
    ui["true"].value = other
    assert browser.selected is None and ui["detail"].face == {} and ui["grid"].selected == -1
    assert ui["flag"].disabled and ui["relabel"].disabled


def test_a_filter_that_keeps_the_shown_face_keeps_the_detail(browser):
    ui = browser._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="open", position=first["position"])
    ui["true"].value = CLASS_NAMES.index(first["true_name"])
    assert browser.selected == first["position"] and ui["detail"].face["position"] == first["position"]


# --------------------------------------------------------------------------- status line: errors, never tracebacks


def test_failed_export_names_the_path_and_why_in_the_status_and_shows_no_traceback(browser, tmp_path):
    ui = browser._build()
    ui["export"].click()
    assert ui["status"].value.count("wrote") == 1
    (tmp_path / "a_file").write_text("")
    bad = tmp_path / "a_file" / "selection.csv"  # its folder is a file: cannot be written
    ui["export_path"].value = str(bad)
    ui["export"].click()
    status = ui["status"].value
    assert "fer-error" in status and "export failed: cannot write" in status and str(bad) in status
    assert "wrote" not in status  # the earlier success is not shown as current
    assert ui["log"].outputs == ()


def test_every_action_rewrites_the_status(browser):
    ui = browser._build()
    ui["export"].click()
    assert "wrote" in ui["status"].value
    ui["outcome"].value = "all"
    assert ui["status"].value == ""


def test_export_from_code_raises_the_os_error(browser, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OSError):
        browser.export_csv(tmp_path / "a_file" / "x.csv")


# --------------------------------------------------------------------------- review: flags and corrected labels


def test_flag_and_relabel_are_saved_beside_the_report_and_read_by_a_new_browser(pred, tmp_path, votes_csv):
    b = make_browser(pred, tmp_path, ferplus_path=votes_csv)
    rows = b.table["index"].to_numpy()
    b.flag(int(rows[3]))
    b.relabel(int(rows[5]), label="Happy")
    b.relabel(position=6, label=2)
    b.relabel(position=6, label=None)  # taken back
    review = load_review(tmp_path / "review.csv")
    assert review["row"].tolist() == sorted([rows[3], rows[5]])
    assert review.set_index("row")["corrected_label"].to_dict() == {rows[3]: "", rows[5]: "Happy"}
    assert review.set_index("row").loc[rows[3], "flagged"]
    votes = pd.read_csv(votes_csv).iloc[pred.data.index[5]]
    assert review.set_index("row").loc[rows[5], list(FERPLUS_COLUMNS)].tolist() == votes[list(FERPLUS_COLUMNS)].tolist()

    again = make_browser(pred, tmp_path, ferplus_path=votes_csv)
    assert again.table["flagged"].tolist() == [i == 3 for i in range(len(rows))]
    assert again.table["corrected"].tolist() == [CLASS_NAMES.index("Happy") if i == 5 else -1 for i in range(len(rows))]


def test_review_rows_of_other_splits_are_kept_when_saving(pred, tiny_csv, tmp_path):
    b = make_browser(pred, tmp_path)
    b.flag(position=0)
    public = load_dataset(tiny_csv).split("PublicTest")
    probs = np.full((len(public), NUM_CLASSES), 1 / NUM_CLASSES, dtype=np.float32)
    other = SplitPredictions(probs=probs, data=public, tta="none", meta=pred.meta, checkpoint=Path("unused.pt"))
    make_browser(other, tmp_path).flag(position=1)
    assert set(load_review(tmp_path / "review.csv")["split"]) == {"PrivateTest", "PublicTest"}
    assert make_browser(pred, tmp_path).table["flagged"].sum() == 1


def test_a_review_file_made_on_other_data_is_refused_when_opening(pred, tmp_path):
    make_browser(pred, tmp_path).relabel(position=0, label="Happy")
    path = tmp_path / "review.csv"
    true_name = pred.meta["class_names"][pred.data.labels[0]]
    other = next(n for n in CLASS_NAMES if n != true_name)
    path.write_text(path.read_text().replace(f",{true_name},Happy,", f",{other},Happy,"))
    with pytest.raises(FERDataError, match="the review was made on other data"):
        make_browser(pred, tmp_path)


def test_flag_key_in_the_grid_toggles_the_focused_face_and_marks_its_thumbnail(browser, tmp_path):
    ui = browser._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="flag", position=first["position"])
    assert ui["grid"].items[0]["flagged"] and f"#{first['index']} flagged" in ui["status"].value
    assert load_review(tmp_path / "review.csv")["row"].tolist() == [first["index"]]
    send(ui["grid"], kind="flag", position=first["position"])
    assert not ui["grid"].items[0]["flagged"] and load_review(tmp_path / "review.csv").empty


def test_flag_button_and_label_dropdown_act_on_the_shown_face(browser):
    ui = browser._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="open", position=first["position"])
    assert not ui["flag"].disabled
    ui["flag"].value = True
    ui["relabel"].value = CLASS_NAMES.index("Sad")
    assert ui["detail"].face["flagged"] and ui["detail"].face["corrected_name"] == "Sad"
    assert ui["grid"].items[0]["corrected_name"] == "Sad"
    assert "relabelled Sad; saved to review.csv" in ui["status"].value


def test_a_review_that_cannot_be_saved_is_reported_and_not_applied(pred, tmp_path):
    (tmp_path / "a_file").write_text("")
    b = make_browser(pred, tmp_path, review_path=tmp_path / "a_file" / "review.csv")
    ui = b._build()
    first = ui["grid"].items[0]
    send(ui["grid"], kind="open", position=first["position"])
    ui["flag"].value = True
    assert "flag failed: cannot save the review to" in ui["status"].value and "fer-error" in ui["status"].value
    assert not b.table["flagged"].any() and ui["flag"].value is False
    with pytest.raises(OSError):
        b.flag(position=0)


def test_reviewed_only_shows_flagged_and_relabelled_faces(browser):
    browser.flag(position=2)
    browser.relabel(position=9, label="Fear")
    rows = browser.select(outcome="all", reviewed_only=True)
    assert sorted(rows["position"]) == [2, 9]


def test_relabel_refuses_an_unknown_class(browser):
    with pytest.raises(ValueError, match="not a class name"):
        browser.relabel(position=0, label="Joy")
    with pytest.raises(ValueError, match="class index"):
        browser.relabel(position=0, label=7)


def test_export_includes_the_ten_votes_and_the_review_marks(pred, tmp_path, votes_csv):
    b = make_browser(pred, tmp_path, ferplus_path=votes_csv)
    b.select(outcome="all", sort_by="index")
    b.relabel(position=4, label="Surprise")
    df = pd.read_csv(b.export_csv(), keep_default_na=False)
    assert list(df.columns[-len(FERPLUS_COLUMNS) - 3 :]) == [*FERPLUS_COLUMNS, "flagged", "corrected", "corrected_name"]
    votes = pd.read_csv(votes_csv).iloc[pred.data.index]
    np.testing.assert_array_equal(df[list(FERPLUS_COLUMNS)], votes[list(FERPLUS_COLUMNS)])
    assert df["corrected_name"].tolist() == ["Surprise" if i == 4 else "" for i in range(len(df))]


def test_out_of_sample_probabilities_drive_the_label_issue_score_and_the_note(tiny_csv, tmp_path):
    from fer_utils.data import load_dataset
    from fer_utils.evaluate import label_issue_scores

    data = load_dataset(tiny_csv).split("Training")
    rng = np.random.default_rng(0)
    in_sample = rng.dirichlet(np.ones(len(CLASS_NAMES)), size=len(data)).astype(np.float32)
    oos = rng.dirichlet(np.ones(len(CLASS_NAMES)), size=len(data)).astype(np.float32)
    pred = SplitPredictions(probs=in_sample, data=data, tta="none", meta={}, checkpoint=Path("model.pt"))
    plain = MisclassificationBrowser(pred, review_path=tmp_path / "r.csv", export_path=tmp_path / "e.csv")
    crossed = MisclassificationBrowser(
        pred, review_path=tmp_path / "r.csv", export_path=tmp_path / "e.csv", out_of_sample=oos
    )
    np.testing.assert_allclose(plain.table["label_issue"], label_issue_scores(data.labels, in_sample), rtol=1e-6)
    np.testing.assert_allclose(crossed.table["label_issue"], label_issue_scores(data.labels, oos), rtol=1e-6)
    np.testing.assert_allclose(crossed.table["confidence"], in_sample.max(axis=1), rtol=1e-6)  # the model's own view
    assert "in-sample" in plain.label_issue_note
    assert "out-of-sample" in crossed.label_issue_note
