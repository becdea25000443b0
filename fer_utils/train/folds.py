"""Out-of-sample probabilities for every Training face, by k-fold cross-fitting.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021;
:func:`fer_utils.evaluate.label_issue_scores`) needs each face scored by a model that
never trained on it. :func:`crossfit` splits the Training split into ``folds`` folds
(:func:`fer_utils.train.engine.fold_assignment`, fixed by ``FOLD_SEED``, the folds the
engine holds out), trains one run of the recipe per fold with that fold held out
(``holdout_folds``, ``holdout_fold``), and predicts each fold's faces with its own
run's ``best.pt``. Under ``out_dir`` it writes:

- ``fold_0/`` ... ``fold_{k-1}/``: ordinary engine runs (``config.json``,
  ``summary.csv``, ``last.pt``, ``best.pt``). An interrupted fold resumes from its
  ``last.pt``; a finished one (``best.pt``, and ``summary.csv`` rows reaching
  ``epochs``) is reused, never trained again;
- ``oos_training.npz`` (:data:`CACHE_FILE`): ``probs`` (N, C) float32, ``labels``,
  ``index`` and ``fold`` (N,) int64, in Training-split order, and its ``record``;
- ``oos_training.json``: that record, to read: the data's content MD5, the recipe
  (``TrainConfig`` without the fields of where and how a run executes,
  ``recipe.RUN_FIELDS``), the folds, each fold's accuracy on its held-out faces and
  their mean (the accuracy of the network that scored the faces), and timing.

:func:`load_crossfit` returns a cached result only for the same data, recipe and folds.

What the recipe may and may not change:

- ``limit_train`` (a smoke run) shrinks what each fold trains on; every Training face
  is still scored, by the one run that never saw it;
- ``label_corrections`` change what the runs learn, not ``labels``: those are the data
  file's, the labels confident learning judges;
- with ``label_set: ferplus`` C is 8 (Contempt as class 7) and each run trains on the
  FER+ vote distributions of its folds;
- ``init_checkpoint`` and ``continue_from`` are refused: weights from another run may
  have trained on the faces a fold holds out;
- one process: cross-fitting is not run under ``torchrun``.

``python -m fer_utils.train crossfit --config configs/crossfit.yaml --data FILE [--folds 5]``
prints one JSON line: the cache's path, the per-fold and mean held-out accuracy, seconds.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import numbers
import os
import signal
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils import paths
from fer_utils.evaluate.predictions import predict
from fer_utils.files import atomic_write, atomic_write_json, to_jsonable
from fer_utils.model.checkpoint import load_model
from fer_utils.train.engine import FOLD_SEED, fit, fold_assignment
from fer_utils.train.recipe import RUN_FIELDS, TrainConfig, config_from_args

if TYPE_CHECKING:
    from fer_utils.data import FERData

logger = logging.getLogger(__name__)

CACHE_FILE = "oos_training.npz"
"""The cached result's name under the cross-fit's ``out_dir``; its record is beside it as ``.json``."""

FORMAT = 1
"""Version of the cache's layout; a cache of another version is computed again."""

_HOLDOUT_FIELDS = frozenset({"holdout_folds", "holdout_fold"})  # set per fold by crossfit, never by the recipe
_ARRAYS = ("probs", "labels", "index", "fold")


@dataclass(frozen=True, eq=False)
class CrossFit:
    """Out-of-sample class probabilities for every face of the Training split, and how they were made.

    Attributes:
        probs: float32 (N, C): row i from the run that held face i out; rows sum to 1. C is the
            recipe's number of classes (FER2013's 7, or FER+'s 8).
        labels: int64 (N,): the faces' labels as the data file gives them (no ``label_corrections``).
        index: int64 (N,): each face's ``FERData.index`` (its position among the file's data rows).
        fold: int64 (N,): the fold (0..folds-1) that held each face out.
        record: The cache's key (``data_md5``, ``fold_seed``, ``folds``, ``recipe``) and summary
            (``fold_accuracy``, ``mean_accuracy``, ``runs``, timing), as written to the ``.json``.
        path: The cache file (``.npz``).
    """

    probs: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    fold: np.ndarray
    record: dict[str, Any]
    path: Path

    @property
    def folds(self) -> int:
        return int(self.record["folds"])

    @property
    def fold_accuracy(self) -> list[float]:
        """Accuracy of each fold's run on the faces it held out (argmax of ``probs`` against ``labels``)."""
        return [float(a) for a in self.record["fold_accuracy"]]

    @property
    def mean_accuracy(self) -> float:
        """Mean of :attr:`fold_accuracy`: the accuracy of the network that scored the faces."""
        return float(self.record["mean_accuracy"])

    @property
    def record_path(self) -> Path:
        """The JSON copy of :attr:`record`, beside the cache."""
        return self.path.with_suffix(".json")

    def probs_for(self, data: FERData) -> np.ndarray:
        """The out-of-sample probabilities of ``data``'s faces (e.g. a Training split), in its order.

        Raises:
            ValueError: a face of ``data`` (named by its file row) that was not cross-fitted.
        """
        row_of = {int(i): k for k, i in enumerate(self.index)}
        missing = [int(i) for i in data.index if int(i) not in row_of]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(f"{self.path}: file row {missing[0] + 1}{more} was not cross-fitted")
        return self.probs[[row_of[int(i)] for i in data.index]]


