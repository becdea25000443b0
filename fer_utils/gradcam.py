"""Grad-CAM heat maps: where on the face the model found evidence for a class.

Grad-CAM (Selvaraju et al., 2017) weights each channel of a convolutional feature
map by the mean gradient of the class score with respect to it, sums the
channels and keeps the positive part. By default the feature map is the last one
of the network, ``model.forward_features(x)`` in timm (for EfficientNet-B3 the
output of ``conv_head``/``bn2``, for ResNets ``layer4``), and the class score
comes from ``model.forward_head`` on it, so no hook is needed. Any other layer
can be named (``layer="blocks.5"``); it is then captured with a forward hook.

FER2013 faces are small: at 48 px the last map of a stride-32 network is only
2x2 (3x3 with ``stem_stride=1``), so the heat map is coarse. An earlier layer
gives a finer map at the cost of less class-specific evidence.

Heat maps are returned in the coordinates of the 48x48 face: the map is resized
to the centre crop the model saw (``Preprocess.crop_size``) and placed at the
crop's position; the border outside the crop is 0. Only the centre view is
explained, whatever test-time augmentation the probabilities used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .transforms import FACE_SIZE

if TYPE_CHECKING:  # torch is imported when a heat map is computed
    import torch
    from torch import nn

    from .transforms import Preprocess

logger = logging.getLogger(__name__)

HEAT_CMAP = "jet"
"""Matplotlib colour map of the overlays (blue = no evidence, red = most)."""


def _feature_map_and_logits(
    model: nn.Module, x: torch.Tensor, layer: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature map (B, C, h, w), logits (B, K)) with the feature map in the autograd graph."""
    if layer is None:
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise ValueError(
                f"{type(model).__name__} has no forward_features/forward_head (not a timm model); "
                "name a convolutional layer with layer=..."
            )
        feats = model.forward_features(x)
        return feats, model.forward_head(feats)
    module = model.get_submodule(layer)  # AttributeError names the missing part
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"layer {layer!r} was not called in the forward pass")
    return captured[-1], logits


def grad_cam(
    model: nn.Module,
    images: np.ndarray,
    preprocess: Preprocess,
    targets: Sequence[int] | np.ndarray | None = None,
    *,
    layer: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Grad-CAM heat maps of faces, in face coordinates.

    The model runs in eval mode (its previous mode is restored after); its
    weights are not changed and no parameter gradients are kept.

    Args:
        model: Maps float32 (B, 1, S, S) to logits (B, C); a timm model unless
            ``layer`` is given.
        images: uint8 faces (N, 48, 48), values 0-255.
        preprocess: The checkpoint's :class:`~fer_utils.transforms.Preprocess`
            (centre crop, resize, normalisation), the same path as prediction.
        targets: Class explained for each face (N,) in ``0..C-1``; ``None``
            explains each face's predicted class.
        layer: Dotted name of the module whose output (B, C', h, w) is
            explained; ``None`` uses the timm model's last feature map.
        batch_size: Faces per forward/backward pass.
        device: Where to run the model.

    Returns:
        float32 (N, 48, 48) in [0, 1]: each map divided by its maximum (all
        zeros where the class has no positive evidence), 0 outside the crop.

    Raises:
        ValueError: bad shapes or targets, a model without ``forward_features``
            and no ``layer``, or a layer whose output is not a 4-D feature map.
    """
    import torch
    import torch.nn.functional as F

    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (FACE_SIZE, FACE_SIZE) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, {FACE_SIZE}, {FACE_SIZE}), got {images.dtype} {images.shape}")
    n = len(images)
    tgt = None if targets is None else np.asarray(targets, dtype=np.int64)
    if tgt is not None and tgt.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {tgt.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out = np.zeros((n, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    if n == 0:
        return out
    crop = preprocess.crop_size
    top = (FACE_SIZE - crop) // 2
    was_training = model.training
    model.to(device).eval()
    try:
        for start in range(0, n, batch_size):
            x = preprocess(images[start : start + batch_size]).to(device)
            # The input requires grad so the graph exists even for a frozen model.
            x.requires_grad_(True)
            with torch.enable_grad():
                feats, logits = _feature_map_and_logits(model, x, layer)
                if feats.ndim != 4:
                    raise ValueError(
                        f"the explained feature map must be (B, C, h, w), got shape {tuple(feats.shape)}; "
                        "name a convolutional layer with layer=..."
                    )
                if tgt is None:
                    cls = logits.argmax(dim=1)
                else:
                    cls = torch.from_numpy(tgt[start : start + len(x)]).to(logits.device)
                    if int(cls.min()) < 0 or int(cls.max()) >= logits.shape[1]:
                        raise ValueError(f"targets must be class indices in 0..{logits.shape[1] - 1}")
                score = logits.gather(1, cls[:, None]).sum()
                (grads,) = torch.autograd.grad(score, feats)
            with torch.no_grad():
                weights = grads.float().mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((weights * feats.float()).sum(dim=1, keepdim=True))
                cam = F.interpolate(cam, size=(crop, crop), mode="bilinear", align_corners=False)
                peak = cam.amax(dim=(2, 3), keepdim=True)
                cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
            out[start : start + len(x), top : top + crop, top : top + crop] = cam[:, 0].clamp(0, 1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def checkpoint_grad_cam(
    checkpoint: str,
    images: np.ndarray,
    targets: Sequence[int] | np.ndarray | None = None,
    *,
    layer: str | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """:func:`grad_cam` for a checkpoint file (loads the model and its preprocessing).

    Args:
        checkpoint: A fer_utils checkpoint (relative paths from the repository root).
        images, targets, layer, device: As :func:`grad_cam`.

    Returns:
        float32 (N, 48, 48) in [0, 1].
    """
    from . import paths
    from .checkpoint import load_model

    model, meta = load_model(paths.resolve(checkpoint), device=device)
    return grad_cam(model, images, meta["preprocess"], targets, layer=layer, device=device)


def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = HEAT_CMAP) -> np.ndarray:
    """Blend a heat map's colours over a grayscale face.

    Args:
        face: uint8 (H, W), values 0-255.
        heat: float (H, W) in [0, 1].
        alpha: Weight of the heat colours (0 = face only, 1 = heat only).
        cmap: Matplotlib colour map name.

    Returns:
        uint8 (H, W, 3), RGB.
    """
    from matplotlib import colormaps

    face = np.asarray(face)
    heat = np.asarray(heat, dtype=np.float64)
    if face.shape != heat.shape or face.ndim != 2:
        raise ValueError(f"face and heat must be the same 2-D shape, got {face.shape} and {heat.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = np.repeat(face.astype(np.float64)[..., None] / 255.0, 3, axis=2)
    colours = colormaps[cmap](np.clip(heat, 0.0, 1.0))[..., :3]
    return np.round(((1 - alpha) * gray + alpha * colours) * 255.0).astype(np.uint8)
