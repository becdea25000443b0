"""Paths built from the repository root, so notebooks work from any working directory.

Every location the project reads or writes is defined here once. Data files are
never edited; generated files go to ``reports/`` and ``models/``; intermediate
files (parsed-array caches, the synthetic data set) go to ``data/interim/``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent
DATA_DIR: Path = REPO_ROOT / "data"
INTERIM_DIR: Path = DATA_DIR / "interim"
REPORTS_DIR: Path = REPO_ROOT / "reports"
MODELS_DIR: Path = REPO_ROOT / "models"
CONFIGS_DIR: Path = REPO_ROOT / "configs"
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
JUPYTER_CONFIG_DIR: Path = REPO_ROOT / "jupyter_config"  # server settings for `make lab` and the browser tests

DATA_ENV_VAR = "FER2013_CSV"
"""Environment variable naming the FER2013 file (or image folder) to use."""

CACHE_ENV_VAR = "FER_UTILS_CACHE"
"""Environment variable overriding where parsed arrays are cached."""

CANDIDATE_DATA_FILES: tuple[str, ...] = ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv")
"""File names looked for under ``data/`` when no path is given."""


def cache_dir() -> Path:
    """Folder for parsed-array caches: ``$FER_UTILS_CACHE`` or ``data/interim/cache``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else INTERIM_DIR / "cache"


def find_data_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate the FER2013 data to use.

    Order: the explicit ``path`` (relative paths are taken from the repository
    root, so papermill's working directory does not matter), then
    ``$FER2013_CSV``, then the standard file names under ``data/``.

    Args:
        path: A CSV, CSV.gz or image-folder path; ``None`` or ``""`` means look it up.

    Returns:
        The path, or ``None`` when no FER2013 data is present (callers then fall
        back to the synthetic data set).

    Raises:
        FileNotFoundError: ``path`` or ``$FER2013_CSV`` is given but does not exist.
    """
    for given, origin in ((path, "argument"), (os.environ.get(DATA_ENV_VAR), f"${DATA_ENV_VAR}")):
        if given is None or str(given) == "":
            continue
        p = Path(given).expanduser()
        if not p.is_absolute():
            p = REPO_ROOT / p
        if not p.exists():
            raise FileNotFoundError(f"FER2013 data not found: {p} (from {origin})")
        return p
    for name in CANDIDATE_DATA_FILES:
        p = DATA_DIR / name
        if p.exists():
            return p
    return None


def resolve(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` absolute, taking relative paths from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def resolve_cli(path: str | os.PathLike[str]) -> Path:
    """An input path given on a command line, made absolute.

    A relative path that exists under the working directory is taken from there
    (what a shell user means); otherwise from the repository root (the
    project's rule, which keeps papermill and ``make`` independent of the
    working directory).
    """
    p = Path(path).expanduser()
    return p.resolve() if not p.is_absolute() and p.exists() else resolve(p)
