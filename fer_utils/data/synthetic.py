"""Procedurally drawn FER2013-format faces: the embedded default data set.

When no FER2013 file is present (see :func:`fer_utils.paths.find_data_file`),
:func:`fer_utils.data.load_dataset` falls back to :func:`ensure_default_dataset`,
which writes ``data/interim/synthetic/fer2013_synthetic.csv`` on first use. Every
notebook, test and smoke run therefore works offline and without the real data.
These images are **not FER2013**: numbers measured on them say that the code
runs and learns, nothing about facial-expression recognition.

How a face is drawn (:func:`draw_face`)
    A cartoon face is drawn at 4x resolution with OpenCV (head, hair, neck,
    eyes, brows, nose, nasolabial folds, lips), shaded, then rotated, scaled and
    shifted, composited over a background, lit and reduced to ``size x size``
    with area averaging (which anti-aliases the drawing). The expression sets
    the geometry, following the facial action units of each emotion:

    ==========  ==============================================================
    class       geometry
    ==========  ==============================================================
    Angry       brows lowered and drawn together (a V), narrowed eyes, pressed lips
    Disgust     lowered brows, squinted eyes, wrinkled nose, upper lip raised on
                one side (asymmetric), deep nasolabial folds
    Fear        raised brows pulled together, wide eyes, stretched, slightly open mouth
    Happy       wide, upturned closed mouth, narrowed eyes, smile folds
    Sad         inner brow ends raised, downturned mouth, drooping eyes
    Surprise    raised arched brows, wide eyes, open round mouth
    Neutral     flat brows, relaxed eyes, flat closed mouth
    ==========  ==============================================================

    Each face interpolates from Neutral towards its class by a random
    *intensity* and then jitters every parameter, so weak expressions look
    neutral and neighbouring classes (Fear/Surprise, Angry/Disgust, Sad/Neutral)
    overlap a little, as in real data. Identity (face shape, feature positions,
    skin tone, hair), pose (rotation, translation, scale), lighting (gradient,
    brightness, contrast, gamma), background and sensor noise vary per image.

Determinism
    Image ``i`` of class ``c`` in split ``s`` is drawn from its own generator,
    ``np.random.default_rng([seed, s, c, i])`` (``s`` the split's index in
    ``SPLITS``), so it does not depend on the
    other counts (adding Training images leaves PublicTest unchanged). Rows are
    written in split order (Training, PublicTest, PrivateTest) and shuffled
    within a split by a generator seeded from ``seed`` and the split. The same
    seed and counts give the same bytes.

Class balance
    :data:`DEFAULT_N_PER_CLASS` follows FER2013's Training class frequencies
    (Disgust is ~1.5% of the rows, Happy ~25%) so class-weight and per-class
    metric notebooks show the effect they exist for. A plain ``int`` per split
    gives a balanced split.

Learnability
    The faces are meant to be clearly learnable but not trivial: a small CNN
    trained from scratch gets most of them right and stays short of perfect.
    Most errors are weak expressions taken for Neutral, and the rare Disgust.

Command line: ``python -m fer_utils.data synthetic [PATH] [--seed N] [--base N] [--balanced]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from fer_utils import paths
from fer_utils.constants import NUM_CLASSES, SPLITS
from fer_utils.data.face_drawing import draw_face
from fer_utils.files import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bumped whenever the drawing changes, so :func:`ensure_default_dataset` regenerates."""

FER2013_TRAINING_COUNTS: tuple[int, ...] = (3995, 436, 4097, 7215, 4830, 3171, 4965)
"""Images per class (label order) in FER2013's Training split; shapes the default imbalance."""

DEFAULT_SEED = 0

DEFAULT_BASE_PER_CLASS: Mapping[str, int] = MappingProxyType(
    # 300 per class on average gives 2,100 Training rows: small enough for the smoke
    # run to see several epochs on a CPU. 60 per class (420 rows) per test split keeps
    # evaluation short while an 80% accuracy still has a standard error of ~2 points.
    {"Training": 300, "PublicTest": 60, "PrivateTest": 60}
)


