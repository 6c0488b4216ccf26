"""LSUV init (lesson 07a): layer-sequential unit variance, as on the slide, with its guard rails beside it.

Mishkin & Matas 2016 (Algorithm 1), with the course's mean shift. For each layer, from the input up, on a batch:
measure the layer's output, divide its weights by the output's std, shift its mean to 0 with its bias; repeat
until the std is 1 and the mean 0 (within `tol`). The std comes first and the mean once the std is right:
shifting never changes the std, while scaling moves the mean, so this order settles in a couple of iterations.

What LSUV tunes: a conv or linear layer's `weight` (scaled) and `bias` (shifted; None: only the std is fixed),
measured at its output. A block states the same (see `models.ConvLayer`: `weight` is its conv's, `bias` is
`-relu.sub`, and `lsuv_output = "relu"` names the part whose output LSUV measures).

Here a measurement is a forward pass of the model, cut short at the layer. `lsuv_init` (in `teachkit.init.fast`)
runs this on a whole model, taking a fast path on one batch: while one layer is tuned everything before it is fixed,
so it tunes each layer when a single forward pass reaches it, re-running only that layer; tested equal to this
readable path.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple

import torch
from torch import nn

from ..hooks import activation_stats, find_modules, is_lin_layer
from ..progress import progress_bar
from ..utils import listify, restore_modes, to_model_device, train_modes

__all__ = ["LSUVWarning", "LSUVStep", "LSUVReport", "lsuv_modules", "lsuv_update", "lsuv_module", "lsuv_loop",
           "lsuv_step", "measure", "lsuv_point", "point_stats", "lsuv_mode", "batch_problem"]

Batches = torch.Tensor | Sequence[torch.Tensor]


class LSUVWarning(UserWarning):
    """A layer did not reach mean 0 / std 1 within `max_iter` LSUV iterations."""


class LSUVStep(NamedTuple):
    """One LSUV measurement of a layer and what followed; a layer's last one is its result."""

    layer: int  # position among the layers tuned
    name: str
    iterations: int  # updates made to this layer before this measurement
    mean: float
    std: float
    action: str  # "scale", "shift", "converged", or "stopped" (max_iter spent)
    shift: str | None  # what centres the mean ("bias", "relu.sub"), None when nothing can (std only)

    @property
    def converged(self) -> bool:
        return self.action == "converged"


class LSUVReport(list):
    """Each tuned layer's last `LSUVStep`, shown as a table."""

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
    """The layers LSUV tunes, in forward order: every block that states an `lsuv_output`, every conv/linear outside one."""
    return find_modules(model, lambda m: hasattr(m, "lsuv_output") or is_lin_layer(m))


# ---------------------------------------------------------------- the algorithm

def lsuv_module(model: nn.Module, m: nn.Module, xb: Batches, tol: float = 1e-3, max_iter: int = 10) -> LSUVStep:
    """LSUV on one layer, as on the slide: measure, divide the weights by the std, shift the mean, repeat (at most
    `max_iter` updates); `xb`: a batch, or several whose statistics are averaged."""
    check_args(tol, max_iter)
    with lsuv_mode(model):
        return lsuv_loop(m, layer_name(model, m), lambda: measure(model, m, xb), tol, max_iter)


def lsuv_loop(m: nn.Module, name: str, measure: Callable[[], tuple[float, float]], tol: float, max_iter: int,
              layer: int = 0) -> LSUVStep:
    """The loop on the slide: `measure()` the layer's (mean, std), update it, until converged or out of updates."""
    for it in range(max_iter + 1):
        mean, std = measure()
        action = lsuv_update(m, mean, std, tol, update=it < max_iter)
        if action in ("converged", "stopped"):
            return warn_if_stopped(LSUVStep(layer, name, it, mean, std, action, shift_name(m)), max_iter, tol)


def lsuv_update(m: nn.Module, mean: float, std: float, tol: float = 1e-3, update: bool = True) -> str:
    """One LSUV update from a measurement: divide the weights by the std if it's off, else shift the mean if it's off."""
    scale, shift = abs(std - 1) > tol, m.bias is not None and abs(mean) > tol
    if not (scale or shift):
        return "converged"
    if not update:
        return "stopped"
    with torch.no_grad():
        if scale:
            m.weight.div_(std)
        elif isinstance(m.bias, nn.Parameter):  # also a block's read-only property that hands out its layer's bias
            m.bias.sub_(mean)
        else:  # a block's bias made on the fly (ConvLayer: -relu.sub) moves through its setter
            m.bias -= mean
    return "scale" if scale else "shift"


