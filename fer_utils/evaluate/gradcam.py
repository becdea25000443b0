"""Grad-CAM heat maps: where on the face the model found evidence for a class.

Grad-CAM (Selvaraju et al., 2017) weights each channel of a convolutional feature
map by the mean gradient of the class score with respect to it, sums the
channels and keeps the positive part. By default the feature map is the last one
of the network, ``model.forward_features(x)`` in timm (for EfficientNet-B3 the
output of ``conv_head``/``bn2``, for ResNets ``layer4``), and the class score
comes from ``model.forward_head`` on it, so no hook is needed. Any other layer
can be named (``layer="blocks.5"``); it is then captured with a forward hook.

FER2013 faces are small: at 48 px the last map of a stride-32 network is only
2x2 (3x3 with ``stem_stride=1``), so the heat map is coarse and nearly the same
for every class. An earlier layer gives a finer map at the cost of less
class-specific evidence. :func:`compare_layers` measures the trade on real faces
(how much the maps for the predicted and the true class differ, and how much the
maps differ between faces) for every stage with at least a 3x3 map, and
:func:`choose_layer` picks the layer by that check instead of by default.

Heat maps are returned in the coordinates of the 48x48 face: the map is resized
to the centre crop the model saw (``Preprocess.crop_size``) and placed at the
crop's position; the border outside the crop is 0. Only the centre view is
explained, whatever test-time augmentation the probabilities used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_utils.constants import FACE_SIZE

if TYPE_CHECKING:  # torch is imported when a heat map is computed
    import pandas as pd
    import torch
    from torch import nn

    from fer_utils.model.transforms import Preprocess

logger = logging.getLogger(__name__)

HEAT_CMAP = "jet"
"""Matplotlib colour map of the overlays (blue = no evidence, red = most)."""


def _feature_map_and_logits(model: nn.Module, x: torch.Tensor, layer: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature map (B, C, h, w), logits (B, K)) with the feature map in the autograd graph."""
    if layer is None:
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise ValueError(
                f"{type(model).__name__} has no forward_features/forward_head (not a timm model); "
                "name a convolutional layer with layer=..."
            )
        timm_model: Any = model  # forward_features/forward_head are timm's, not nn.Module's
        feats = timm_model.forward_features(x)
        return feats, timm_model.forward_head(feats)
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
        preprocess: The checkpoint's :class:`~fer_utils.model.transforms.Preprocess`
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
            batch_targets = None if tgt is None else tgt[start : start + len(x)]
            feats, grads = _features_and_gradients(model, x, batch_targets, layer)
            out[start : start + len(x), top : top + crop, top : top + crop] = _cam(feats, grads, crop)
    finally:
        model.train(was_training)
    return out


def _features_and_gradients(
    model: nn.Module, x: torch.Tensor, targets: np.ndarray | None, layer: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's feature map and the gradient of the explained class scores with respect to it.

    Args:
        model: As :func:`grad_cam`, in eval mode.
        x: The preprocessed batch (B, 1, S, S), on the model's device.
        targets: Class explained for each face of the batch (B,), or ``None`` for the predicted ones.
        layer: As :func:`grad_cam`.

    Returns:
        (feature map (B, C, h, w), its gradient, same shape).

    Raises:
        ValueError: the feature map is not 4-D, or a target is not a class index.
    """
    import torch

    # The input requires grad so the graph exists even for a frozen model.
    x.requires_grad_(True)
    with torch.enable_grad():
        feats, logits = _feature_map_and_logits(model, x, layer)
        if feats.ndim != 4:
            raise ValueError(
                f"the explained feature map must be (B, C, h, w), got shape {tuple(feats.shape)}; "
                "name a convolutional layer with layer=..."
            )
        if targets is None:
            cls = logits.argmax(dim=1)
        else:
            cls = torch.from_numpy(targets).to(logits.device)
            if int(cls.min()) < 0 or int(cls.max()) >= logits.shape[1]:
                raise ValueError(f"targets must be class indices in 0..{logits.shape[1] - 1}")
        score = logits.gather(1, cls[:, None]).sum()
        (grads,) = torch.autograd.grad(score, feats)
    return feats, grads


def _cam(feats: torch.Tensor, grads: torch.Tensor, crop: int) -> np.ndarray:
    """Grad-CAM maps of one batch at the crop's size: float32 (B, crop, crop), each divided by its peak.

    A map with no positive evidence stays all zeros instead of being divided by 0.
    """
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        weights = grads.float().mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * feats.float()).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=(crop, crop), mode="bilinear", align_corners=False)
        peak = cam.amax(dim=(2, 3), keepdim=True)
        cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam[:, 0].clamp(0, 1).cpu().numpy()


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
    from fer_utils import paths
    from fer_utils.model.checkpoint import load_model

    model, meta = load_model(paths.resolve(checkpoint), device=device)
    return grad_cam(model, images, meta["preprocess"], targets, layer=layer, device=device)


def stage_layers(model: nn.Module) -> list[str]:
    """Names of the model's stages, shallow to deep: timm's ``feature_info`` modules, then its last feature map.

    The last feature map (what ``layer=None`` explains) is listed as ``"(last)"``.
    """
    info = getattr(model, "feature_info", None)
    names = [f["module"] for f in info] if info is not None else []
    return [n for n in names if n] + ["(last)"]


def map_sides(model: nn.Module, preprocess: Preprocess, layers: Sequence[str]) -> dict[str, int]:
    """Side of each layer's feature map (pixels of the map) for one face through ``preprocess``."""
    import torch

    x = preprocess(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))
    was_training = model.training
    model.eval()
    sides: dict[str, int] = {}
    try:
        with torch.no_grad():
            for name in layers:
                feats, _ = _feature_map_and_logits(model, x, None if name == "(last)" else name)
                sides[name] = int(feats.shape[-1])
    finally:
        model.train(was_training)
    return sides