# ---------------------------------------------------------------- the cross-fit


def crossfit(
    cfg: TrainConfig, folds: int, out_dir: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None
) -> CrossFit:
    """Out-of-sample probabilities for every Training face: one run of ``cfg`` per fold, cached.

    A cache of the same data, recipe and folds is returned as it is (with ``cfg.resume``, the
    default); otherwise each fold's run is trained, resumed or reused (module docstring), its
    held-out faces are predicted with its ``best.pt`` at the recipe's test-time views
    (``cfg.tta``), and the result is written atomically.

    Args:
        cfg: The recipe of every fold's run; its ``out_dir`` is not used (``out_dir`` is), and
            ``holdout_folds`` must be 0 (set here, per fold).
        folds: Number of folds, at least 2 and at most the number of Training faces.
        out_dir: Folder of the folds' runs (``fold_K/``) and the cache; relative paths are taken
            from the repository root.
        cache: Where to write the result (relative paths from the repository root); default
            ``out_dir / CACHE_FILE``.

    Returns:
        The :class:`CrossFit`, also saved at ``cache`` and beside it as JSON.

    Raises:
        ValueError: a bad ``folds``; a recipe with ``holdout_folds``, ``init_checkpoint`` or
            ``continue_from``; a fold folder holding a run of other data or another recipe (naming
            the file and the field); anything :func:`fer_utils.train.fit` refuses.
        fer_utils.data.FERDataError: bad data or a missing split.
    """
    from fer_utils.data import load_dataset

    folds = _check_request(cfg, folds)
    out = paths.resolve(out_dir)
    path = out / CACHE_FILE if cache is None else paths.resolve(cache)
    data = load_dataset(cfg.data or None)
    if cfg.resume and path.is_file():
        try:
            return load_crossfit(path, data, cfg, folds=folds)
        except ValueError as err:
            logger.info("%s; cross-fitting again", err)
    started = time.perf_counter()
    training = data.split(cfg.train_split)
    if folds > len(training):
        raise ValueError(
            f"crossfit field 'folds' is {folds}; {data.source} has {len(training)} {cfg.train_split} faces"
        )
    assignment = fold_assignment(len(training), folds)
    probs = np.zeros((len(training), len(cfg.class_names())), dtype=np.float32)
    runs: list[dict[str, Any]] = []
    predict_seconds = 0.0
    for f in range(folds):
        held = assignment == f
        fold_cfg = dataclasses.replace(cfg, holdout_folds=folds, holdout_fold=f, out_dir=str(out / f"fold_{f}"))
        run_dir = _train_fold(fold_cfg, data.content_md5)
        t0 = time.perf_counter()
        probs[held], best_epoch = _predict_fold(run_dir / "best.pt", training.images[held], cfg)
        predict_seconds += time.perf_counter() - t0
        accuracy = float(np.mean(probs[held].argmax(1) == training.labels[held]))
        runs.append(_run_info(run_dir, f, int(held.sum()), accuracy, best_epoch))
        logger.info("fold %d/%d: accuracy %.4f on its %d held-out faces", f + 1, folds, accuracy, held.sum())
    timing = {"seconds": time.perf_counter() - started, "predict_seconds": predict_seconds}
    record = _record(cfg, folds, data, runs, timing)
    result = CrossFit(
        probs, training.labels.astype(np.int64), training.index.astype(np.int64), assignment, record, path
    )
    save_crossfit(result)
    return result


def _check_request(cfg: TrainConfig, folds: int) -> int:
    """``folds`` as an int, after refusing what cannot be cross-fitted."""
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ValueError(f"crossfit field 'folds' is {folds!r}; it must be an integer of at least 2")
    if cfg.holdout_folds:
        raise ValueError(
            f"TrainConfig field 'holdout_folds' is {cfg.holdout_folds}; crossfit sets it per fold: leave it 0"
        )
    for name in ("init_checkpoint", "continue_from"):
        if getattr(cfg, name):
            raise ValueError(
                f"TrainConfig field '{name}' is {getattr(cfg, name)!r}; those weights may have trained on the faces "
                "a fold holds out: cross-fitting starts every fold from the recipe's own initialisation"
            )
    return int(folds)