def measure(model: nn.Module, m: nn.Module, xb: Batches) -> tuple[float, float]:
    """Mean and std of `m`'s output, from a forward pass of the model cut short there; several batches: averaged."""
    name, point, batches = layer_name(model, m), lsuv_point(m), as_batches(model, xb)
    return average([point_stats(name, point, lambda: model(to_model_device(model, b))) for b in batches])


def lsuv_step(model: nn.Module, m: nn.Module, xb: Batches, tol: float = 1e-3,
              update: bool = True) -> tuple[float, float, str]:
    """One LSUV iteration on `m`: its (mean, std) and what `lsuv_update` did about them."""
    check_args(tol, 0)
    with lsuv_mode(model):
        mean, std = measure(model, m, xb)
        return mean, std, lsuv_update(m, mean, std, tol, update)


# ---------------------------------------------------------------- guard rails

def check_args(tol: float, max_iter: int) -> None:
    if tol <= 0 or max_iter < 0:
        raise ValueError(f"LSUV needs tol > 0 and max_iter >= 0, got tol={tol}, max_iter={max_iter}.")


def as_batches(model: nn.Module, xb: Batches) -> list[torch.Tensor]:
    """`xb` as a list of batches, each checked (`batch_problem`) before anything in the model changes."""
    batches = [xb] if isinstance(xb, torch.Tensor) else list(xb)
    if not batches:
        raise ValueError("LSUV needs a batch (or a list of batches, whose statistics it averages), got none.")
    for i, b in enumerate(batches):
        if problem := batch_problem(model, b, "the batch" if len(batches) == 1 else f"batch {i} of {len(batches)}"):
            raise ValueError(problem)
    return batches


MIN_SAMPLES = 2
"""LSUV measures a layer's std over a batch, and BatchNorm (in train mode) normalises over it: one sample is too few."""

CONVERT = {torch.float32: "xb.float()", torch.float64: "xb.double()", torch.float16: "xb.half()",
           torch.bfloat16: "xb.bfloat16()"}


def batch_problem(model: nn.Module, xb: torch.Tensor, what: str = "the batch") -> str | None:
    """Why LSUV can't measure the model on `xb`, or None: floats of another type than the model's weights (torch
    would fail in the first layer), or fewer than `MIN_SAMPLES` samples (no std over the batch, no BatchNorm)."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if xb.is_floating_point() and len(dtypes) == 1 and xb.dtype not in dtypes:
        (want,) = dtypes
        return (f"LSUV: {what} is {_dtype(xb.dtype)} and the model {_dtype(want)}, so the first layer can't take it. "
                f"Convert the batch first: `{CONVERT.get(want, f'xb.to(torch.{_dtype(want)})')}`.")
    if xb.ndim == 0 or len(xb) < MIN_SAMPLES:
        n = 0 if xb.ndim == 0 else len(xb)
        return (f"LSUV: {what} holds {n} sample{'' if n == 1 else 's'} (shape {tuple(xb.shape)}), too few to "
                "measure a layer's std over the batch (and BatchNorm needs more than 1 value per channel). Pass at "
                f"least {MIN_SAMPLES} samples; a few dozen (a training batch) give steadier statistics.")
    return None


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def layers_to_tune(model: nn.Module, modules: Sequence[nn.Module] | None) -> list[nn.Module]:
    mods = lsuv_modules(model) if modules is None else listify(modules)
    if not mods:
        raise ValueError("LSUV has no layer to tune: the model has no ConvLayer, conv or linear layer, or `modules` "
                         "is empty; pass the layers to tune as `modules`.")
    return mods


def layer_name(model: nn.Module, m: nn.Module) -> str:
    """`'3 ConvLayer'`: the module's path in the model and its type, for reports and error messages."""
    path = next((n for n, o in model.named_modules() if o is m), None)
    if path is None:
        raise ValueError(f"The {type(m).__name__} passed to LSUV is not part of the model; pass one of model.modules().")
    return f"{path} {type(m).__name__}".strip()


def shift_name(m: nn.Module) -> str | None:
    """What centres the layer's mean, as the report names it."""
    return None if getattr(m, "bias", None) is None else getattr(m, "lsuv_shift", "bias")


