"""The one preprocessing path from a 48x48 face to model input, and training augmentation.

Training, evaluation, the error-analysis browser and the webcam demo all call
:class:`Preprocess`, so a face is never prepared two different ways. Its
parameters travel inside every checkpoint.

Augmentation works on whole batches of tensors (one ``affine_grid`` /
``grid_sample`` call per batch) instead of per-sample PIL transforms: on two CPU
cores per-sample Python work would cost a noticeable share of each step. Faces
are grayscale, so there is no saturation or hue jitter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fer_utils.constants import FACE_SIZE

TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")


@dataclass(frozen=True)
class Preprocess:
    """Turns uint8 48x48 faces into normalised model input.

    Attributes:
        img_size: Side of the model input in pixels (the face is resized to it).
        crop_size: Side of the crop taken from the 48x48 face: random during
            training, centred at test time. 48 means no crop.
        mean: Mean of pixel/255 over the Training split (or the pretrained
            model's mean, averaged over RGB, when starting from ImageNet weights).
        std: Standard deviation matching ``mean``.
    """

    img_size: int = FACE_SIZE
    crop_size: int = FACE_SIZE
    mean: float = 0.5
    std: float = 0.25

    def __post_init__(self) -> None:
        if not 8 <= self.crop_size <= FACE_SIZE:
            raise ValueError(f"crop_size must be in 8..{FACE_SIZE}, got {self.crop_size}")
        if self.img_size < 8:
            raise ValueError(f"img_size must be at least 8, got {self.img_size}")
        if self.std <= 0:
            raise ValueError(f"std must be positive, got {self.std}")

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Centre-crop, resize and normalise.

        Args:
            images: uint8 faces, shape (N, 48, 48) or (48, 48), values 0-255.

        Returns:
            float32 tensor (N, 1, img_size, img_size).
        """
        x = to_float_batch(images)
        return self.finish(center_crop(x, self.crop_size))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Resize float faces in [0, 1] of shape (N, 1, h, w) to ``img_size`` and normalise."""
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(
                x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False, antialias=True
            )
        return (x - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(**{k: d[k] for k in ("img_size", "crop_size", "mean", "std")})


def to_float_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 faces (N, H, W) or (H, W) -> float32 tensor (N, 1, H, W) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 faces with values 0-255, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected faces of shape (N, H, W), got {tuple(x.shape)}")
    return x[:, None].float().div_(255.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop of side ``size`` from (N, C, H, W)."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def pixel_stats(images: np.ndarray, max_images: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of pixel/255 over (a sample of) uint8 faces (N, 48, 48)."""
    if len(images) > max_images:
        images = images[np.random.default_rng(seed).choice(len(images), max_images, replace=False)]
    x = images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def tta_views(images: np.ndarray | torch.Tensor, preprocess: Preprocess, mode: str = "none") -> list[torch.Tensor]:
    """Test-time views of a batch of faces; the caller averages the model's probabilities over them.

    Args:
        images: uint8 faces (N, 48, 48).
        preprocess: The checkpoint's preprocessing.
        mode: ``"none"`` (centre crop), ``"flip"`` (centre crop and its mirror) or
            ``"tencrop"`` (four corners and centre, each with its mirror). With
            ``crop_size == 48`` ten-crop uses 44-pixel crops, a 4-pixel jitter.

    Returns:
        List of float32 tensors (N, 1, img_size, img_size).
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {TTA_MODES}")
    x = to_float_batch(images)
    if mode == "none":
        return [preprocess.finish(center_crop(x, preprocess.crop_size))]
    if mode == "flip":
        v = preprocess.finish(center_crop(x, preprocess.crop_size))
        return [v, v.flip(-1)]
    size = preprocess.crop_size if preprocess.crop_size < FACE_SIZE else FACE_SIZE - 4
    h, w = x.shape[-2:]
    crops = [x[..., :size, :size], x[..., :size, w - size :], x[..., h - size :, :size], x[..., h - size :, w - size :]]
    crops.append(center_crop(x, size))
    views = [preprocess.finish(c) for c in crops]
    return views + [v.flip(-1) for v in views]


@dataclass(frozen=True)
class AugmentConfig:
    """Random geometric and photometric changes suited to grayscale faces.

    Attributes:
        scale: Zoom range (1 = the crop as is; >1 zooms in).
        rotate_deg: Maximum rotation either way, degrees (faces are roughly upright).
        translate: Maximum shift as a fraction of the crop side.
        hflip: Probability of a horizontal mirror (expressions are near-symmetric).
        brightness: Maximum additive brightness change, in units of full range.
        contrast: Maximum relative contrast change.
        erasing: Probability of erasing one random rectangle (occlusion robustness).
        erasing_area: Range of the erased area as a fraction of the image.
    """

    scale: tuple[float, float] = (0.9, 1.1)
    rotate_deg: float = 10.0
    translate: float = 0.08
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    erasing: float = 0.25
    erasing_area: tuple[float, float] = (0.02, 0.15)


class GrayAugment:
    """Batched augmentation: random crop/affine, flip, brightness/contrast, erasing.

    Args:
        preprocess: Supplies crop size, output size and normalisation.
        cfg: Augmentation strengths.
    """

    def __init__(self, preprocess: Preprocess, cfg: AugmentConfig = AugmentConfig()) -> None:
        self.pre = preprocess
        self.cfg = cfg

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment uint8 faces (N, 48, 48) into normalised float32 (N, 1, img_size, img_size)."""
        cfg, pre = self.cfg, self.pre
        x = to_float_batch(images)
        n = x.shape[0]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) * (hi - lo) + lo

        # The sampling grid maps output coordinates into the source face; a crop of
        # crop_size is a zoom by crop_size/48 around a random centre.
        crop = pre.crop_size / FACE_SIZE
        s = crop / uniform(*cfg.scale)
        a = uniform(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180.0)
        slack = (1.0 - crop) + cfg.translate * crop * 2.0
        tx, ty = uniform(-slack, slack), uniform(-slack, slack)
        flip = torch.where(torch.rand(n, generator=generator) < cfg.hflip, -1.0, 1.0)
        cos, sin = torch.cos(a) * s, torch.sin(a) * s
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, pre.img_size, pre.img_size], align_corners=False)
        if pre.img_size < FACE_SIZE * crop:
            x = F.interpolate(x, scale_factor=pre.img_size / (FACE_SIZE * crop), mode="bilinear", antialias=True)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = uniform(1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
        b = uniform(-cfg.brightness, cfg.brightness).view(n, 1, 1, 1)
        x = ((x - mean) * c + mean + b).clamp_(0.0, 1.0)
        x = (x - pre.mean) / pre.std

        if cfg.erasing > 0:
            x = self._erase(x, generator)
        return x

    def _erase(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = x.shape
        cfg = self.cfg
        area = torch.rand(n, generator=generator) * (cfg.erasing_area[1] - cfg.erasing_area[0]) + cfg.erasing_area[0]
        aspect = torch.exp(torch.rand(n, generator=generator) * (2 * math.log(3.0)) - math.log(3.0))
        eh = (torch.sqrt(area * aspect) * h).clamp(1, h).long()
        ew = (torch.sqrt(area / aspect) * w).clamp(1, w).long()
        top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
        on = torch.rand(n, generator=generator) < cfg.erasing
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        mask = (
            (rows >= top.view(n, 1, 1))
            & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1))
            & (cols < (left + ew).view(n, 1, 1))
            & on.view(n, 1, 1)
        )
        noise = torch.randn(x.shape, generator=generator)
        return torch.where(mask[:, None], noise, x)