def recipe_key(cfg: TrainConfig) -> dict[str, Any]:
    """What the cross-fit's runs learn from ``cfg``: its fields but where and how a run executes
    (``recipe.RUN_FIELDS``, the data among them: its content MD5 is compared instead) and the hold-out."""
    return {k: v for k, v in asdict(cfg).items() if k not in RUN_FIELDS and k not in _HOLDOUT_FIELDS}


def _train_fold(cfg: TrainConfig, data_md5: str) -> Path:
    """Train, resume or reuse one fold's run (``cfg`` holds its ``holdout_fold``); returns its folder."""
    run_dir = paths.resolve(cfg.out_dir)
    name = f"fold {cfg.holdout_fold + 1}/{cfg.holdout_folds}"
    if cfg.resume:
        _check_fold_dir(cfg, run_dir, data_md5)
    if cfg.resume and _finished(cfg, run_dir):
        logger.info("%s: %s is finished (%d epochs); reused", name, run_dir, cfg.epochs)
    else:
        logger.info("%s: training in %s", name, run_dir)
        fit(cfg)
    if not (run_dir / "best.pt").is_file():
        raise ValueError(f"{run_dir / 'best.pt'}: missing after training {name}")
    return run_dir


def _check_fold_dir(cfg: TrainConfig, run_dir: Path, data_md5: str) -> None:
    """Refuse a fold folder whose run is of other data, another recipe or other folds (``epochs`` may grow:
    the engine continues a finished run)."""
    file = run_dir / "config.json"
    if not file.is_file():
        return
    try:
        recorded = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not JSON ({err}); use a new out_dir") from err
    have_md5 = (recorded.get("data") or {}).get("content_md5")
    if have_md5 != data_md5:
        raise ValueError(
            f"{file}: field 'data.content_md5' is {have_md5!r}, this data's is {data_md5!r}; use a new out_dir"
        )
    have = recorded.get("train_config") or {}
    for name, value in asdict(cfg).items():
        if name not in RUN_FIELDS and name != "epochs" and have.get(name) != value:
            raise ValueError(
                f"{file}: field 'train_config.{name}' is {have.get(name)!r}, this cross-fit's is {value!r}; "
                "use a new out_dir"
            )


