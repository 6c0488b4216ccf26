"""Lesson 07a/08 models: GeneralRelu, conv layers, the lesson CNN, kaiming init and the shape summary."""
import functools
import math

import pytest
import torch
from torch import nn

from teachkit.learner import Learner
from teachkit.models import (ConvLayer, GeneralRelu, conv_layer, get_cnn_layers, get_cnn_model, init_cnn,
                             layer_shapes, model_summary, prev_pow_2)
from teachkit.toy import toy_databunch

# The shapes the course prints for the lesson-08 CNN (nfs [64, 64, 128, 256], 10 classes) on a 64x3x128x128 batch.
LESSON_SHAPES = [[64, 16, 128, 128], [64, 32, 64, 64], [64, 64, 32, 32], [64, 64, 16, 16], [64, 64, 8, 8],
                 [64, 128, 4, 4], [64, 256, 2, 2], [64, 256, 1, 1], [64, 256], [64, 10]]


def lesson_cnn_on_meta() -> nn.Module:
    """The lesson CNN on the meta device: shapes without the compute, so a full-size batch costs nothing."""
    with torch.device("meta"):
        return get_cnn_model(3, 10, [64, 64, 128, 256])


def test_general_relu():
    x = torch.tensor([-2.0, -0.5, 0.0, 1.0, 10.0])
    assert torch.equal(GeneralRelu()(x), torch.relu(x))
    assert torch.allclose(GeneralRelu(leak=0.1, sub=0.4, maxv=6.0)(x), torch.tensor([-0.6, -0.45, -0.4, 0.6, 6.0]))
    r = GeneralRelu(sub=0.4)
    assert "sub" in r.state_dict() and "sub=0.4" in repr(r)
    assert "sub" not in GeneralRelu().state_dict()


def test_general_relu_grad():
    x = torch.randn(20, requires_grad=True)
    GeneralRelu(leak=0.1, sub=0.4, maxv=0.5)(x).sum().backward()
    expected = torch.where(x > 0, 1.0, 0.1) * (torch.where(x > 0, x, 0.1 * x) - 0.4 < 0.5)
    assert torch.allclose(x.grad, expected)


def test_conv_layer():
    with_bn, without_bn = conv_layer(3, 8), conv_layer(3, 8, bn=False, leak=0.1, sub=0.4)
    assert isinstance(with_bn, ConvLayer) and [n for n, _ in with_bn.named_children()] == ["conv", "relu", "bn"]
    assert with_bn.conv.bias is None and isinstance(with_bn.bn, nn.BatchNorm2d)
    assert without_bn.conv.bias is not None and not hasattr(without_bn, "bn")
    assert without_bn.relu.leak == 0.1 and without_bn.relu.sub.item() == pytest.approx(0.4)
    assert with_bn(torch.randn(2, 3, 9, 9)).shape == (2, 8, 5, 5)
    assert conv_layer(3, 8, ks=5, stride=1)(torch.randn(2, 3, 9, 9)).shape == (2, 8, 9, 9)


def test_prev_pow_2():
    assert [prev_pow_2(x) for x in (1, 2, 3, 9, 16, 27, 100)] == [1, 2, 2, 8, 16, 16, 64]
    with pytest.raises(ValueError, match=">= 1"):
        prev_pow_2(0)


def test_get_cnn_layers_follows_the_lesson():
    layers = get_cnn_layers(3, 10, [64, 64, 128, 256])
    convs = [m.conv for m in layers if isinstance(m, ConvLayer)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 16, 1), (16, 32, 2), (32, 64, 2), (64, 64, 2), (64, 64, 2), (64, 128, 2), (128, 256, 2)]
    assert isinstance(layers[-3], nn.AdaptiveAvgPool2d) and isinstance(layers[-1], nn.Linear)
    assert layers[-1].out_features == 10
    assert get_cnn_layers(1, 2, [8], bn=False, sub=0.2)[0].conv.out_channels == 8  # prev_pow_2(1*9)
    with pytest.raises(ValueError, match="nfs"):
        get_cnn_layers(3, 10, [])


def test_layer_shapes_match_the_lesson():
    rows = layer_shapes(lesson_cnn_on_meta(), torch.empty(64, 3, 128, 128, device="meta"))
    assert [list(s) for _, s, _ in rows] == LESSON_SHAPES
    assert [n for n, _, _ in rows][:2] == ["0 ConvLayer", "1 ConvLayer"] and rows[-1][0] == "9 Linear"
    assert rows[0][2] == 3 * 16 * 9 + 2 * 16 and rows[-1][2] == 256 * 10 + 10


def test_model_summary_prints_the_lesson_shapes(capsys):
    model_summary(lesson_cnn_on_meta(), torch.empty(64, 3, 128, 128, device="meta"))
    out = capsys.readouterr().out
    for shape in LESSON_SHAPES:
        assert str(shape) in out
    assert "Total params: 469,658" in out


def test_model_summary_find_all_and_learner(capsys):
    torch.manual_seed(0)
    model = get_cnn_model(3, 4, [8, 8])
    learn = Learner(model, toy_databunch("images", n_train=8, n_valid=8, bs=4),
                    opt_func=functools.partial(torch.optim.SGD, momentum=0.9))
    model_summary(learn, torch.randn(4, 3, 16, 16), find_all=True)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines[2:-1]] == ["0.conv", "1.conv", "2.conv", "3.conv", "4.conv", "7"]
    assert "[4, 4]" in lines[-2]


def test_layer_shapes_leaves_the_model_alone():
    torch.manual_seed(0)
    model = get_cnn_model(3, 4, [8]).train()
    bn = model[0].bn
    layer_shapes(model, torch.randn(4, 3, 16, 16) * 5 + 3)
    assert model.training and bn.training
    assert torch.equal(bn.running_mean, torch.zeros(16)) and bn.num_batches_tracked.item() == 0


@pytest.mark.parametrize("uniform", [False, True])
def test_init_cnn_is_kaiming(uniform):
    torch.manual_seed(0)
    model = get_cnn_model(3, 4, [64, 64], bn=False, leak=0.1, sub=0.4)
    assert init_cnn(model, uniform=uniform) is model
    for layer in model[:5]:
        w = layer.conv.weight
        fan_in = w[0].numel()
        assert w.std().item() == pytest.approx(math.sqrt(2 / ((1 + 0.1**2) * fan_in)), rel=0.15)
        assert torch.equal(layer.conv.bias, torch.zeros_like(layer.conv.bias))
    # kaiming keeps the pre-activation scale: no vanishing or exploding through the stem
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        for layer in model[:3]:
            x = layer(x) + layer.relu.sub
    assert 0.3 < x.std().item() < 3