def _correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of maps (N, H, W); NaN where either map is constant."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=1) / np.where(norm > 0, norm, 1.0), np.nan)


def compare_layers(
    model: nn.Module,
    images: np.ndarray,
    preprocess: Preprocess,
    true: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    *,
    layers: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """How informative each layer's Grad-CAM maps are, measured on faces the model got wrong.

    For each layer, Grad-CAM explains every face twice, for its predicted and for its true
    class. A useful map answers the question "why this class and not that one": the two maps
    of a face differ (low ``class_correlation``), and maps differ between faces (high
    ``face_spread``), rather than lighting up the same blob everywhere.

    Args:
        model: A timm model.
        images: uint8 faces (N, 48, 48), typically misclassified ones.
        preprocess: The checkpoint's preprocessing.
        true: True class of each face (N,).
        predicted: Predicted class of each face (N,).
        layers: Names as :func:`stage_layers` gives them; ``None``: all stages.
        device: Where to run the model.

    Returns:
        One row per layer, shallow to deep: ``layer``, ``map_side`` (the feature map's native
        resolution, pixels per side), ``class_correlation`` (mean over faces of the Pearson
        correlation between the predicted- and the true-class map; faces where either map is
        constant are left out), ``face_spread`` (mean over faces of 1 - the correlation of the
        predicted-class map with the mean map of all faces) and ``faces`` (faces with both maps defined).
    """
    import pandas as pd

    names = list(layers) if layers is not None else stage_layers(model)
    sides = map_sides(model, preprocess, names)
    rows: list[dict[str, Any]] = []
    for name in names:
        layer = None if name == "(last)" else name
        pred_maps = grad_cam(model, images, preprocess, predicted, layer=layer, device=device)
        true_maps = grad_cam(model, images, preprocess, true, layer=layer, device=device)
        between = _correlations(pred_maps, true_maps)
        to_mean = _correlations(pred_maps, np.broadcast_to(pred_maps.mean(axis=0), pred_maps.shape))
        rows.append(
            {
                "layer": name,
                "map_side": sides[name],
                "class_correlation": float(np.nanmean(between)) if np.isfinite(between).any() else float("nan"),
                "face_spread": float(np.nanmean(1 - to_mean)) if np.isfinite(to_mean).any() else float("nan"),
                "faces": int(np.isfinite(between).sum()),
            }
        )
    return pd.DataFrame(rows)


def choose_layer(table: pd.DataFrame, min_side: int = 3) -> str | None:
    """The layer of a :func:`compare_layers` table whose maps best separate the two classes.

    Among layers with a feature map of at least ``min_side`` pixels per side, the one with the
    lowest ``class_correlation`` (ties: the deeper one).

    Returns:
        The layer name for :func:`grad_cam`'s ``layer`` (``None`` for ``"(last)"``).

    Raises:
        ValueError: no layer has a large enough map with defined correlations.
    """
    ok = table[(table["map_side"] >= min_side) & table["class_correlation"].notna()]
    if ok.empty:
        raise ValueError(f"no layer has a feature map of at least {min_side}x{min_side} with defined correlations")
    best = ok.iloc[::-1].loc[lambda t: t["class_correlation"] == t["class_correlation"].min()].iloc[0]
    return None if best["layer"] == "(last)" else str(best["layer"])


def resolve_layer(table: pd.DataFrame, requested: str = "auto") -> str | None:
    """The layer Grad-CAM explains, from a setting and a :func:`compare_layers` table.

    Args:
        table: From :func:`compare_layers`.
        requested: ``"auto"``: :func:`choose_layer`, or the last feature map when no layer
            qualifies (e.g. no mistakes to compare on); ``"last"``: the last feature map;
            else a module name such as ``"blocks.4"``.

    Returns:
        The module name for :func:`grad_cam`'s ``layer``; ``None`` for the last feature map.

    Raises:
        ValueError: ``requested`` names a layer that is not in ``table``.
    """
    if requested == "last":
        return None
    if requested == "auto":
        try:
            return choose_layer(table)
        except ValueError:
            return None
    if requested not in set(table["layer"]):
        raise ValueError(f"gradcam layer {requested!r} is not one of {', '.join(map(str, table['layer']))}")
    return requested


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
