"""LSUV init (lesson 07a), made safe: bounded loops, clear errors, a report, and a stepper a panel can drive.

Layer-sequential unit variance (Mishkin & Matas 2016, Algorithm 1): walk the layers in order and, on one batch,
divide each layer's weights by its output std until the std is within `tol` of 1, at most `max_iter` times.
Like the course we also centre the output: a `ConvLayer`'s mean is moved by its `relu.sub`, a plain conv or
linear layer's by its bias. Each iteration fixes the std first and the mean only once the std is right: shifting
never changes the std, while scaling moves the mean, so this order settles in a couple of iterations.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import nn

from .hooks import Hook, Hooks, find_modules, is_lin_layer
from .models import ConvLayer
from .progress import progress_bar
from .utils import keep_modes, listify, to_model_device

__all__ = ["LSUVWarning", "LSUVResult", "LSUVRow", "LSUVReport", "LSUVStep", "LayerStats", "lsuv_modules",
           "lsuv_step", "lsuv_module", "lsuv_init", "LSUVStepper"]

DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class LSUVWarning(UserWarning):
    """A layer did not reach mean 0 / std 1 within `max_iter` LSUV iterations."""


class LSUVResult(NamedTuple):
    """What `lsuv_module` reached: final output mean and std, updates made, and what centred the mean."""

    mean: float
    std: float
    iterations: int
    converged: bool
    shift: str | None  # "relu.sub", "bias", or None when the layer has nothing to centre with (std only)


class LSUVRow(NamedTuple):
    """One layer of an `lsuv_init` report."""

    layer: int
    name: str
    mean: float
    std: float
    iterations: int
    converged: bool
    shift: str | None


class LSUVReport(list):
    """The `LSUVRow`s of an `lsuv_init` run, shown as a table."""

    @property
    def converged(self) -> bool:
        return all(r.converged for r in self)

    def __repr__(self) -> str:
        w = max([len(r.name) for r in self] + [4])
        head = f"{'layer':>5}  {'name':<{w}}  {'mean':>10}  {'std':>8}  {'iters':>5}  {'converged':>9}  mean fixed by"
        rows = [f"{r.layer:>5}  {r.name:<{w}}  {r.mean:>10.2e}  {r.std:>8.5f}  {r.iterations:>5}  "
                f"{'yes' if r.converged else 'NO':>9}  {r.shift or '- (std only)'}" for r in self]
        return "\n".join([head] + rows)


def lsuv_modules(model: nn.Module) -> list[nn.Module]:
    """The layers LSUV tunes, in forward order: every `ConvLayer`, and every conv/linear outside one."""
    return find_modules(model, lambda m: isinstance(m, ConvLayer) or is_lin_layer(m))


def _hooked(module: nn.Module) -> nn.Module:
    """Where LSUV reads the statistics: a ConvLayer's activation (before any BatchNorm), else the layer's output."""
    return module.relu if isinstance(module, ConvLayer) else module


def _weight(module: nn.Module) -> torch.Tensor:
    """The weights LSUV scales."""
    w = module.conv.weight if isinstance(module, ConvLayer) else getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"LSUV needs a layer with weights (a ConvLayer, conv or linear), got {type(module).__name__}.")
    return w


def _shift(module: nn.Module) -> str | None:
    """What LSUV moves to centre the output: `relu.sub` of a ConvLayer, else the bias; None if there's neither.

    A ConvLayer without `sub` is a plain (leaky) ReLU: its output can't have mean 0 without killing it, so only
    its std is fixed.
    """
    if isinstance(module, ConvLayer):
        return "relu.sub" if module.relu.sub is not None else None
    return "bias" if isinstance(getattr(module, "bias", None), torch.Tensor) else None


def _name(model: nn.Module, module: nn.Module) -> str:
    """`'3 ConvLayer'`: the module's path in the model and its type, for reports and error messages."""
    path = next((n for n, m in model.named_modules() if m is module), None)
    if path is None:
        raise ValueError(f"The {type(module).__name__} passed to LSUV is not part of the model; "
                         "pass one of model.modules().")
    return f"{path} {type(module).__name__}".strip()


@contextmanager
def _lsuv_mode(model: nn.Module) -> Iterator[None]:
    """No grad; train mode, so BatchNorm uses the batch as in training, but dropout off and running stats untouched."""
    saved = {m: [b.clone() for b in m.buffers(recurse=False)] for m in model.modules()
             if getattr(m, "track_running_stats", False)}
    try:
        with keep_modes(model), torch.no_grad():
            model.train()
            for m in model.modules():
                if isinstance(m, DROPOUT):
                    m.eval()
            yield
    finally:
        for m, bufs in saved.items():
            for b, s in zip(m.buffers(recurse=False), bufs):
                b.copy_(s)


class _StopForward(Exception):
    """Raised by a hook once it has what LSUV needs: the layers after it needn't run."""


