import logging

import pytest
import timm
import torch

from fer_utils import NUM_CLASSES
from fer_utils.model import ModelConfig, create_model, pretrained_stats


@pytest.fixture(scope="module")
def b3():
    model, init = create_model(ModelConfig(drop_rate=0.0, drop_path_rate=0.0))
    return model, init


def test_efficientnet_b3_forward_and_backward_shapes(b3):
    model, init = b3
    x = torch.randn(2, 1, 48, 48, requires_grad=True)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, NUM_CLASSES)
    assert x.grad is not None and x.grad.shape == x.shape
    assert init == "random"


def test_model_takes_one_channel_faces(b3):
    model, _ = b3
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 48, 48))


def test_stem_stride_one_doubles_final_feature_map():
    small = create_model(ModelConfig(arch="resnet18", stem_stride=2))[0].eval()
    large = create_model(ModelConfig(arch="resnet18", stem_stride=1))[0].eval()
    x = torch.randn(1, 1, 64, 64)
    assert large.forward_features(x).shape[-1] == 2 * small.forward_features(x).shape[-1]


def test_pretrained_offline_falls_back_to_random_with_warning(monkeypatch, caplog):
    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("hub unreachable")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with caplog.at_level(logging.WARNING, logger="fer_utils.model.network"):
        model, init = create_model(ModelConfig(arch="resnet18"), pretrained=True)
    assert init.startswith("random (pretrained weights unavailable: OSError: hub unreachable")
    assert "RANDOM INITIALISATION" in caplog.text
    assert model(torch.randn(1, 1, 48, 48)).shape == (1, NUM_CLASSES)


def test_local_weights_file_is_loaded_with_rgb_stem_summed_to_gray(tmp_path):
    rgb = timm.create_model("resnet18", pretrained=False)  # ImageNet-shaped: 3 channels, 1000 classes
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(rgb.state_dict(), path)
    model, init = create_model(ModelConfig(arch="resnet18"), weights_path=path)
    assert init == "file: resnet18_imagenet.pth"
    assert torch.allclose(model.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(model.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    assert model.fc.out_features == NUM_CLASSES


def test_missing_weights_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        create_model(ModelConfig(arch="resnet18"), weights_path=tmp_path / "nope.pth")


def test_pretrained_stats_average_rgb(b3):
    mean, std = pretrained_stats(b3[0])
    assert mean == pytest.approx(sum((0.485, 0.456, 0.406)) / 3)
    assert std == pytest.approx(sum((0.229, 0.224, 0.225)) / 3)


def test_random_init_starts_with_uniform_predictions():
    model, _ = create_model(ModelConfig())
    probs = model.eval()(torch.randn(2, 1, 48, 48)).softmax(1)
    assert torch.allclose(probs, torch.full_like(probs, 1 / NUM_CLASSES))


def test_zero_init_last_makes_every_residual_block_start_as_identity():
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

    model, _ = create_model(ModelConfig(arch="efficientnet_b0", zero_init_last=True, drop_rate=0.0, drop_path_rate=0.0))
    model.eval()
    seen = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, torch.equal(out, inp[0])))
        for name, m in model.named_modules()
        if isinstance(m, (InvertedResidual, DepthwiseSeparableConv)) and m.has_skip
    ]
    model(torch.randn(2, 1, 48, 48))
    for h in hooks:
        h.remove()
    assert len(seen) >= 9 and all(seen.values())


def test_zero_init_last_can_be_turned_off():
    model, _ = create_model(ModelConfig(arch="efficientnet_b0", zero_init_last=False))
    scales = [m.bn3.weight for m in model.modules() if getattr(m, "has_skip", False) and hasattr(m, "bn3")]
    assert scales and all(bool((w != 0).all()) for w in scales)


def test_output_stride_16_ends_on_a_3x3_map_with_the_same_weights():
    wide, _ = create_model(ModelConfig(output_stride=16))
    plain, _ = create_model(ModelConfig())
    x = torch.randn(1, 1, 44, 44)
    assert wide.forward_features(x).shape[-2:] == (3, 3)
    assert plain.forward_features(x).shape[-2:] == (2, 2)
    assert {k: v.shape for k, v in wide.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
