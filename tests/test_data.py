"""fer_utils.data (loading, dataset, csv_reader): reading FER2013 in its three layouts, validation, caching and
the check CLI.

Every test writes its own tiny file; none needs the real data set.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from fer_utils import CLASS_NAMES, NUM_CLASSES, SPLITS, paths
from fer_utils.data import CANONICAL_MD5, FERDataError, load_dataset, read_fer2013, split_sort_key, synthetic
from fer_utils.data.loading import main

SIDE = 48
# Rows: (label, usage); the images are drawn from a seeded generator.
ROWS: list[tuple[int, str]] = [
    (0, "Training"),
    (3, "Training"),
    (6, "Training"),
    (1, "Training"),
    (3, "Training"),
    (2, "PublicTest"),
    (5, "PublicTest"),
    (4, "PrivateTest"),
    (3, "PrivateTest"),
]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own parsed-array cache, outside the repository."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FER_UTILS_CACHE", str(path))
    return path


def make_images(n: int = len(ROWS), seed: int = 0) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, size=(n, SIDE, SIDE), dtype=np.uint8)
    images[0, 0, :3] = (0, 255, 7)  # the extremes and a one-digit value always occur
    return images


def pixel_text(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel().tolist()))


def csv_text(
    images: np.ndarray,
    rows: list[tuple[int, str]] = ROWS,
    *,
    icml: bool = False,
    quote_pixels: bool = False,
    newline: str = "\n",
) -> str:
    """FER2013 CSV text: ``emotion,pixels,Usage``, or the icml ``emotion, Usage, pixels``."""
    lines = ["emotion, Usage, pixels" if icml else "emotion,pixels,Usage"]
    for (label, usage), image in zip(rows, images, strict=False):  # rows may be fewer than images
        pixels = f'"{pixel_text(image)}"' if quote_pixels else pixel_text(image)
        lines.append(f"{label},{usage},{pixels}" if icml else f"{label},{pixels},{usage}")
    return newline.join(lines) + newline


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode(), compresslevel=1) if path.suffix == ".gz" else text.encode())
    return path


# Rows in a "long" file: far more than the parser takes in one step, so every boundary between steps is crossed.
LONG = 2_500


def long_text(n: int) -> tuple[str, np.ndarray, list[tuple[int, str]]]:
    """CSV text of ``n`` rows cycling through five faces (quick to write), their images and (label, usage)."""
    faces = make_images(5, seed=1)
    pixels = [pixel_text(face) for face in faces]
    rows = [(i % NUM_CLASSES, SPLITS[i % len(SPLITS)]) for i in range(n)]
    lines = ["emotion,pixels,Usage", *(f"{label},{pixels[i % 5]},{usage}" for i, (label, usage) in enumerate(rows))]
    return "\n".join(lines) + "\n", faces[np.arange(n) % 5], rows


def corrupt(text: str, row: int, field: str, value: str) -> str:
    """Replace one field (or, for "pixel", the 5th pixel) of data row ``row`` (1-based)."""
    lines = text.split("\n")
    label, pixels, usage = lines[row].split(",")
    if field == "emotion":
        label = value
    elif field == "Usage":
        usage = value
    else:
        values = pixels.split(" ")
        values[4] = value
        pixels = " ".join(values)
    lines[row] = ",".join([label, pixels, usage])
    return "\n".join(lines)


@pytest.fixture
def images() -> np.ndarray:
    return make_images()


@pytest.fixture
def fer_csv(tmp_path: Path, images: np.ndarray) -> Path:
    return write_csv(tmp_path / "fer2013.csv", csv_text(images))


# ----------------------------------------------------------------------------- reading


def test_csv_rows_become_images_labels_usage_and_index(fer_csv: Path, images: np.ndarray) -> None:
    d = read_fer2013(fer_csv)
    assert d.images.dtype == np.uint8 and d.images.shape == (len(ROWS), SIDE, SIDE)
    np.testing.assert_array_equal(d.images, images)
    assert d.labels.dtype == np.int64
    assert d.labels.tolist() == [label for label, _ in ROWS]
    assert d.usage.tolist() == [usage for _, usage in ROWS]
    assert d.index.dtype == np.int64 and d.index.tolist() == list(range(len(ROWS)))
    assert d.file_format == "fer2013"
    assert d.source == fer_csv.resolve()
    assert len(d) == len(ROWS)


def test_gzipped_csv_reads_like_the_plain_file_and_hashes_the_text(tmp_path: Path, images: np.ndarray) -> None:
    text = csv_text(images)
    d = read_fer2013(write_csv(tmp_path / "fer2013.csv.gz", text))
    np.testing.assert_array_equal(d.images, images)
    assert d.content_md5 == hashlib.md5(text.encode()).hexdigest()


def test_concatenated_gzip_members_read_as_one_file(tmp_path: Path, images: np.ndarray) -> None:
    text = csv_text(images)
    half = text.index("\n", len(text) // 2) + 1
    path = tmp_path / "two_members.csv.gz"
    path.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()) + b"\0" * 8)
    d = read_fer2013(path)
    np.testing.assert_array_equal(d.images, images)
    assert d.content_md5 == hashlib.md5(text.encode()).hexdigest()


def test_icml_variant_with_leading_space_column_names_is_read(tmp_path: Path, images: np.ndarray) -> None:
    d = read_fer2013(write_csv(tmp_path / "icml_face_data.csv", csv_text(images, icml=True)))
    assert d.file_format == "icml"
    np.testing.assert_array_equal(d.images, images)
    assert d.usage.tolist() == [usage for _, usage in ROWS]


def test_crlf_line_endings_are_accepted(tmp_path: Path, images: np.ndarray) -> None:
    for icml in (False, True):  # the CR then follows the pixels, or the Usage field
        d = read_fer2013(write_csv(tmp_path / f"crlf{icml}.csv", csv_text(images, icml=icml, newline="\r\n")))
        np.testing.assert_array_equal(d.images, images)
        assert d.usage.tolist() == [usage for _, usage in ROWS]


def test_quoted_pixel_fields_are_accepted(tmp_path: Path, images: np.ndarray) -> None:
    d = read_fer2013(write_csv(tmp_path / "quoted.csv", csv_text(images, quote_pixels=True)))
    np.testing.assert_array_equal(d.images, images)


def test_missing_final_newline_and_trailing_blank_lines_are_accepted(tmp_path: Path, images: np.ndarray) -> None:
    text = csv_text(images)
    assert len(read_fer2013(write_csv(tmp_path / "a.csv", text.rstrip("\n")))) == len(ROWS)
    assert len(read_fer2013(write_csv(tmp_path / "b.csv", text + "\n\n"))) == len(ROWS)


def test_every_row_of_a_long_file_is_read(tmp_path: Path) -> None:
    text, faces, rows = long_text(LONG)
    d = read_fer2013(write_csv(tmp_path / "long.csv.gz", text), use_cache=False)
    np.testing.assert_array_equal(d.images, faces)
    assert d.labels.tolist() == [label for label, _ in rows]
    assert d.usage.tolist() == [usage for _, usage in rows]


def test_image_folder_gives_training_and_merged_test_split(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import cv2

    root = tmp_path / "fer_images"
    faces = make_images(4, seed=2)
    layout = [
        ("train", "happy", faces[0]),
        ("train", "angry", faces[1]),
        ("test", "Neutral", faces[2]),
        ("test", "surprise", faces[3]),
    ]
    for i, (split, emotion, face) in enumerate(layout):
        (root / split / emotion).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / split / emotion / f"im{i}.png"), face)
    with caplog.at_level(logging.WARNING, logger="fer_utils.data.loading"):
        d = read_fer2013(root)
    assert "merges PublicTest and PrivateTest" in caplog.text
    assert d.file_format == "folder"
    assert d.splits == ("Training", "Test")
    # Order: split, then label, then file name.
    assert d.labels.tolist() == [CLASS_NAMES.index(n) for n in ("Angry", "Happy", "Surprise", "Neutral")]
    np.testing.assert_array_equal(d.images, faces[[1, 0, 3, 2]])


def test_image_folder_of_wrong_size_images_is_refused(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "imgs" / "train" / "sad").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "imgs" / "train" / "sad" / "big.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(FERDataError, match=r"big\.png.*64x64 pixels, expected 48x48"):
        read_fer2013(tmp_path / "imgs")


def test_folder_without_train_or_test_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(FERDataError, match="expected sub-folders train/ and test/"):
        read_fer2013(tmp_path / "photos")


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_fer2013(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("pixels", "-1", "is '-1', not an integer in 0-255"),
        ("pixels", "256", "is '256', not an integer in 0-255"),
        ("pixels", "1000", "is '1000', not an integer in 0-255"),
        ("pixels", "12.5", "is '12.5', not an integer in 0-255"),
        ("pixels", "abc", "is 'abc', not an integer in 0-255"),
        ("emotion", "7", "label '7' is not an integer in 0-6"),
        ("emotion", "x", "label 'x' is not an integer in 0-6"),
        ("emotion", "", "label '' is not an integer in 0-6"),
        ("Usage", "Validation", "unknown Usage value 'Validation'"),
    ],
)
def test_bad_value_names_file_row_and_field(
    tmp_path: Path, images: np.ndarray, field: str, value: str, problem: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", corrupt(csv_text(images), 3, field, value))
    with pytest.raises(FERDataError) as info:
        read_fer2013(path)
    err = info.value
    assert (err.file, err.row, err.field) == (str(path.resolve()), 3, field)
    assert str(err).startswith(f"{path.resolve()}: row 3 (line 4), field '{field}': ")
    assert problem in str(err)


def test_bad_pixel_message_says_which_pixel(tmp_path: Path, images: np.ndarray) -> None:
    path = write_csv(tmp_path / "bad.csv", corrupt(csv_text(images), 2, "pixel", "300"))
    with pytest.raises(FERDataError, match="pixel 5 is '300', not an integer"):
        read_fer2013(path)


def test_row_with_too_few_pixels_is_refused(tmp_path: Path, images: np.ndarray) -> None:
    one_short = " ".join(map(str, images[5].ravel()[:-1].tolist()))
    text = csv_text(images).replace(pixel_text(images[5]), one_short)
    path = write_csv(tmp_path / "short.csv", text)
    with pytest.raises(
        FERDataError,
        match=r"row 6 \(line 7\), field 'pixels': expected 2304 pixel values, "
        "found 2303",
    ):
        read_fer2013(path)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((4, "Usage", "Test"), (7, "pixels", "999")),
        ((2, "pixels", "999"), (5, "Usage", "Test")),
        ((3, "pixels", "x"), (6, "emotion", "9")),
    ],
)
def test_first_bad_row_is_reported(
    tmp_path: Path, images: np.ndarray, first: tuple[int, str, str], second: tuple[int, str, str]
) -> None:
    text = corrupt(corrupt(csv_text(images), *second), *first)
    with pytest.raises(FERDataError) as info:
        read_fer2013(write_csv(tmp_path / "two.csv", text))
    assert (info.value.row, info.value.field) == first[:2]


def test_bad_row_deep_in_a_long_file_is_named(tmp_path: Path) -> None:
    text, _, _ = long_text(LONG)
    path = write_csv(tmp_path / "long.csv", corrupt(text, LONG - 100, "pixel", "256"))
    with pytest.raises(FERDataError, match=rf"row {LONG - 100} \(line {LONG - 99}\), field 'pixels': pixel 5 is '256'"):
        read_fer2013(path)


def test_row_with_an_extra_field_is_refused(tmp_path: Path, images: np.ndarray) -> None:
    lines = csv_text(images).split("\n")
    lines[2] += ",extra"
    with pytest.raises(FERDataError, match=r"row 2 \(line 3\): expected 3 comma-separated fields, found 4"):
        read_fer2013(write_csv(tmp_path / "extra.csv", "\n".join(lines)))


def test_missing_column_is_named(tmp_path: Path, images: np.ndarray) -> None:
    text = csv_text(images).replace("emotion,pixels,Usage", "emotion,pixels,split", 1)
    path = write_csv(tmp_path / "nousage.csv", text)
    with pytest.raises(FERDataError) as info:
        read_fer2013(path)
    assert (info.value.row, info.value.field) == (None, "Usage")
    assert str(path.resolve()) in str(info.value) and "missing column 'Usage'" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "file is empty"),
        ("empty.csv.gz", gzip.compress(b""), "file is empty (0 bytes after decompression)"),
        ("header.csv", b"emotion,pixels,Usage\n", "no data rows"),
    ],
)
def test_empty_file_is_refused(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FERDataError) as info:
        read_fer2013(path)
    assert (info.value.row, info.value.field) == (None, None)
    assert str(info.value).startswith(f"{path.resolve()}: {problem}")


def test_truncated_gzip_is_refused(tmp_path: Path, images: np.ndarray) -> None:
    whole = gzip.compress(csv_text(images).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FERDataError, match="truncated gzip") as info:
        read_fer2013(path)
    assert info.value.row is None and str(path.resolve()) in str(info.value)


def test_data_after_the_gzip_stream_is_refused(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "junk.csv.gz"
    path.write_bytes(gzip.compress(csv_text(images).encode()) + b"junk")
    with pytest.raises(FERDataError, match="unexpected data after the end of the gzip stream"):
        read_fer2013(path)


def test_zip_archive_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(FERDataError, match="zip archive; extract fer2013.csv"):
        read_fer2013(path)


def test_error_message_format_omits_missing_parts() -> None:
    assert str(FERDataError("f.csv", "bad", row=2, field="pixels")) == "f.csv: row 2 (line 3), field 'pixels': bad"
    assert str(FERDataError("f.csv", "bad", field="Usage")) == "f.csv: field 'Usage': bad"
    assert str(FERDataError("f.csv", "bad")) == "f.csv: bad"
    assert isinstance(FERDataError("f.csv", "bad"), ValueError)


# ----------------------------------------------------------------------------- FERData


def test_splits_are_listed_in_canonical_order(fer_csv: Path) -> None:
    assert read_fer2013(fer_csv).splits == SPLITS


def test_split_names_sort_in_canonical_order_then_by_name() -> None:
    names = ["Validation", "Test", "PrivateTest", "Extra", "Training", "PublicTest"]
    assert sorted(names, key=split_sort_key) == ["Training", "PublicTest", "PrivateTest", "Test", "Extra", "Validation"]


def test_split_keeps_rows_and_their_source_index(fer_csv: Path, images: np.ndarray) -> None:
    public = read_fer2013(fer_csv).split("PublicTest")
    assert public.index.tolist() == [5, 6]
    np.testing.assert_array_equal(public.images, images[5:7])
    assert set(public.usage.tolist()) == {"PublicTest"}


def test_missing_split_error_lists_the_splits_present(tmp_path: Path, images: np.ndarray) -> None:
    rows = [(label, usage) for label, usage in ROWS if usage != "PrivateTest"]
    d = read_fer2013(write_csv(tmp_path / "dev.csv", csv_text(images, rows)))
    with pytest.raises(
        FERDataError, match="split 'PrivateTest' is not in this data; splits present: Training, PublicTest"
    ):
        d.split("PrivateTest")


def test_counts_table_has_splits_by_class_and_total(fer_csv: Path) -> None:
    table = read_fer2013(fer_csv).counts()
    assert list(table.index) == list(SPLITS)
    assert list(table.columns) == [*CLASS_NAMES, "total"]
    assert table.loc["Training", "Happy"] == 2 and table.loc["PrivateTest", "Sad"] == 1
    assert table["total"].tolist() == [5, 2, 2]


def test_small_file_is_not_canonical(fer_csv: Path) -> None:
    d = read_fer2013(fer_csv)
    assert d.is_canonical is False
    assert d.content_md5 == hashlib.md5(fer_csv.read_bytes()).hexdigest() != CANONICAL_MD5


def test_synthetic_sidecar_marks_the_data_synthetic(fer_csv: Path) -> None:
    assert read_fer2013(fer_csv).is_synthetic is False
    Path(f"{fer_csv}.synthetic.json").write_text('{"seed": 0}')
    assert read_fer2013(fer_csv, use_cache=False).is_synthetic is True


def test_load_dataset_reads_the_given_path(fer_csv: Path) -> None:
    assert len(load_dataset(fer_csv)) == len(ROWS)


# ----------------------------------------------------------------------------- cache


def test_cache_hit_returns_identical_arrays_without_reading_the_file(fer_csv: Path, cache_dir: Path) -> None:
    first = read_fer2013(fer_csv)
    assert len(list(cache_dir.glob("*.npz"))) == 1
    st = fer_csv.stat()
    fer_csv.write_bytes(b"x" * st.st_size)  # unparsable, but the same size and time as the cached file
    os.utime(fer_csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = read_fer2013(fer_csv)
    for name in ("images", "labels", "usage", "index"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert (second.content_md5, second.file_format, second.source) == (first.content_md5, "fer2013", first.source)


def test_changed_file_invalidates_the_cache(fer_csv: Path, images: np.ndarray, cache_dir: Path) -> None:
    first = read_fer2013(fer_csv)
    changed = images.copy()
    changed[0, 0, 0] = 99
    write_csv(fer_csv, csv_text(changed))
    os.utime(fer_csv, ns=(fer_csv.stat().st_atime_ns, fer_csv.stat().st_mtime_ns + 1_000_000_000))
    second = read_fer2013(fer_csv)
    assert second.images[0, 0, 0] == 99
    assert second.content_md5 != first.content_md5
    assert len(list(cache_dir.glob("*.npz"))) == 1  # the stale arrays are replaced, not kept beside


def test_use_cache_false_writes_no_cache(fer_csv: Path, cache_dir: Path) -> None:
    read_fer2013(fer_csv, use_cache=False)
    assert not cache_dir.exists()


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_counts_md5_and_canonical_status(fer_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(fer_csv)]) == 0
    out = capsys.readouterr().out
    assert "Training" in out and "PrivateTest" in out and "Happy" in out and "total" in out
    assert hashlib.md5(fer_csv.read_bytes()).hexdigest() in out
    assert "not the canonical fer2013.csv" in out


def test_cli_takes_a_relative_path_from_the_working_directory(
    fer_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(fer_csv.parent)
    assert main([fer_csv.name]) == 0
    assert f"file:        {fer_csv.resolve()}" in capsys.readouterr().out


def test_cli_reports_bad_file_on_stderr_with_exit_code_2(
    tmp_path: Path, images: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "bad.csv", corrupt(csv_text(images), 3, "pixels", "256"))
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "row 3" in captured.err and "field 'pixels'" in captured.err and "bad.csv" in captured.err


def test_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "fer_utils.data", str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "file is empty" in result.stderr


def test_load_dataset_falls_back_to_synthetic_data_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    small = synthetic.make_synthetic_csv(tmp_path / "synthetic.csv", n_per_class={"Training": 1, "PublicTest": 1})
    monkeypatch.setattr(synthetic, "ensure_default_dataset", lambda: small)  # no default set to generate
    monkeypatch.setattr(paths, "find_data_file", lambda path=None: None)
    with caplog.at_level(logging.WARNING, logger="fer_utils.data.loading"):
        d = load_dataset()
    assert d.source == small.resolve() and d.is_synthetic
    assert "SYNTHETIC" in caplog.text


def test_error_early_in_a_long_file_is_reported_and_leaves_no_thread(tmp_path: Path) -> None:
    text, _, _ = long_text(LONG)
    path = write_csv(tmp_path / "long.csv.gz", corrupt(text, 2, "Usage", "Train"))
    threads = set(threading.enumerate())
    with pytest.raises(FERDataError, match=r"row 2 .*unknown Usage value 'Train'"):
        read_fer2013(path)
    assert set(threading.enumerate()) <= threads


def test_ferplus_votes_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "fer2013new.csv"
    path.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n")
    with pytest.raises(FERDataError, match="looks like the FER\\+ votes file"):
        read_fer2013(path)
