"""The CNN of lessons 07a/08: GeneralRelu, conv layers, the lesson model, kaiming init and a shape summary."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import Hooks, find_modules, is_lin_layer
from .utils import keep_modes, to_model_device

__all__ = ["GeneralRelu", "ConvLayer", "conv_layer", "prev_pow_2", "get_cnn_layers", "get_cnn_model", "init_cnn",
           "layer_shapes", "model_summary"]


class GeneralRelu(nn.Module):
    """ReLU with an optional leak, a shift down by `sub` and a ceiling `maxv`: activations nearer mean 0."""

    def __init__(self, leak: float | None = None, sub: float | None = None, maxv: float | None = None):
        super().__init__()
        self.leak, self.maxv = leak, maxv
        # A buffer, not a float: LSUV tunes `sub`, and the tuned value must travel with `state_dict()` and `.to()`.
        self.register_buffer("sub", None if sub is None else torch.tensor(float(sub)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(x, self.leak) if self.leak is not None else F.relu(x)
        if self.sub is not None:
            x = x - self.sub
        return x if self.maxv is None else x.clamp_max(self.maxv)

    def extra_repr(self) -> str:
        sub = None if self.sub is None else round(self.sub.item(), 4)
        return f"leak={self.leak}, sub={sub}, maxv={self.maxv}"


class ConvLayer(nn.Sequential):
    """Conv2d -> GeneralRelu (-> BatchNorm2d) as one block with named parts `conv`, `relu`, `bn`.

    The conv has a bias only when there is no BatchNorm to make it redundant. The block states what LSUV
    (`teachkit.init`) tunes, as the course did: `weight` is the conv's, `bias` is `-relu.sub` (raising it raises the
    output), and `lsuv_output` says LSUV measures the GeneralRelu's output, before any BatchNorm.
    """

    lsuv_output = "relu"
    lsuv_shift = "relu.sub"  # what moving `bias` moves, as LSUV's report names it

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 2, bn: bool = True, **kwargs: Any):
        layers = OrderedDict(conv=nn.Conv2d(ni, nf, ks, padding=ks // 2, stride=stride, bias=not bn),
                             relu=GeneralRelu(**kwargs))
        if bn:
            layers["bn"] = nn.BatchNorm2d(nf, eps=1e-5, momentum=0.1)
        super().__init__(layers)

    @property
    def weight(self) -> torch.Tensor:
        """The conv's weights: what LSUV divides by the std."""
        return self.conv.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """`-relu.sub`, what LSUV shifts; None for a plain ReLU, whose output can't be centred without killing it."""
        return None if self.relu.sub is None else -self.relu.sub

    @bias.setter
    def bias(self, v: torch.Tensor) -> None:
        self.relu.sub = -v


def conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 2, bn: bool = True, **kwargs: Any) -> ConvLayer:
    """The lesson's `conv_layer`: a `ConvLayer`; `kwargs` (leak, sub, maxv) go to its GeneralRelu."""
    return ConvLayer(ni, nf, ks, stride=stride, bn=bn, **kwargs)


def prev_pow_2(x: float) -> int:
    """The largest power of 2 not above `x`: the first conv's width, so it can't just copy its 3x3 input."""
    if x < 1:
        raise ValueError(f"prev_pow_2 needs a number >= 1, got {x}.")
    return 2 ** math.floor(math.log2(x))


def get_cnn_layers(n_in: int, n_out: int, nfs: list[int], layer: Callable[..., nn.Module] = conv_layer,
                   **kwargs: Any) -> list[nn.Module]:
    """The lesson-08 CNN as a list: 3 stem convs from `prev_pow_2(n_in*9)` wide, a conv per `nfs`, pool, linear."""
    if not nfs:
        raise ValueError("get_cnn_layers needs at least one width in nfs, e.g. nfs=[64, 64, 128, 256].")

    def f(ni: int, nf: int, stride: int = 2) -> nn.Module:
        return layer(ni, nf, 3, stride=stride, **kwargs)

    l2 = prev_pow_2(n_in * 3 * 3)
    layers = [f(n_in, l2, stride=1), f(l2, l2 * 2), f(l2 * 2, l2 * 4)]
    nfs = [l2 * 4] + list(nfs)
    layers += [f(nfs[i], nfs[i + 1]) for i in range(len(nfs) - 1)]
    return layers + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(nfs[-1], n_out)]


def get_cnn_model(n_in: int, n_out: int, nfs: list[int], layer: Callable[..., nn.Module] = conv_layer,
                  **kwargs: Any) -> nn.Sequential:
    """`get_cnn_layers` in an `nn.Sequential`; initialise it with `init_cnn` or `teachkit.init.lsuv_init`."""
    return nn.Sequential(*get_cnn_layers(n_in, n_out, nfs, layer, **kwargs))


def _init_conv(m: nn.Module, f: Callable, leak: float) -> None:
    """Kaiming-init every conv under `m`, with the leak of the ConvLayer it sits in; zero its bias."""
    if isinstance(m, ConvLayer):
        leak = m.relu.leak or 0.0
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        f(m.weight, a=leak)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    for c in m.children():
        _init_conv(c, f, leak)


def init_cnn(model: nn.Module, uniform: bool = False) -> nn.Module:
    """Kaiming init (normal or uniform) for every conv, so activations keep their scale through the ReLUs."""
    _init_conv(model, nn.init.kaiming_uniform_ if uniform else nn.init.kaiming_normal_, 0.0)
    return model


def _model_of(o: Any) -> nn.Module:
    """A model, or the model of a Learner."""
    m = getattr(o, "model", o)
    if not isinstance(m, nn.Module):
        raise ValueError(f"Expected an nn.Module or a Learner, got {type(o).__name__}.")
    return m


def _store_shape(hook: Any, mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
    """Hook function: remember the output's shape."""
    hook.shape = tuple(out.shape)


def layer_shapes(model_or_learner: Any, xb: torch.Tensor,
                 find_all: bool = False) -> list[tuple[str, tuple[int, ...] | None, int]]:
    """(name, output shape, parameter count) of each child (every conv/linear if `find_all`) on one batch."""
    model = _model_of(model_or_learner)
    names = {m: n for n, m in model.named_modules()}
    mods = find_modules(model, is_lin_layer) if find_all else list(model.children())
    with keep_modes(model), torch.no_grad(), Hooks(mods, _store_shape) as hooks:
        model.eval()  # leave BatchNorm's running statistics as they were
        model(to_model_device(model, xb))
    return [(f"{names[h.module]} {type(h.module).__name__}", getattr(h, "shape", None),
             sum(q.numel() for q in h.module.parameters())) for h in hooks]


def model_summary(model_or_learner: Any, xb: torch.Tensor, find_all: bool = False) -> None:
    """Print each layer's output shape and parameter count on `xb`: the lesson's check that the shapes add up."""
    rows = layer_shapes(model_or_learner, xb, find_all)
    w = max(len(n) for n, _, _ in rows + [("Layer", (), 0)])
    print(f"{'Layer':<{w}}  {'Output shape':<20} {'Params':>10}")
    print(f"{'Input':<{w}}  {str(list(xb.shape)):<20} {'':>10}")
    for name, shape, n in rows:
        print(f"{name:<{w}}  {str(list(shape)) if shape else 'not called':<20} {n:>10,}")
    print(f"Total params: {sum(p.numel() for p in _model_of(model_or_learner).parameters()):,}")