def fer2013_shaped_counts(base_per_class: int) -> tuple[int, ...]:
    """Per-class counts with FER2013's Training class frequencies.

    Args:
        base_per_class: The mean number of images per class; the total is about
            ``base_per_class * NUM_CLASSES``.

    Returns:
        ``NUM_CLASSES`` counts in label order, each at least 1 when the base is
        positive (so every class is present), e.g. 300 -> (292, 32, 300, 528, 353, 232, 363).
    """
    if base_per_class < 0:
        raise ValueError(f"base_per_class must be >= 0, got {base_per_class}")
    if base_per_class == 0:
        return (0,) * NUM_CLASSES
    total = sum(FER2013_TRAINING_COUNTS)
    return tuple(max(1, round(base_per_class * NUM_CLASSES * c / total)) for c in FER2013_TRAINING_COUNTS)


DEFAULT_N_PER_CLASS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {split: fer2013_shaped_counts(n) for split, n in DEFAULT_BASE_PER_CLASS.items()}
)
"""Default images per class per split: 2,100 / 420 / 420 rows, FER2013-shaped (few Disgust)."""

DEFAULT_PATH: Path = paths.INTERIM_DIR / "synthetic" / "fer2013_synthetic.csv"

SIDECAR_SUFFIX = ".synthetic.json"
CSV_HEADER = "emotion,pixels,Usage"
_NOTE = "procedurally drawn faces, not FER2013"

# ----------------------------------------------------------------------------------------------
# CSV writing
# ----------------------------------------------------------------------------------------------


