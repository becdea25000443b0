"""The FER2013 CSV reader behind :func:`fer_utils.data.read_fer2013`.

The file is read whole (inflated first when it is gzip, recognised by its magic bytes) and split
into rows; labels and splits are checked row by row, and the pixels are parsed by NumPy a block of
rows at a time, with no Python per pixel. The first bad row raises
:class:`~fer_utils.data.FERDataError` naming the file, row and field.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fer_utils.constants import FACE_SIZE, NUM_CLASSES, SPLITS
from fer_utils.data.dataset import NUM_PIXELS, FERData, FERDataError, make_data

_REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")
_MAX_HEADER = 1 << 16
_CHUNK_ROWS = 256  # rows per NumPy pass: few enough for its temporaries to stay in the CPU cache
_LABELS = {f"{zeros}{k}".encode(): k for k in range(NUM_CLASSES) for zeros in ("", "0", "00")}
_USAGES = {name.encode(): i for i, name in enumerate(SPLITS)}


def parse_csv(source: Path) -> FERData:
    """Parse a FER2013 CSV (plain or gzip); the first bad row raises :class:`FERDataError`."""
    file = str(source)
    text = _read_text(file, source)
    _refuse_archives(file, text[:512])
    header_end = text.find(b"\n") % (len(text) + 1)  # -1 (a header line only) becomes len(text)
    if header_end > _MAX_HEADER:
        raise FERDataError(file, f"not a CSV file: no line break in the first {_MAX_HEADER} bytes")
    columns, file_format = _parse_header(file, text[:header_end])
    # Hashing and NumPy release the GIL, so the hash and the blocks of pixels share the cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        md5 = pool.submit(lambda: hashlib.md5(text).hexdigest())
        labels, usage, pixel_fields, row_error = _split_rows(file, text.split(b"\n")[1:], columns)
        if not labels and row_error is None:
            raise FERDataError(file, "no data rows (the file holds only a header)")
        images = _parse_pixels(file, pixel_fields, pool)  # a bad pixel in an earlier row is reported first
        if row_error is not None:
            raise row_error
        return make_data(
            source,
            images.reshape(-1, FACE_SIZE, FACE_SIZE),
            np.array(labels, dtype=np.int64),
            np.asarray(SPLITS)[usage],
            md5.result(),
            file_format,
        )


def _read_text(file: str, source: Path) -> bytes:
    """The file's bytes, inflated if it is gzip (like gzip(1): members joined, NUL padding ignored)."""
    text = raw = source.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        try:
            text = gzip.decompress(raw)
        except EOFError:
            problem = "truncated gzip file: the compressed stream ends early; download the file again"
            raise FERDataError(file, problem) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            if str(exc).startswith("Not a gzipped file"):  # what follows the last member is not gzip
                raise FERDataError(file, "unexpected data after the end of the gzip stream") from None
            raise FERDataError(file, f"corrupt gzip data ({exc}); download the file again") from None
    if not text:
        raise FERDataError(file, "file is empty (0 bytes" + (" after decompression)" if raw else ")"))
    return text


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
                hint = "; this looks like the FER+ votes file, read it with fer_utils.data.ferplus.read_ferplus"
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
    file: str, lines: list[bytes], columns: list[int]
) -> tuple[list[int], list[int], list[bytes], FERDataError | None]:
    """Labels, Usage codes (into ``SPLITS``) and pixel fields of the rows up to the first one with
    a bad field count, label or Usage value, and the error naming that row (``None`` if none)."""
    count, emotion, pixels, usage = columns
    while lines and not lines[-1].strip(b"\r"):  # blank lines are legal at the very end only
        lines.pop()
    labels: list[int] = []
    splits: list[int] = []
    pixel_fields: list[bytes] = []
    for row, line in enumerate(lines, start=1):
        fields = [_unquote(f) for f in line.rstrip(b"\r").split(b",")]
        if fields == [b""]:
            return labels, splits, pixel_fields, FERDataError(file, "blank line in the middle of the file", row=row)
        if len(fields) != count:
            problem = f"expected {count} comma-separated fields, found {len(fields)}"
            return labels, splits, pixel_fields, FERDataError(file, problem, row=row)
        if (label := _LABELS.get(fields[emotion].strip(), -1)) < 0:
            problem = f"label '{_show(fields[emotion])}' is not an integer in 0-{NUM_CLASSES - 1}"
            return labels, splits, pixel_fields, FERDataError(file, problem, row=row, field="emotion")
        if (split := _USAGES.get(fields[usage].strip(), -1)) < 0:
            problem = f"unknown Usage value '{_show(fields[usage])}' (expected one of {', '.join(SPLITS)})"
            return labels, splits, pixel_fields, FERDataError(file, problem, row=row, field="Usage")
        labels.append(label)
        splits.append(split)
        pixel_fields.append(fields[pixels])
    return labels, splits, pixel_fields, None


