"""The training recipe: :class:`TrainConfig`, checked on construction, and its command line.

A run's parameters are one frozen dataclass whose defaults are the recipe of
``make train``; the network's defaults come from
:class:`fer_utils.model.ModelConfig`. A YAML file (``configs/train.yaml``) holds
only what a run changes, and every field is also a command-line flag. Values are
converted and checked when the config is built (YAML reads ``1e-3`` as text), so
a mistake fails before the first step, naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

from fer_utils import paths
from fer_utils.constants import CLASS_NAMES, FACE_SIZE
from fer_utils.data.ferplus import FERPLUS_CLASS_NAMES
from fer_utils.model.network import ModelConfig
from fer_utils.model.transforms import TTA_MODES, AugmentConfig


@dataclass(frozen=True)
class TrainConfig:
    """Parameters of one training run (saved as ``config.json`` and inside checkpoints).

    The defaults are the recipe of ``make train`` (EfficientNet-B3 from random
    initialisation at 48 px, one 100-epoch warm-up and cosine schedule, a moving
    average of the weights); the network's come from :class:`ModelConfig`. A
    config file holds only what a run changes (``configs/train.yaml``: its
    output folder), and every value is checked on construction, naming the field.
    """

    # data
    data: str = ""  # FER2013 CSV/CSV.gz/folder; "" = $FER2013_CSV, data/fer2013.csv, else the synthetic set
    out_dir: str = "models/runs/default"  # relative paths are taken from the repository root
    train_split: str = "Training"  # the only split the model learns from
    val_split: str = "PublicTest"  # model selection happens here, never on PrivateTest
    limit_train: int = 0  # use at most this many training images (0 = all); for smoke runs
    limit_val: int = 0  # use at most this many validation images (0 = all)
    class_weights: str = ""  # JSON from notebook 02 / fer_utils.data.class_weights; "" = unweighted loss
    label_corrections: str = ""  # review CSV from notebook 04's browser: corrected labels, applied to train_split only
    holdout_folds: int = 0  # cross-fitting: split train_split into this many folds (0 = train on all of it)
    holdout_fold: int = 0  # with holdout_folds: the fold left out of training, to be scored out of sample
    # model (defaults from ModelConfig)
    arch: str = ModelConfig.arch  # any timm model name
    img_size: int = FACE_SIZE  # model input side; faces are resized to it
    crop_size: int = 44  # random crop during training, centre crop at test time (48 = none)
    stem_stride: int = ModelConfig.stem_stride  # 1 keeps more resolution for small faces, at several times the compute
    output_stride: int = ModelConfig.output_stride  # 16 dilates the last stage: a 3x3 final map at 48 px
    zero_init_last: bool = ModelConfig.zero_init_last  # from scratch: residual blocks start as the identity
    drop_rate: float = ModelConfig.drop_rate  # dropout before the classifier
    drop_path_rate: float = ModelConfig.drop_path_rate  # stochastic depth
    pretrained: bool = False  # try ImageNet weights from the hub (falls back to random, loudly)
    weights_path: str = ""  # local pretrained weights file, used instead of the hub
    init_checkpoint: str = ""  # a new schedule from this checkpoint's weights and normalisation (same network)
    continue_from: str = ""  # without out_dir/last.pt: carry on this recipe's run from its exported checkpoint
    rewarm_epochs: float = 0.3  # continue_from: linear re-warm-up of the learning rate (fresh optimiser moments)
    # optimisation
    epochs: int = 100  # one schedule over the whole run; a resumed or continued run keeps its place in it
    batch_size: int = 64  # faces per optimiser step (per process under torchrun)
    optimizer: str = "adamw"  # "adamw" or "sgd" (Nesterov momentum)
    lr: float = 2e-3  # peak learning rate after warm-up
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.05  # not applied to biases and normalisation weights
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 2.0  # linear warm-up from ~0, may be fractional
    grad_clip: float = 5.0  # max gradient norm (0 = off); guards the first steps from scratch
    label_smoothing: float = 0.1  # share of each target spread over the other classes
    label_set: str = "fer2013"  # "fer2013": 7 classes; "ferplus": 8 (Contempt too), trained on FER+ vote distributions
    ferplus: str = ""  # FER+ votes file (fer2013new.csv): mix its vote shares into the Training targets
    ferplus_weight: float = 0.5  # target = (1 - w) * FER2013 label + w * FER+ vote shares
    ema_decay: float = 0.999  # moving average of the weights, scored next to them (0 = off)
    mixup_alpha: float = 0.0  # mixup: Beta(alpha, alpha) mixing of two faces and their targets (0 = off)
    cutmix_alpha: float = 0.0  # cutmix: Beta(alpha, alpha) share of a pasted patch of another face (0 = off)
    mix_prob: float = 0.5  # share of batches that get mixup/cutmix when enabled
    # augmentation (see fer_utils.model.transforms.AugmentConfig)
    aug_rotate_deg: float = 10.0  # random rotation range, +- degrees
    aug_scale: float = 0.1  # zoom range 1 +- aug_scale
    aug_translate: float = 0.08  # random shift range, +- this share of the face side
    aug_erasing: float = 0.25  # probability of random erasing
    # evaluation
    eval_metric: str = "accuracy"  # validation metric that picks best.pt: "accuracy", "macro_f1" or "loss"
    eval_decreasing: bool | None = None  # lower is better; None = from the metric (True for "loss" only)
    tta: str = "tencrop"  # test-time augmentation recorded for evaluation ("none", "flip", "tencrop")
    # run
    seed: int = 0  # seeds initialisation, shuffling, augmentation and dropout (same seed, same run on CPU)
    device: str = "auto"  # "auto" = cuda if available, else cpu
    num_threads: int = 0  # torch CPU threads (0 = torch's default)
    resume: bool = True  # continue from out_dir/last.pt when it exists
    progress: bool = True  # tqdm progress bar per epoch
    keep_last_epochs: int = 0  # keep the weights of the last N epochs (out_dir/epochs/) for weight averaging

    def __post_init__(self) -> None:
        """Converts numeric strings (YAML reads ``1e-3`` as text) and rejects a bad value before any work.

        Raises:
            ValueError: naming the field and the value.
        """
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), str(f.type)))
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TrainConfig field '{name}' is {getattr(self, name)!r}; "
                    f"choose one of {', '.join(map(str, allowed))}"
                )
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(
                    f"TrainConfig field '{name}' is {getattr(self, name)!r}; it must lie in [{low}, {high}]"
                )
        import timm

        if not timm.is_model(self.arch):
            raise ValueError(f"TrainConfig field 'arch' is {self.arch!r}, which is not a timm model name")
        if self.label_set == "ferplus" and not self.ferplus:
            raise ValueError("TrainConfig field 'ferplus' is empty; label_set 'ferplus' trains on the FER+ votes file")
        if self.label_set == "ferplus" and (self.class_weights or self.label_corrections):
            raise ValueError(
                "TrainConfig fields 'class_weights' and 'label_corrections' are FER2013's seven classes; "
                "leave them empty with label_set 'ferplus'"
            )
        if self.holdout_folds and self.holdout_fold >= self.holdout_folds or self.holdout_folds == 1:
            raise ValueError(
                f"TrainConfig field 'holdout_fold' is {self.holdout_fold}; with holdout_folds {self.holdout_folds} "
                "it must lie in [0, holdout_folds - 1], and holdout_folds must be 0 or at least 2"
            )
        if self.eval_decreasing is None:
            object.__setattr__(self, "eval_decreasing", self.eval_metric == "loss")

    def class_names(self) -> tuple[str, ...]:
        """The labels the network learns: FER2013's seven, or FER+'s eight (Contempt as class 7)."""
        return FERPLUS_CLASS_NAMES if self.label_set == "ferplus" else CLASS_NAMES

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            arch=self.arch,
            in_chans=1,
            num_classes=len(self.class_names()),
            drop_rate=self.drop_rate,
            drop_path_rate=self.drop_path_rate,
            stem_stride=self.stem_stride,
            output_stride=self.output_stride,
            zero_init_last=self.zero_init_last,
        )

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(
            scale=(1 - self.aug_scale, 1 + self.aug_scale),
            rotate_deg=self.aug_rotate_deg,
            translate=self.aug_translate,
            erasing=self.aug_erasing,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training parameters: {sorted(unknown)}")
        return cls(**d)


_CHOICES: dict[str, tuple[Any, ...]] = {
    "optimizer": ("adamw", "sgd"),
    "label_set": ("fer2013", "ferplus"),
    "tta": TTA_MODES,
    "eval_metric": ("accuracy", "macro_f1", "loss"),
    "stem_stride": (1, 2),
    "output_stride": (8, 16, 32),
}
_RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, math.inf),
    "batch_size": (1, math.inf),
    "img_size": (8, math.inf),
    "crop_size": (8, math.inf),
    "lr": (0.0, math.inf),
    "min_lr_ratio": (0.0, 1.0),
    "weight_decay": (0.0, math.inf),
    "warmup_epochs": (0.0, math.inf),
    "rewarm_epochs": (0.0, math.inf),
    "label_smoothing": (0.0, 1.0),
    "mix_prob": (0.0, 1.0),
    "ema_decay": (0.0, 0.999999),
    "ferplus_weight": (0.0, 1.0),
    "drop_rate": (0.0, 1.0),
    "drop_path_rate": (0.0, 1.0),
    "aug_erasing": (0.0, 1.0),
    "limit_train": (0, math.inf),
    "limit_val": (0, math.inf),
    "num_threads": (0, math.inf),
    "keep_last_epochs": (0, math.inf),
    "holdout_folds": (0, math.inf),
    "holdout_fold": (0, math.inf),
}


def _coerce(name: str, value: Any, kind: str) -> Any:
    """``value`` as the field's type (``kind`` is its annotation).

    Numeric and boolean strings (YAML reads ``1e-3`` as text) are converted, and so are NumPy
    numbers, 0/1 for a flag, paths for a text field, and an empty YAML value (``None``) for one.
    """
    if value is None and "None" in kind:
        return None
    base = kind.split("|")[0].strip()
    try:
        if base == "bool":
            if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _BOOLS:
                return _BOOLS[value.strip().lower()]
        elif base == "int" and not isinstance(value, bool):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, numbers.Real) and float(number).is_integer():
                return int(float(number))
        elif base == "float" and not isinstance(value, bool) and isinstance(value, (numbers.Real, str)):
            return float(value)
        elif base == "str" and (value is None or isinstance(value, (str, os.PathLike))):
            return "" if value is None else os.fspath(value)
    except ValueError:
        pass
    raise ValueError(f"TrainConfig field '{name}' is {value!r}, not a {base}")


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}

RUN_FIELDS = frozenset(
    {
        "data",
        "out_dir",
        "device",
        "num_threads",
        "resume",
        "progress",
        "continue_from",
        "rewarm_epochs",
        "keep_last_epochs",
    }
)
"""TrainConfig fields that say where and how a run executes, not what it learns: ``continue_from``
accepts a checkpoint whose recorded recipe differs from this run's only in these."""

