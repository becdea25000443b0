"""Model factory: EfficientNet-B3 (or any timm model) for one-channel 48x48 faces.

Grayscale is handled by giving the network a one-channel stem (``in_chans=1``)
rather than repeating the face into three identical channels. Three copies carry
no extra information and triple the stem's work; when ImageNet weights are
loaded, timm sums the stem's RGB filters into one channel, which gives the same
response as feeding three equal channels, so nothing learned is lost.

``stem_stride`` exists because FER2013 faces are small: EfficientNet reduces
its input 32-fold, leaving a 2x2 feature map at 48 px. A stride-1 stem halves
the reduction (a 3x3 map at 48 px, like a 96 px input) at about four times the
compute; raising ``img_size`` instead does the same by resizing the face.
``output_stride=16`` gets the same 3x3 map by dilating the last stage's
convolutions instead of striding them, keeping the stem as it is.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_utils.constants import NUM_CLASSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network (stored in every checkpoint).

    The defaults are the shipped model's network; ``fer_utils.train.TrainConfig``
    takes its network defaults from here.

    Attributes:
        arch: timm model name.
        num_classes: Output classes.
        in_chans: Input channels (1 for grayscale faces).
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic-depth rate of the deepest block.
        stem_stride: Stride of the first convolution (the architecture's default is 2).
        output_stride: Total reduction of the input (32 is the architecture's own; 16 or 8
            dilate the last stages instead of striding them, for a larger final map).
        zero_init_last: When training from random initialisation, start the last
            normalisation layer of every residual block at zero, so each block begins
            as the identity and the deep network starts out as a shallow one.
    """

    arch: str = "efficientnet_b3"
    num_classes: int = NUM_CLASSES
    in_chans: int = 1
    drop_rate: float = 0.2
    drop_path_rate: float = 0.05
    stem_stride: int = 2
    output_stride: int = 32
    zero_init_last: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _first_conv(model: nn.Module) -> nn.Conv2d:
    cfg: dict[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("first_conv", "")
    module = model.get_submodule(name) if name else None
    if isinstance(module, nn.Conv2d):
        return module
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def create_model(
    cfg: ModelConfig = ModelConfig(),
    *,
    pretrained: bool = False,
    weights_path: str | Path | None = None,
) -> tuple[nn.Module, str]:
    """Build the network.

    Args:
        cfg: Architecture arguments.
        pretrained: Try ImageNet weights from the model hub. Offline, this falls
            back to random initialisation with a warning, and the returned
            description says so (training records it in the run's outputs).
        weights_path: A local weights file (timm/PyTorch state dict, e.g. the
            hub's ``pytorch_model.bin`` or ``model.safetensors``); used instead of
            the hub. The stem and classifier are adapted as for hub weights.

    Returns:
        ``(model, init)``: the model and a one-line description of how it was
        initialised, e.g. ``"random"``, ``"imagenet (hub)"``,
        ``"random (pretrained weights unavailable: ...)"``.
    """
    import timm

    kwargs: dict[str, Any] = dict(
        num_classes=cfg.num_classes,
        in_chans=cfg.in_chans,
        drop_rate=cfg.drop_rate,
        drop_path_rate=cfg.drop_path_rate,
    )
    if cfg.output_stride != 32:  # not every timm architecture takes the argument
        kwargs["output_stride"] = cfg.output_stride
    init = "random"
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        model = timm.create_model(cfg.arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        init = f"file: {path.name}"
    elif pretrained:
        try:
            model = timm.create_model(cfg.arch, pretrained=True, **kwargs)
            init = "imagenet (hub)"
        except Exception as err:  # any hub failure (offline, DNS, HTTP) means: train from scratch, loudly
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
            init = f"random (pretrained weights unavailable: {reason})"
            logger.warning(
                "PRETRAINED WEIGHTS COULD NOT BE LOADED for %s (%s). Falling back to RANDOM INITIALISATION; "
                "pass weights_path to use a local file.",
                cfg.arch,
                reason,
            )
            model = timm.create_model(cfg.arch, pretrained=False, **kwargs)
    else:
        model = timm.create_model(cfg.arch, pretrained=False, **kwargs)

    if init.startswith("random"):
        _zero_classifier(model)
        if cfg.zero_init_last:
            zero_init_residual_branches(model)
    if cfg.stem_stride != 2:
        conv = _first_conv(model)
        conv.stride = (cfg.stem_stride, cfg.stem_stride)
    return model, init


def _zero_classifier(model: nn.Module) -> None:
    """Start the classifier at zero, so the first predictions are uniform.

    timm initialises EfficientNet's classifier uniformly in +-1/sqrt(num_classes);
    with 7 classes and 1536 features that gives initial logits around 20 and
    gradient norms in the thousands, and training from scratch sits on the
    majority class for epochs. At zero the loss starts at ln 7 and the features
    below still get gradients once the classifier moves.
    """
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if callable(get_classifier) else None
    if isinstance(head, nn.Linear):
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)


def zero_init_residual_branches(model: nn.Module) -> int:
    """Zero the scale of the last BatchNorm in every block that adds its input back.

    Covers timm's EfficientNet/MobileNet blocks (``has_skip`` with ``bn3`` or ``bn2``)
    and ResNet blocks (``zero_init_last``). Returns the number of blocks changed.
    """
    n = 0
    for m in model.modules():
        if getattr(m, "has_skip", False):
            bn = getattr(m, "bn3", None) or getattr(m, "bn2", None)
            if isinstance(bn, nn.BatchNorm2d):
                nn.init.zeros_(bn.weight)
                n += 1
        elif callable(zero_init := getattr(m, "zero_init_last", None)):
            zero_init()
            n += 1
    return n


def pretrained_stats(model: nn.Module) -> tuple[float, float] | None:
    """Grayscale mean/std matching the model's pretrained weights (RGB values averaged), if it has any."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if not mean or not std:
        return None
    return float(sum(mean) / len(mean)), float(sum(std) / len(std))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def channels_last(model: nn.Module) -> nn.Module:
    """Move to channels_last memory format, in which oneDNN runs CPU convolutions faster."""
    return model.to(memory_format=torch.channels_last)