def _summary_rows(run_dir: Path) -> list[dict[str, str]]:
    file = run_dir / "summary.csv"
    if not file.is_file():
        return []
    with open(file, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _finished(cfg: TrainConfig, run_dir: Path) -> bool:
    """The fold's run has its ``best.pt`` and one ``summary.csv`` row per epoch of the recipe."""
    rows = _summary_rows(run_dir)
    if len(rows) > cfg.epochs:
        raise ValueError(
            f"{run_dir / 'summary.csv'}: {len(rows)} epochs trained, the recipe's field 'epochs' is {cfg.epochs}; "
            "use a new out_dir"
        )
    return (run_dir / "best.pt").is_file() and len(rows) == cfg.epochs


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _predict_fold(best: Path, images: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, int]:
    """float32 (n, C) probabilities of uint8 faces (n, 48, 48) by a fold's ``best.pt``, and its epoch."""
    device = _device(cfg.device)
    model, meta = load_model(best, device=device)
    probs = predict(model, images, meta["preprocess"], tta=cfg.tta, batch_size=max(256, cfg.batch_size), device=device)
    return probs, int(meta.get("epoch", 0))


def _run_info(run_dir: Path, fold: int, n_heldout: int, accuracy: float, best_epoch: int) -> dict[str, Any]:
    """One fold's line of the record: its run, what it trained on, and how it did on its held-out faces."""
    recorded = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    rows = _summary_rows(run_dir)
    return {
        "fold": fold,
        "out_dir": str(run_dir),
        "n_heldout": n_heldout,
        "n_train": (recorded.get("data") or {}).get("n_train"),
        "accuracy": accuracy,
        "best_epoch": best_epoch,
        "epochs": len(rows),
        "train_seconds": sum(float(r["epoch_seconds"] or 0) for r in rows),  # the run's own cost, reused or not
    }


def _record(
    cfg: TrainConfig, folds: int, data: FERData, runs: list[dict[str, Any]], timing: dict[str, float]
) -> dict[str, Any]:
    fold_accuracy = [r["accuracy"] for r in runs]
    return {
        "format": FORMAT,
        "data_md5": data.content_md5,
        "data_file": str(data.source),
        "synthetic": bool(data.is_synthetic),
        "fold_seed": FOLD_SEED,
        "folds": folds,
        "recipe": recipe_key(cfg),
        "class_names": list(cfg.class_names()),
        "n_faces": sum(r["n_heldout"] for r in runs),
        "predicted_with": {"checkpoint": "best.pt", "tta": cfg.tta},
        "fold_accuracy": fold_accuracy,
        "mean_accuracy": float(np.mean(fold_accuracy)),
        "runs": runs,
        "train_seconds": sum(r["train_seconds"] for r in runs),  # the folds' training, summed from summary.csv
        **timing,  # this call: all of it (seconds), and predicting the held-out faces (predict_seconds)
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------- the cache


def save_crossfit(result: CrossFit) -> Path:
    """Write ``result`` atomically to ``result.path`` (``.npz``, its record inside), and the record beside it as JSON.

    Returns:
        The ``.npz`` path.
    """
    text = json.dumps(to_jsonable(result.record))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, NumPy would append ".npz" to it
            np.savez(f, **{k: getattr(result, k) for k in _ARRAYS}, record=np.array(text))

    atomic_write(result.path, write)
    atomic_write_json(result.record_path, result.record)
    return result.path


def load_crossfit(
    path: str | os.PathLike[str], data: FERData, cfg: TrainConfig | None = None, *, folds: int | None = None
) -> CrossFit:
    """A cached :class:`CrossFit`, only when it was made from ``data`` (and ``cfg``'s recipe and ``folds``, when given).

    Args:
        path: The ``.npz`` written by :func:`crossfit` (relative paths from the repository root).
        data: The data set; its content MD5 must be the cache's.
        cfg: The recipe the cache must have been made with (:func:`recipe_key`); ``None``: any.
        folds: The number of folds it must have; ``None``: any.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a cross-fit cache, or one of other data, another recipe or other folds; the message
            names the file and the field (``data_md5``, ``folds``, ``recipe.lr``, ...).
    """
    file = paths.resolve(path)
    if not file.is_file():
        raise FileNotFoundError(f"cross-fit cache not found: {file}")
    try:
        archive = np.load(file, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise ValueError("a .npy array, not an .npz archive")
        with archive as z:
            arrays = {k: z[k] for k in _ARRAYS}
            record = json.loads(str(z["record"]))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file}: not a cross-fit cache ({err})") from err
    _expect(file, "format", record.get("format"), FORMAT)
    _expect(file, "data_md5", record.get("data_md5"), data.content_md5)
    _expect(file, "fold_seed", record.get("fold_seed"), FOLD_SEED)
    if folds is not None:
        _expect(file, "folds", record.get("folds"), folds)
    if cfg is not None:
        want, have = recipe_key(cfg), record.get("recipe") or {}
        for name in sorted(set(want) | set(have)):
            _expect(file, f"recipe.{name}", have.get(name), want.get(name))
    n = len(arrays["probs"])
    if arrays["probs"].ndim != 2 or any(arrays[k].shape != (n,) for k in _ARRAYS[1:]):
        raise ValueError(f"{file}: field 'probs' is {arrays['probs'].shape}, not (N, C) with (N,) labels, index, fold")
    return CrossFit(**arrays, record=record, path=file)


def _expect(file: Path, field: str, have: Any, want: Any) -> None:
    if have != want:
        raise ValueError(f"{file}: field '{field}' is {have!r}, expected {want!r}")


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fer_utils.train crossfit",
        description=(
            "Out-of-sample probabilities for every Training face: one run of the recipe per fold, each fold's "
            "faces predicted by the run that held them out (OUT_DIR/fold_K/). Prints one JSON line."
        ),
        epilog=(
            "Every flag of `python -m fer_utils.train --help` (--config, --data, --out_dir, --epochs, ...: the "
            "TrainConfig fields) may follow. Run the same command again to carry on after an interruption: "
            "finished folds are reused."
        ),
        allow_abbrev=False,  # --fold must not pass for --folds
    )
    ap.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    ap.add_argument(
        "--cache", help="the result's .npz, relative paths from the repository root (default: OUT_DIR/oos_training.npz)"
    )
    return ap


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_utils.train crossfit``; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the run in progress as Ctrl-C does
    started = time.perf_counter()
    args, rest = _parser().parse_known_args(argv)
    try:
        cfg = config_from_args(rest)
        cache = paths.resolve(args.cache) if args.cache else None  # an output: from the root, as --out_dir
        result = crossfit(cfg, args.folds, paths.resolve(cfg.out_dir), cache=cache)
    # FERDataError and CheckpointError are ValueErrors; a missing file is an OSError. Anything else is a bug.
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to carry on (finished folds are reused)", file=sys.stderr)
        return 130
    summary = {
        "path": str(result.path),
        "record": str(result.record_path),
        "folds": result.folds,
        "n_faces": len(result.labels),
        "fold_accuracy": result.fold_accuracy,
        "mean_accuracy": result.mean_accuracy,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0
