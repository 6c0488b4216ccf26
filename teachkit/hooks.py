"""Forward hooks (lesson 06/07a): look inside a model while it runs, and plot what you saw.

`activation_stats` is the one function that measures a layer's output (mean, std, histogram); `append_stat` (for
`Hooks`), the `ActivationStats` callback (for `Learner.fit`), LSUV and the training panel all use it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from .learner import Callback
from .utils import listify

__all__ = ["Hook", "Hooks", "find_modules", "is_lin_layer", "HIST_BINS", "HIST_RANGE", "activation_stats",
           "LayerStats", "append_stat", "ActivationStats", "get_hist", "get_min", "plot_stats", "plot_hists",
           "plot_mins"]


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
"""The course's histogram of ReLU outputs: 40 bins over [0, 10]; pass (-7, 7) for leaky or shifted activations."""


def activation_stats(x: torch.Tensor, bins: int = HIST_BINS, hist_range: tuple[float, float] = HIST_RANGE,
                     sample: int | None = None) -> torch.Tensor:
    """`[mean, std, share of x in each of the bins]` of a layer's output, as one tensor on x's device (bins=0: no histogram).

    One tensor, so recording it costs one copy to the CPU; a share (count / number of activations) rather than a
    count, so layers and batch sizes compare, and what falls outside `hist_range` is simply not in any bin.
    `sample` bins only about that many activations, evenly spaced (an estimate, for a quick picture).
    """
    x = x.detach().float()
    stats = torch.stack([x.mean(), x.std()])
    if not bins:
        return stats
    if sample and x.numel() > sample:
        x = x.flatten()[::x.numel() // sample]
    return torch.cat([stats, x.histc(bins, *hist_range) / x.numel()])


@dataclass
class LayerStats:
    """One layer's statistics over the batches it saw; unpacks as `means, stds, hists = stats`, like the course's."""

    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    hists: list[torch.Tensor] = field(default_factory=list)  # 1-D CPU tensors: share of activations per bin
    hist_range: tuple[float, float] = HIST_RANGE

    def append(self, stats: torch.Tensor) -> None:
        """Add one `activation_stats` result (copied to the CPU here, if it isn't yet)."""
        stats = stats.cpu()
        self.means.append(stats[0].item())
        self.stds.append(stats[1].item())
        self.hists.append(stats[2:])

    def __iter__(self) -> Iterator[list]:
        return iter((self.means, self.stds, self.hists))

    def __getitem__(self, i: int) -> list:
        return (self.means, self.stds, self.hists)[i]


def append_stat(hook: Hook, mod: nn.Module, inp: Any, outp: torch.Tensor, bins: int = HIST_BINS,
                hist_range: tuple[float, float] = HIST_RANGE) -> None:
    """Hook function: append the output's mean, std and histogram to `hook.stats` (a `LayerStats`) during training."""
    if not hasattr(hook, "stats"):
        hook.stats = LayerStats(hist_range=hist_range)
    if mod.training:
        hook.stats.append(activation_stats(outp, bins, hist_range))


class ActivationStats(Callback):
    """Record every hooked layer's activation statistics on training batches, so a lesson can plot them after `fit`.

    `modules` defaults to every conv and linear layer; `every` records one training batch in `every`; `sample`
    bins only about that many activations per layer (means and stds stay exact; None: all of them). The
    statistics are computed on the model's device, and each recorded batch is copied to the CPU once, in
    `after_pred`. `stats[i]` is the `LayerStats` of `modules[i]`, named `names[i]`. The hooks come off after
    `fit`, whatever ended it (an error, Kernel -> Interrupt); one left behind removes itself the next time it runs.
    """

    order = -5  # before the callbacks that might fail in after_fit, so the hooks come off first

    def __init__(self, modules: Sequence[nn.Module] | None = None, every: int = 1, bins: int = HIST_BINS,
                 hist_range: tuple[float, float] = HIST_RANGE, sample: int | None = None):
        if every < 1:
            raise ValueError(f"ActivationStats records one training batch in `every`: give every >= 1, got {every}.")
        self.modules, self.every, self.bins, self.hist_range, self.sample = modules, every, bins, hist_range, sample
        self.hooks, self.stats, self.names, self._pending, self._n = [], [], [], [], 0

    def before_fit(self) -> None:
        mods = find_modules(self.model, is_lin_layer) if self.modules is None else listify(self.modules)
        where = {m: n for n, m in self.model.named_modules()}
        self.names = [f"{where.get(m, '?')} {type(m).__name__}".strip() for m in mods]
        self.stats = [LayerStats(hist_range=self.hist_range) for _ in mods]
        self._n, self._recording = 0, True
        self.hooks = [m.register_forward_hook(partial(self._hook, i)) for i, m in enumerate(mods)]

    def _hook(self, i: int, mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        """Compute layer i's statistics on the device; `after_pred` copies them to the CPU."""
        if not self._recording:  # a hook that outlived its fit: take it off
            self.hooks[i].remove()
        elif mod.training and self.in_train and self._n % self.every == 0:
            self._pending.append((i, activation_stats(out, self.bins, self.hist_range, self.sample)))

    def before_batch(self) -> None:
        self._pending = []  # what an interrupted forward pass left: half a batch is not recorded

    def after_pred(self) -> None:
        if self._pending:
            rows = torch.stack([s for _, s in self._pending]).cpu()  # one copy for every layer of the batch
            for (i, _), row in zip(self._pending, rows):
                self.stats[i].append(row)
        self._pending = []

    def after_batch(self) -> None:
        if self.in_train:
            self._n += 1

    def after_fit(self) -> None:
        self.remove()

    def remove(self) -> None:
        """Take every hook off the model (after `fit` this has already happened)."""
        self._recording, self._pending = False, []
        for h in self.hooks:
            h.remove()

    def plot_stats(self, first: int | None = None) -> Figure:
        return plot_stats(self.stats, self.names, first)

    def plot_hists(self, ncols: int = 2) -> Figure:
        return plot_hists(self.stats, self.names, ncols)

    def plot_mins(self, ncols: int = 2, near: float = 0.5, dead: float = 0.95) -> Figure:
        return plot_mins(self.stats, self.names, ncols, near, dead)


def _layer_stats(o: Hook | LayerStats) -> LayerStats:
    """A hook's statistics, or the statistics themselves."""
    return getattr(o, "stats", o)


def get_hist(h: Hook | LayerStats) -> torch.Tensor:
    """Histograms as an image, the "colorful dimension": bins up the y axis, batches along x, log-scaled."""
    return torch.stack(_layer_stats(h).hists).t().float().log1p()


def get_min(h: Hook | LayerStats, near: float = 0.5) -> torch.Tensor:
    """Per batch, the share of activations in the bins within `near` of zero: how many units do (almost) nothing."""
    s = _layer_stats(h)
    lo, hi = s.hist_range
    edges = torch.linspace(lo, hi, len(s.hists[0]) + 1)
    near_zero = ((edges[:-1] + edges[1:]) / 2).abs() < near  # bins whose centre is within `near` of 0
    return torch.stack(s.hists)[:, near_zero].sum(1)


def _grid(n: int, ncols: int, height: float = 2.5) -> tuple[Figure, list]:
    """A pyplot figure with `n` axes in `ncols` columns, as a notebook shows it."""
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, height * nrows), squeeze=False, layout="constrained")
    axes = axes.flat
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _names(stats: Sequence, names: Sequence[str] | None) -> list[str]:
    return list(names) if names is not None else [f"layer {i}" for i in range(len(stats))]


