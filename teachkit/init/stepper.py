"""LSUV one iteration at a time, with every layer's statistics after each step: the model behind the LSUV panel.

A step is one iteration of `teachkit.init.lsuv`'s loop on the current layer: read the layer's mean and std (measured by
the last snapshot, as the model is now), let `lsuv_update` scale or shift it, then take a new snapshot of every
layer. Everything before the current layer is fixed, so a snapshot does not run it again: those layers' outputs
are kept from an earlier snapshot and handed on (`_frozen`), and the forward pass costs only the layers from the
current one up. Stepping to the end gives exactly `lsuv_init`'s weights.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, ExitStack
from typing import Any

import torch
from torch import nn

from ..hooks import LayerStats, activation_stats
from ..utils import to_model_device
from .lsuv import (Batches, LSUVReport, LSUVStep, as_batches, average, check_args, layer_name, layers_to_tune,
                   lsuv_mode, lsuv_point, lsuv_update, shares_parameters, shift_name, stats_problem, warn_if_stopped)

__all__ = ["LSUVStepper"]

HIST_SAMPLE = 2**16
"""Histograms are binned from about this many activations per layer: a picture, quick at every step."""


class LSUVStepper:
    """Step LSUV by hand: `step()`, `next_layer()`, `run_all()`, `reset()`; `stats[i]` is layer i's `LayerStats`
    with one entry before any step and one after each, `history` the `LSUVStep`s, `results` the finished layers."""

    def __init__(self, model: nn.Module, xb: Batches, modules: Sequence[nn.Module] | None = None,
                 tol: float = 1e-3, max_iter: int = 10, bins: int = 40, hist_range: tuple[float, float] = (-4.0, 4.0)):
        check_args(tol, max_iter)
        self.model, self.batches, self.tol, self.max_iter = model, as_batches(model, xb), tol, max_iter
        self.bins, self.hist_range = bins, hist_range
        self.modules = layers_to_tune(model, modules)
        self.names = [layer_name(model, m) for m in self.modules]
        self.points = [lsuv_point(m) for m in self.modules]
        self.can_freeze = not any(shares_parameters(model, m) for m in self.modules)
        self._start = copy.deepcopy(model.state_dict())
        self.reset()

    def reset(self) -> None:
        """Put back the weights (and `relu.sub`s) the stepper started from, and forget the history."""
        self.model.load_state_dict(self._start)
        self.current: int | None = 0
        self.iterations = 0
        self.history: list[LSUVStep] = []
        self.results = LSUVReport()
        self.stats = [LayerStats(hist_range=self.hist_range) for _ in self.modules]
        self._kept: dict[int, list[torch.Tensor]] = {}  # outputs of layers that finished before the current started
        self._problems: list[str | None] = [None] * len(self.modules)
        self.snapshot()

    @property
    def done(self) -> bool:
        return self.current is None

    def step(self) -> LSUVStep | None:
        """One LSUV iteration on the current layer; None once every layer is done."""
        if self.done:
            return None
        if not self.stats[0].means:  # a reset cut short (Ctrl-C) before its snapshot: take it now
            self.snapshot()
        i, m = self.current, self.modules[self.current]
        mean, std = self.stats[i].means[-1], self.stats[i].stds[-1]
        problem = self._problems[i] or stats_problem(self.names[i], None, mean, std)
        if problem:
            raise ValueError(problem)
        saved = copy.deepcopy(m.state_dict())
        try:
            action = lsuv_update(m, mean, std, self.tol, update=self.iterations < self.max_iter)
            self.snapshot(repeat=action in ("converged", "stopped"))  # nothing changed: the last one, again
        except BaseException:  # an error or Ctrl-C: the layer as it was, so weights and pictures agree
            m.load_state_dict(saved)
            raise
        row = LSUVStep(i, self.names[i], self.iterations, mean, std, action, shift_name(m))
        self.history.append(row)
        if action in ("converged", "stopped"):
            self.results.append(warn_if_stopped(row, self.max_iter, self.tol))
            self.current = i + 1 if i + 1 < len(self.modules) else None
            self.iterations = 0
        else:
            self.iterations += 1
        return row

    def next_layer(self) -> LSUVStep | None:
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

    def snapshot(self, repeat: bool = False) -> None:
        """Append every layer's mean, std and histogram on the batches, as the model is now, to `stats`."""
        if repeat:
            for s in self.stats:
                s.append(_row(s.means[-1], s.stds[-1], s.hists[-1]))
            return
        per_batch = [self._measure_all(b) for b in range(len(self.batches))]  # before any append: all or nothing
        for i, s in enumerate(self.stats):
            rows = [p[i] for p in per_batch]
            if rows[0] is None:  # frozen: as it was
                s.append(_row(s.means[-1], s.stds[-1], s.hists[-1]))
            else:
                s.append(_row(*average([r[:2].tolist() for r in rows]), torch.stack(rows)[:, 2:].mean(0)))

    def _measure_all(self, b: int) -> list[torch.Tensor | None]:
        """One forward pass on batch `b`: `activation_stats` of every layer (None for the frozen ones)."""
        n, cur = len(self.modules), self.current if self.current is not None else len(self.modules)
        rows: list[torch.Tensor | None] = [None] * n
        calls, ends, outputs, start, tick = [0] * n, [0] * n, {}, [], itertools.count()
        problems: dict[int, str | None] = {}

        def at_point(i: int, out: torch.Tensor) -> None:
            if rows[i] is None:
                rows[i] = activation_stats(out, self.bins, self.hist_range, sample=HIST_SAMPLE).cpu()
                if i == cur + 1 or (i == cur and not self.history):  # checked once, before the layer is current
                    problems[i] = stats_problem(self.names[i], out, *rows[i][:2].tolist())

        def after(i: int, out: Any) -> None:
            calls[i], ends[i] = calls[i] + 1, next(tick)
            if i < cur and i not in self._kept and isinstance(out, torch.Tensor):
                outputs[i] = out.detach().clone()

        hooks = [(p, lambda mod, a, o, i=i: at_point(i, o), "post") for i, p in enumerate(self.points)]
        hooks += [(m, lambda mod, a, o, i=i: after(i, o), "post") for i, m in enumerate(self.modules)]
        if cur < n:
            hooks.append((self.modules[cur], lambda mod, a, k: start.append(next(tick)) if not start else None, "pre"))
        with lsuv_mode(self.model), self._frozen(b) as frozen, _hooks(*hooks):
            self.model(to_model_device(self.model, self.batches[b]))
        missed = [self.names[i] for i in range(n) if rows[i] is None and i not in frozen]
        if missed:
            raise ValueError(f"The forward pass never reached {', '.join(missed)}: pass only layers of this model's "
                             "forward path as `modules`.")
        for i, out in outputs.items():  # finished before the current layer started, called once: skip it from now on
            if calls[i] == 1 and (not start or ends[i] < start[0]):
                self._kept.setdefault(i, [None] * len(self.batches))[b] = out
        for i, p in problems.items():
            self._problems[i] = p
        return [None if i in frozen else r for i, r in enumerate(rows)]

    @contextmanager
    def _frozen(self, b: int) -> Iterator[set[int]]:
        """Finished layers hand on their kept output instead of running (copies: a next layer may work in place)."""
        frozen: set[int] = set()
        with ExitStack() as stack:
            if self.can_freeze and self.current is not None:
                for i, outs in self._kept.items():
                    if i < self.current and outs[b] is not None:
                        self.modules[i].forward = lambda *a, out=outs[b], **k: out.clone()
                        stack.callback(delattr, self.modules[i], "forward")
                        frozen.add(i)
            yield frozen

    def __repr__(self) -> str:
        where = "done" if self.done else f"{self.names[self.current]}, iteration {self.iterations}"
        return f"LSUVStepper({len(self.modules)} layers, {len(self.history)} steps, {where})"


def _row(mean: float, std: float, hist: torch.Tensor) -> torch.Tensor:
    """One `LayerStats.append` row, in float64 so the averaged mean and std are kept exactly."""
    return torch.cat([torch.tensor([mean, std], dtype=torch.float64), hist.double()])


@contextmanager
def _hooks(*specs: tuple[nn.Module, Callable, str]) -> Iterator[None]:
    """Forward hooks ("post") and pre-hooks with kwargs ("pre") on modules, removed on exit whatever happens."""
    handles = []
    try:
        for m, f, kind in specs:
            handles.append(m.register_forward_pre_hook(f, with_kwargs=True) if kind == "pre"
                           else m.register_forward_hook(f))
        yield
    finally:
        for h in handles:
            h.remove()