def warn_if_stopped(step: LSUVStep, max_iter: int, tol: float) -> LSUVStep:
    """A layer's last step; warns if it ran out of iterations."""
    if step.action == "stopped":
        warnings.warn(f"LSUV: {step.name} did not converge in {max_iter} iterations (mean {step.mean:.3g}, std "
                      f"{step.std:.4g}, tol {tol}); it is left as it is. Try a larger max_iter or tol, or a bigger "
                      "batch.", LSUVWarning, stacklevel=4)
    return step


DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


@contextmanager
def lsuv_mode(model: nn.Module) -> Iterator[None]:
    """No grad; train mode (BatchNorm normalises with the batch, as in training) but dropout off; on exit, even on
    Ctrl-C, every train/eval mode and BatchNorm's running statistics are as they were."""
    running = [(b, b.clone()) for m in model.modules() if getattr(m, "track_running_stats", False)
               for b in m.buffers(recurse=False)]
    modes = train_modes(model)
    try:
        for m in model.modules():  # parents before children, so each module ends in its own mode
            m.train(not isinstance(m, DROPOUT))
        with torch.no_grad():
            yield
    finally:
        restore_modes(modes)
        for b, saved in running:
            b.copy_(saved)


@contextmanager
def lsuv_progress(n: int, show: bool) -> Iterator[Callable[[int], None]]:
    """`done(i)` after each layer moves a bar over `n` layers; the bar is closed whatever happens (error, Ctrl-C)."""
    bar = progress_bar(range(n), total=n, leave=False, comment="LSUV") if show else None
    if bar is not None:
        bar.update(0)
    try:
        yield bar.update if bar is not None else (lambda i: None)
    except BaseException:
        if bar is not None:
            bar.on_interrupt()
        raise


def stats_problem(name: str, out: torch.Tensor | None, mean: float, std: float) -> str | None:
    """Why LSUV can't tune a layer from this output, or None: NaN/inf, or (given `out`) the same output for every
    sample (a constant input: zeros, dead ReLUs), which no weight scale can give std 1: dividing would ruin it."""
    if not (math.isfinite(mean) and math.isfinite(std)):
        return (f"LSUV: {name} outputs NaN or inf on this batch (mean {mean}, std {std}). "
                "Check the batch and the layers before it.")
    if out is None:
        return None
    d = out.detach().float()
    spread = (d - d[:1]).abs().max() if len(d) > 1 else d.std()  # how far any sample strays from the first one
    if not (spread / d.abs().max()).item() > 1e-5:  # also catches 0/0 = NaN: an all-zero output
        return (f"LSUV: {name} outputs a constant on this batch, the same for every sample (mean {mean:.3g}), so no "
                "weight scale can give it std 1. Its input is probably all zeros or dead ReLUs: check the batch and "
                "the layers before it (or leave this layer out of `modules`).")
    return None


def average(stats: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The statistics of several batches averaged (one batch: its own, exactly)."""
    return tuple(stats[0]) if len(stats) == 1 else tuple(sum(s) / len(stats) for s in zip(*stats))


# ---------------------------------------------------------------- reading a layer's output

class StopForward(Exception):
    """Raised by a hook once it has what LSUV needs: the layers after it needn't run."""


def lsuv_point(m: nn.Module) -> nn.Module:
    """Where LSUV reads a layer's statistics: the part a block names in `lsuv_output`, else the layer itself."""
    return m.get_submodule(getattr(m, "lsuv_output", ""))


def point_stats(name: str, point: nn.Module, run: Callable[[], Any], check: bool = True,
                stop: bool = True) -> tuple[float, float]:
    """Mean and std of `point`'s first output while `run()` runs (cut short there if `stop`); refused if unusable."""
    outs: list[torch.Tensor] = []

    def keep(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        outs.append(out)
        if stop:
            raise StopForward
    with point.register_forward_hook(keep), suppress(StopForward):  # the hook is removed whatever happens
        run()
    if not outs:
        raise ValueError(f"{name} did not run in model(xb), so LSUV can't measure it.")
    mean, std = activation_stats(outs[0], bins=0).tolist()
    if problem := stats_problem(name, outs[0] if check else None, mean, std):
        raise ValueError(problem)
    return mean, std


def shares_parameters(model: nn.Module, m: nn.Module) -> bool:
    """Does a module outside `m` hold one of `m`'s parameters or buffers (tied weights)?"""
    inside = {id(t) for t in [*m.parameters(), *m.buffers()]}
    mine = {id(o) for o in m.modules()}
    return any(id(t) in inside for o in model.modules() if id(o) not in mine
               for t in [*o.parameters(recurse=False), *o.buffers(recurse=False)])
