"""Lesson 10c's exercises: the two halves of dynamic loss scaling, checked against teachkit.precision.LossScaler.

1. `unscale_grads(params, scale)`: divide every gradient by the loss scale, in place, and say whether all are finite.
2. `update_scale(scale, good_steps, found_inf, growth_interval)`: halve the scale after an overflow, double it
   after `growth_interval` good steps in a row; returns the new `(scale, good_steps)`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import Case, Exercise, Mistake, Verdict

# ---------------------------------------------------------------- 1. unscale and check


def solution_unscale_grads(params: list[Tensor], scale: float) -> bool:
    """Divide each gradient by `scale` in place; True when no gradient holds an inf or a NaN."""
    for p in params:
        p.grad.div_(scale)
    return all(bool(p.grad.isfinite().all()) for p in params)


def _params(seed: int, bad: float | None, where: int = 1) -> tuple:
    """Two parameters whose gradients were scaled by 1024; `bad` (inf or NaN) is written into gradient `where`."""
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(3, generator=g).requires_grad_()]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g) * 1024
    if bad is not None:
        ps[where].grad[2] = bad
    return ps, 1024.0


UNSCALE_CASES = [Case("Finite gradients scaled by 1024", lambda: _params(0, None)),
                 Case("A gradient that overflowed to inf", lambda: _params(1, float("inf"))),
                 Case("A gradient that became NaN (inf - inf)", lambda: _params(2, float("nan"))),
                 Case("An inf in the first of two gradients (the last is finite)", lambda: _params(3, float("inf"), 0))]


def _observe_unscale(fn: Any, inputs: tuple) -> dict[str, Any]:
    params, scale = inputs
    ok = fn(params, scale)
    return {"the answer (True: every gradient is finite)": ok if isinstance(ok, bool) else bool(ok) if ok is not None else None,
            "the gradients after unscaling": torch.cat([p.grad.flatten() for p in params])}


def _multiply(params, scale):
    for p in params:
        p.grad.mul_(scale)
    return all(bool(p.grad.isfinite().all()) for p in params)


def _inf_only(params, scale):
    for p in params:
        p.grad.div_(scale)
    return not any(bool(p.grad.isinf().any()) for p in params)


def _inverted(params, scale):
    return not solution_unscale_grads(params, scale)


def _not_in_place(params, scale):
    grads = [p.grad / scale for p in params]
    return all(bool(g.isfinite().all()) for g in grads)


def _last_only(params, scale):
    for p in params:
        p.grad.div_(scale)
        ok = bool(p.grad.isfinite().all())  # overwritten by the next parameter: only the last one decides
    return ok


UNSCALE_MISTAKES = [
    Mistake(_last_only, "every gradient must be finite, not just the last one your loop looked at: with an inf in the "
                        "first and a finite last, the step would go ahead on an inf. Decide over all of them: "
                        "all(bool(p.grad.isfinite().all()) for p in params)."),
    Mistake(_multiply, "the loss was multiplied by the scale, so the gradients are too big: divide them by it."),
    Mistake(_inf_only, "a NaN is an overflow too (inf - inf, 0 * inf): test with isfinite(), which catches both, "
                       "not with isinf()."),
    Mistake(_inverted, "return True when the step may go ahead (every gradient finite), False after an overflow."),
    Mistake(_not_in_place, "change the gradients in place (p.grad.div_(scale)): the optimizer reads p.grad, not "
                           "your new tensors."),
]

UNSCALE = Exercise("unscale_grads", solution_unscale_grads, UNSCALE_CASES, _observe_unscale, UNSCALE_MISTAKES,
                   signature_hint="It is called as unscale_grads(params, scale) with a list of parameters.")


def check_unscale_grads(fn: Any) -> Verdict:
    """Check a learner's `unscale_grads(params, scale)` against `solution_unscale_grads`."""
    return UNSCALE.check(fn)


# ---------------------------------------------------------------- 2. the dynamic scale