def plot_stats(stats: Sequence[Hook | LayerStats], names: Sequence[str] | None = None,
               first: int | None = None) -> Figure:
    """Each layer's activation mean and std over training batches: do they explode or vanish?"""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for s, name in zip(stats, _names(stats, names)):
        s = _layer_stats(s)
        ax0.plot(s.means[:first], label=name)
        ax1.plot(s.stds[:first])
    ax0.set(title="mean", xlabel="recorded batch")
    ax1.set(title="std", xlabel="recorded batch")
    ax0.legend(fontsize="small")
    return fig


def plot_hists(stats: Sequence[Hook | LayerStats], names: Sequence[str] | None = None, ncols: int = 2) -> Figure:
    """The "colorful dimension": each layer's activation histogram (y) over training batches (x)."""
    fig, axes = _grid(len(stats), ncols)
    for ax, s, name in zip(axes, stats, _names(stats, names)):
        lo, hi = _layer_stats(s).hist_range
        img = get_hist(s).numpy()
        ax.imshow(img, origin="lower", aspect="auto", extent=(0, img.shape[1], lo, hi))
        ax.set(title=name, xlabel="recorded batch", ylabel="activation")
    return fig


def plot_mins(stats: Sequence[Hook | LayerStats], names: Sequence[str] | None = None, ncols: int = 2,
              near: float = 0.5, dead: float = 0.95) -> Figure:
    """Share of near-zero activations per layer over training batches: a line near 1 means dead units.

    A dotted line marks 1 (every activation near zero), with room above it so a dead layer's line shows inside
    its panel; a layer whose share passes `dead` at some batch gets a red title."""
    fig, axes = _grid(len(stats), ncols)
    for ax, s, name in zip(axes, stats, _names(stats, names)):
        share = get_min(s, near)
        ax.plot(share.numpy())
        ax.axhline(1, ls=":", c="grey", lw=1)
        ax.set(ylim=_SHARE_LIMITS, title=f"{name}: share within {near:g} of 0", xlabel="recorded batch")
        _mark_dead(ax, share, dead)
    return fig


_SHARE_LIMITS = (-0.05, 1.1)  # a share lies in [0, 1]: margins keep a line at 0 or 1 off the panel's edges


def _mark_dead(ax: Any, share: torch.Tensor, dead: float) -> None:
    """Colour the panel's title red when the layer's near-zero share passed `dead` at some batch."""
    if share.numel() and share.max().item() > dead:
        ax.title.set_color("red")
