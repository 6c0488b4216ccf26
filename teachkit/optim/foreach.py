"""The fast path of `teachkit.optim`: the same steppers on whole lists of tensors (`torch._foreach_*`).

`ForeachOptimizer.step()` runs `foreach_step`: group by group, each stepper once over the group's
parameters that have a gradient, through its list version in `FOREACH_VERSIONS` when it has one, else one
parameter at a time. The state is the readable path's (one dict per parameter), so the two paths give the same
numbers and the same `state_dict` (tests/test_optim_foreach.py). A list version takes the group's tensors, each
state entry as a list (None where a parameter has no value yet) and the hypers, and returns a dict of lists or
None. On a GPU it launches a few kernels per group instead of a few per tensor; on the CPU it is no faster.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from .optimizer import (Optimizer, Stepper, adam_step, average_grad, average_sqr_grad, debias, l2_reg, momentum_step,
                    sgd_step, step_stat, weight_decay)

__all__ = ["ForeachOptimizer", "foreach_step", "FOREACH_VERSIONS"]


class ForeachOptimizer(Optimizer):
    """`Optimizer` whose `step` runs each stepper over a whole group at once (`foreach_step`); same state, same numbers."""

    @torch.no_grad()
    def step(self) -> None:
        foreach_step(self)


def foreach_step(opt: Optimizer) -> None:
    """`Optimizer.step` one group at a time: each stepper's list version on the group, or the stepper on each tensor."""
    for ps, hypers in zip(opt.param_groups, opt.hypers):
        ps = [p for p in ps if p.grad is not None]
        if not ps:
            continue
        states = [opt.state.setdefault(p, {}) for p in ps]
        for f in opt.steppers:
            fast = list_version(f)
            if fast is None:
                for p, state in zip(ps, states):
                    state.update(f(p, **state, **hypers) or {})
            else:
                merge(states, fast(ps, **as_lists(states), **hypers))


def list_version(f: Stepper) -> Callable | None:
    """The list version of stepper `f` (keeping a `partial`'s keywords), or None when it has none."""
    if isinstance(f, partial):
        fast = FOREACH_VERSIONS.get(f.func)
        return partial(fast, *f.args, **f.keywords) if fast else None
    return FOREACH_VERSIONS.get(f)


def as_lists(states: list[dict]) -> dict[str, list]:
    """Per-parameter states -> one list per state name, None where a parameter has no value yet."""
    names = dict.fromkeys(k for s in states for k in s)
    return {k: [s.get(k) for s in states] for k in names}


def merge(states: list[dict], new: dict[str, list] | None) -> None:
    """Store what a list version returned into each parameter's state."""
    for k, values in (new or {}).items():
        for state, v in zip(states, values):
            state[k] = v


def grads(ps: list[Tensor]) -> list[Tensor]:
    """The gradients of a list of parameters."""
    return [p.grad for p in ps]


def zeros_where_missing(xs: list[Tensor | None] | None, ps: list[Tensor]) -> list[Tensor]:
    """The state tensors, with new zeros for parameters stepped for the first time."""
    return [torch.zeros_like(p) if x is None else x for x, p in zip(xs or [None] * len(ps), ps)]


def sgd_step_foreach(ps: list[Tensor], lr: float, **kwargs: Any) -> None:
    torch._foreach_add_(ps, grads(ps), alpha=-lr)


def weight_decay_foreach(ps: list[Tensor], lr: float, wd: float, **kwargs: Any) -> None:
    if wd != 0:
        torch._foreach_mul_(ps, 1 - lr * wd)


def l2_reg_foreach(ps: list[Tensor], wd: float, **kwargs: Any) -> None:
    if wd != 0:
        torch._foreach_add_(grads(ps), ps, alpha=wd)


def average_grad_foreach(ps: list[Tensor], mom: float, dampening: bool = False, grad_avg: list | None = None,
                         **kwargs: Any) -> dict:
    grad_avg = zeros_where_missing(grad_avg, ps)
    if dampening:
        torch._foreach_lerp_(grad_avg, grads(ps), 1 - mom)
    else:
        torch._foreach_mul_(grad_avg, mom)
        torch._foreach_add_(grad_avg, grads(ps))
    return {"grad_avg": grad_avg}


def average_sqr_grad_foreach(ps: list[Tensor], sqr_mom: float, sqr_avg: list | None = None, **kwargs: Any) -> dict:
    sqr_avg, gs = zeros_where_missing(sqr_avg, ps), grads(ps)
    torch._foreach_mul_(sqr_avg, sqr_mom)
    torch._foreach_addcmul_(sqr_avg, gs, gs, value=1 - sqr_mom)
    return {"sqr_avg": sqr_avg}


def step_stat_foreach(ps: list[Tensor], step: list | None = None, **kwargs: Any) -> dict:
    return {"step": [(s or 0) + 1 for s in step or [0] * len(ps)]}


def momentum_step_foreach(ps: list[Tensor], lr: float, grad_avg: list[Tensor], **kwargs: Any) -> None:
    torch._foreach_add_(ps, grad_avg, alpha=-lr)


def adam_step_foreach(ps: list[Tensor], lr: float, mom: float, sqr_mom: float, step: list[int], grad_avg: list[Tensor],
                      sqr_avg: list[Tensor], eps: float, **kwargs: Any) -> None:
    denom = torch._foreach_div(sqr_avg, [debias(sqr_mom, 1 - sqr_mom, s) for s in step])
    torch._foreach_sqrt_(denom)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(ps, grad_avg, denom, [-lr / debias(mom, 1 - mom, s) for s in step])


FOREACH_VERSIONS: dict[Callable, Callable] = {
    sgd_step: sgd_step_foreach, weight_decay: weight_decay_foreach, l2_reg: l2_reg_foreach,
    average_grad: average_grad_foreach, average_sqr_grad: average_sqr_grad_foreach, step_stat: step_stat_foreach,
    momentum_step: momentum_step_foreach, adam_step: adam_step_foreach,
}
"""Each readable stepper of teachkit.optim -> its list version; steppers not listed run one tensor at a time."""
