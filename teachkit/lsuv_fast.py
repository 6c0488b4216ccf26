"""LSUV's fast path: every layer tuned inside one forward pass, so `lsuv_init` costs about one pass plus the
layers' own runs (issue 15: at most 5 passes on the lesson CNN). It gives exactly the weights of the readable path
in `teachkit.init` (tests/test_lsuv_fast.py), which takes over wherever this path can't be trusted.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

import torch
from torch import nn

from .init import LayerRun, LSUVReport, _StopForward, _run, _shares_parameters, _tune
from .utils import to_model_device

__all__ = ["lsuv_in_one_pass"]


def lsuv_in_one_pass(model: nn.Module, mods: list[nn.Module], xb: torch.Tensor, tol: float, max_iter: int,
                      report: LSUVReport, done: Callable[[int], None]) -> None:
    """Tune each layer when one forward pass reaches it, on the input the pass brings, and hand the pass the
    tuned layer's output from the last measurement: `lsuv_module`'s weights for about one forward pass plus the
    layers' own runs.

    Stops (the readable path does the rest) at a layer reached before the one to tune next, or one whose cache
    `LayerRun` would not trust. A tuned layer called again just runs: the readable path measures its first call.
    """
    busy = []  # the layer being tuned: its own runs go through its forward too

    def tune_then_forward(i: int, m: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if busy or i < len(report):
            return type(m).forward(m, *args, **kwargs)
        run = LayerRun(model, m, xb, inputs=[(args, kwargs)], whole=True)
        if i > len(report) or _shares_parameters(model, m) or not _runs_only_inside(model, m, run.point):
            raise _StopForward
        busy.append(i)
        report.append(_tune(run, tol, max_iter, layer=i))
        busy.clear()
        done(i + 1)
        return run.last  # the last measurement ran the whole layer with its final weights on this very input

    if any("forward" in vars(m) for m in mods):  # someone else replaced a forward: leave it be
        return
    with ExitStack() as stack:
        for i, m in enumerate(mods):
            m.forward = partial(tune_then_forward, i, m)
            stack.callback(delattr, m, "forward")
        _run(lambda: model(to_model_device(model, xb)))


def _runs_only_inside(model: nn.Module, m: nn.Module, point: nn.Module) -> bool:
    """Is the measuring point `m` itself, or a part of `m` that appears once in the model (so it runs only in `m`)?"""
    return point is m or sum(o is point for o in model.modules(remove_duplicate=False)) == 1
