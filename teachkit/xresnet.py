"""XResNet (course-v3 lesson 12, notebook 11): a ResNet with the "Bag of Tricks" tweaks, from readable blocks.

The tweaks over the 2015 ResNet (He et al., "Bag of Tricks for Image Classification", 2018, https://arxiv.org/abs/1812.01187):

- the stem is three 3x3 convs (3 -> 32 -> 64 -> 64, the first with stride 2) instead of one 7x7 conv;
- a downsampling shortcut averages 2x2 pixels first (`AvgPool2d`) and only then changes the number of channels
  with a 1x1 conv, instead of a strided 1x1 conv that throws away three pixels out of four;
- the last BatchNorm of every residual branch starts with weight 0, so each block starts as the identity
  (through its shortcut) and a deep network trains like a shallow one at first.

Every conv has no bias and is followed by a BatchNorm (which has its own shift). LSUV (teachkit.init) finds the
plain convs and the final linear layer: the convs have no bias, so LSUV can only rescale them (which the following
BatchNorm undoes in the forward pass); the linear layer's mean is moved by its bias.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["conv", "ConvBN", "shortcut", "res_branch", "ResBlock", "make_layer", "XResNet", "init_xresnet",
           "xresnet18", "xresnet34", "xresnet50"]


def conv(ni: int, nf: int, ks: int = 3, stride: int = 1) -> nn.Conv2d:
    """A square conv that keeps the size (at stride 1), without bias: a BatchNorm follows it."""
    return nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False)


class ConvBN(nn.Sequential):
    """conv -> BatchNorm (-> activation), with named parts `conv`, `bn`, `act`.

    `zero_bn=True` starts the BatchNorm's weight at 0, so the block outputs 0 until training moves it: the last
    layer of a residual branch. `act_cls=None` leaves out the activation (the branch is added to the shortcut first).
    """

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, zero_bn: bool = False,
                 act_cls: type[nn.Module] | None = nn.ReLU):
        layers = OrderedDict(conv=conv(ni, nf, ks, stride), bn=nn.BatchNorm2d(nf))
        nn.init.constant_(layers["bn"].weight, 0.0 if zero_bn else 1.0)
        if act_cls is not None:
            layers["act"] = act_cls()
        super().__init__(layers)


def shortcut(ni: int, nf: int, stride: int = 1) -> nn.Module:
    """The identity path of a ResBlock: average 2x2 pixels when downsampling, then a 1x1 conv when channels change."""
    layers = []
    if stride != 1:
        layers.append(nn.AvgPool2d(2, ceil_mode=True))
    if ni != nf:
        layers.append(ConvBN(ni, nf, ks=1, act_cls=None))
    return nn.Sequential(*layers) if layers else nn.Identity()


def res_branch(expansion: int, ni: int, nh: int, nf: int, stride: int, act_cls: type[nn.Module]) -> nn.Sequential:
    """The residual branch: two 3x3 convs (expansion 1), or 1x1 -> 3x3 -> 1x1 (the bottleneck, expansion 4).

    The stride sits on the (first) 3x3 conv; the last ConvBN has no activation and a zero-initialised BatchNorm.
    """
    if expansion == 1:
        return nn.Sequential(ConvBN(ni, nh, 3, stride=stride, act_cls=act_cls),
                             ConvBN(nh, nf, 3, zero_bn=True, act_cls=None))
    return nn.Sequential(ConvBN(ni, nh, 1, act_cls=act_cls),
                         ConvBN(nh, nh, 3, stride=stride, act_cls=act_cls),
                         ConvBN(nh, nf, 1, zero_bn=True, act_cls=None))


class ResBlock(nn.Module):
    """act(convs(x) + idpath(x)): a residual branch plus a shortcut, `nh * expansion` channels out.

    `ni` and `nh` count channels before the expansion, as in the course: a bottleneck block (expansion 4) reads
    `ni * 4` channels, squeezes them to `nh` and expands back to `nh * 4`.
    """

    def __init__(self, expansion: int, ni: int, nh: int, stride: int = 1, act_cls: type[nn.Module] = nn.ReLU):
        super().__init__()
        if expansion not in (1, 4):
            raise ValueError(f"ResBlock expansion must be 1 (basic block) or 4 (bottleneck), got {expansion}.")
        if stride not in (1, 2):
            raise ValueError(f"ResBlock stride must be 1 or 2, got {stride}.")
        ni, nf = ni * expansion, nh * expansion
        self.convs = res_branch(expansion, ni, nh, nf, stride, act_cls)
        self.idpath = shortcut(ni, nf, stride)
        self.act = act_cls()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.convs(x) + self.idpath(x))


def make_layer(expansion: int, ni: int, nf: int, n_blocks: int, stride: int,
               act_cls: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """`n_blocks` ResBlocks; only the first changes the width (`ni` -> `nf`) and the size (`stride`)."""
    return nn.Sequential(*[ResBlock(expansion, ni if i == 0 else nf, nf, stride if i == 0 else 1, act_cls)
                           for i in range(n_blocks)])


def init_xresnet(m: nn.Module) -> nn.Module:
    """Kaiming-normal weights for every conv and linear layer, zero biases (BatchNorms keep their own init)."""
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    return m


class XResNet(nn.Sequential):
    """stem (three ConvBNs) -> max pool -> four layers of ResBlocks -> average pool -> linear.

    `layers` is the number of blocks in each of the four layers (widths 64, 128, 256, 512, times `expansion`);
    every layer but the first halves the size. `act_cls` is the activation (nn.ReLU; the leaderboard used nn.Mish).
    """

    def __init__(self, expansion: int, layers: Sequence[int], c_in: int = 3, n_out: int = 1000,
                 act_cls: type[nn.Module] = nn.ReLU):
        if c_in < 1 or n_out < 1:
            raise ValueError(f"XResNet needs c_in >= 1 input channels and n_out >= 1 outputs, got c_in={c_in}, n_out={n_out}.")
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"XResNet needs four layers of at least one block each, got {list(layers)}.")
        stem = [c_in, (c_in + 1) * 8, 64, 64]
        nfs = [64 // expansion, 64, 128, 256, 512]
        parts = OrderedDict((f"stem{i}", ConvBN(stem[i], stem[i + 1], stride=2 if i == 0 else 1, act_cls=act_cls))
                            for i in range(3))
        parts["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, n in enumerate(layers):
            parts[f"layer{i + 1}"] = make_layer(expansion, nfs[i], nfs[i + 1], n, 1 if i == 0 else 2, act_cls)
        parts["pool"] = nn.AdaptiveAvgPool2d(1)
        parts["flatten"] = nn.Flatten()
        parts["fc"] = nn.Linear(nfs[-1] * expansion, n_out)
        super().__init__(parts)
        init_xresnet(self)


def xresnet18(c_in: int = 3, n_out: int = 1000, **kwargs) -> XResNet:
    """18 layers: basic blocks, [2, 2, 2, 2] per layer (~11.7 M parameters for 1000 classes)."""
    return XResNet(1, [2, 2, 2, 2], c_in, n_out, **kwargs)


def xresnet34(c_in: int = 3, n_out: int = 1000, **kwargs) -> XResNet:
    """34 layers: basic blocks, [3, 4, 6, 3] per layer (~21.8 M parameters for 1000 classes)."""
    return XResNet(1, [3, 4, 6, 3], c_in, n_out, **kwargs)


def xresnet50(c_in: int = 3, n_out: int = 1000, **kwargs) -> XResNet:
    """50 layers: bottleneck blocks (expansion 4), [3, 4, 6, 3] per layer (~25.6 M parameters for 1000 classes)."""
    return XResNet(4, [3, 4, 6, 3], c_in, n_out, **kwargs)
