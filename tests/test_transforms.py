import numpy as np
import pytest
import torch

from fer_utils.model import AugmentConfig, GrayAugment, Preprocess, pixel_stats, tta_views


def faces(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def test_preprocess_gives_normalised_one_channel_batch_of_model_size():
    pre = Preprocess(img_size=64, crop_size=44, mean=0.5, std=0.25)
    x = pre(faces(3))
    assert x.shape == (3, 1, 64, 64) and x.dtype == torch.float32


def test_preprocess_normalises_with_given_statistics():
    img = np.full((1, 48, 48), 255, dtype=np.uint8)
    x = Preprocess(mean=0.2, std=0.5)(img)
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.2) / 0.5))


def test_preprocess_accepts_single_face():
    assert Preprocess()(faces(1)[0]).shape == (1, 1, 48, 48)


def test_preprocess_rejects_float_input():
    with pytest.raises(TypeError, match="uint8"):
        Preprocess()(np.zeros((1, 48, 48), dtype=np.float32))


def test_preprocess_round_trips_through_dict():
    pre = Preprocess(img_size=56, crop_size=40, mean=0.51, std=0.26)
    assert Preprocess.from_dict(pre.to_dict()) == pre


def test_preprocess_rejects_crop_larger_than_face():
    with pytest.raises(ValueError, match="crop_size"):
        Preprocess(crop_size=50)


@pytest.mark.parametrize("mode,count", [("none", 1), ("flip", 2), ("tencrop", 10)])
def test_tta_views_count_and_shape(mode, count):
    views = tta_views(faces(2), Preprocess(img_size=40, crop_size=44), mode)
    assert len(views) == count
    assert all(v.shape == (2, 1, 40, 40) for v in views)


def test_tta_flip_view_is_mirror_of_first():
    v = tta_views(faces(2), Preprocess(), "flip")
    assert torch.equal(v[1], v[0].flip(-1))


def test_tta_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(faces(1), Preprocess(), "rotate")


def test_augment_output_shape_and_determinism_for_a_generator():
    aug = GrayAugment(Preprocess(img_size=48, crop_size=44))
    x = torch.from_numpy(faces(8))
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == (8, 1, 48, 48)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_without_changes_equals_centre_crop_preprocess():
    pre = Preprocess(img_size=48, crop_size=48, mean=0.5, std=0.25)
    still = AugmentConfig(scale=(1.0, 1.0), rotate_deg=0, translate=0, hflip=0, brightness=0, contrast=0, erasing=0)
    x = torch.from_numpy(faces(3))
    assert torch.allclose(GrayAugment(pre, still)(x), pre(x), atol=1e-4)


def test_augment_always_flipping_mirrors_the_face():
    pre = Preprocess(img_size=48, crop_size=48)
    flip = AugmentConfig(scale=(1.0, 1.0), rotate_deg=0, translate=0, hflip=1.0, brightness=0, contrast=0, erasing=0)
    x = torch.from_numpy(faces(2))
    assert torch.allclose(GrayAugment(pre, flip)(x), pre(x).flip(-1), atol=1e-4)


def test_augment_erasing_replaces_a_rectangle():
    pre = Preprocess(img_size=48, crop_size=48)
    erase = AugmentConfig(
        scale=(1.0, 1.0),
        rotate_deg=0,
        translate=0,
        hflip=0,
        brightness=0,
        contrast=0,
        erasing=1.0,
        erasing_area=(0.1, 0.1),
    )
    x = torch.from_numpy(faces(4))
    changed = (GrayAugment(pre, erase)(x, torch.Generator().manual_seed(0)) - pre(x)).abs() > 1e-4
    share = changed.float().mean(dim=(1, 2, 3))
    assert torch.all(share > 0.05) and torch.all(share < 0.15)


def test_pixel_stats_of_constant_images():
    mean, std = pixel_stats(np.full((5, 48, 48), 51, dtype=np.uint8))
    assert mean == pytest.approx(0.2) and std == pytest.approx(0.0)
