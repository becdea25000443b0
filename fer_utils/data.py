"""FER2013 loading, validation and caching; ``python -m fer_utils.data FILE`` checks a download.

Three layouts are read into one :class:`FERData`:

* ``fer2013.csv`` / ``fer2013.csv.gz``: the original Kaggle file, header
  ``emotion,pixels,Usage``, one face per row as 2,304 space-separated integers.
* ``icml_face_data.csv``: the Kaggle re-upload, columns ``emotion, Usage, pixels``
  (note the leading spaces).
* An image folder ``train/<emotion>/*.png`` and ``test/<emotion>/*.png`` (48x48 pixels).
  This layout has lost the PublicTest / PrivateTest distinction: both become one
  ``"Test"`` split, so it cannot reproduce the benchmark's validation/test protocol.

A CSV is read by :mod:`fer_utils.csv_reader`. Parsed arrays are cached under :func:`fer_utils.paths.cache_dir`,
one ``.npz`` per source path holding the size and modification time it was parsed
at, so a repeated load costs a ``stat`` and one ``np.load``.

Every problem in a file raises :class:`FERDataError` naming the file, the data row
and the field: nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils import CLASS_NAMES, FACE_SIZE, NUM_CLASSES, SPLITS, paths, synthetic
from fer_utils.files import atomic_write

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

CANONICAL_MD5 = "f8428a1edbd21e88f42c73edd2a14f95"
"""MD5 of the original 35,887-row ``fer2013.csv`` (the checksum torchvision publishes)."""

NUM_PIXELS = FACE_SIZE * FACE_SIZE
"""Pixel values per CSV row."""

FOLDER_TEST_SPLIT = "Test"
"""Split name used by the image-folder layout, which merges PublicTest and PrivateTest."""

FOLDER_SPLIT_DIRS: dict[str, str] = {"train": "Training", "test": FOLDER_TEST_SPLIT}
"""Sub-folder of an image-folder data set -> split name."""

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".tif", ".tiff")
"""File suffixes (lower case) read as images, here and by the live pipeline's image sources."""

CACHE_VERSION = 2
"""Bumped whenever the cached arrays' layout or meaning changes, invalidating old caches."""

_SPLIT_ORDER: tuple[str, ...] = SPLITS + (FOLDER_TEST_SPLIT,)


def split_sort_key(name: str) -> tuple[int, str]:
    """Sort key for split names: Training, PublicTest, PrivateTest, Test, then any other name alphabetically."""
    return (_SPLIT_ORDER.index(name), "") if name in _SPLIT_ORDER else (len(_SPLIT_ORDER), name)


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

    def __init__(
        self, file: str | os.PathLike[str], problem: str, *, row: int | None = None, field: str | None = None
    ) -> None:
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
        return (
            f"FERData(n={len(self)}, splits={self.splits}, source='{self.source}', "
            f"file_format='{self.file_format}', content_md5='{self.content_md5}', "
            f"is_canonical={self.is_canonical}, is_synthetic={self.is_synthetic})"
        )

    @property
    def splits(self) -> tuple[str, ...]:
        """Splits present, in canonical order (see :func:`split_sort_key`)."""
        return tuple(sorted(np.unique(self.usage).tolist(), key=split_sort_key))

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
            raise FERDataError(
                self.source,
                f"split '{name}' is not in this data; splits present: {', '.join(self.splits)}{extra}",
                field="Usage",
            )
        return replace(
            self, images=self.images[mask], labels=self.labels[mask], usage=self.usage[mask], index=self.index[mask]
        )

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
    from .csv_reader import parse_csv

    data = parse_csv(source)
    logger.info("parsed %s: %d rows in %.2f s", source, len(data), time.perf_counter() - start)
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
        found = synthetic.ensure_default_dataset()
        logger.warning(
            "No FER2013 data found (pass a path, set $%s or put fer2013.csv under %s); "
            "using the SYNTHETIC data set %s: results say nothing about real faces.",
            paths.DATA_ENV_VAR,
            paths.DATA_DIR,
            found,
        )
    return read_fer2013(found, use_cache=use_cache)


# --------------------------------------------------------------------------- image folders


