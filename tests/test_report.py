"""Report helpers that write the notebooks' tables."""

from fer_utils.report import label_sets_table


def test_label_sets_table_puts_both_label_sets_side_by_side_with_what_was_left_out():
    fer2013 = {"n": 3589, "accuracy": 0.6861, "macro_f1": 0.661}
    ferplus = {
        "n_kept": 3100,
        "n_left_out": 489,
        "left_out": {"no_majority": 400, "unknown": 9, "not_a_face": 60, "contempt": 20},
        "accuracy": 0.7312,
        "macro_f1": 0.6,
    }
    table = label_sets_table("PublicTest", fer2013, ferplus)
    assert "| FER2013 (one annotator) | 3,589 | 0.6861 | 0.6610 |" in table
    assert "| FER+ majority (ten annotators) | 3,100 (489 left out: 400 no majority, 9 unknown, " in table
    assert "60 not a face, 20 contempt) | 0.7312 | 0.6000 |" in table


def test_label_sets_table_without_votes_has_the_fer2013_row_only():
    table = label_sets_table("PrivateTest", {"n": 10, "accuracy": 0.5, "macro_f1": 0.4}, None)
    assert table.startswith("**PrivateTest**")
    assert "FER+" not in table
