"""The FER2013 CSV reader behind :func:`fer_utils.data.read_fer2013`.

The file is read whole (inflated first when it is gzip, recognised by its magic
bytes); labels and splits are checked row by row, and the pixels are parsed by
NumPy a block of rows at a time, with no Python per pixel. The first bad row
raises :class:`~fer_utils.data.FERDataError` naming the file, row and field.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import numpy as np

from . import FACE_SIZE, NUM_CLASSES, SPLITS
from .data import NUM_PIXELS, FERData, FERDataError, _make_data

_REQUIRED_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER = 1 << 16
_CHUNK_ROWS = 256  # rows per NumPy pass: few enough for its temporaries to stay in the CPU cache


def parse_csv(source: Path) -> FERData:
    """Parse a FER2013 CSV (plain or gzip); the first bad row raises :class:`FERDataError`."""
    file = str(source)
    text, gzipped = _read_text(file, source)
    if not text:
        raise FERDataError(file, "file is empty (0 bytes" + (" after decompression)" if gzipped else ")"))
    # Hashing and NumPy release the GIL, so the hash and the blocks of pixels share the cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        md5 = pool.submit(lambda: hashlib.md5(text).hexdigest())
        head = text[:_MAX_HEADER]
        _refuse_archives(file, head)
        if b"\n" not in head and len(text) > _MAX_HEADER:
            raise FERDataError(file, f"not a CSV file: no line break in the first {_MAX_HEADER} bytes")
        header_end = text.find(b"\n") if b"\n" in head else len(text)
        columns, file_format = _parse_header(file, text[:header_end])
        labels, usage, pixel_fields, row_error = _split_rows(file, text, header_end + 1, columns)
        if not labels and row_error is None:
            raise FERDataError(file, "no data rows (the file holds only a header)")
        images = _parse_pixels(file, pixel_fields, pool)  # a bad pixel in an earlier row is reported first
        if row_error is not None:
            raise row_error
        return _make_data(
            source,
            images.reshape(-1, FACE_SIZE, FACE_SIZE),
            np.array(labels, dtype=np.int64),
            np.asarray(SPLITS)[usage],
            md5.result(),
            file_format,
        )


def _read_text(file: str, source: Path) -> tuple[bytes, bool]:
    """The file's bytes, inflated if it is gzip (known by its magic bytes), and whether it was."""
    raw = source.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw, False
    members = []  # like gzip(1): concatenated members are one stream, NUL padding after them is ignored
    while raw:
        if not raw.startswith(_GZIP_MAGIC):
            raise FERDataError(file, "unexpected data after the end of the gzip stream")
        inflater = zlib.decompressobj(wbits=31)
        try:
            members.append(inflater.decompress(raw))
        except zlib.error as exc:
            raise FERDataError(file, f"corrupt gzip data ({exc}); download the file again") from None
        if not inflater.eof:
            raise FERDataError(file, "truncated gzip file: the compressed stream ends early; download the file again")
        raw = inflater.unused_data.lstrip(b"\0")
    return b"".join(members), True


def _refuse_archives(file: str, head: bytes) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise FERDataError(file, "this is a zip archive; extract fer2013.csv from it first")
    if head[257:262] == b"ustar":
        raise FERDataError(
            file,
            "this is a tar archive (the original Kaggle download is fer2013.tar.gz); "
            "extract fer2013/fer2013.csv from it first",
        )


def _parse_header(file: str, header: bytes) -> tuple[list[int], str]:
    """Field count and positions of emotion, pixels and Usage; the file format."""
    raw_names = header.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r").split(",")
    lookup = {n.strip().strip('"').strip().lower(): i for i, n in reversed(list(enumerate(raw_names)))}
    for col in _REQUIRED_COLUMNS:
        if col.lower() not in lookup:
            hint = ""
            if {"neutral", "nf", "image name"} <= set(lookup):
                hint = "; this looks like the FER+ votes file, read it with fer_utils.ferplus.read_ferplus"
            raise FERDataError(
                file,
                f"missing column '{col}' (the header has: {', '.join(map(repr, raw_names))}; "
                f"expected {', '.join(_REQUIRED_COLUMNS)}){hint}",
                field=col,
            )
    emotion, pixels, usage = (lookup[c.lower()] for c in _REQUIRED_COLUMNS)
    # icml_face_data.csv is the Kaggle re-upload with columns "emotion, Usage, pixels".
    return [len(raw_names), emotion, pixels, usage], "icml" if emotion < usage < pixels else "fer2013"


