"""FER2013 loading, validation and caching; ``python -m fer_utils.data FILE`` checks a download.

Three layouts are read into one :class:`FERData`:

* ``fer2013.csv`` / ``fer2013.csv.gz``: the original Kaggle file, header
  ``emotion,pixels,Usage``, one face per row as 2,304 space-separated integers.
* ``icml_face_data.csv``: the Kaggle re-upload, columns ``emotion, Usage, pixels``
  (note the leading spaces).
* An image folder ``train/<emotion>/*.png`` and ``test/<emotion>/*.png`` (48x48 pixels).
  This layout has lost the PublicTest / PrivateTest distinction: both become one
  ``"Test"`` split, so it cannot reproduce the benchmark's validation/test protocol.

A CSV is read by :mod:`fer_utils.data.csv_reader`. Parsed arrays are cached under :func:`fer_utils.paths.cache_dir`,
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
from pathlib import Path
from typing import Any

import numpy as np

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES, FACE_SIZE, SPLITS
from fer_utils.data import synthetic
from fer_utils.data.csv_reader import parse_csv
from fer_utils.data.dataset import (
    CANONICAL_MD5,
    FOLDER_SPLIT_DIRS,
    FOLDER_TEST_SPLIT,
    IMAGE_SUFFIXES,
    FERData,
    FERDataError,
    make_data,
)
from fer_utils.files import atomic_write

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bumped whenever the cached arrays' layout or meaning changes, invalidating old caches."""

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
    data = make_data(
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
            data = make_data(
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
        print("synthetic:   yes, drawn by fer_utils.data.synthetic (not real faces)")
    missing = [s for s in SPLITS if s not in data.splits]
    if missing and data.file_format != "folder":
        print(f"missing splits: {', '.join(missing)}")
    return 0
