"""`lsuv_init`, LSUV on a whole model, and its fast path: every layer tuned inside one forward pass, for about one
pass plus the layers' own runs (at most 5 forward passes on the lesson CNN, against 28 for a pass per measurement).

While one layer is tuned, everything before it is fixed, so the input the pass brings it is the input every
measurement of `teachkit.init.lsuv.measure` would compute again. Each layer's `forward` is replaced for the pass: on
its turn it runs the LSUV loop on that input, re-running only itself, and hands the pass the output of its last
measurement. Tested equal to the readable path (tests/test_lsuv_fast.py), which takes over where this one can't
be trusted.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from typing import Any

import torch
from torch import nn

from ..utils import to_model_device
from .lsuv import (Batches, LSUVReport, StopForward, as_batches, check_args, layer_name, layers_to_tune, lsuv_loop,
                   lsuv_mode, lsuv_point, lsuv_progress, measure, point_stats, shares_parameters)

__all__ = ["lsuv_init", "lsuv_in_one_pass"]


def lsuv_init(model: nn.Module, xb: Batches, modules: Sequence[nn.Module] | None = None, tol: float = 1e-3,
              max_iter: int = 10, progress: bool = True) -> LSUVReport:
    """LSUV on `modules` (default `lsuv_modules(model)`) in order, on `xb` (several batches: their stats averaged)."""
    check_args(tol, max_iter)
    mods, batches = layers_to_tune(model, modules), as_batches(model, xb)
    report = LSUVReport()
    with lsuv_mode(model), lsuv_progress(len(mods), progress) as done:
        if len(batches) == 1:  # the fast path: as far as it can go, every layer in one forward pass
            lsuv_in_one_pass(model, mods, batches[0], tol, max_iter, report, done)
        for i in range(len(report), len(mods)):
            m = mods[i]
            report.append(lsuv_loop(m, layer_name(model, m), lambda: measure(model, m, batches), tol, max_iter, layer=i))
            done(i + 1)
    return report


def lsuv_in_one_pass(model: nn.Module, mods: list[nn.Module], xb: torch.Tensor, tol: float, max_iter: int,
                     report: LSUVReport, done: Callable[[int], None]) -> None:
    """Tune `mods` in order as one forward pass of `xb` reaches them, appending their results to `report`.

    Stops (the readable path does the rest) at a layer reached before the one to tune next, one sharing parameters
    with another module (its input may depend on itself) or one whose measuring point also runs elsewhere. A tuned
    layer called again just runs: the readable path measures only its first call.
    """
    busy = []  # the layer being tuned: its own runs go through its forward too

    def tune_then_forward(i: int, m: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if busy or i < len(report):
            return type(m).forward(m, *args, **kwargs)
        point = lsuv_point(m)
        if i > len(report) or shares_parameters(model, m) or not _runs_only_inside(model, m, point):
            raise StopForward
        busy.append(i)
        name, out = layer_name(model, m), []
        report.append(lsuv_loop(m, name, partial(_measure_alone, name, m, point, args, kwargs, out), tol, max_iter, i))
        busy.clear()
        done(i + 1)
        return out[-1]  # the last measurement ran the whole layer, with its final weights, on this very input

    if any("forward" in vars(m) for m in mods):  # someone else replaced a forward: leave it be
        return
    with ExitStack() as stack:
        for i, m in enumerate(mods):
            m.forward = partial(tune_then_forward, i, m)
            stack.callback(delattr, m, "forward")
        try:
            model(to_model_device(model, xb))
        except StopForward:
            pass


def _measure_alone(name: str, m: nn.Module, point: nn.Module, args: tuple, kwargs: dict,
                   out: list) -> tuple[float, float]:
    """`m` alone on its input (copies: `m` may change its input in place), measured at `point`; its output to `out`.

    The first measurement checks the output is usable; the input, fixed here, is what would make it constant."""
    def run() -> None:
        out.append(m(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args], **kwargs))
    return point_stats(name, point, run, check=not out, stop=False)


def _runs_only_inside(model: nn.Module, m: nn.Module, point: nn.Module) -> bool:
    """Is the measuring point `m` itself, or a part of `m` that appears once in the model (so it runs only in `m`)?"""
    return point is m or sum(o is point for o in model.modules(remove_duplicate=False)) == 1