def _split_rows(
    file: str, text: bytes, start: int, columns: list[int]
) -> tuple[list[int], list[int], list[memoryview], FERDataError | None]:
    """Labels, Usage codes (into ``SPLITS``) and pixel fields (views, not copies) of the rows from
    byte ``start`` on, up to the first one with a bad field count, label or Usage value, and the
    error naming that row (``None`` if there is none)."""
    count, emotion, pixels, usage = columns
    view = memoryview(text)
    labels: list[int] = []
    splits: list[int] = []
    pixel_fields: list[memoryview] = []
    row = 0
    while start < len(text):
        row += 1
        end = text.find(b"\n", start) % (len(text) + 1)  # -1 (no final line break) becomes len(text)
        stop = end - (text[end - 1 : end] == b"\r")
        cuts = [start - 1]  # the commas, looking for one more than a good row has (no FER2013 field holds one)
        while len(cuts) <= count and (cut := text.find(b",", cuts[-1] + 1, stop)) >= 0:
            cuts.append(cut)
        cuts.append(stop)
        fields = [_unquote(view[a + 1 : b]) for a, b in pairwise(cuts)]
        if stop == start:
            if not text[end:].strip(b"\r\n"):  # blank lines are legal at the very end only
                break
            error = FERDataError(file, "blank line in the middle of the file", row=row)
        elif len(fields) != count:
            error = FERDataError(
                file, f"expected {count} comma-separated fields, found {text.count(b',', start, stop) + 1}", row=row
            )
        elif (label := _LABELS.get(bytes(fields[emotion]).strip(), -1)) < 0:
            error = FERDataError(
                file,
                f"label '{_show(fields[emotion])}' is not an integer in 0-{NUM_CLASSES - 1}",
                row=row,
                field="emotion",
            )
        elif (split := _USAGES.get(bytes(fields[usage]).strip(), -1)) < 0:
            error = FERDataError(
                file,
                f"unknown Usage value '{_show(fields[usage])}' (expected one of {', '.join(SPLITS)})",
                row=row,
                field="Usage",
            )
        else:
            labels.append(label)
            splits.append(split)
            pixel_fields.append(fields[pixels])
            start = end + 1
            continue
        return labels, splits, pixel_fields, error
    return labels, splits, pixel_fields, None


def _unquote(field: memoryview) -> memoryview:
    return field[1:-1] if len(field) >= 2 and field[0] == field[-1] == ord('"') else field


def _show(field: bytes | memoryview) -> str:
    return bytes(field[:40]).decode("utf-8", errors="replace")


def _parse_pixels(file: str, fields: list[memoryview], pool: ThreadPoolExecutor) -> np.ndarray:
    """(N, NUM_PIXELS) uint8 from the pixel fields; the first bad field raises, naming its row and pixel."""
    out = np.empty((len(fields), NUM_PIXELS), dtype=np.uint8)
    starts = range(0, len(fields), _CHUNK_ROWS)
    blocks = pool.map(lambda s: _parse_block(fields[s : s + _CHUNK_ROWS], out[s:]), starts)
    for start, bad in zip(starts, blocks, strict=True):
        if bad is not None:
            raise FERDataError(file, _pixel_problem(bytes(fields[start + bad])), row=start + bad + 1, field="pixels")
    return out


def _parse_block(fields: list[memoryview], out: np.ndarray) -> int | None:
    """Parse pixel fields into ``out[:len(fields)]`` all at once; the index of the first bad one, else ``None``.

    A pixel is a run of one to three digits between spaces; its value is assembled at
    its last digit from the two bytes before, so no Python runs per pixel.
    """
    joined = b" ".join([b"  ", *fields, b""])  # three spaces before the first field, one after the last
    bounds = np.cumsum([3] + [len(f) + 1 for f in fields])  # field i is joined[bounds[i]:bounds[i + 1] - 1]
    a = np.frombuffer(joined, dtype=np.uint8)
    d = a - np.uint8(ord("0"))
    digit = d < 10
    d *= digit  # digit values, 0 on spaces
    ends = np.flatnonzero(digit[:-1] & ~digit[1:])
    values = d[ends] + d[ends - 1] * np.uint16(10) + d[ends - 2] * digit[ends - 1] * np.uint16(100)
    bad = [ends[values > 255]]
    if (four := digit[3:] & digit[2:-1] & digit[1:-2] & digit[:-3]).any():  # a run of four digits or more
        bad.append(np.flatnonzero(four) + 3)
    if np.count_nonzero(digit) + np.count_nonzero(a == ord(" ")) != a.size:  # a byte other than 0-9 and space
        bad.append(np.flatnonzero(~digit & (a != ord(" "))))
    bad = [np.searchsorted(bounds, pos, side="right") - 1 for pos in bad]  # byte positions -> fields
    bad.append(np.flatnonzero(np.diff(np.searchsorted(ends, bounds)) != NUM_PIXELS))
    first = min((int(b[0]) for b in bad if b.size), default=None)
    if first is None:
        out[: len(fields)] = values.reshape(-1, NUM_PIXELS)
    return first


def _pixel_problem(field: bytes) -> str:
    """What is wrong with a pixel field: the rules of :func:`_parse_block`, one pixel at a time."""
    tokens = [t for t in field.split(b" ") if t]
    for index, token in enumerate(tokens, start=1):
        if not (len(token) <= 3 and token.isdigit() and int(token) <= 255):
            return f"pixel {index} is '{_show(token[:24])}', not an integer in 0-255"
    return f"expected {NUM_PIXELS} pixel values, found {len(tokens)}" + ("" if tokens else " (the field is empty)")


_LABELS: dict[bytes, int] = {f"{zeros}{k}".encode(): k for k in range(NUM_CLASSES) for zeros in ("", "0", "00")}
_USAGES: dict[bytes, int] = {name.encode(): i for i, name in enumerate(SPLITS)}
