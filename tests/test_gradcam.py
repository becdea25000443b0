"""Grad-CAM: heat maps of the right shape and range, in face coordinates, for the class asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fer_utils import NUM_CLASSES
from fer_utils.evaluate import choose_layer, compare_layers, grad_cam, overlay
from fer_utils.evaluate.gradcam import _correlations, map_sides, stage_layers
from fer_utils.model import Preprocess


class HalvesNet(nn.Module):
    """A timm-like model whose class 0 looks only at the left half of the face and class 1 only at the right.

    ``forward_features`` gives (B, 2, 12, 12): the pooled face masked to the left and to the right half;
    ``forward_head`` averages channel 0 into logit 0 and channel 1 into logit 1 (other logits are 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.scale = nn.Parameter(torch.ones(1))  # a parameter, so "no parameter gradients kept" is testable
        mask = torch.zeros(2, 12, 12)
        mask[0, :, :6] = 1
        mask[1, :, 6:] = 1
        self.register_buffer("mask", mask)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * self.mask * self.scale

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        two = f.mean(dim=(2, 3))
        return torch.cat([two, torch.zeros(len(f), NUM_CLASSES - 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


BRIGHT = np.full((3, 48, 48), 230, dtype=np.uint8)  # positive after normalisation, so evidence is positive
PRE48 = Preprocess(img_size=48, crop_size=48, mean=0.5, std=0.25)


def test_heat_maps_are_float_maps_of_the_face_in_0_1():
    heat = grad_cam(HalvesNet(), BRIGHT, PRE48, [0, 1, 0])
    assert heat.shape == (3, 48, 48) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and np.allclose(heat.max(axis=(1, 2)), 1.0)


def test_the_map_follows_the_explained_class():
    heat = grad_cam(HalvesNet(), BRIGHT[:2], PRE48, [0, 1])
    left, right = heat[:, :, :20], heat[:, :, 28:]
    assert left[0].min() > 0.5 and right[0].max() == 0.0  # class 0: left half only
    assert right[1].min() > 0.5 and left[1].max() == 0.0  # class 1: right half only


def test_default_target_is_the_predicted_class():
    model = HalvesNet()
    faces = BRIGHT[:1].copy()
    faces[:, :, 24:] = 255  # brighter right half: class 1 wins
    assert model(PRE48(faces)).argmax(1).item() == 1
    np.testing.assert_array_equal(grad_cam(model, faces, PRE48), grad_cam(model, faces, PRE48, [1]))


def test_border_outside_the_centre_crop_is_zero():
    pre = Preprocess(img_size=48, crop_size=40, mean=0.5, std=0.25)
    heat = grad_cam(HalvesNet(), BRIGHT[:1], pre, [0])
    assert heat.shape == (1, 48, 48)
    assert heat[0, :4].max() == 0 and heat[0, 44:].max() == 0 and heat[0, :, :4].max() == 0
    assert heat[0, 4:44, 4:20].min() > 0


def test_a_named_layer_is_captured_with_a_hook():
    class Wrapped(nn.Module):  # no forward_features: needs layer=
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, NUM_CLASSES))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    torch.manual_seed(0)
    model = Wrapped()
    with pytest.raises(ValueError, match="layer="):
        grad_cam(model, BRIGHT[:1], PRE48)
    heat = grad_cam(model, BRIGHT[:2], PRE48, layer="body")
    assert heat.shape == (2, 48, 48) and 0 <= heat.min() and heat.max() <= 1


def test_model_mode_is_restored_and_no_parameter_gradients_are_left():
    model = HalvesNet().train()
    grad_cam(model, BRIGHT[:1], PRE48, [0])
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="uint8"):
        grad_cam(HalvesNet(), BRIGHT.astype(np.float32), PRE48)
    with pytest.raises(ValueError, match="targets must have shape"):
        grad_cam(HalvesNet(), BRIGHT, PRE48, [0])
    with pytest.raises(ValueError, match="class indices"):
        grad_cam(HalvesNet(), BRIGHT[:1], PRE48, [NUM_CLASSES])


@pytest.mark.parametrize("arch", ["efficientnet_b3", "resnet10t"])
def test_timm_models_give_one_48x48_map_per_face(arch):
    from fer_utils.model import ModelConfig, create_model

    torch.manual_seed(0)
    model, _ = create_model(ModelConfig(arch=arch, drop_rate=0.0, drop_path_rate=0.0))
    faces = np.random.default_rng(0).integers(0, 256, size=(2, 48, 48), dtype=np.uint8)
    heat = grad_cam(model, faces, Preprocess(crop_size=44), [0, 3])
    assert heat.shape == (2, 48, 48) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0


def test_overlay_is_an_rgb_image_of_the_face_size():
    face = np.zeros((48, 48), dtype=np.uint8)
    heat = np.zeros((48, 48), dtype=np.float32)
    heat[:, 24:] = 1.0
    rgb = overlay(face, heat, alpha=0.5)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert rgb[0, 40, 0] > rgb[0, 40, 2]  # hot = red in "jet"
    assert rgb[0, 5, 2] > rgb[0, 5, 0]  # cold = blue
    with pytest.raises(ValueError, match="same 2-D shape"):
        overlay(face, heat[:10])


def test_map_correlation_is_one_for_equal_maps_minus_one_for_opposite_and_undefined_for_flat():
    a = np.random.default_rng(0).random((2, 48, 48))
    flat = np.zeros((1, 48, 48))
    assert np.allclose(_correlations(a, a), 1.0)
    assert np.allclose(_correlations(a, 1 - a), -1.0)
    assert np.isnan(_correlations(a[:1], flat)).all()


def test_layer_comparison_lists_every_stage_with_its_native_map_side():
    from fer_utils.model import ModelConfig, create_model

    torch.manual_seed(0)
    model, _ = create_model(ModelConfig(arch="efficientnet_b0", zero_init_last=False))
    pre = Preprocess(crop_size=44)
    layers = stage_layers(model)
    assert layers[-1] == "(last)" and "blocks.2" in layers
    sides = map_sides(model, pre, layers)
    assert sides["blocks.2"] == 6 and sides["(last)"] == 2  # 44 px through strides of 8 and 32
    faces = np.random.default_rng(0).integers(0, 256, size=(4, 48, 48), dtype=np.uint8)
    table = compare_layers(model, faces, pre, [0, 1, 2, 3], [4, 5, 6, 0], layers=["blocks.2", "(last)"])
    assert list(table["layer"]) == ["blocks.2", "(last)"] and list(table["map_side"]) == [6, 2]
    defined = table.dropna()
    assert ((defined["class_correlation"] >= -1) & (defined["class_correlation"] <= 1)).all()


def test_halves_net_maps_for_its_two_classes_are_anticorrelated():
    table = compare_layers(
        HalvesNet(), BRIGHT, PRE48, np.zeros(len(BRIGHT), int), np.ones(len(BRIGHT), int), layers=["(last)"]
    )
    assert table.loc[0, "class_correlation"] < -0.5  # left half against right half


def test_layer_choice_takes_the_most_class_specific_map_of_at_least_3x3():
    import pandas as pd

    table = pd.DataFrame(
        {
            "layer": ["blocks.2", "blocks.4", "blocks.6", "(last)"],
            "map_side": [6, 3, 2, 2],
            "class_correlation": [0.5, 0.3, 0.1, 0.9],
            "face_spread": [0.4, 0.3, 0.2, 0.1],
        }
    )
    assert choose_layer(table) == "blocks.4"  # blocks.6 separates better but its map is 2x2
    assert choose_layer(table, min_side=2) == "blocks.6"
    assert choose_layer(table.assign(class_correlation=[0.5, 0.3, 0.1, 0.0]), min_side=2) is None  # "(last)"
    with pytest.raises(ValueError, match="at least 7x7"):
        choose_layer(table, min_side=7)


def layer_table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["layer", "map_side", "class_correlation", "face_spread"])


def test_resolve_layer_auto_takes_the_checked_choice():
    from fer_utils.evaluate import resolve_layer

    table = layer_table([("blocks.1", 12, 0.2, 0.5), ("blocks.2", 6, -0.1, 0.4), ("(last)", 2, 0.4, 0.1)])
    assert resolve_layer(table, "auto") == "blocks.2"


def test_resolve_layer_auto_falls_back_to_the_last_map_when_no_layer_qualifies():
    from fer_utils.evaluate import resolve_layer

    table = layer_table([("blocks.1", 12, float("nan"), 0.5), ("(last)", 2, float("nan"), 0.1)])
    assert resolve_layer(table, "auto") is None


def test_resolve_layer_takes_last_or_a_named_layer_and_refuses_an_unknown_one():
    from fer_utils.evaluate import resolve_layer

    table = layer_table([("blocks.1", 12, 0.2, 0.5), ("(last)", 2, 0.4, 0.1)])
    assert resolve_layer(table, "last") is None
    assert resolve_layer(table, "blocks.1") == "blocks.1"
    with pytest.raises(ValueError, match="'blocks.9' is not one of blocks.1, \\(last\\)"):
        resolve_layer(table, "blocks.9")