def _normalise_counts(n_per_class: Mapping[str, int | Sequence[int]] | None) -> dict[str, list[int]]:
    """``n_per_class`` -> {split: [count per class]} for the splits with rows, in SPLITS order."""
    given: Mapping[str, Any] = DEFAULT_N_PER_CLASS if n_per_class is None else n_per_class
    unknown = [s for s in given if s not in SPLITS]
    if unknown:
        raise ValueError(f"n_per_class: unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    out: dict[str, list[int]] = {}
    for split in SPLITS:
        if split not in given:
            continue
        v = given[split]
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            counts = [int(v)] * NUM_CLASSES
        elif isinstance(v, Sequence) and not isinstance(v, str) and len(v) == NUM_CLASSES:
            counts = [int(c) for c in v]
        else:
            raise ValueError(
                f"n_per_class['{split}']: expected an int or {NUM_CLASSES} ints (one per class), got {v!r}"
            )
        if any(c < 0 for c in counts):
            raise ValueError(f"n_per_class['{split}']: counts must be >= 0, got {counts}")
        if sum(counts):
            out[split] = counts
    return out


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The metadata file next to a synthetic CSV: ``<path>.synthetic.json``."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


# "0 " .. "255 " as fixed-width byte strings (NUL-padded): formatting a row is then one
# vectorised lookup instead of 2304 str() calls, which would dominate generation time.
_PIXEL_TOKENS = np.array([f"{v} ".encode("ascii") for v in range(256)], dtype="S4")


def _pixels_text(img: np.ndarray) -> str:
    """uint8 image -> "p0 p1 ... pN" (space-separated decimal, row-major)."""
    return _PIXEL_TOKENS[img.ravel()].tobytes().replace(b"\x00", b"")[:-1].decode("ascii")


def make_synthetic_csv(
    path: str | os.PathLike[str],
    *,
    n_per_class: Mapping[str, int | Sequence[int]] | None = None,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write a FER2013-format CSV of synthetic faces, plus its ``.synthetic.json`` sidecar.

    The CSV has the header ``emotion,pixels,Usage``, LF line endings, one row per
    image: the label, 2304 space-separated ints 0-255 (48x48, row-major), the split.
    Rows come in split order (Training, PublicTest, PrivateTest), shuffled within a split.

    Args:
        path: Destination CSV; relative paths are taken from the repository root.
        n_per_class: ``{split: count}``: an int gives that many images of every class, a
            sequence of ``NUM_CLASSES`` ints gives one count per class (label order).
            Splits left out get no rows. ``None`` means :data:`DEFAULT_N_PER_CLASS`.
        seed: Non-negative seed; the same seed and counts give the same bytes.

    Returns:
        The CSV path (absolute).

    Raises:
        ValueError: an unknown split, a malformed or negative count, or a negative seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    counts = _normalise_counts(n_per_class)
    dest = paths.resolve(path)

    lines = [CSV_HEADER]
    for split_idx, split in enumerate(SPLITS):
        if split not in counts:
            continue
        rows: list[str] = []
        for label, n in enumerate(counts[split]):
            for i in range(n):
                img = draw_face(label, np.random.default_rng([seed, split_idx, label, i]))
                rows.append(f"{label},{_pixels_text(img)},{split}")
        # A fixed tag keeps the shuffle stream apart from any image stream.
        order = np.random.default_rng([seed, split_idx, 0x5EED]).permutation(len(rows))
        lines.extend(rows[j] for j in order)
    data = ("\n".join(lines) + "\n").encode("ascii")

    meta = {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_per_class": counts,
        "n_rows": len(lines) - 1,
        "csv_md5": hashlib.md5(data).hexdigest(),
        "note": _NOTE,
    }
    # Sidecar first: a crash in between can leave a sidecar without its CSV (regenerated by
    # ensure_default_dataset), never a synthetic CSV that passes for real FER2013.
    atomic_write_json(sidecar_path(dest), meta)
    atomic_write_bytes(dest, data)
    logger.info("wrote %d synthetic rows (seed %d) to %s", meta["n_rows"], seed, dest)
    return dest


def is_synthetic(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` was written by :func:`make_synthetic_csv` (its sidecar exists)."""
    return sidecar_path(paths.resolve(path)).is_file()


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar metadata of a synthetic CSV.

    Raises:
        FileNotFoundError: no sidecar (not a synthetic file).
        ValueError: the sidecar is not valid JSON.
    """
    side = sidecar_path(paths.resolve(path))
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{side}: not valid JSON ({err})") from err


def _default_is_current(path: Path) -> bool:
    if not path.is_file() or not is_synthetic(path):
        return False
    try:
        meta = read_sidecar(path)
    except ValueError:
        return False
    expected = {"version": GENERATOR_VERSION, "seed": DEFAULT_SEED, "n_per_class": _normalise_counts(None)}
    if any(meta.get(k) != v for k, v in expected.items()):
        return False
    # Also catches a truncated or hand-edited CSV; hashing it is cheap next to regenerating.
    return meta.get("csv_md5") == hashlib.md5(path.read_bytes()).hexdigest()


def ensure_default_dataset() -> Path:
    """Return :data:`DEFAULT_PATH`, generating it first if missing or stale.

    Stale means the sidecar is missing or its generator version, seed or counts differ
    from :data:`GENERATOR_VERSION`, :data:`DEFAULT_SEED` and :data:`DEFAULT_N_PER_CLASS`,
    or the CSV's MD5 no longer matches the one recorded. Generation takes a few seconds.
    """
    if _default_is_current(DEFAULT_PATH):
        return DEFAULT_PATH
    logger.info("generating the default synthetic data set at %s", DEFAULT_PATH)
    return make_synthetic_csv(DEFAULT_PATH, n_per_class=None, seed=DEFAULT_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fer_utils.data synthetic [PATH] [--seed N] [--base N] [--balanced]``."""
    parser = argparse.ArgumentParser(prog="python -m fer_utils.data synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=None, help=f"output CSV (default {DEFAULT_PATH})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--base", type=int, default=None, help="mean images per class in Training; each test split gets a fifth"
    )
    parser.add_argument("--balanced", action="store_true", help="same count for every class")
    args = parser.parse_args(argv)
    n_per_class: dict[str, int | Sequence[int]] | None = None
    if args.base is not None or args.balanced:
        base = args.base if args.base is not None else DEFAULT_BASE_PER_CLASS["Training"]
        bases = {"Training": base, "PublicTest": math.ceil(base / 5), "PrivateTest": math.ceil(base / 5)}
        n_per_class = {s: (b if args.balanced else fer2013_shaped_counts(b)) for s, b in bases.items()}
    if args.path is None and n_per_class is None and args.seed == DEFAULT_SEED:
        out = ensure_default_dataset()
    else:
        out = make_synthetic_csv(args.path or DEFAULT_PATH, n_per_class=n_per_class, seed=args.seed)
    print(out)
    return 0