INPUT_PATH_FIELDS = frozenset(
    {"data", "class_weights", "label_corrections", "weights_path", "init_checkpoint", "continue_from", "ferplus"}
)
"""Fields naming input files: on the command line they resolve from the working directory first
(:func:`fer_utils.paths.resolve_cli`), in a config file from the repository root."""


def field_comments(cls: type, *, strict: bool = True) -> dict[str, str]:
    """The comment after each field of a dataclass, read from its source: ``{"lr": "peak learning rate ..."}``.

    The comments in the class body are the one description of each field; the command line's
    ``--help`` shows them.

    Args:
        strict: Raise on a field without a comment; else leave it out (the command line then shows
            only its default), as also when the source cannot be read.

    Raises:
        ValueError: with ``strict``, a field without a comment (naming it).
    """
    import inspect
    import io
    import textwrap
    import tokenize

    comments: dict[str, str] = {}
    names: dict[int, str] = {}  # line -> the name that starts it, in the class body
    try:
        source = textwrap.dedent(inspect.getsource(cls))  # a class defined in a function is indented
    except (OSError, TypeError):  # installed without its .py sources
        if strict:
            raise
        return {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] not in names:
            names[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in names:
            comments.setdefault(names[tok.start[0]], tok.string.lstrip("#").strip())
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in comments]
    if missing and strict:
        raise ValueError(f"{cls.__name__} fields without a comment: {', '.join(missing)}")
    return comments


