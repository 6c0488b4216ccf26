"""Lesson 11's exercises: XResNet's shortcut, and a ResBlock's parameter count by hand, checked against teachkit.xresnet.

1. `shortcut(ni, nf, stride)`: the identity path of a ResBlock. Average 2x2 pixels when `stride` is 2
   (`nn.AvgPool2d(2, ceil_mode=True)`), then a 1x1 conv + BatchNorm when the channels change; nothing at all
   (`nn.Identity()`) when neither changes.
2. `resblock_params(expansion, ni, nh, stride)`: how many parameters `ResBlock(expansion, ni, nh, stride)` has,
   from the architecture alone (a conv without bias has ni * nf * ks * ks weights, a BatchNorm 2 per channel).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..xresnet import ConvBN, shortcut
from . import Case, Exercise, Mistake, Verdict

# ---------------------------------------------------------------- 1. the shortcut

solution_shortcut = shortcut  # the solution is teachkit's own: show_source(solution_shortcut) prints it

SHORTCUT_CASES = [Case("8 -> 8 channels, stride 1", lambda: (8, 8, 1)),
                  Case("8 -> 8 channels, stride 2, on a 7x7 input", lambda: (8, 8, 2)),
                  Case("8 -> 16 channels, stride 2, on a 7x7 input", lambda: (8, 16, 2)),
                  Case("8 -> 16 channels, stride 1", lambda: (8, 16, 1))]


def _observe_shortcut(fn: Any, args: tuple) -> dict[str, Any]:
    """Build the shortcut, give every conv the same seeded weights and every BatchNorm its fresh (identity) statistics,
    and run it on a seeded 7x7 batch in eval mode, then in training mode: there BatchNorm normalises with the batch's
    statistics, which tells a BatchNorm after the pool from one before it (in eval mode pool and 1x1 conv commute)."""
    m = fn(*args)
    if not isinstance(m, nn.Module):
        return {"what your function returns": type(m).__name__}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for c in m.modules():
            if isinstance(c, nn.Conv2d):
                c.weight.copy_(torch.randn(c.weight.shape, generator=g))
                if c.bias is not None:
                    c.bias.zero_()
        x = torch.randn(2, args[0], 7, 7, generator=g)
        out = m.eval()(x)
        out_train = m.train()(x)
    return {"what your function returns": "an nn.Module", "the output's shape": tuple(out.shape),
            "the number of parameters": sum(p.numel() for p in m.parameters()), "the output": out,
            "the output in training mode (BatchNorm normalising with the batch's statistics)": out_train}


def _strided_conv(ni, nf, stride=1):
    if ni == nf and stride == 1:
        return nn.Identity()
    return ConvBN(ni, nf, ks=1, stride=stride, act_cls=None)


def _always_conv(ni, nf, stride=1):
    layers = [nn.AvgPool2d(2, ceil_mode=True)] if stride != 1 else []
    return nn.Sequential(*layers, ConvBN(ni, nf, ks=1, act_cls=None))


def _max_pool(ni, nf, stride=1):
    layers = [nn.MaxPool2d(2, ceil_mode=True)] if stride != 1 else []
    layers += [ConvBN(ni, nf, ks=1, act_cls=None)] if ni != nf else []
    return nn.Sequential(*layers)


def _no_ceil(ni, nf, stride=1):
    layers = [nn.AvgPool2d(2)] if stride != 1 else []
    layers += [ConvBN(ni, nf, ks=1, act_cls=None)] if ni != nf else []
    return nn.Sequential(*layers)


def _no_pool(ni, nf, stride=1):
    return ConvBN(ni, nf, ks=1, act_cls=None) if ni != nf else nn.Identity()


def _with_activation(ni, nf, stride=1):
    layers = [nn.AvgPool2d(2, ceil_mode=True)] if stride != 1 else []
    layers += [ConvBN(ni, nf, ks=1)] if ni != nf else []
    return nn.Sequential(*layers)


def _no_batchnorm(ni, nf, stride=1):
    layers = [nn.AvgPool2d(2, ceil_mode=True)] if stride != 1 else []
    layers += [nn.Conv2d(ni, nf, 1, bias=False)] if ni != nf else []
    return nn.Sequential(*layers)


def _conv_before_pool(ni, nf, stride=1):
    layers = [ConvBN(ni, nf, ks=1, act_cls=None)] if ni != nf else []
    layers += [nn.AvgPool2d(2, ceil_mode=True)] if stride != 1 else []
    return nn.Sequential(*layers)


SHORTCUT_MISTAKES = [
    Mistake(_conv_before_pool, "pool first, then the 1x1 conv: nn.AvgPool2d(2, ceil_mode=True), then ConvBN(ni, nf, ks=1, "
                               "act_cls=None). After the pool the conv runs on 4x fewer pixels, and in training its "
                               "BatchNorm normalises the pooled map, as the branch's BatchNorms do."),
    Mistake(_strided_conv, "a strided 1x1 conv reads one pixel in four and ignores the rest: that is the 2015 ResNet. "
                           "XResNet averages 2x2 pixels with nn.AvgPool2d(2, ceil_mode=True), which has no parameters, "
                           "and adds the 1x1 conv (stride 1) only when the channels change."),
    Mistake(_always_conv, "when ni == nf there is nothing to convert: no conv (the pool alone, or nn.Identity())."),
    Mistake(_max_pool, "the shortcut averages the pixels (nn.AvgPool2d), it does not keep the largest one."),
    Mistake(_no_ceil, "use ceil_mode=True: a 7-pixel side must become 4, as in the branch's stride-2 conv, or the two "
                      "paths can't be added."),
    Mistake(_no_pool, "with stride 2 the branch halves the size: the shortcut must downsample too (nn.AvgPool2d(2, ceil_mode=True))."),
    Mistake(_with_activation, "no activation in the shortcut (act_cls=None): the ResBlock applies it after the sum."),
    Mistake(_no_batchnorm, "the 1x1 conv is followed by a BatchNorm, like every conv in XResNet: "
                           "ConvBN(ni, nf, ks=1, act_cls=None)."),
]

SHORTCUT = Exercise("shortcut", solution_shortcut, SHORTCUT_CASES, _observe_shortcut, SHORTCUT_MISTAKES,
                    rtol=1e-4, atol=1e-5, signature_hint="It is called as shortcut(ni, nf, stride) and returns an nn.Module.")


def check_shortcut(fn: Any) -> Verdict:
    """Check a learner's `shortcut(ni, nf, stride)` against `solution_shortcut` (= teachkit.xresnet.shortcut)."""
    return SHORTCUT.check(fn)