def _stats_then_stop(hook: Hook, mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
    """Hook function: keep the output's mean, std and spread over the batch, then cut the forward pass short."""
    d = out.detach().float()
    spread = d.std(0).max() if len(d) > 1 else d.std()  # how much any one unit varies from sample to sample
    hook.stats = d.mean().item(), d.std().item(), (spread / d.abs().max()).item()
    raise _StopForward


def _measure(model: nn.Module, module: nn.Module, xb: torch.Tensor) -> tuple[float, float]:
    """Mean and std of `module`'s LSUV statistics on `xb`, running the model only as far as that layer.

    Refuses a layer whose output is the same for every sample: its input is constant (all zeros, dead ReLUs),
    so no weight scale can give it std 1, and dividing by its std would only blow the weights up.
    """
    with _lsuv_mode(model), Hook(_hooked(module), _stats_then_stop) as h:
        try:
            model(to_model_device(model, xb))
        except _StopForward:
            pass
    if not hasattr(h, "stats"):
        raise ValueError(f"{_name(model, module)} did not run in model(xb), so LSUV can't measure it.")
    mean, std, rel_spread = h.stats
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError(f"LSUV: {_name(model, module)} outputs NaN or inf on this batch (mean {mean}, std {std}). "
                         "Check the batch and the layers before it.")
    if not rel_spread > 1e-5:  # also catches 0/0 = NaN: an all-zero output
        raise ValueError(f"LSUV: {_name(model, module)} outputs a constant on this batch, the same for every sample "
                         f"(mean {mean:.3g}), so no weight scale can give it std 1. Its input is probably all zeros or "
                         "dead ReLUs: check the batch and the layers before it (or leave this layer out of `modules`).")
    return mean, std


def lsuv_step(model: nn.Module, module: nn.Module, xb: torch.Tensor, tol: float = 1e-3,
              update: bool = True) -> tuple[float, float, str]:
    """One LSUV iteration: measure, then divide the weights by the std if it's off, else shift the mean if it's off.

    Returns the measured (mean, std) and what it did: "scale", "shift", "converged" (nothing left to do), or
    "stopped" (something to do, but `update` is False: the iteration budget is spent).
    """
    mean, std = _measure(model, module, xb)
    shift = _shift(module)
    if abs(std - 1) > tol:
        action = "scale"
    elif shift is not None and abs(mean) > tol:
        action = "shift"
    else:
        return mean, std, "converged"
    if not update:
        return mean, std, "stopped"
    with torch.no_grad():
        if action == "scale":
            _weight(module).div_(std)
        elif shift == "relu.sub":
            module.relu.sub.add_(mean)  # the ReLU's output is shifted down by sub
        else:
            module.bias.sub_(mean)
    return mean, std, action


def _check_args(tol: float, max_iter: int) -> None:
    if tol <= 0 or max_iter < 0:
        raise ValueError(f"LSUV needs tol > 0 and max_iter >= 0, got tol={tol}, max_iter={max_iter}.")


def _warn_stopped(name: str, mean: float, std: float, max_iter: int, tol: float) -> None:
    warnings.warn(f"LSUV: {name} did not converge in {max_iter} iterations "
                  f"(mean {mean:.3g}, std {std:.4g}, tol {tol}); "
                  "it is left as it is. Try a larger max_iter or tol, or a bigger batch.", LSUVWarning, stacklevel=3)


def lsuv_module(model: nn.Module, module: nn.Module, xb: torch.Tensor, tol: float = 1e-3,
                max_iter: int = 10) -> LSUVResult:
    """LSUV on one layer: `lsuv_step` until its output has std 1 and mean 0 (within `tol`), at most `max_iter` times."""
    _check_args(tol, max_iter)
    for it in range(max_iter + 1):
        mean, std, action = lsuv_step(model, module, xb, tol, update=it < max_iter)
        if action == "converged":
            return LSUVResult(mean, std, it, True, _shift(module))
    _warn_stopped(_name(model, module), mean, std, max_iter, tol)
    return LSUVResult(mean, std, max_iter, False, _shift(module))


def _modules(model: nn.Module, modules: Sequence[nn.Module] | None) -> list[nn.Module]:
    mods = lsuv_modules(model) if modules is None else listify(modules)
    if not mods:
        raise ValueError("LSUV has no layer to tune: the model has no ConvLayer, conv or linear layer, or `modules` "
                         "is empty; pass the layers to tune as `modules`.")
    return mods


def lsuv_init(model: nn.Module, xb: torch.Tensor, modules: Sequence[nn.Module] | None = None, tol: float = 1e-3,
              max_iter: int = 10, progress: bool = True) -> LSUVReport:
    """LSUV over `modules` (default: `lsuv_modules(model)`) in order, on the batch `xb`; returns a report per layer."""
    _check_args(tol, max_iter)
    mods = _modules(model, modules)
    rows = LSUVReport()
    for i, m in enumerate(progress_bar(mods, leave=False, comment="LSUV") if progress else mods):
        rows.append(LSUVRow(i, _name(model, m), *lsuv_module(model, m, xb, tol, max_iter)))
    return rows


class LSUVStep(NamedTuple):
    """One `LSUVStepper.step`: the layer, its iteration number, the (mean, std) it measured, and what it did."""

    layer: int
    name: str
    iteration: int
    mean: float
    std: float
    action: str  # "scale", "shift", "converged" or "stopped"


class LayerStats(NamedTuple):
    """Every tuned layer's activations on the batch at one moment: means (n,), stds (n,), histograms (n, bins)."""

    means: torch.Tensor
    stds: torch.Tensor
    hists: torch.Tensor


def _record(hook: Hook, mod: nn.Module, inp: Any, out: torch.Tensor, bins: int,
            hist_range: tuple[float, float]) -> None:
    """Hook function: keep the output's mean, std and histogram."""
    d = out.detach().float()
    hook.stats = d.mean().item(), d.std().item(), d.histc(bins, *hist_range).cpu()


class LSUVStepper:
    """LSUV one iteration at a time, with every layer's statistics after each step: the model behind an LSUV panel.

    `step()` runs `lsuv_step` (the function `lsuv_module` loops over) on the current layer and moves on once the
    layer has converged or spent `max_iter` updates, so stepping to the end gives exactly `lsuv_init`'s weights.
    """

    def __init__(self, model: nn.Module, xb: torch.Tensor, modules: Sequence[nn.Module] | None = None,
                 tol: float = 1e-3, max_iter: int = 10, bins: int = 40, hist_range: tuple[float, float] = (-4.0, 4.0)):
        _check_args(tol, max_iter)
        self.model, self.xb, self.tol, self.max_iter = model, xb, tol, max_iter
        self.bins, self.hist_range = bins, hist_range
        self.modules = _modules(model, modules)
        self.names = [_name(model, m) for m in self.modules]
        self._start = copy.deepcopy(model.state_dict())
        self.reset()

    def reset(self) -> None:
        """Put back the weights (and `relu.sub`s) the stepper started from, and forget the history."""
        self.model.load_state_dict(self._start)
        self.current: int | None = 0
        self.iteration = 0
        self.history: list[LSUVStep] = []
        self.results = LSUVReport()
        self.stats: list[LayerStats] = [self.snapshot()]

    @property
    def done(self) -> bool:
        return self.current is None

    def snapshot(self) -> LayerStats:
        """Mean, std and histogram of every tuned layer's activations on the batch, as the model is now."""
        f = partial(_record, bins=self.bins, hist_range=self.hist_range)
        with _lsuv_mode(self.model), Hooks([_hooked(m) for m in self.modules], f) as hooks:
            self.model(to_model_device(self.model, self.xb))
        missed = [n for n, h in zip(self.names, hooks) if not hasattr(h, "stats")]
        if missed:
            raise ValueError(f"The forward pass never reached {', '.join(missed)}: pass only layers of this model's "
                             "forward path as `modules`.")
        means, stds, hists = zip(*(h.stats for h in hooks))
        return LayerStats(torch.tensor(means), torch.tensor(stds), torch.stack(hists))

    def step(self) -> LSUVStep | None:
        """One LSUV iteration on the current layer; None once every layer is done."""
        if self.done:
            return None
        i, it = self.current, self.iteration
        mean, std, action = lsuv_step(self.model, self.modules[i], self.xb, self.tol, update=it < self.max_iter)
        row = LSUVStep(i, self.names[i], it, mean, std, action)
        self.history.append(row)
        self.stats.append(self.snapshot())
        if action in ("converged", "stopped"):
            self._finish(row)
        else:
            self.iteration += 1
        return row

    def _finish(self, row: LSUVStep) -> None:
        """Report the current layer and move on to the next."""
        ok = row.action == "converged"
        if not ok:
            _warn_stopped(row.name, row.mean, row.std, self.max_iter, self.tol)
        shift = _shift(self.modules[row.layer])
        self.results.append(LSUVRow(row.layer, row.name, row.mean, row.std, row.iteration, ok, shift))
        self.current = row.layer + 1 if row.layer + 1 < len(self.modules) else None
        self.iteration = 0

    def next_layer(self) -> LSUVRow | None:
        """Finish the current layer (step until it converges or runs out of iterations) and move to the next."""
        if self.done:
            return None
        i = self.current
        while self.current == i:
            self.step()
        return self.results[-1]

    def run_all(self) -> LSUVReport:
        """Step through every remaining layer; returns the same report `lsuv_init` gives."""
        while not self.done:
            self.step()
        return self.results

    def __repr__(self) -> str:
        where = "done" if self.done else f"{self.names[self.current]}, iteration {self.iteration}"
        return f"LSUVStepper({len(self.modules)} layers, {len(self.history)} steps, {where})"
