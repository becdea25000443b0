"""fer_utils.data.ferplus: reading FER+ votes, validating them, and the majority label; and beside it,
fer_utils.evaluate.label_noise: ranking likely label errors by confident learning and checking the ranking against
FER+."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_utils import CLASS_NAMES
from fer_utils.data import (
    FERPLUS_COLUMNS,
    FERDataError,
    align_votes,
    ferplus_plurality,
    read_fer2013,
    read_ferplus,
    vote_shares,
)
from fer_utils.data.ferplus import FERPLUS_TO_FER
from fer_utils.evaluate import label_issue_precision, label_issue_scores
from fer_utils.evaluate.label_noise import confident_thresholds, precision_markdown

HEADER = "Usage,Image name," + ",".join(FERPLUS_COLUMNS)
#          neutral happy surprise sad anger disgust fear contempt unknown NF
VOTES = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),  # neutral
    ("Training", "fer0000001.png", [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]),  # happiness
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face; empty name
    ("PublicTest", "fer0000003.png", [0, 0, 0, 0, 5, 5, 0, 0, 0, 0]),  # anger/disgust tie
    ("PublicTest", "fer0000004.png", [1, 0, 0, 0, 0, 0, 0, 6, 3, 0]),  # contempt
    ("PrivateTest", "fer0000005.png", [0, 0, 0, 0, 0, 0, 7, 0, 3, 0]),  # fear
]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FER_UTILS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def votes_text(rows: list[tuple[str, str, list[int]]] = VOTES) -> str:
    lines = [HEADER] + [f"{usage},{name}," + ",".join(map(str, v)) for usage, name, v in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture
def votes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "fer2013new.csv"
    path.write_text(votes_text())
    return path


def test_votes_are_read_as_int64_columns_in_file_order(votes_csv: Path) -> None:
    df = read_ferplus(votes_csv)
    assert list(df.columns) == ["Usage", "Image name", *FERPLUS_COLUMNS]
    assert len(df) == len(VOTES) and list(df.index) == list(range(len(VOTES)))
    assert all(df[c].dtype == np.int64 for c in FERPLUS_COLUMNS)
    assert df.loc[1, "happiness"] == 9
    assert df.loc[2, "Image name"] == ""
    assert df["Usage"].tolist() == [usage for usage, _, _ in VOTES]


def test_mapping_covers_the_seven_fer_classes_once() -> None:
    assert sorted(v for v in FERPLUS_TO_FER.values() if v is not None) == list(range(len(CLASS_NAMES)))
    assert [c for c, v in FERPLUS_TO_FER.items() if v is None] == ["contempt", "unknown", "NF"]
    assert CLASS_NAMES[FERPLUS_TO_FER["happiness"]] == "Happy"


def test_plurality_maps_to_fer_labels_and_marks_ties_and_non_fer_winners(votes_csv: Path) -> None:
    labels = ferplus_plurality(read_ferplus(votes_csv))
    assert labels.dtype == np.int64
    expected = [CLASS_NAMES.index("Neutral"), CLASS_NAMES.index("Happy"), -1, -1, -1, CLASS_NAMES.index("Fear")]
    assert labels.tolist() == expected


def test_plurality_of_no_votes_is_minus_one() -> None:
    empty = pd.DataFrame([[0] * len(FERPLUS_COLUMNS)], columns=list(FERPLUS_COLUMNS))
    assert ferplus_plurality(empty).tolist() == [-1]


def test_non_integer_vote_names_file_row_and_field(tmp_path: Path) -> None:
    text = votes_text().replace("fer0000001.png,0,9,", "fer0000001.png,0,nine,")
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FERDataError) as info:
        read_ferplus(path)
    assert isinstance(info.value, ValueError)
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 2, "happiness")
    assert "vote count 'nine' is not a non-negative integer" in str(info.value)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nonf.csv"
    lines = [line.rsplit(",", 1)[0] for line in votes_text().splitlines()]  # drop the NF column
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FERDataError, match="missing column 'NF'") as info:
        read_ferplus(path)
    assert info.value.field == "NF" and str(path) in str(info.value)


def test_row_count_mismatch_is_refused(votes_csv: Path) -> None:
    with pytest.raises(FERDataError, match=f"has {len(VOTES)} rows but the FER2013 data has 7"):
        read_ferplus(votes_csv, n_rows=7)
    assert len(read_ferplus(votes_csv, n_rows=len(VOTES))) == len(VOTES)


def test_align_votes_follows_a_split_by_row_position(tmp_path: Path, votes_csv: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage, _, _ in VOTES:
        lines.append(f"0,{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}")
    fer_csv = tmp_path / "fer.csv"
    fer_csv.write_text("\n".join(lines) + "\n")
    fer = read_fer2013(fer_csv, use_cache=False)
    public = align_votes(read_ferplus(votes_csv, n_rows=len(fer)), fer.split("PublicTest"))
    assert public["Image name"].tolist() == ["fer0000003.png", "fer0000004.png"]


def test_vote_shares_renormalise_the_seven_emotions_and_leave_out_non_faces() -> None:
    df = pd.DataFrame([v for _, _, v in VOTES], columns=list(FERPLUS_COLUMNS))
    shares, usable = vote_shares(df)
    assert usable.tolist() == [True, True, False, True, True, True]
    assert np.allclose(shares[usable].sum(1), 1.0)
    neutral, sad, angry, disgust = (CLASS_NAMES.index(n) for n in ("Neutral", "Sad", "Angry", "Disgust"))
    assert shares[0, neutral] == pytest.approx(0.4) and shares[0, sad] == pytest.approx(0.1)
    assert shares[0, angry] == pytest.approx(0.3) and shares[0, disgust] == pytest.approx(0.2)
    assert shares[1, CLASS_NAMES.index("Happy")] == pytest.approx(1.0)  # the unknown vote is dropped
    assert shares[4, neutral] == pytest.approx(1.0)  # contempt and unknown dropped, one neutral vote left
    assert not shares[2].any()  # all ten votes say "not a face"


# --------------------------------------------------------------------------- likely label errors (label_noise)


def test_confident_thresholds_are_each_class_mean_self_confidence() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.4, 0.6, 0.0]])
    assert confident_thresholds(labels, probs) == pytest.approx([0.8, 0.7, 1.0])  # class 2: no faces


def test_a_face_that_looks_like_another_class_scores_highest_and_alone_above_zero() -> None:
    confident = {0: [0.9, 0.05, 0.05], 1: [0.05, 0.9, 0.05], 2: [0.05, 0.05, 0.9]}
    labels = [k for k in confident for _ in range(4)] + [0]
    probs = np.array([confident[k] for k in confident for _ in range(4)] + [[0.1, 0.1, 0.8]])
    scores = label_issue_scores(labels, probs)
    assert int(np.argmax(scores)) == len(labels) - 1
    assert (scores > 0).tolist() == [False] * 12 + [True]


def test_thresholds_find_a_mislabelled_face_of_an_under_confident_class() -> None:
    # The model never gives class 1 more than 0.4, so arg-max agrees with label 0 on the last face, yet
    # relative to what each class usually gets, class 1 is the more clearly present one.
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    probs = np.array([[0.9, 0.1, 0.0]] * 3 + [[0.6, 0.4, 0.0]] * 3 + [[0.0, 0.0, 1.0]] * 3 + [[0.55, 0.45, 0.0]])
    scores = label_issue_scores(labels, probs)
    assert scores[-1] == pytest.approx(0.3125)
    assert (scores[:-1] < 0).all()


def test_scores_rank_faces_as_cleanlab_adjusted_normalized_margin_does() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(CLASS_NAMES), 0.5), size=300)
    labels = rng.integers(0, len(CLASS_NAMES), 300)
    # cleanlab's get_label_quality_scores(method="normalized_margin", adjust_pred_probs=True), written out
    t = confident_thresholds(labels, probs)
    adjusted = probs - t + t.max()
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    own = adjusted[np.arange(300), labels]
    others = np.where(np.eye(len(CLASS_NAMES), dtype=bool)[labels], -np.inf, adjusted).max(axis=1)
    quality = (own - others + 1) / 2
    scores = label_issue_scores(labels, probs)
    np.testing.assert_array_equal(np.argsort(-scores, kind="stable"), np.argsort(quality, kind="stable"))


def test_scores_refuse_labels_that_do_not_match_the_probabilities() -> None:
    with pytest.raises(ValueError, match="labels must have shape"):
        label_issue_scores([0, 1], np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="integers in 0..1"):
        label_issue_scores([0, 2], np.full((2, 2), 0.5))


def test_precision_counts_fer_plus_disagreements_in_the_top_k_against_the_base_rate() -> None:
    scores = [5, 4, 3, 2, 1, 0]
    labels = [0, 0, 0, 0, 0, 0]
    majority = [1, 1, -1, 0, 1, 0]  # disagrees, disagrees, no majority, agrees, disagrees, agrees
    table = label_issue_precision(scores, labels, majority, ks=(1, 2, 4, 10))
    assert table["k"].tolist() == [1, 2, 4, 6]  # 10 is more faces than there are
    assert table["disagree"].tolist() == [1, 2, 2, 3]
    assert table["precision"].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.5])
    assert (table["base_rate"] == 0.5).all()
    assert table["lift"].tolist() == pytest.approx([2.0, 2.0, 1.0, 1.0])


def test_precision_table_reads_as_markdown() -> None:
    table = label_issue_precision([5, 4, 3, 2], [0, 0, 0, 0], [1, 0, 0, 0], ks=(1, 4))
    assert precision_markdown(table).splitlines() == [
        "| top k | FER+ majority differs | precision | base rate | lift |",
        "|---:|---:|---:|---:|---:|",
        "| 1 | 1 | 100.0% | 25.0% | 4.00x |",
        "| 4 | 1 | 25.0% | 25.0% | 1.00x |",
    ]


def test_precision_breaks_score_ties_in_data_order() -> None:
    table = label_issue_precision([1.0, 1.0, 1.0], [0, 0, 0], [0, 1, 1], ks=(1, 2))
    assert table["disagree"].tolist() == [0, 1]


def test_precision_without_any_disagreement_has_no_lift() -> None:
    table = label_issue_precision([0.3, 0.2], [0, 1], [0, 1], ks=(1,))
    assert table["base_rate"].iat[0] == 0 and np.isnan(table["lift"].iat[0])


def test_precision_refuses_a_k_below_one_and_arrays_of_other_lengths() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        label_issue_precision([0.5], [0], [0], ks=(0,))
    with pytest.raises(ValueError, match="one length"):
        label_issue_precision([0.5, 0.1], [0], [0])


def test_ranking_finds_planted_label_errors_far_above_the_base_rate() -> None:
    rng = np.random.default_rng(1)
    n, c = 2000, len(CLASS_NAMES)
    truth = rng.integers(0, c, n)
    probs = rng.dirichlet(np.full(c, 0.3), size=n) * 0.5
    probs[np.arange(n), truth] += 0.5  # a decent model of the true class
    labels = truth.copy()
    flipped = rng.random(n) < 0.1
    labels[flipped] = (truth[flipped] + rng.integers(1, c, flipped.sum())) % c
    table = label_issue_precision(label_issue_scores(labels, probs), labels, truth, ks=(100,))
    assert table["base_rate"].iat[0] == pytest.approx(flipped.mean())
    assert table["precision"].iat[0] > 0.9


# --------------------------------------------------------------------------- the FERPlus majority protocol


def votes_frame(*rows: list[int]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(FERPLUS_COLUMNS))


def test_majority_protocol_keeps_a_clear_majority_in_the_eight_class_order() -> None:
    from fer_utils.data import FERPLUS_CLASS_NAMES, ferplus_majority_labels

    #                   neu hap sur sad ang dis fea con unk NF
    labels = ferplus_majority_labels(votes_frame([0, 0, 0, 0, 0, 0, 7, 0, 3, 0], [2, 0, 0, 0, 0, 0, 0, 6, 2, 0]))
    assert [FERPLUS_CLASS_NAMES[k] for k in labels] == ["Fear", "Contempt"]
    assert FERPLUS_CLASS_NAMES[:7] == CLASS_NAMES and FERPLUS_CLASS_NAMES[7] == "Contempt"


def test_majority_protocol_drops_single_votes_before_counting() -> None:
    from fer_utils.data import ferplus_majority_labels

    # 4 of 10 is no majority, but the six single votes are outliers: 4 of the 4 that remain is.
    labels = ferplus_majority_labels(votes_frame([4, 1, 1, 1, 1, 1, 1, 0, 0, 0]))
    assert labels.tolist() == [CLASS_NAMES.index("Neutral")]


def test_majority_protocol_leaves_out_a_tie_and_a_plurality_short_of_half() -> None:
    from fer_utils.data import ferplus_majority_labels

    tie = [0, 0, 0, 0, 5, 5, 0, 0, 0, 0]
    plurality = [4, 0, 0, 3, 3, 0, 0, 0, 0, 0]  # 4 of 10: the plurality helper would say Neutral
    assert ferplus_majority_labels(votes_frame(tie, plurality)).tolist() == [-1, -1]
    assert ferplus_plurality(votes_frame(plurality)).tolist() == [CLASS_NAMES.index("Neutral")]


def test_majority_protocol_leaves_out_unknown_and_not_a_face_majorities_with_their_own_codes() -> None:
    from fer_utils.data import ferplus_majority_labels
    from fer_utils.data.ferplus import LEFT_OUT

    labels = ferplus_majority_labels(votes_frame([2, 0, 0, 0, 0, 0, 0, 0, 0, 8], [0, 2, 0, 0, 0, 0, 0, 0, 6, 2]))
    assert [LEFT_OUT[k] for k in labels] == ["not_a_face", "unknown"]


def test_ferplus_metrics_of_a_seven_class_model_count_contempt_as_left_out() -> None:
    from fer_utils.evaluate import ferplus_metrics

    majority = np.array([0, 3, 7, -1, -3, 3])  # Angry, Happy, Contempt, no majority, not a face, Happy
    probs = np.full((6, 7), 0.01)
    probs[[0, 1, 2, 3, 4, 5], [0, 3, 3, 3, 3, 4]] = 0.94  # right, right, -, -, -, wrong
    m = ferplus_metrics(probs, majority)
    assert m["n_kept"] == 3 and m["n_left_out"] == 3
    assert m["left_out"] == {"no_majority": 1, "unknown": 0, "not_a_face": 1, "contempt": 1}
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_class"]["Happy"]["support"] == 2


def test_ferplus_metrics_of_an_eight_class_model_score_contempt_too() -> None:
    from fer_utils.evaluate import ferplus_metrics

    majority = np.array([7, 3])
    probs = np.full((2, 8), 0.01)
    probs[[0, 1], [7, 3]] = 0.93
    m = ferplus_metrics(probs, majority)
    assert m["accuracy"] == 1.0 and m["n_kept"] == 2
    assert "contempt" not in m["left_out"]
    assert m["per_class"]["Contempt"]["support"] == 1
