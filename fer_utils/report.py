"""Small helpers the notebooks share: report folders, provenance banners, JSON output.

A notebook's figures and metrics go to its ``report_dir`` parameter; these
functions keep that bookkeeping out of the notebooks:

- :func:`prepare_report_dir`: resolve (relative to the repository root) and create it;
- :func:`data_provenance` / :func:`data_banner` / :func:`describe_data`: say
  which data a result comes from (synthetic faces, or which FER2013 file, its
  MD5, canonical or not);
- :func:`init_banner`: say how a model was initialised, loudly when pretrained
  weights were asked for but not used;
- :func:`checkpoint_banner`: what a checkpoint is and whether the data or split
  it is evaluated on played a part in its training;
- :func:`save_json`: numpy-aware, atomic JSON;
- :func:`notebook_logging`: library log lines as plain output, warnings apart.

Nothing here imports torch or matplotlib.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from fer_utils import paths
from fer_utils.files import atomic_write_json

SYNTHETIC_BANNER = "Ran on SYNTHETIC data (procedurally drawn faces from fer_utils.data.synthetic), not FER2013"
"""First words of the banner of results computed on the synthetic data set."""

FER2013_BANNER_PREFIX = "Ran on FER2013 file"
"""First words of the banner of results computed on a FER2013 file."""


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def notebook_logging(level: int = logging.INFO) -> None:
    """Send ``fer_utils`` log lines to a notebook's ordinary output.

    Jupyter shows everything written to stderr in a pink box, so INFO lines
    (data loaded, a file exported) would look like errors. Here records below
    WARNING go to stdout and warnings and errors to stderr, where they should
    stand out. Calling it again replaces the handlers instead of adding more.

    Args:
        level: The lowest level shown, ``logging.INFO`` by default.
    """
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(_BelowWarning())
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(level)


def prepare_report_dir(report_dir: str | os.PathLike[str]) -> Path:
    """The absolute report folder (relative paths are taken from the repository root), created if needed."""
    out = paths.resolve(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def describe_data(data: Any) -> dict[str, Any]:
    """Provenance of a ``fer_utils.data.FERData`` as a JSON-ready dict.

    Returns:
        ``source`` (file name), ``path``, ``content_md5``, ``file_format``,
        ``canonical`` (the original 35,887-row file), ``synthetic``, ``n``
        (rows) and ``splits`` (present, canonical order).
    """
    return {
        "source": Path(data.source).name,
        "path": str(data.source),
        "content_md5": data.content_md5,
        "file_format": data.file_format,
        "canonical": bool(data.is_canonical),
        "synthetic": bool(data.is_synthetic),
        "n": int(len(data)),
        "splits": list(data.splits),
    }


def data_provenance(data: Any) -> str:
    """One plain sentence saying what data a result was computed on.

    Args:
        data: A ``fer_utils.data.FERData``.

    Returns:
        :data:`SYNTHETIC_BANNER` for the synthetic data set, else
        ``"Ran on FER2013 file NAME (MD5 ..., canonical original: yes/no)"``.
    """
    if data.is_synthetic:
        return SYNTHETIC_BANNER
    canonical = "yes" if data.is_canonical else "no"
    return f"{FER2013_BANNER_PREFIX} {Path(data.source).name} (MD5 {data.content_md5}, canonical original: {canonical})"


def data_banner(data: Any) -> str:
    """:func:`data_provenance` as a Markdown paragraph for the top of a notebook, with the rows and splits.

    On synthetic data it adds that the numbers say nothing about facial-expression recognition.
    """
    text = f"**{data_provenance(data)}.** {len(data):,} rows; splits: {', '.join(data.splits)}."
    if data.is_synthetic:
        text += (
            " Results on these faces show that the code runs and learns, nothing about facial-expression recognition."
        )
    return text


def init_banner(init: str, pretrained_requested: bool = False) -> str:
    """Markdown describing a model's initialisation (``create_model``'s ``init`` string).

    Args:
        init: E.g. ``"random"``, ``"imagenet (hub)"``, ``"file: x.safetensors"`` or
            ``"random (pretrained weights unavailable: ...)"``.
        pretrained_requested: Whether the run asked for pretrained weights.

    Returns:
        One line; a warning when pretrained weights were requested (or are
        reported unavailable) but the model started from random weights.
    """
    fell_back = "unavailable" in init or (pretrained_requested and not init.startswith(("imagenet", "file")))
    if fell_back:
        return (
            f"> ⚠️ **WARNING: pretrained weights were NOT used.** Initialisation: `{init}`. "
            "The model was trained from random weights; expect lower accuracy than with ImageNet weights "
            "(pass a local weights file to use them offline)."
        )
    return f"**Model initialisation:** `{init}`"


def checkpoint_banner(meta: dict[str, Any], *, data: Any = None, split: str | None = None) -> str:
    """Markdown describing a checkpoint (``checkpoint.load_model``'s ``meta``), with warnings.

    Args:
        meta: Checkpoint metadata: ``model_config``, ``init``, ``epoch``, ``data``,
            ``train_config``, ``metrics`` (missing entries are skipped).
        data: The ``FERData`` it is about to be evaluated on, or ``None``.
        split: The split it is about to be evaluated on, or ``None``.

    Returns:
        Bullet lines; warnings when ``data`` is not the file the model was
        trained on, or (same file) ``split`` was its training or model-selection split.
    """
    arch = getattr(meta.get("model_config"), "arch", "?")
    trained = meta.get("data") or {}
    train_cfg = meta.get("train_config") or {}
    lines = [
        f"- **Architecture:** `{arch}`; initialisation `{meta.get('init', 'unknown')}`; epoch {meta.get('epoch', '?')}"
    ]
    if trained:
        kind = "SYNTHETIC data" if trained.get("synthetic") else f"FER2013 file `{trained.get('source', '?')}`"
        lines.append(
            f"- **Trained on:** {kind} (MD5 `{trained.get('content_md5', '?')}`), "
            f"{trained.get('n_train', '?')} {trained.get('train_split', 'Training')} images; "
            f"model selection on {trained.get('val_split', '?')}"
        )
    val = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    if val:
        lines.append("- **Validation metrics at that epoch:** " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
    other_file = data is not None and bool(trained.get("content_md5")) and trained["content_md5"] != data.content_md5
    if other_file:
        lines.append(
            f"- ⚠️ **Evaluated on a different file** (`{Path(data.source).name}`, MD5 `{data.content_md5}`) than it "
            "was trained on: fine for a new test set, but duplicates between the files can leak."
        )
    used = {
        s
        for s in (
            trained.get("train_split"),
            trained.get("val_split"),
            train_cfg.get("train_split"),
            train_cfg.get("val_split"),
        )
        if s
    }
    if split is not None and split in used and not other_file:
        lines.append(f"- ⚠️ **{split} was used for training or model selection**: its metrics are optimistic.")
    return "\n".join(lines)


def label_sets_table(split: str, fer2013: dict[str, Any], ferplus: dict[str, Any] | None) -> str:
    """Markdown: a model's accuracy and macro-F1 on one split against FER2013's labels and, side by side,
    FER+'s majority labels (:func:`fer_utils.evaluate.ferplus_metrics`), with the faces each counts."""
    rows = [
        "| labels | faces scored | accuracy | macro-F1 |",
        "|---|---|---|---|",
        f"| FER2013 (one annotator) | {fer2013['n']:,} | {fer2013['accuracy']:.4f} | {fer2013['macro_f1']:.4f} |",
    ]
    if ferplus is not None:
        left = ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in ferplus["left_out"].items() if n)
        rows.append(
            f"| FER+ majority (ten annotators) | {ferplus['n_kept']:,} ({ferplus['n_left_out']:,} left out"
            f"{': ' + left if left else ''}) | {ferplus['accuracy']:.4f} | {ferplus['macro_f1']:.4f} |"
        )
    return f"**{split}**\n\n" + "\n".join(rows)


def save_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (numpy values allowed) as indented JSON, atomically; relative paths from the repository root."""
    return atomic_write_json(paths.resolve(path), obj)
