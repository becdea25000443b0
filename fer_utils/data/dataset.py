"""The FER2013 data container: :class:`FERData`, :class:`FERDataError` and the split names.

Every reader (:mod:`fer_utils.data.csv_reader`, the image-folder reader and the cache in
:mod:`fer_utils.data.loading`) builds its result with :func:`make_data`, and every problem in
a file raises :class:`FERDataError` naming the file, the data row and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils.constants import CLASS_NAMES, FACE_SIZE, NUM_CLASSES, SPLITS
from fer_utils.data import synthetic

if TYPE_CHECKING:
    import pandas as pd

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
        is_synthetic: The file was drawn by :mod:`fer_utils.data.synthetic`.
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


def make_data(
    source: Path,
    images: np.ndarray,
    labels: np.ndarray,
    usage: np.ndarray,
    content_md5: str,
    file_format: str,
    index: np.ndarray | None = None,
) -> FERData:
    """A :class:`FERData` with the flags derived from its source: canonical by content MD5, synthetic by path."""
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