def _unquote(field: bytes) -> bytes:
    return field[1:-1] if len(field) >= 2 and field[0] == field[-1] == ord('"') else field


def _show(field: bytes) -> str:
    return field[:40].decode("utf-8", errors="replace")


def _parse_pixels(file: str, fields: list[bytes], pool: ThreadPoolExecutor) -> np.ndarray:
    """(N, NUM_PIXELS) uint8 from the pixel fields; the first bad field raises, naming its row and pixel."""
    out = np.empty((len(fields), NUM_PIXELS), dtype=np.uint8)
    starts = range(0, len(fields), _CHUNK_ROWS)
    blocks = pool.map(lambda s: _parse_block(fields[s : s + _CHUNK_ROWS], out[s:]), starts)
    for start, good in zip(starts, blocks, strict=True):
        if not good:  # find the first bad field of the block, one field at a time
            for row, field in enumerate(fields[start : start + _CHUNK_ROWS], start=start + 1):
                if problem := _pixel_problem(field):
                    raise FERDataError(file, problem, row=row, field="pixels")
            raise FERDataError(file, "unreadable pixel values", row=start + 1, field="pixels")
    return out


def _parse_block(fields: list[bytes], out: np.ndarray) -> bool:
    """Parse pixel fields into ``out[:len(fields)]`` all at once; ``False`` (nothing written) if one is bad.

    A pixel is a run of one to three digits between spaces; its value is assembled at its last
    digit from the two bytes before, so no Python runs per pixel.
    """
    joined = b" ".join([b"  ", *fields, b""])  # three spaces before the first field, one after the last
    a = np.frombuffer(joined, dtype=np.uint8)
    d = a - np.uint8(ord("0"))
    digit = d < 10
    d *= digit  # digit values, 0 on spaces
    ends = np.flatnonzero(digit[:-1] & ~digit[1:])
    values = d[ends] + d[ends - 1] * np.uint16(10) + d[ends - 2] * digit[ends - 1] * np.uint16(100)
    bounds = np.cumsum([3] + [len(f) + 1 for f in fields])  # field i is joined[bounds[i]:bounds[i + 1] - 1]
    good = (
        np.count_nonzero(digit) + np.count_nonzero(a == ord(" ")) == a.size  # only digits and spaces
        and not (digit[3:] & digit[2:-1] & digit[1:-2] & digit[:-3]).any()  # no run of four digits
        and not (values > 255).any()
        and (np.diff(np.searchsorted(ends, bounds)) == NUM_PIXELS).all()  # NUM_PIXELS pixels a field
    )
    if good:
        out[: len(fields)] = values.reshape(-1, NUM_PIXELS)
    return bool(good)


def _pixel_problem(field: bytes) -> str | None:
    """What is wrong with a pixel field (the rules of :func:`_parse_block`, one pixel at a time), or ``None``."""
    tokens = [t for t in field.split(b" ") if t]
    for index, token in enumerate(tokens, start=1):
        if not (len(token) <= 3 and token.isdigit() and int(token) <= 255):
            return f"pixel {index} is '{_show(token[:24])}', not an integer in 0-255"
    if len(tokens) != NUM_PIXELS:
        return f"expected {NUM_PIXELS} pixel values, found {len(tokens)}" + ("" if tokens else " (the field is empty)")
    return None