def _parse_bool(s: str) -> bool:
    if s.strip().lower() in _BOOLS:
        return _BOOLS[s.strip().lower()]
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file of its fields, with ``overrides`` on top.

    Args:
        path: YAML file (relative paths from the repository root); ``None``: the defaults only.
        **overrides: Fields to set; a value of ``None`` leaves the file's (or the default) value.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unknown field, or a bad value (naming the field).
    """
    values: dict[str, Any] = {}
    if path:
        import yaml

        file = paths.resolve(path)
        if not file.is_file():
            raise FileNotFoundError(f"training config not found: {file}")
        values.update(yaml.safe_load(file.read_text(encoding="utf-8")) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """``--config FILE.yaml`` gives defaults; every TrainConfig field is also a ``--flag``."""
    parser = argparse.ArgumentParser(
        prog="python -m fer_utils.train", description="Train (or resume) an EfficientNet-B3 on FER2013."
    )
    parser.add_argument("--config", help="YAML file of TrainConfig fields")
    comments = field_comments(TrainConfig, strict=False)
    for f in dataclasses.fields(TrainConfig):
        kind = _parse_bool if f.type in ("bool", bool) else {"int": int, "float": float}.get(str(f.type), str)
        words = f"{comments.get(f.name, '')} (default: {f.default!r})".strip()
        parser.add_argument(f"--{f.name}", type=kind, default=None, help=words.replace("%", "%%"))
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k != "config"}
    given = {k: str(paths.resolve_cli(v)) if k in INPUT_PATH_FIELDS and v else v for k, v in given.items()}
    return load_config(paths.resolve_cli(args.config) if args.config else None, **given)