def solution_update_scale(scale: float, good_steps: int, found_inf: bool, growth_interval: int) -> tuple[float, int]:
    """Halve after an overflow (and start counting again); double after `growth_interval` good steps in a row."""
    if found_inf:
        return scale / 2, 0
    good_steps += 1
    if good_steps == growth_interval:
        return scale * 2, 0
    return scale, good_steps


EVENTS = [False, False, True, False, False, False, False, True, True, False, False, False, False]
"""Overflow or not at each step of the checker's first run (growth interval 3, scale 1024 at the start)."""

LONG_RUN = [False] * 8
"""Eight good steps in a row: with growth interval 3 the scale doubles twice, after steps 3 and 6."""

OVERFLOWS = [True, True, True, True, False, False, False]
"""Overflow after overflow from scale 4: the scale goes below 1 (2, 1, 0.5, 0.25), then grows back to 0.5."""

UPDATE_CASES = [Case("13 steps from scale 1024 with two overflows, growth interval 3", lambda: (1024.0, 3, EVENTS)),
                Case("8 good steps in a row from scale 1024, growth interval 3", lambda: (1024.0, 3, LONG_RUN)),
                Case("4 overflows in a row from scale 4, then 3 good steps, growth interval 3",
                     lambda: (4.0, 3, OVERFLOWS))]


def _observe_update(fn: Any, inputs: tuple) -> dict[str, Any]:
    scale, interval, events = inputs
    good, out = 0, {}
    for i, inf in enumerate(events, 1):
        scale, good = fn(scale, good, inf, interval)
        out[f"the scale after step {i} ({'overflow' if inf else 'no overflow'})"] = (
            int(scale) if float(scale).is_integer() else scale)
    return out


def _double_on_overflow(scale, good_steps, found_inf, growth_interval):
    return solution_update_scale(scale, good_steps, False, growth_interval) if not found_inf else (scale * 2, 0)


def _no_reset_on_overflow(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale / 2, good_steps
    return solution_update_scale(scale, good_steps, False, growth_interval)


def _no_reset_on_growth(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale / 2, 0
    good_steps += 1
    return (scale * 2 if good_steps >= growth_interval else scale), good_steps


def _one_step_late(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale / 2, 0
    good_steps += 1
    return (scale * 2, 0) if good_steps > growth_interval else (scale, good_steps)


def _count_on_after_growth(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale / 2, 0
    good_steps += 1
    return (scale * 2 if good_steps == growth_interval else scale), good_steps


def _floor_halving(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale // 2, 0
    return solution_update_scale(scale, good_steps, False, growth_interval)


UPDATE_MISTAKES = [
    Mistake(_count_on_after_growth, "after doubling, set good_steps back to 0: counting on past growth_interval, "
                                    "the count never equals it again, so the scale grows once and never again."),
    Mistake(_floor_halving, "halve with scale / 2: `//` rounds down to a whole number, so from scale 1 an overflow "
                            "gives 0 instead of 0.5, and a zero scale zeroes every gradient (and stays 0)."),
    Mistake(_double_on_overflow, "an overflow means the scale is too big: halve it (scale / 2)."),
    Mistake(_no_reset_on_overflow, "after an overflow start counting good steps from 0 again: growth needs "
                                   "growth_interval good steps *in a row*."),
    Mistake(_no_reset_on_growth, "after doubling, set good_steps back to 0: otherwise the scale doubles at every "
                                 "following step until it overflows."),
    Mistake(_one_step_late, "double when good_steps reaches growth_interval (==), counting the step just taken."),
]

UPDATE = Exercise("update_scale", solution_update_scale, UPDATE_CASES, _observe_update, UPDATE_MISTAKES,
                  signature_hint="It is called as update_scale(scale, good_steps, found_inf, growth_interval) and "
                                 "returns (scale, good_steps).")


def check_update_scale(fn: Any) -> Verdict:
    """Check a learner's `update_scale` against `solution_update_scale` (the rule of LossScaler and GradScaler)."""
    return UPDATE.check(fn)

