"""Training targets: smoothed one-hot labels, mixup and cutmix, FER+ vote shares, label corrections, and the loss."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from fer_utils.constants import NUM_CLASSES
from fer_utils.files import md5_file

if TYPE_CHECKING:
    from fer_utils.data import FERData
    from fer_utils.train.recipe import TrainConfig

logger = logging.getLogger(__name__)


def soft_targets(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """One-hot targets (N, NUM_CLASSES) with label smoothing."""
    t = F.one_hot(labels, NUM_CLASSES).float()
    return t * (1 - smoothing) + smoothing / NUM_CLASSES


def mix_batch(
    x: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply mixup or cutmix to a batch with probability ``cfg.mix_prob``."""
    use = [a for a in (("mixup", cfg.mixup_alpha), ("cutmix", cfg.cutmix_alpha)) if a[1] > 0]
    if not use or torch.rand(1, generator=gen).item() >= cfg.mix_prob:
        return x, t
    kind, alpha = use[int(torch.randint(len(use), (1,), generator=gen))]
    lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=gen))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen)
    if kind == "mixup":
        return x * lam + x[perm] * (1 - lam), t * lam + t[perm] * (1 - lam)
    h, w = x.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, t * lam + t[perm] * (1 - lam)


def ferplus_targets(labels: np.ndarray, votes_df: Any, weight: float, smoothing: float) -> torch.Tensor:
    """Training targets that mix each face's FER2013 label with its FER+ vote shares.

    Faces whose votes are not usable (no emotion votes, or "not a face" voted at least as
    often as any emotion; see :func:`fer_utils.data.ferplus.vote_shares`) keep their FER2013 label.

    Args:
        labels: (N,) FER2013 labels.
        votes_df: The same faces' FER+ votes, row-aligned (:func:`fer_utils.data.ferplus.align_votes`).
        weight: Share of the target given to the votes, in [0, 1].
        smoothing: Label smoothing of the FER2013 part.

    Returns:
        (N, NUM_CLASSES) float32 targets, rows summing to 1.
    """
    from fer_utils.data.ferplus import vote_shares

    shares, usable = vote_shares(votes_df)
    t = soft_targets(torch.from_numpy(labels.astype(np.int64)), smoothing)
    mask = torch.from_numpy(usable)
    t[mask] = (1 - weight) * t[mask] + weight * torch.from_numpy(shares[usable])
    return t


def ferplus_distribution_targets(votes_df: Any, smoothing: float) -> tuple[torch.Tensor, np.ndarray]:
    """Eight-class training targets from FER+ votes: each face's vote distribution
    (:func:`fer_utils.data.ferplus_distribution`), smoothed towards uniform by ``smoothing``.

    Returns:
        ``(targets, usable)``: (N, 8) float32 rows summing to 1, and (N,) bool: only usable faces train.
    """
    from fer_utils.data import ferplus_distribution

    distribution, usable = ferplus_distribution(votes_df)
    t = torch.from_numpy(distribution)
    return (1 - smoothing) * t + smoothing / t.shape[1], usable


def weighted_soft_ce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy with soft targets; class weights scale each class's term."""
    logp = F.log_softmax(logits.float(), dim=1)
    if weights is not None:
        targets = targets * weights
    return -(targets * logp).sum(1).mean()


def correct_labels(split: FERData, review_csv: Path) -> tuple[FERData, dict[str, Any]]:
    """Apply the corrected labels of a review file (notebook 04's browser) to one split.

    Only rows of ``split`` change: corrections of rows in other splits (PublicTest,
    PrivateTest) are counted and ignored, so evaluation labels never move.

    Args:
        split: The training split (``index`` holds each face's row in the source file).
        review_csv: A review CSV (:mod:`fer_utils.data.review`).

    Returns:
        ``(split with corrected labels, record)``; the record names the file, its MD5 and
        how many corrections were applied and ignored.
    """
    from fer_utils.data.review import corrections, load_review

    fixed = corrections(load_review(review_csv))
    position = {int(row): i for i, row in enumerate(split.index)}
    labels = split.labels.copy()
    applied = 0
    for row, label in fixed.items():
        i = position.get(int(row))
        if i is not None and labels[i] != label:
            labels[i] = label
            applied += 1
    ignored = sum(int(row) not in position for row in fixed)
    logger.info(
        "%s: %d corrected labels applied to %s, %d for rows of other splits ignored",
        review_csv,
        applied,
        split.usage[0] if len(split) else "the split",
        ignored,
    )
    record = {"file": str(review_csv), "md5": md5_file(review_csv), "applied": applied, "ignored_other_splits": ignored}
    return replace(split, labels=labels), record
