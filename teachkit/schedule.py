"""Hyper-parameter schedules: functions of `pos`, the fraction of training done (0 to 1).

`ParamScheduler` calls them with `learn.pct_train`; `combine_scheds` hands each piece its own 0-to-1 `pos`.
The recipes at the end are the ones `python -m teachkit.train` offers: one-cycle (lr and momentum) and flat-cos.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["Schedule", "annealer", "sched_lin", "sched_cos", "sched_no", "sched_exp", "cos_1cycle_anneal",
           "combine_scheds", "one_cycle", "momentum_cycle", "flat_cos"]

Schedule = Callable[[float], float]


def annealer(f: Callable[[float, float, float], float]) -> Callable[[float, float], Schedule]:
    """Turn `f(start, end, pos)` into `sched(start, end)`, which returns a function of `pos`."""
    def _inner(start: float, end: float) -> Schedule:
        return lambda pos: f(start, end, pos)
    _inner.__name__, _inner.__doc__ = f.__name__, f.__doc__
    return _inner


@annealer
def sched_lin(start: float, end: float, pos: float) -> float:
    """Straight line from start to end."""
    return start + pos * (end - start)


@annealer
def sched_cos(start: float, end: float, pos: float) -> float:
    """Half a cosine from start to end: flat at both ends, steep in the middle."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


@annealer
def sched_no(start: float, end: float, pos: float) -> float:
    """Stay at start."""
    return start


@annealer
def sched_exp(start: float, end: float, pos: float) -> float:
    """Geometric from start to end (both must be positive): a straight line on a log scale."""
    return start * (end / start) ** pos


def cos_1cycle_anneal(start: float, high: float, end: float) -> list[Schedule]:
    """The two cosine halves of a one-cycle schedule: up from start to high, down to end."""
    return [sched_cos(start, high), sched_cos(high, end)]


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Schedule]) -> Schedule:
    """Glue schedules end to end: `scheds[i]` runs for the fraction `pcts[i]` of training."""
    if len(pcts) != len(scheds):
        raise ValueError(f"combine_scheds needs one percentage per schedule: got {len(pcts)} pcts for {len(scheds)} schedules.")
    if any(p < 0 for p in pcts) or not math.isclose(sum(pcts), 1.0, abs_tol=1e-6):
        raise ValueError(f"combine_scheds percentages must be >= 0 and sum to 1, got {list(pcts)} (sum {sum(pcts):g}).")
    edges = torch.cumsum(torch.tensor([0.0, *pcts], dtype=torch.float64), 0)

    def _inner(pos: float) -> float:
        idx = min(int((pos >= edges[1:-1]).sum()), len(scheds) - 1)
        width = float(edges[idx + 1] - edges[idx])
        actual_pos = (pos - float(edges[idx])) / width if width > 0 else 1.0
        return scheds[idx](actual_pos)
    return _inner


def one_cycle(peak: float, start: float = 0.1, end: float = 1e-5, pct_up: float = 0.3) -> Schedule:
    """Cosine warm-up from `peak*start` to `peak` over the first `pct_up` of training, then cosine down to `peak*end`."""
    return combine_scheds([pct_up, 1 - pct_up], cos_1cycle_anneal(peak * start, peak, peak * end))


def momentum_cycle(high: float = 0.95, low: float = 0.85, pct_up: float = 0.3) -> Schedule:
    """Momentum mirrors the learning rate: lowest when the learning rate is highest."""
    return combine_scheds([pct_up, 1 - pct_up], cos_1cycle_anneal(high, low, high))


def flat_cos(peak: float, pct_flat: float = 0.75, end: float = 1e-5) -> Schedule:
    """fastai2's `fit_flat_cos`: `peak` for the first `pct_flat` of training, then half a cosine down to `peak*end`."""
    return combine_scheds([pct_flat, 1 - pct_flat], [sched_no(peak, peak), sched_cos(peak, peak * end)])
