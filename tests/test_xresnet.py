"""XResNet: shapes, parameter counts against torchvision's ResNets, zero-initialised residual BatchNorms, shortcuts."""
import pytest
import torch
from torch import nn

from teachkit.models import layer_shapes
from teachkit.xresnet import ConvBN, ResBlock, XResNet, shortcut, xresnet18, xresnet34, xresnet50

# Reference counts: torchvision's resnet18/34/50 (1000 classes), as published in its model docs: 11,689,512,
# 21,797,672 and 25,557,032 parameters. XResNet has the same blocks, the same 1x1 shortcut convs with BatchNorm
# (after an average pool instead of a stride) and the same head; only the stem differs: ResNet's 7x7 conv 3->64
# + BatchNorm (9,408 + 128) becomes three 3x3 convs 3->32->64->64 + BatchNorms (864+64 + 18,432+128 + 36,864+128).
RESNET_STEM = 7 * 7 * 3 * 64 + 2 * 64
XRESNET_STEM = (3 * 3 * 3 * 32 + 2 * 32) + (3 * 3 * 32 * 64 + 2 * 64) + (3 * 3 * 64 * 64 + 2 * 64)
TORCHVISION = {xresnet18: 11_689_512, xresnet34: 21_797_672, xresnet50: 25_557_032}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("arch", [xresnet18, xresnet34, xresnet50])
def test_parameter_count_matches_torchvision_resnet_with_the_xresnet_stem(arch):
    assert n_params(arch()) == TORCHVISION[arch] - RESNET_STEM + XRESNET_STEM


@pytest.mark.parametrize("arch", [xresnet18, xresnet34, xresnet50])
def test_output_shape_and_head_size(arch):
    m = arch(c_in=1, n_out=10).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 64, 64)).shape == (2, 10)
    assert m.fc.in_features == (2048 if arch is xresnet50 else 512)
    assert m.stem0.conv.in_channels == 1 and m.stem0.conv.out_channels == 16  # (c_in + 1) * 8, as in the course


def test_feature_map_sizes_halve_per_layer_after_the_stem():
    rows = layer_shapes(xresnet18(n_out=10), torch.randn(2, 3, 128, 128))
    shapes = {name.split()[0]: shape for name, shape, _ in rows}
    assert shapes["stem0"] == (2, 32, 64, 64) and shapes["maxpool"] == (2, 64, 32, 32)
    assert [shapes[f"layer{i}"] for i in range(1, 5)] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)]
    assert shapes["fc"] == (2, 10)


@pytest.mark.parametrize("arch", [xresnet18, xresnet50])
def test_last_batchnorm_of_every_residual_branch_starts_at_zero(arch):
    m = arch()
    blocks = [b for b in m.modules() if isinstance(b, ResBlock)]
    assert len(blocks) == (8 if arch is xresnet18 else 16)
    for b in blocks:
        last, others = b.convs[-1], list(b.convs)[:-1]
        assert torch.all(last.bn.weight == 0) and not hasattr(last, "act")
        assert all(torch.all(c.bn.weight == 1) for c in others)
    stem_bns = [m.stem0.bn, m.stem1.bn, m.stem2.bn]
    assert all(torch.all(bn.weight == 1) for bn in stem_bns)


def test_every_block_starts_as_its_shortcut_followed_by_the_activation():
    torch.manual_seed(0)
    b = ResBlock(1, 64, 128, stride=2).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.allclose(b(x), torch.relu(b.idpath(x)))


def test_shortcut_pools_before_the_1x1_conv_and_is_identity_when_nothing_changes():
    assert isinstance(shortcut(64, 64, 1), nn.Identity)
    pool_only = shortcut(64, 64, 2)
    x = torch.randn(1, 64, 7, 7)
    assert torch.equal(pool_only(x), nn.functional.avg_pool2d(x, 2, ceil_mode=True))
    both = shortcut(64, 128, 2)
    assert isinstance(both[0], nn.AvgPool2d) and isinstance(both[1], ConvBN) and both[1].conv.kernel_size == (1, 1)
    assert both[1].conv.stride == (1, 1)  # the pool downsamples: no pixel is skipped


