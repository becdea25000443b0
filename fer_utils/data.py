"""FER2013 loading, validation and caching; ``python -m fer_utils.data FILE`` checks a download.

Three layouts are read into one :class:`FERData`:

* ``fer2013.csv`` / ``fer2013.csv.gz``: the original Kaggle file, header
  ``emotion,pixels,Usage``, one face per row as 2,304 space-separated integers.
* ``icml_face_data.csv``: the Kaggle re-upload, columns ``emotion, Usage, pixels``
  (note the leading spaces).
* An image folder ``train/<emotion>/*.png`` and ``test/<emotion>/*.png`` (48x48 pixels).
  This layout has lost the PublicTest / PrivateTest distinction: both become one
  ``"Test"`` split, so it cannot reproduce the benchmark's validation/test protocol.

Parsing is vectorised on the raw bytes (numpy, no per-row Python) and runs in
parallel with decompression and hashing, so the full 35,887-row file parses in a
couple of seconds. Parsed arrays are cached under :func:`fer_utils.paths.cache_dir`
as ``<content md5>.npz``; a small JSON index maps (path, size, mtime) to the
content MD5, so a repeated load costs a ``stat`` and one ``np.load``.

Every problem in a file raises :class:`FERDataError` naming the file, the data row
and the field: nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils import CLASS_NAMES, NUM_CLASSES, SPLITS, paths
from fer_utils.files import atomic_write, atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

CANONICAL_MD5 = "f8428a1edbd21e88f42c73edd2a14f95"
"""MD5 of the original 35,887-row ``fer2013.csv`` (the checksum torchvision publishes)."""

IMAGE_SIDE = 48
"""Side of a FER2013 face in pixels."""

NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
"""Pixel values per CSV row."""

FOLDER_TEST_SPLIT = "Test"
"""Split name used by the image-folder layout, which merges PublicTest and PrivateTest."""

FOLDER_SPLIT_DIRS: dict[str, str] = {"train": "Training", "test": FOLDER_TEST_SPLIT}
"""Sub-folder of an image-folder data set -> split name."""

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff")

CACHE_VERSION = 1
"""Bumped whenever the cached arrays' layout or meaning changes, invalidating old caches."""

_INDEX_NAME = "index.json"
_SPLIT_ORDER: tuple[str, ...] = SPLITS + (FOLDER_TEST_SPLIT,)
_REQUIRED_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")
_READ_SIZE = 1 << 20  # compressed bytes per read; about 3 MB of text once inflated
_PLAIN_READ_SIZE = 4 << 20
_BLOCK_SIZE = 4 << 20  # text bytes per numpy pass: amortises call overhead, temporaries stay in cache
_SPACE = np.uint8((ord(" ") - ord("0")) % 256)  # a space after subtracting "0" (uint8 wrap-around)
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER = 1 << 16
_BAD_PIXEL = "pixel {index} is '{token}', not an integer in 0-255"


class FERDataError(ValueError):
    """A FER2013 file (or folder) that cannot be read as FER2013 data.

    Attributes:
        file: The file or folder at fault.
        row: 1-based data row (the header is not counted, so the text line is
            ``row + 1``); ``None`` for file-level problems.
        field: Column (``"emotion"``, ``"pixels"``, ``"Usage"``) or other field
            concerned; ``None`` when no single field is.
        problem: What is wrong, in words.
    """

    def __init__(self, file: str | os.PathLike[str], problem: str, *, row: int | None = None,
                 field: str | None = None) -> None:
        self.file = str(file)
        self.row = row
        self.field = field
        self.problem = problem
        where = [f"row {row} (line {row + 1})"] if row is not None else []
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{self.file}: {', '.join(where)}: {problem}" if where else f"{self.file}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are lost by the default exception pickling.
        return (_make_error, (self.file, self.problem, self.row, self.field))


def _make_error(file: str, problem: str, row: int | None, field: str | None) -> FERDataError:
    return FERDataError(file, problem, row=row, field=field)


