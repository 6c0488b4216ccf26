"""Forward hooks (lesson 06/07a): look inside a model while it runs, and plot what you saw."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from .utils import listify


class Hook:
    """Call `f(hook, module, input, output)` after every forward pass of `m`."""

    def __init__(self, m: nn.Module, f: Callable):
        self.module = m
        self.hook = m.register_forward_hook(partial(f, self))

    def remove(self) -> None:
        self.hook.remove()

    def __enter__(self) -> "Hook":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __del__(self) -> None:
        if hasattr(self, "hook"):  # __init__ may have failed before registering
            self.remove()


class Hooks(list):
    """A list of Hooks, one per module; as a context manager it always removes them, even on error."""

    def __init__(self, ms: Iterable[nn.Module], f: Callable):
        super().__init__(Hook(m, f) for m in listify(ms))

    def __enter__(self) -> "Hooks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self:
            h.remove()

    def __repr__(self) -> str:
        return f"Hooks({len(self)} modules)"


def find_modules(m: nn.Module, cond: Callable[[nn.Module], bool]) -> list[nn.Module]:
    """Every submodule (depth first, `m` included) for which `cond` is true; stops descending at a match."""
    if cond(m):
        return [m]
    return sum([find_modules(o, cond) for o in m.children()], [])


def is_lin_layer(m: nn.Module) -> bool:
    """Conv or linear: the layers LSUV and telemetry care about."""
    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))


HIST_BINS, HIST_RANGE = 40, (0.0, 10.0)


def append_stat(hook: Hook, mod: nn.Module, inp: Any, outp: torch.Tensor, bins: int = HIST_BINS,
                hist_range: tuple[float, float] = HIST_RANGE) -> None:
    """Hook function: append the output's mean, std and histogram to `hook.stats` during training."""
    if not hasattr(hook, "stats"):
        hook.stats = ([], [], [])
    if not mod.training:
        return
    d = outp.detach().float()
    means, stds, hists = hook.stats
    means.append(d.mean().item())
    stds.append(d.std().item())
    hists.append(d.histc(bins, *hist_range).cpu())  # count on the GPU, copy only the counts


def plot_stats(hooks: Sequence[Hook], first: int | None = None) -> plt.Figure:
    """Each layer's activation mean and std over training iterations: do they explode or vanish?"""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    for i, h in enumerate(hooks):
        ms, ss = h.stats[0][:first], h.stats[1][:first]
        ax0.plot(ms, label=f"layer {i}")
        ax1.plot(ss)
    ax0.set(title="mean", xlabel="iteration")
    ax1.set(title="std", xlabel="iteration")
    ax0.legend(fontsize="small")
    return fig


def get_hist(h: Hook) -> torch.Tensor:
    """A hook's histograms as an image: bins up the y axis, iterations along x, log-counted."""
    return torch.stack(h.stats[2]).t().float().log1p()


def get_min(h: Hook, n_low: int = 2) -> torch.Tensor:
    """Per iteration, the fraction of activations in the lowest `n_low` bins: how many are near zero."""
    h1 = torch.stack(h.stats[2]).t().float()
    return h1[:n_low].sum(0) / h1.sum(0).clamp_min(1)


def plot_hists(hooks: Sequence[Hook], ncols: int = 2) -> plt.Figure:
    """The "colorful dimension": each layer's activation histogram over time."""
    nrows = -(-len(hooks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.5 * nrows), squeeze=False)
    for ax, h in zip(axes.flat, hooks):
        ax.imshow(get_hist(h).numpy(), origin="lower", aspect="auto")
        ax.set_axis_off()
    for ax in axes.flat[len(hooks):]:
        ax.set_visible(False)
    return fig


def plot_mins(hooks: Sequence[Hook], ncols: int = 2, n_low: int = 2) -> plt.Figure:
    """Fraction of near-zero activations per layer over time: a flat line near 1 means dead units."""
    nrows = -(-len(hooks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.5 * nrows), squeeze=False)
    for i, (ax, h) in enumerate(zip(axes.flat, hooks)):
        ax.plot(get_min(h, n_low).numpy())
        ax.set(ylim=(0, 1), title=f"layer {i}: fraction near zero")
    for ax in axes.flat[len(hooks):]:
        ax.set_visible(False)
    return fig