def _read_folder(root: Path, *, use_cache: bool) -> FERData:
    """Read the ``train/<emotion>/*.png``, ``test/<emotion>/*.png`` layout."""
    logger.warning(
        "%s is an image-folder data set: it merges PublicTest and PrivateTest into one '%s' split, "
        "so validation and test data cannot be told apart; prefer fer2013.csv.",
        root,
        FOLDER_TEST_SPLIT,
    )
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
    images = np.empty((len(files), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    content = hashlib.md5()
    for i, (rel, *_) in enumerate(files):
        path = root / rel
        raw = path.read_bytes()
        content.update(rel.encode() + b"\0" + raw)
        img = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FERDataError(path, "not a readable image", field="pixels")
        if img.shape != (FACE_SIZE, FACE_SIZE):
            raise FERDataError(
                path, f"image is {img.shape[1]}x{img.shape[0]} pixels, expected {FACE_SIZE}x{FACE_SIZE}", field="pixels"
            )
        images[i] = img
    logger.info("read %d images from %s in %.2f s", len(files), root, time.perf_counter() - start)
    data = _make_data(
        root,
        images,
        np.array([f[1] for f in files], dtype=np.int64),
        np.array([f[2] for f in files]),
        content.hexdigest(),
        "folder",
    )
    if use_cache:
        _cache_store(data, stat_key)
    return data


def _list_folder(root: Path) -> tuple[list[tuple[str, int, str, os.stat_result]], list[str]]:
    """Image files as (relative path, label, split, stat), in split, label, name order."""
    class_of = {name.lower(): k for k, name in enumerate(CLASS_NAMES)}
    split_dirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    present = [(FOLDER_SPLIT_DIRS[k], split_dirs[k]) for k in FOLDER_SPLIT_DIRS if k in split_dirs]
    if not present:
        raise FERDataError(
            root,
            "not a FER2013 file or image folder: expected sub-folders "
            f"{' and '.join(f'{k}/' for k in FOLDER_SPLIT_DIRS)} holding one folder per emotion "
            f"({', '.join(n.lower() for n in CLASS_NAMES)})",
        )
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
                raise FERDataError(
                    p,
                    f"folder name '{p.name}' is not an emotion name (expected one of "
                    f"{', '.join(n.lower() for n in CLASS_NAMES)})",
                    field="emotion",
                )
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


def _make_data(
    source: Path,
    images: np.ndarray,
    labels: np.ndarray,
    usage: np.ndarray,
    content_md5: str,
    file_format: str,
    index: np.ndarray | None = None,
) -> FERData:
    return FERData(
        images=images,
        labels=labels,
        usage=usage,
        index=np.arange(len(labels), dtype=np.int64) if index is None else index,
        source=source,
        content_md5=content_md5,
        file_format=file_format,
        is_canonical=content_md5 == CANONICAL_MD5,
        is_synthetic=synthetic.is_synthetic(source),
    )


def _cache_file(source: Path, stat_key: dict[str, Any]) -> tuple[Path, str]:
    """One cache file per source path, and the key that says whether it still describes the source."""
    key = json.dumps({"version": CACHE_VERSION, **stat_key}, sort_keys=True)
    return paths.cache_dir() / f"{hashlib.md5(str(source).encode()).hexdigest()}.npz", key


def _cache_lookup(source: Path, stat_key: dict[str, Any]) -> FERData | None:
    npz, key = _cache_file(source, stat_key)
    try:
        with np.load(npz, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            data = _make_data(
                source,
                z["images"],
                z["labels"],
                z["usage"],
                str(z["content_md5"]),
                str(z["file_format"]),
                index=z["index"],
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable cache file %s (%s)", npz, exc)
        return None
    logger.info("loaded %s from cache %s", source, npz)
    return data


def _cache_store(data: FERData, stat_key: dict[str, Any]) -> None:
    npz, key = _cache_file(data.source, stat_key)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so np.savez does not append ".npz"
            np.savez(
                f,
                key=np.array(key),
                images=data.images,
                labels=data.labels,
                usage=data.usage,
                index=data.index,
                content_md5=np.array(data.content_md5),
                file_format=np.array(data.file_format),
            )

    try:
        atomic_write(npz, write)  # replaces the arrays of the path's previous content
    except OSError as exc:
        logger.warning("could not write the parsed-array cache %s (%s); the next load parses again", npz, exc)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Check a FER2013 download: rows per split and class, content MD5, canonical or not.

    Returns:
        0 when the file reads as FER2013, 2 when it does not (the error goes to stderr).
    """
    summary = (main.__doc__ or "").partition("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m fer_utils.data", description=summary)
    parser.add_argument("file", help="fer2013.csv, fer2013.csv.gz, icml_face_data.csv or an image folder")
    parser.add_argument("--no-cache", action="store_true", help="parse the file even if a cached copy exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        data = read_fer2013(paths.resolve_cli(args.file), use_cache=not args.no_cache)
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
        print(
            f"canonical:   NO, this is not the canonical fer2013.csv (MD5 {CANONICAL_MD5}); results on it "
            "are not comparable with published FER2013 numbers"
        )
    if data.is_synthetic:
        print("synthetic:   yes, drawn by fer_utils.synthetic (not real faces)")
    missing = [s for s in SPLITS if s not in data.splits]
    if missing and data.file_format != "folder":
        print(f"missing splits: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    # Run the imported module's main: fer_utils.csv_reader raises fer_utils.data.FERDataError, which
    # is not this __main__ module's class of the same name.
    from fer_utils.data import main as package_main

    sys.exit(package_main())