# ---------------------------------------------------------------- 2. a ResBlock's parameters

def conv_bn_params(ni: int, nf: int, ks: int) -> int:
    """A conv without bias (ni * nf * ks * ks weights) and its BatchNorm (a weight and a bias per channel)."""
    return ni * nf * ks * ks + 2 * nf


def solution_resblock_params(expansion: int, ni: int, nh: int, stride: int = 1) -> int:
    """The branch's ConvBNs, plus the shortcut's 1x1 ConvBN when the channels change (pooling has no parameters)."""
    ni, nf = ni * expansion, nh * expansion
    if expansion == 1:
        branch = conv_bn_params(ni, nh, 3) + conv_bn_params(nh, nf, 3)
    else:
        branch = conv_bn_params(ni, nh, 1) + conv_bn_params(nh, nh, 3) + conv_bn_params(nh, nf, 1)
    return branch + (conv_bn_params(ni, nf, 1) if ni != nf else 0)


PARAM_ARGS = [(1, 64, 64, 1), (1, 64, 128, 2), (1, 128, 128, 2), (4, 16, 64, 1), (4, 64, 64, 1), (4, 64, 128, 2)]
PARAM_CASES = [Case(f"ResBlock({e}, {ni}, {nh}, stride={s})", lambda a=(e, ni, nh, s): a) for e, ni, nh, s in PARAM_ARGS]


def _observe_params(fn: Any, args: tuple) -> dict[str, Any]:
    e, ni, nh, s = args
    n = fn(*args)
    return {f"the parameter count of ResBlock({e}, {ni}, {nh}, stride={s})": int(n) if isinstance(n, (int, float)) else n}


def _no_bn(expansion, ni, nh, stride=1):
    ni, nf = ni * expansion, nh * expansion
    ks = [(ni, nh, 3), (nh, nf, 3)] if expansion == 1 else [(ni, nh, 1), (nh, nh, 3), (nh, nf, 1)]
    return sum(a * b * k * k for a, b, k in ks) + (ni * nf if ni != nf else 0)


def _no_shortcut(expansion, ni, nh, stride=1):
    ni4, nf = ni * expansion, nh * expansion
    return solution_resblock_params(expansion, ni, nh, stride) - (conv_bn_params(ni4, nf, 1) if ni4 != nf else 0)


def _shortcut_on_stride(expansion, ni, nh, stride=1):
    ni4, nf = ni * expansion, nh * expansion
    extra = conv_bn_params(ni4, nf, 1) if stride != 1 and ni4 == nf else 0
    return solution_resblock_params(expansion, ni, nh, stride) + extra


def _ni_not_expanded(expansion, ni, nh, stride=1):
    nf = nh * expansion
    if expansion == 1:
        return solution_resblock_params(1, ni, nh, stride)
    branch = conv_bn_params(ni, nh, 1) + conv_bn_params(nh, nh, 3) + conv_bn_params(nh, nf, 1)
    return branch + (conv_bn_params(ni, nf, 1) if ni != nf else 0)


def _all_3x3(expansion, ni, nh, stride=1):
    ni, nf = ni * expansion, nh * expansion
    ks = [(ni, nh), (nh, nf)] if expansion == 1 else [(ni, nh), (nh, nh), (nh, nf)]
    return sum(conv_bn_params(a, b, 3) for a, b in ks) + (conv_bn_params(ni, nf, 1) if ni != nf else 0)


PARAM_MISTAKES = [
    Mistake(_no_bn, "every conv is followed by a BatchNorm with a weight and a bias per channel: add 2 * nf for each."),
    Mistake(_no_shortcut, "when the channels change the shortcut has a 1x1 conv and its BatchNorm: "
                          "ni * nf + 2 * nf more (with ni, nf after the expansion)."),
    Mistake(_shortcut_on_stride, "the pool that downsamples the shortcut has no parameters: only a change of channels "
                                 "adds the 1x1 conv."),
    Mistake(_ni_not_expanded, "ni counts channels before the expansion, as in the course: a bottleneck block reads "
                              "ni * expansion channels."),
    Mistake(_all_3x3, "the bottleneck's first and last convs are 1x1 (they squeeze and expand the channels); "
                      "only the middle one is 3x3."),
]

RESBLOCK_PARAMS = Exercise("resblock_params", solution_resblock_params, PARAM_CASES, _observe_params, PARAM_MISTAKES,
                           signature_hint="It is called as resblock_params(expansion, ni, nh, stride) and returns an int.")


def check_resblock_params(fn: Any) -> Verdict:
    """Check a learner's `resblock_params` against the formula (itself tested against the real ResBlock's count)."""
    return RESBLOCK_PARAMS.check(fn)