@dataclass(frozen=True, eq=False)
class FERData:
    """FER2013 faces with their labels and splits.

    Attributes:
        images: (N, 48, 48) uint8 grayscale faces, 0 black to 255 white.
        labels: (N,) int64 emotion labels in 0..6, indexing ``fer_utils.CLASS_NAMES``.
        usage: (N,) str split name per row (``"Training"``, ``"PublicTest"``,
            ``"PrivateTest"``; ``"Test"`` for the image-folder layout).
        index: (N,) int64 0-based position of each row among the source's data
            rows; FER+ votes join on it, and it survives :meth:`split`.
        source: The file or folder read.
        content_md5: MD5 hex digest of the CSV text (decompressed for ``.gz``); for
            a folder, of its image files' relative paths and bytes.
        file_format: ``"fer2013"``, ``"icml"`` or ``"folder"``.
        is_canonical: The text is the original 35,887-row ``fer2013.csv``.
        is_synthetic: The file was drawn by :mod:`fer_utils.synthetic`.
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    index: np.ndarray
    source: Path
    content_md5: str
    file_format: str
    is_canonical: bool
    is_synthetic: bool

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (f"FERData(n={len(self)}, splits={self.splits}, source='{self.source}', "
                f"file_format='{self.file_format}', content_md5='{self.content_md5}', "
                f"is_canonical={self.is_canonical}, is_synthetic={self.is_synthetic})")

    @property
    def splits(self) -> tuple[str, ...]:
        """Splits present, in canonical order (Training, PublicTest, PrivateTest, Test)."""
        present = set(np.unique(self.usage).tolist())
        ordered = [s for s in _SPLIT_ORDER if s in present]
        return tuple(ordered + sorted(present - set(ordered)))

    def split(self, name: str) -> FERData:
        """The rows of one split (``index`` still points into the source file).

        Raises:
            FERDataError: The split is not in this data; the message lists those present.
        """
        mask = self.usage == name
        if not mask.any():
            extra = ""
            if self.file_format == "folder" and name in SPLITS[1:]:
                extra = f" (the image-folder layout merges PublicTest and PrivateTest into '{FOLDER_TEST_SPLIT}')"
            raise FERDataError(self.source, f"split '{name}' is not in this data; splits present: "
                               f"{', '.join(self.splits)}{extra}", field="Usage")
        return replace(self, images=self.images[mask], labels=self.labels[mask],
                       usage=self.usage[mask], index=self.index[mask])

    def counts(self) -> pd.DataFrame:
        """Rows per split and class.

        Returns:
            int64 DataFrame: one row per split present (canonical order), one column
            per name in ``CLASS_NAMES`` plus ``"total"``.
        """
        import pandas as pd

        splits = self.splits
        table = np.zeros((len(splits), NUM_CLASSES), dtype=np.int64)
        for i, name in enumerate(splits):
            table[i] = np.bincount(self.labels[self.usage == name], minlength=NUM_CLASSES)
        df = pd.DataFrame(table, index=pd.Index(splits, name="split"), columns=list(CLASS_NAMES))
        df["total"] = table.sum(axis=1)
        return df


# --------------------------------------------------------------------------- public entry points


def read_fer2013(path: str | os.PathLike[str], *, use_cache: bool = True) -> FERData:
    """Read FER2013 from a CSV, a gzipped CSV, ``icml_face_data.csv`` or an image folder.

    Args:
        path: ``fer2013.csv``, ``fer2013.csv.gz`` (any gzip file is recognised by its
            magic bytes), ``icml_face_data.csv``, or a folder holding ``train/`` and
            ``test/`` with one sub-folder per emotion name (``angry``, ``disgust``, ...,
            any case) of 48x48 images. Relative paths are taken from the repository root.
            The folder layout merges PublicTest and PrivateTest into one ``"Test"``
            split (a warning is logged): it cannot separate validation from test data.
        use_cache: Reuse (and write) the parsed arrays under ``paths.cache_dir()``.

    Returns:
        The data; see :class:`FERData`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FERDataError: The file is not valid FER2013 data (bad or missing column,
            row with the wrong number of pixels, pixel outside 0-255, label outside
            0-6, unknown Usage, empty file, truncated gzip, ...).
    """
    source = paths.resolve(path)
    if not source.exists():
        raise FileNotFoundError(f"FER2013 data not found: {source}")
    source = source.resolve()
    if source.is_dir():
        return _read_folder(source, use_cache=use_cache)

    st = source.stat()
    stat_key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if use_cache:
        cached = _cache_lookup(source, stat_key)
        if cached is not None:
            return cached

    start = time.perf_counter()
    parsed = _parse_csv(source)
    logger.info("parsed %s: %d rows in %.2f s", source, len(parsed.labels), time.perf_counter() - start)
    data = _make_data(source, parsed)
    if use_cache:
        _cache_store(data, stat_key)
    return data


def load_dataset(path: str | os.PathLike[str] | None = None, *, use_cache: bool = True) -> FERData:
    """Load the FER2013 data the project should use, or the synthetic stand-in.

    Args:
        path: Explicit file/folder; ``None`` or ``""`` looks up ``$FER2013_CSV`` and
            then ``data/fer2013.csv``, ``data/fer2013.csv.gz``, ``data/icml_face_data.csv``
            (see :func:`fer_utils.paths.find_data_file`).
        use_cache: Passed to :func:`read_fer2013`.

    Returns:
        The data. When no FER2013 data is found, the synthetic data set (generated on
        first use) is returned and a warning is logged; check ``is_synthetic``.
    """
    found = paths.find_data_file(path)
    if found is None:
        from fer_utils.synthetic import ensure_default_dataset

        found = ensure_default_dataset()
        logger.warning("No FER2013 data found (pass a path, set $%s or put fer2013.csv under %s); "
                       "using the SYNTHETIC data set %s: results say nothing about real faces.",
                       paths.DATA_ENV_VAR, paths.DATA_DIR, found)
    return read_fer2013(found, use_cache=use_cache)


# --------------------------------------------------------------------------- CSV parsing


@dataclass(frozen=True)
class _Parsed:
    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    content_md5: str
    file_format: str


@dataclass(frozen=True)
class _Columns:
    """Where the needed fields sit in a CSV row."""

    count: int
    emotion: int
    pixels: int
    usage: int


def _parse_csv(source: Path) -> _Parsed:
    """Parse a FER2013 CSV (plain or gzip) while a reader thread inflates and hashes it."""
    file = str(source)
    md5 = hashlib.md5()
    reader = _ChunkReader(source, md5)
    reader.start()
    try:
        columns: _Columns | None = None
        file_format = "fer2013"
        rows_done = 0
        blank_row: int | None = None  # first row of a run of blank lines, legal only at the very end
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        usage: list[np.ndarray] = []
        workspace = _Workspace()
        for block in _blocks(reader.chunks()):
            start = 0
            if columns is None:
                if not len(block):  # only the last block can be empty
                    raise FERDataError(file, "file is empty (0 bytes"
                                       + (" after decompression)" if reader.gzipped else ")"))
                head = bytes(block[:_MAX_HEADER])
                _refuse_archives(file, head)
                header_end = head.find(b"\n")
                if header_end < 0 and len(block) > _MAX_HEADER:
                    raise FERDataError(file, "not a CSV file: no line break in the first "
                                             f"{_MAX_HEADER} bytes")
                columns, file_format = _parse_header(file, head[:header_end] if header_end >= 0 else head)
                start = header_end + 1 if header_end >= 0 else len(block)
            parsed = _parse_block(file, block, start, columns, rows_done, workspace)
            if parsed.n_rows and blank_row is not None:
                raise FERDataError(file, "blank line in the middle of the file", row=blank_row)
            if parsed.trailing_blank_row is not None and blank_row is None:
                blank_row = parsed.trailing_blank_row
            rows_done += parsed.n_rows + parsed.n_blank
            if parsed.n_rows:
                images.append(parsed.images)
                labels.append(parsed.labels)
                usage.append(parsed.usage)
        if not labels:
            raise FERDataError(file, "no data rows (the file holds only a header)")
    finally:
        reader.close()
    codes = np.concatenate(usage)
    return _Parsed(
        images=np.concatenate(images).reshape(-1, IMAGE_SIDE, IMAGE_SIDE),
        labels=np.concatenate(labels),
        usage=np.asarray(SPLITS)[codes],
        content_md5=md5.hexdigest(),
        file_format=file_format,
    )


def _refuse_archives(file: str, head: bytes) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise FERDataError(file, "this is a zip archive; extract fer2013.csv from it first")
    if head[257:262] == b"ustar":
        raise FERDataError(file, "this is a tar archive (the original Kaggle download is fer2013.tar.gz); "
                                 "extract fer2013/fer2013.csv from it first")


def _parse_header(file: str, header: bytes) -> tuple[_Columns, str]:
    text = header.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    raw_names = text.split(",")
    names = [n.strip().strip('"').strip() for n in raw_names]
    lookup = {n.lower(): i for i, n in reversed(list(enumerate(names)))}
    for col in _REQUIRED_COLUMNS:
        if col.lower() not in lookup:
            hint = ""
            if {"neutral", "nf", "image name"} <= set(lookup):
                hint = "; this looks like the FER+ votes file, read it with fer_utils.ferplus.read_ferplus"
            raise FERDataError(file, f"missing column '{col}' (the header has: {', '.join(map(repr, raw_names))}; "
                                     f"expected {', '.join(_REQUIRED_COLUMNS)}){hint}", field=col)
    columns = _Columns(count=len(names), emotion=lookup["emotion"], pixels=lookup["pixels"], usage=lookup["usage"])
    # icml_face_data.csv is the Kaggle re-upload with columns "emotion, Usage, pixels".
    file_format = "icml" if columns.emotion < columns.usage < columns.pixels else "fer2013"
    return columns, file_format


@dataclass(frozen=True)
class _Block:
    images: np.ndarray  # (n, 2304) uint8
    labels: np.ndarray  # (n,) int64
    usage: np.ndarray  # (n,) uint8 index into SPLITS
    n_rows: int
    n_blank: int
    trailing_blank_row: int | None


def _parse_block(file: str, buf: bytes | memoryview, start: int, cols: _Columns, row0: int,
                 ws: _Workspace) -> _Block:
    """Parse whole lines ``buf[start:]``; ``row0`` data rows precede them in the file."""
    mv = memoryview(buf)[start:]
    a = np.frombuffer(mv, dtype=np.uint8)
    size = a.shape[0]
    empty = _Block(np.empty((0, NUM_PIXELS), np.uint8), np.empty(0, np.int64), np.empty(0, np.uint8), 0, 0, None)
    if size == 0:
        return empty

    # Lines. The last one may lack its newline only at the end of the file.
    nl = np.flatnonzero(a == ord("\n"))
    line_start = np.concatenate(([0], nl + 1))
    line_end = np.concatenate((nl, [size]))
    if line_start[-1] == size:
        line_start, line_end = line_start[:-1], line_end[:-1]
    has_text = line_end > line_start
    cr = np.zeros_like(has_text)
    cr[has_text] = a[line_end[has_text] - 1] == ord("\r")  # CRLF files
    line_end = line_end - cr
    blank = np.flatnonzero(line_end == line_start)
    n_blank = 0
    trailing_blank_row = None
    if blank.size:
        first_blank = int(blank[0])
        if blank.size != line_start.size - first_blank:
            raise FERDataError(file, "blank line in the middle of the file", row=row0 + first_blank + 1)
        n_blank = int(blank.size)
        trailing_blank_row = row0 + first_blank + 1
        line_start, line_end = line_start[:first_blank], line_end[:first_blank]
    n = int(line_start.size)
    if n == 0:
        return replace(empty, n_blank=n_blank, trailing_blank_row=trailing_blank_row)

    # Fields: every row must hold exactly count-1 commas (no FER2013 field contains one).
    commas = np.flatnonzero(a == ord(","))
    comma_row = np.searchsorted(line_start, commas, side="right") - 1
    per_row = np.bincount(comma_row, minlength=n)
    # (row index in block, priority, field, problem, byte position of a bad pixel token or -1);
    # the earliest row's problem is reported.
    errors: list[tuple[int, int, str | None, str, int]] = []
    wrong = np.flatnonzero(per_row != cols.count - 1)
    if wrong.size:
        r = int(wrong[0])
        errors.append((r, -1, None, f"expected {cols.count} comma-separated fields, found {per_row[r] + 1}", -1))
        if r == 0:
            raise FERDataError(file, errors[0][3], row=row0 + 1)
        # Check the rows before it too, so an earlier problem is the one reported.
        n, line_start, line_end = r, line_start[:r], line_end[:r]
        commas = commas[: r * (cols.count - 1)]
    commas = commas.reshape(n, cols.count - 1)

    def bounds(j: int) -> tuple[np.ndarray, np.ndarray]:
        fs = line_start if j == 0 else commas[:, j - 1] + 1
        fe = line_end if j == cols.count - 1 else commas[:, j]
        # Strip one pair of surrounding double quotes ("..." fields are legal CSV).
        quoted = ((fe - fs) >= 2) & (a[np.minimum(fs, size - 1)] == ord('"')) & (a[np.maximum(fe - 1, 0)] == ord('"'))
        return fs + quoted, fe - quoted

    labels = _small_field(mv, *bounds(cols.emotion), _LABELS)
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        r = int(bad[0])
        raw = _field_text(mv, bounds(cols.emotion), r)
        errors.append((r, 0, "emotion", f"label '{raw}' is not an integer in 0-{NUM_CLASSES - 1}", -1))

    usage = _small_field(mv, *bounds(cols.usage), _USAGES)
    bad = np.flatnonzero(usage < 0)
    if bad.size:
        r = int(bad[0])
        raw = _field_text(mv, bounds(cols.usage), r)
        errors.append((r, 2, "Usage", f"unknown Usage value '{raw}' (expected one of {', '.join(SPLITS)})", -1))

    ps, pe = bounds(cols.pixels)
    pixels, pixel_errors = _parse_pixels(a, ps, pe, ws)
    errors.extend(pixel_errors)

    if errors:
        r, _, field, problem, pos = min(errors)
        if pos >= 0:
            token, index = _token_at(mv, int(ps[r]), int(pe[r]), pos)
            problem = problem.format(token=token, index=index)
        raise FERDataError(file, problem, row=row0 + r + 1, field=field)
    return _Block(pixels, labels.astype(np.int64), usage.astype(np.uint8), n, n_blank, trailing_blank_row)


class _Workspace:
    """Scratch arrays reused from block to block.

    Fresh multi-megabyte temporaries per block would each be page-faulted in by
    the kernel, which roughly doubled the parse time; ``out=`` into these avoids it.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int, dtype: type[np.generic]) -> np.ndarray:
        buf = self._arrays.get(name)
        if buf is None or buf.shape[0] < size:
            buf = np.empty(size + size // 4, dtype=dtype)  # headroom: blocks vary a little in size
            self._arrays[name] = buf
        return buf[:size]


def _parse_pixels(a: np.ndarray, ps: np.ndarray, pe: np.ndarray, ws: _Workspace
                  ) -> tuple[np.ndarray, list[tuple[int, int, str | None, str, int]]]:
    """Parse the pixel fields ``a[ps[i]:pe[i]]`` of a block of rows.

    Works on the whole block at once: bytes outside the pixel fields are turned
    into spaces, tokens are runs of digits, and a token's value is read from its
    last three digits (tokens of four or more digits are rejected).

    Returns:
        ((n, 2304) uint8 pixels, errors) where errors hold at most one entry per
        kind, as (row index, priority, "pixels", problem, byte position); a
        problem about one token has ``{token}`` and ``{index}`` placeholders.
    """
    size = a.shape[0]
    n = ps.shape[0]
    # d[3 + i] = a[i] - '0'; three leading and one trailing pad so that a token's
    # previous three bytes and next byte can be read without bounds checks.
    d = ws.get("d", size + 4, np.uint8)
    d[:3] = _SPACE
    d[-1] = _SPACE
    np.subtract(a, np.uint8(ord("0")), out=d[3:-1])
    # Blank out everything that is not a pixel field (labels, commas, Usage, newlines).
    gap_start = np.concatenate(([0], pe))
    gap_len = np.concatenate((ps, [size])) - gap_start
    total = int(gap_len.sum())
    if total:
        offsets = np.repeat(gap_start - np.concatenate(([0], np.cumsum(gap_len)[:-1])), gap_len)
        d[3 + offsets + np.arange(total)] = _SPACE

    digit = np.less(d, 10, out=ws.get("digit", size + 4, np.bool_))
    mask = ws.get("mask", size + 4, np.bool_)
    errors: list[tuple[int, int, str | None, str, int]] = []
    if np.count_nonzero(digit) + np.count_nonzero(np.equal(d, _SPACE, out=mask)) != d.shape[0]:
        pos = int(np.argmax(~digit & (d != _SPACE))) - 3
        errors.append((int(np.searchsorted(ps, pos, side="right")) - 1, 1, "pixels", _BAD_PIXEL, pos))

    # A token of four or more digits (any value above 999, or zero-padded).
    pair = np.logical_and(digit[:-1], digit[1:], out=ws.get("pair", size + 3, np.bool_))
    quad = np.logical_and(pair[:-2], pair[2:], out=mask[: size + 1])
    if quad.any():
        pos = int(np.argmax(quad)) - 3
        errors.append((int(np.searchsorted(ps, pos, side="right")) - 1, 1, "pixels", _BAD_PIXEL, pos))

    # Values are assembled densely (cheap, cache-friendly uint8 passes over the
    # block) and gathered once per token end: per-token work is the costly part.
    dz = np.multiply(d, digit, out=ws.get("dz", size + 4, np.uint8))  # digits, 0 elsewhere
    tens_units = np.multiply(dz[2:-2], 10, out=ws.get("tens_units", size, np.uint8))
    tens_units += dz[3:-1]  # at a token's last digit: 10 * tens + units (0-99)
    hundreds = np.multiply(dz[1:-3], digit[2:-2], out=ws.get("hundreds", size, np.uint8))  # if tens exist
    is_end = np.greater(digit[3:-1], digit[4:], out=mask[:size])
    ends = np.flatnonzero(is_end)  # the last digit of each token, in a's coordinates
    k = ends.shape[0]
    values = np.multiply(np.take(hundreds, ends, out=ws.get("gather_h", k, np.uint8)), 100,
                         out=ws.get("values", k, np.uint16), dtype=np.uint16)
    values += np.take(tens_units, ends, out=ws.get("gather_tu", k, np.uint8))
    if k and int(values.max()) > 255:
        pos = int(ends[int(np.argmax(values > 255))])
        errors.append((int(np.searchsorted(ps, pos, side="right")) - 1, 1, "pixels", _BAD_PIXEL, pos))

    count = np.searchsorted(ends, pe) - np.searchsorted(ends, ps)
    wrong = np.flatnonzero(count != NUM_PIXELS)
    if wrong.size:
        r = int(wrong[0])
        found = int(count[r])
        errors.append((r, 3, "pixels", f"expected {NUM_PIXELS} pixel values, found {found}"
                       + (" (the field is empty)" if found == 0 else ""), -1))
    if errors:
        return np.empty((0, NUM_PIXELS), np.uint8), errors
    return values.astype(np.uint8).reshape(n, NUM_PIXELS), errors


def _token_at(mv: memoryview, fs: int, fe: int, pos: int) -> tuple[str, int]:
    """The whitespace-delimited token of the field ``mv[fs:fe]`` covering byte ``pos``.

    Returns:
        (token text, 1-based index of the token among the field's pixels).
    """
    field = bytes(mv[fs:fe])
    rel = pos - fs
    left = field.rfind(b" ", 0, rel) + 1
    right = field.find(b" ", rel)
    token = field[left: right if right >= 0 else len(field)]
    return token[:24].decode("utf-8", errors="replace"), len(field[:left].split()) + 1


def _small_field(mv: memoryview, fs: np.ndarray, fe: np.ndarray, parse: dict[bytes, int]) -> np.ndarray:
    """Map short text fields (label, Usage) to codes; -1 where invalid.

    Each distinct value is validated once, so the per-row cost is a dict lookup.
    """
    raw = [bytes(mv[s:e]) for s, e in zip(fs.tolist(), fe.tolist())]
    lut: dict[bytes, int] = {}
    for value in set(raw):
        key = value.strip()
        lut[value] = parse.get(key, -1)
    return np.fromiter((lut[v] for v in raw), dtype=np.int64, count=len(raw))


def _field_text(mv: memoryview, bounds: tuple[np.ndarray, np.ndarray], r: int) -> str:
    return bytes(mv[int(bounds[0][r]): int(bounds[1][r])]).decode("utf-8", errors="replace")[:40]


def _label_table() -> dict[bytes, int]:
    table: dict[bytes, int] = {}
    for k in range(NUM_CLASSES):
        for text in (str(k), f"0{k}", f"00{k}"):
            table[text.encode()] = k
    return table


_LABELS: dict[bytes, int] = _label_table()
_USAGES: dict[bytes, int] = {name.encode(): i for i, name in enumerate(SPLITS)}


def _blocks(chunks: Iterator[bytes]) -> Iterator[memoryview]:
    """Regroup text chunks into blocks of whole lines of about ``_BLOCK_SIZE`` bytes.

    Every block but the last ends with a newline; the last may be empty.
    """
    pending: list[bytes] = []
    pending_size = 0
    for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size < _BLOCK_SIZE:
            continue
        joined = b"".join(pending)
        cut = joined.rfind(b"\n") + 1
        if cut == 0:
            pending, pending_size = [joined], len(joined)
            continue
        rest = joined[cut:]
        pending, pending_size = [rest], len(rest)
        yield memoryview(joined)[:cut]
    yield memoryview(b"".join(pending))


class _ChunkReader:
    """Reads (and inflates, for gzip) a file in a background thread, hashing the text.

    zlib, hashlib and file reads release the GIL, so this overlaps with the numpy
    parsing in the calling thread: on two cores the load costs about
    max(inflate + hash, parse) instead of their sum.
    """

    def __init__(self, source: Path, md5: Any) -> None:
        self.source = source
        self.md5 = md5
        self.gzipped = False
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fer2013-reader", daemon=True)

    def start(self) -> None:
        with open(self.source, "rb") as f:
            self.gzipped = f.read(2) == _GZIP_MAGIC
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for chunk in self._read():
                if chunk:
                    self.md5.update(chunk)
                    if not self._put(chunk):
                        return
            self._put(None)
        except BaseException as exc:  # re-raised in the parsing thread
            self._put(exc)

    def _read(self) -> Iterator[bytes]:
        file = str(self.source)
        with open(self.source, "rb") as f:
            if not self.gzipped:
                while block := f.read(_PLAIN_READ_SIZE):
                    yield block
                return
            # gzip(1) reads concatenated members as one stream and ignores trailing NUL padding.
            inflater: Any = None  # None between members
            pending = b""  # the start of a member's magic, split by a read
            try:
                while block := f.read(_READ_SIZE):
                    data, pending = pending + block, b""
                    while data:
                        if inflater is None:
                            if not data.strip(b"\x00"):
                                break
                            if len(data) < len(_GZIP_MAGIC) and _GZIP_MAGIC.startswith(data):
                                pending = data
                                break
                            if not data.startswith(_GZIP_MAGIC):
                                raise FERDataError(file, "unexpected data after the end of the gzip stream")
                            inflater = zlib.decompressobj(wbits=31)
                        yield inflater.decompress(data)
                        if not inflater.eof:
                            break
                        data, inflater = inflater.unused_data, None
                if inflater is not None:
                    yield inflater.flush()
            except zlib.error as exc:
                raise FERDataError(file, f"corrupt gzip data ({exc}); download the file again") from None
            if inflater is not None and not inflater.eof:
                raise FERDataError(file, "truncated gzip file: the compressed stream ends early; "
                                         "download the file again")


# --------------------------------------------------------------------------- image folders


def _read_folder(root: Path, *, use_cache: bool) -> FERData:
    """Read the ``train/<emotion>/*.png``, ``test/<emotion>/*.png`` layout."""
    logger.warning("%s is an image-folder data set: it merges PublicTest and PrivateTest into one '%s' split, "
                   "so validation and test data cannot be told apart; prefer fer2013.csv.", root, FOLDER_TEST_SPLIT)
    files, skipped = _list_folder(root)
    if skipped:
        logger.warning("%s: ignored %d non-image file(s), e.g. %s", root, len(skipped), skipped[0])
    listing = hashlib.md5()
    for rel, _, _, st in files:
        listing.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    stat_key = {"listing_md5": listing.hexdigest()}
    if use_cache:
        cached = _cache_lookup(root, stat_key)
        if cached is not None:
            return cached

    import cv2

    start = time.perf_counter()
    images = np.empty((len(files), IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    content = hashlib.md5()
    for i, (rel, label, split, _) in enumerate(files):
        path = root / rel
        raw = path.read_bytes()
        content.update(rel.encode() + b"\0" + raw)
        img = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FERDataError(path, "not a readable image", field="pixels")
        if img.shape != (IMAGE_SIDE, IMAGE_SIDE):
            raise FERDataError(path, f"image is {img.shape[1]}x{img.shape[0]} pixels, expected "
                                     f"{IMAGE_SIDE}x{IMAGE_SIDE}", field="pixels")
        images[i] = img
    logger.info("read %d images from %s in %.2f s", len(files), root, time.perf_counter() - start)
    parsed = _Parsed(images=images, labels=np.array([f[1] for f in files], dtype=np.int64),
                     usage=np.array([f[2] for f in files]), content_md5=content.hexdigest(), file_format="folder")
    data = _make_data(root, parsed)
    if use_cache:
        _cache_store(data, stat_key)
    return data


def _list_folder(root: Path) -> tuple[list[tuple[str, int, str, os.stat_result]], list[str]]:
    """Image files as (relative path, label, split, stat), in split, label, name order."""
    class_of = {name.lower(): k for k, name in enumerate(CLASS_NAMES)}
    split_dirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    present = [(FOLDER_SPLIT_DIRS[k], split_dirs[k]) for k in FOLDER_SPLIT_DIRS if k in split_dirs]
    if not present:
        raise FERDataError(root, "not a FER2013 file or image folder: expected sub-folders "
                                 f"{' and '.join(f'{k}/' for k in FOLDER_SPLIT_DIRS)} holding one folder per emotion "
                                 f"({', '.join(n.lower() for n in CLASS_NAMES)})")
    files: list[tuple[str, int, str, os.stat_result]] = []
    skipped: list[str] = []
    for split, split_dir in present:
        class_dirs = sorted((p for p in split_dir.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
        by_label: list[tuple[int, Path]] = []
        for p in class_dirs:
            if not p.is_dir():
                skipped.append(str(p.relative_to(root)))
                continue
            if p.name.lower() not in class_of:
                raise FERDataError(p, f"folder name '{p.name}' is not an emotion name (expected one of "
                                      f"{', '.join(n.lower() for n in CLASS_NAMES)})", field="emotion")
            by_label.append((class_of[p.name.lower()], p))
        for label, class_dir in sorted(by_label, key=lambda t: t[0]):
            with os.scandir(class_dir) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            for e in entries:
                rel = f"{split_dir.name}/{class_dir.name}/{e.name}"
                if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                    files.append((rel, label, split, e.stat()))
                else:
                    skipped.append(rel)
    if not files:
        raise FERDataError(root, "no images found under " + " or ".join(f"{d.name}/" for _, d in present))
    return files, skipped


# --------------------------------------------------------------------------- cache


def _make_data(source: Path, parsed: _Parsed) -> FERData:
    return FERData(
        images=parsed.images,
        labels=parsed.labels,
        usage=parsed.usage,
        index=np.arange(len(parsed.labels), dtype=np.int64),
        source=source,
        content_md5=parsed.content_md5,
        file_format=parsed.file_format,
        is_canonical=parsed.content_md5 == CANONICAL_MD5,
        is_synthetic=_is_synthetic(source),
    )


def _is_synthetic(source: Path) -> bool:
    try:
        from fer_utils.synthetic import is_synthetic
    except ModuleNotFoundError as exc:
        if exc.name != "fer_utils.synthetic":
            raise
        # fer_utils.synthetic marks its files with this sidecar.
        return Path(f"{source}.synthetic.json").exists()
    return bool(is_synthetic(source))


def _read_index(cache: Path) -> dict[str, Any]:
    try:
        index = json.loads((cache / _INDEX_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable cache index %s (%s)", cache / _INDEX_NAME, exc)
        return {}
    return index.get("files", {}) if isinstance(index, dict) and index.get("version") == CACHE_VERSION else {}


def _cache_lookup(source: Path, stat_key: dict[str, Any]) -> FERData | None:
    cache = paths.cache_dir()
    entry = _read_index(cache).get(str(source))
    if not entry or any(entry.get(k) != v for k, v in stat_key.items()):
        return None
    npz = cache / f"{entry['content_md5']}.npz"
    try:
        with np.load(npz, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                return None
            parsed = _Parsed(images=z["images"], labels=z["labels"], usage=z["usage"],
                             content_md5=str(entry["content_md5"]), file_format=str(z["file_format"]))
            index = z["index"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable cache file %s (%s)", npz, exc)
        return None
    logger.info("loaded %s from cache %s", source, npz)
    return replace(_make_data(source, parsed), index=index)


def _cache_store(data: FERData, stat_key: dict[str, Any]) -> None:
    cache = paths.cache_dir()
    npz = cache / f"{data.content_md5}.npz"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so np.savez does not append ".npz"
            np.savez(f, images=data.images, labels=data.labels, usage=data.usage, index=data.index,
                     file_format=np.array(data.file_format), version=np.array(CACHE_VERSION))

    try:
        if not npz.exists():
            atomic_write(npz, write)
        files = _read_index(cache)
        old = files.get(str(data.source), {}).get("content_md5")
        files[str(data.source)] = {**stat_key, "content_md5": data.content_md5}
        atomic_write_json(cache / _INDEX_NAME, {"version": CACHE_VERSION, "files": files})
        # Drop the arrays of this path's previous content unless another path still uses them.
        if old and old != data.content_md5 and all(e.get("content_md5") != old for e in files.values()):
            (cache / f"{old}.npz").unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not write the parsed-array cache under %s (%s); the next load parses again",
                       cache, exc)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Check a FER2013 download: rows per split and class, content MD5, canonical or not.

    Returns:
        0 when the file reads as FER2013, 2 when it does not (the error goes to stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m fer_utils.data", description=main.__doc__.splitlines()[0])
    parser.add_argument("file", help="fer2013.csv, fer2013.csv.gz, icml_face_data.csv or an image folder")
    parser.add_argument("--no-cache", action="store_true", help="parse the file even if a cached copy exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    path = Path(args.file).expanduser()
    if not path.is_absolute() and path.exists():
        path = path.absolute()  # a shell user means the working directory; else the repository root
    try:
        data = read_fer2013(path, use_cache=not args.no_cache)
    except (FERDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    table = data.counts()
    table.loc["total"] = table.sum(axis=0)
    print(f"file:        {data.source}")
    print(f"format:      {data.file_format}")
    print(f"rows:        {len(data)}")
    print()
    print(table.to_string())
    print()
    print(f"content MD5: {data.content_md5}")
    if data.is_canonical:
        print("canonical:   yes, this is the original fer2013.csv (35,887 rows)")
    else:
        print(f"canonical:   NO, this is not the canonical fer2013.csv (MD5 {CANONICAL_MD5}); results on it "
              "are not comparable with published FER2013 numbers")
    if data.is_synthetic:
        print("synthetic:   yes, drawn by fer_utils.synthetic (not real faces)")
    missing = [s for s in SPLITS if s not in data.splits]
    if missing and data.file_format != "folder":
        print(f"missing splits: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