def test_bottleneck_block_squeezes_then_expands():
    b = ResBlock(4, 64, 128, stride=2)
    assert [c.conv.kernel_size for c in b.convs] == [(1, 1), (3, 3), (1, 1)]
    assert [c.conv.out_channels for c in b.convs] == [128, 128, 512]
    assert b.convs[1].conv.stride == (2, 2)
    assert b(torch.randn(1, 256, 8, 8)).shape == (1, 512, 4, 4)


def test_convs_have_no_bias_and_kaiming_weights():
    torch.manual_seed(0)
    m = xresnet34()
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    w = m.layer3[0].convs[0].conv.weight  # 3x3 conv, 128 channels in: Kaiming std = sqrt(2 / (128 * 9))
    assert w.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
    assert torch.all(m.fc.bias == 0)


def test_activation_class_is_used_everywhere():
    m = xresnet18(act_cls=nn.Mish)
    assert not any(isinstance(a, nn.ReLU) for a in m.modules())
    assert sum(isinstance(a, nn.Mish) for a in m.modules()) == 3 + 8 * 2  # stem + two per basic block


@pytest.mark.parametrize("kwargs, match", [(dict(expansion=2, layers=[1, 1, 1, 1]), "expansion"),
                                           (dict(expansion=1, layers=[1, 1, 1]), "four layers"),
                                           (dict(expansion=1, layers=[1, 1, 1, 1], n_out=0), "n_out")])
def test_bad_arguments_say_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XResNet(**kwargs)


def test_lsuv_on_an_xresnet_rescales_the_convs_but_leaves_every_batchnorm_output_alone():
    """What lesson 11 says: convs have no bias (std only), the head is centred by its bias, BatchNorm undoes the scales."""
    import copy

    from teachkit.hooks import Hooks
    from teachkit.init import lsuv_init

    torch.manual_seed(0)
    kaiming = xresnet18(n_out=10)
    lsuv = copy.deepcopy(kaiming)
    xb = torch.randn(16, 3, 32, 32)
    report = lsuv_init(lsuv, xb, progress=False)
    assert {r.shift for r in report} == {None, "bias"} and report[-1].shift == "bias"

    def bn_outputs(m):
        m = copy.deepcopy(m).train()
        bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
        with Hooks(bns, lambda h, mod, i, o: setattr(h, "out", o.detach())) as hooks, torch.no_grad():
            m(xb)
        return [h.out for h in hooks]

    assert max((a - b).abs().max().item() for a, b in zip(bn_outputs(kaiming), bn_outputs(lsuv))) < 1e-2
    ratios = [c1.weight.norm() / c0.weight.norm() for c0, c1 in zip(kaiming.modules(), lsuv.modules())
              if isinstance(c0, nn.Conv2d)]
    assert max(abs(r - 1) for r in ratios) > 0.2  # the weights did change scale


def test_xresnet18_learns_a_folder_of_small_generated_images(tmp_path):
    """A few epochs on the generated Imagenette look-alike (10 classes of shapes on noise) at 24 px: far above chance."""
    from functools import partial

    from teachkit.callbacks import AvgStatsCallback, BatchTransformXCallback, ParamScheduler, accuracy
    from teachkit.data import norm_imagenette
    from teachkit.learner import Learner
    from teachkit.data import make_imagenette_like
    from teachkit.optim import adam_opt
    from teachkit.data.imagenette import imagenette_dls
    from teachkit.schedule import one_cycle
    from teachkit.utils import set_seed

    path = make_imagenette_like(tmp_path / "small", 320, 100, short_side=32)
    set_seed(0)
    dls = imagenette_dls(path, 24, 32, workers=0)
    set_seed(0)
    learn = Learner(xresnet18(n_out=dls.c_out), dls, nn.CrossEntropyLoss(label_smoothing=0.1),
                    partial(adam_opt, wd=1e-2), 1e-2,
                    [BatchTransformXCallback(norm_imagenette), AvgStatsCallback(accuracy),
                     ParamScheduler("lr", one_cycle(1e-2))])
    learn.logger = lambda row: None
    learn.fit(4)
    assert learn.avg_stats.valid_stats.avg_stats[1] > 0.6  # chance is 0.1; measured 0.84
