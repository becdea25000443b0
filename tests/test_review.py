"""fer_utils.data.review: the review file (flags and corrected labels) written, read back, checked, and applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_utils import CLASS_NAMES
from fer_utils.data import (
    FERPLUS_COLUMNS,
    FERDataError,
    apply_review,
    corrections,
    from_table,
    load_review,
    save_review,
)
from fer_utils.data.review import REVIEW_COLUMNS
from fer_utils.evaluate import sample_table

HEADER = ",".join(REVIEW_COLUMNS)
NO_VOTES = "," * (len(FERPLUS_COLUMNS) - 1)


def review_frame() -> pd.DataFrame:
    """Two Training faces (one relabelled, one only flagged) and a PublicTest face relabelled without votes."""
    votes = {c: pd.array([3, 0, None], dtype="Int64") for c in FERPLUS_COLUMNS}
    return pd.DataFrame(
        {
            "row": [12, 40, 29915],
            "split": ["Training", "Training", "PublicTest"],
            "fer2013_label": ["Neutral", "Sad", "Neutral"],
            "corrected_label": ["Happy", "", "Happy"],
            "flagged": [True, True, False],
            "pred_label": ["Happy", "Fear", "Happy"],
            "confidence": [0.886, 0.5, np.nan],
            **votes,
        }
    )


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "review.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def test_a_saved_review_reads_back_with_the_same_values(tmp_path: Path) -> None:
    path = save_review(tmp_path / "reports" / "review.csv", review_frame())
    got = load_review(path)
    assert list(got.columns) == list(REVIEW_COLUMNS)
    pd.testing.assert_frame_equal(got, review_frame(), check_dtype=False)
    assert got["flagged"].dtype == bool and got["row"].dtype == np.int64
    assert got["neutral"].isna().tolist() == [False, False, True]


def test_the_file_reads_well_as_text(tmp_path: Path) -> None:
    text = save_review(tmp_path / "review.csv", review_frame()).read_text().splitlines()
    assert text[0] == HEADER
    assert text[1].startswith("12,Training,Neutral,Happy,true,Happy,0.886,3,")
    assert text[3] == "29915,PublicTest,Neutral,Happy,false,Happy,," + NO_VOTES


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    save_review(path, review_frame())
    save_review(path, review_frame().head(1))
    assert len(load_review(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["review.csv"]


def test_a_bad_table_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = review_frame().assign(corrected_label=["Happy", "Joy", ""])
    with pytest.raises(FERDataError, match=r"row 2 \(line 3\), field 'corrected_label': 'Joy'"):
        save_review(tmp_path / "review.csv", bad)
    assert not (tmp_path / "review.csv").exists()


def test_corrections_map_file_rows_to_class_indices(tmp_path: Path) -> None:
    review = load_review(save_review(tmp_path / "review.csv", review_frame()))
    happy = CLASS_NAMES.index("Happy")
    assert corrections(review) == {12: happy, 29915: happy}  # the flag-only row 40 corrects nothing
    assert corrections(review, split="Training") == {12: happy}
    assert corrections(review, split="PrivateTest") == {}


def test_a_file_with_only_its_header_is_an_empty_review(tmp_path: Path) -> None:
    review = load_review(write(tmp_path))
    assert review.empty and list(review.columns) == list(REVIEW_COLUMNS) and corrections(review) == {}


@pytest.mark.parametrize(
    "line, field, problem",
    [
        ("x1,Training,Neutral,,true,Happy,0.5," + NO_VOTES, "row", "'x1' is not a file row"),
        ("1,Validation,Neutral,,true,Happy,0.5," + NO_VOTES, "split", "'Validation' is not a split"),
        ("1,Training,neutral,,true,Happy,0.5," + NO_VOTES, "fer2013_label", "'neutral' is not a class name"),
        ("1,Training,Neutral,Joy,true,Happy,0.5," + NO_VOTES, "corrected_label", "'Joy' is not empty or a class name"),
        ("1,Training,Neutral,,yes,Happy,0.5," + NO_VOTES, "flagged", "'yes' is not true or false"),
        ("1,Training,Neutral,,true,Happy,1.5," + NO_VOTES, "confidence", "'1.5' is not empty or a probability"),
        ("1,Training,Neutral,,true,Happy,0.5,2.5" + NO_VOTES, "neutral", "'2.5' is not empty or a vote count"),
    ],
)
def test_a_bad_value_is_named_by_file_row_and_field(tmp_path: Path, line: str, field: str, problem: str) -> None:
    good = "0,Training,Happy,,true,Happy,0.9," + NO_VOTES
    path = write(tmp_path, good, line)
    with pytest.raises(FERDataError) as err:
        load_review(path)
    assert (err.value.file, err.value.row, err.value.field) == (str(path), 2, field)
    assert problem in str(err.value)


def test_a_row_reviewed_twice_is_refused(tmp_path: Path) -> None:
    line = "7,Training,Happy,,true,Happy,0.9," + NO_VOTES
    expected = r"row 2 \(line 3\), field 'row': row 7 is reviewed twice \(first at row 1\)"
    with pytest.raises(FERDataError, match=expected):
        load_review(write(tmp_path, line, line))


def test_a_missing_column_and_an_empty_file_are_named(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    path.write_text("row,split\n1,Training\n")
    with pytest.raises(FERDataError, match="missing column 'fer2013_label'"):
        load_review(path)
    path.write_text("")
    with pytest.raises(FERDataError, match="file is empty"):
        load_review(path)


def test_flags_and_upper_case_booleans_are_read(tmp_path: Path) -> None:
    rows = [f"{i},Training,Happy,,{flag},,," + NO_VOTES for i, flag in enumerate(["TRUE", "False", "1", "0"])]
    assert load_review(write(tmp_path, *rows))["flagged"].tolist() == [True, False, True, False]


# --------------------------------------------------------------------------- the browser's table


def table_of_five() -> pd.DataFrame:
    """Five PublicTest faces at file rows 100-104, labels 0-4, predicted 3."""
    probs = np.full((5, len(CLASS_NAMES)), 0.05)
    probs[:, 3] = 0.7
    return sample_table(np.arange(5), probs, index=np.arange(100, 105)).assign(flagged=False, corrected=-1)


def test_table_marks_become_review_rows_and_come_back(tmp_path: Path) -> None:
    table = table_of_five()
    table.loc[1, "flagged"] = True
    table.loc[4, "corrected"] = CLASS_NAMES.index("Happy")
    review = from_table(table, "PublicTest")
    assert review["row"].tolist() == [101, 104] and review["corrected_label"].tolist() == ["", "Happy"]
    assert review["neutral"].isna().all()  # no votes in the table
    path = save_review(tmp_path / "review.csv", review)
    back = apply_review(table_of_five(), load_review(path), ["PublicTest"], path)
    assert back["flagged"].tolist() == [False, True, False, False, False]
    assert back["corrected"].tolist() == [-1, -1, -1, -1, CLASS_NAMES.index("Happy")]


def test_other_splits_rows_are_left_alone(tmp_path: Path) -> None:
    review = load_review(save_review(tmp_path / "review.csv", review_frame()))  # rows of Training and row 29915
    back = apply_review(table_of_five(), review[review["split"] == "Training"], ["PublicTest"], "review.csv")
    assert not back["flagged"].any() and (back["corrected"] == -1).all()


def test_a_review_made_on_other_data_is_refused(tmp_path: Path) -> None:
    review = load_review(write(tmp_path, "102,PublicTest,Angry,,true,Happy,0.7," + NO_VOTES))  # 102 is Fear here
    expected = "field 'fer2013_label': label Angry of row 102 differs from this data's Fear"
    with pytest.raises(FERDataError, match=expected):
        apply_review(table_of_five(), review, ["PublicTest"], "review.csv")
    review = load_review(write(tmp_path, "7,PublicTest,Angry,,true,Happy,0.7," + NO_VOTES))
    with pytest.raises(FERDataError, match=r"field 'row': row 7 \(PublicTest\) is not in this data's PublicTest"):
        apply_review(table_of_five(), review, ["PublicTest"], "review.csv")
