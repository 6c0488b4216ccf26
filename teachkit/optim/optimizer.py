"""The generic optimizer of lesson 09: one `Optimizer`, with SGD, momentum, Adam, LAMB and RAdam as small parts.

One idea, one contract (fastai v2's): a *stepper* is a plain function `f(p, **state, **hypers)` of a parameter,
its state and its group's hyper-parameters. It changes `p` in place, or returns a dict that is merged into `p`'s
state, or both. A *statistic* is a stepper that returns state: a running average, a step count. For each
parameter with a gradient, `step` runs the steppers in the order given; nothing else decides the order.

    Optimizer(params, [weight_decay, average_grad, momentum_step], lr=0.1)   # SGD with momentum

A stepper declares the hyper-parameters it needs, with defaults, by `@with_defaults(...)`, which sets its
`_defaults` (the course's attribute); values the user gives win. Hyper-parameters live in `opt.hypers`, one
dict per group, so a scheduler can change them between steps; every value is checked where it is set
(`teachkit.optim.hypers`). Names (the course's, one name each):

    lr       learning rate
    mom      momentum; for Adam, LAMB and RAdam this is beta1
    sqr_mom  beta2 of Adam, LAMB and RAdam: the momentum of the squared gradients
    eps      added to the denominator outside the square root, where torch.optim adds it
    wd       weight decay: decoupled (`weight_decay`), added to the gradient (`l2_reg`), or inside LAMB's step
    k, alpha Lookahead: every k steps the slow weights move alpha of the way to the fast ones

Factory defaults (the course's, in `teachkit.optim.factories`): `sgd_opt` wd 0; `sgd_mom_opt` mom 0.9, wd 0.01;
`adam_opt` mom 0.9, sqr_mom 0.99, eps 1e-5, wd 0; `lamb_opt` as Adam but eps 1e-6; `radam_opt` as Adam; `ranger_opt`
(fastai's `ranger` defaults) mom 0.95, sqr_mom 0.99, eps 1e-6, wd 0.01, k 6, alpha 0.5. `foreach=True` gives
`teachkit.optim.foreach.ForeachOptimizer`, the list versions of the steppers: the same numbers, fewer kernel launches
on a GPU.

LAMB (You et al. 2019, Algorithm 2): Adam's debiased update plus wd * p, scaled for each tensor by
||p|| / ||update||, clamped at 10, and 1 when either norm is 0 (a zero-initialised bias must still move).
Variants: fastai v2 decays the weights before the step; timm clips the global gradient norm and skips the ratio
for tensors with wd 0; pytorch-lamb does not debias. RAdam (Liu et al. 2019) takes momentum-SGD steps while the
variance of the adaptive rate is not yet defined (rho <= 5), then rectified Adam steps; eps is added to the root
of the raw average, as in torch.optim.RAdam and the authors' code (fastai adds it to the debiased root, as Adam).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.linalg import vector_norm

from .hypers import Hypers, Params, checked_state, split_groups
from ..utils import listify

__all__ = ["Optimizer", "with_defaults", "get_defaults", "sgd_step", "weight_decay", "l2_reg", "average_grad",
           "average_sqr_grad", "step_stat", "momentum_step", "debias", "adam_step", "trust_ratio", "lamb_step",
           "radam_step", "slow_weights", "lookahead_step", "lookahead", "adam_stats", "stepper_name"]

Stepper = Callable[..., dict | None]


def with_defaults(**defaults: float) -> Callable[[Stepper], Stepper]:
    """Declare the hyper-parameters a stepper needs and their default values (stored as `f._defaults`)."""
    def _declare(f: Stepper) -> Stepper:
        f._defaults = defaults
        return f
    return _declare


def get_defaults(f: Stepper) -> dict:
    """The hyper-parameters a stepper (or a `partial` of one) declares, with their default values."""
    return getattr(getattr(f, "func", f), "_defaults", {})


# ---------------------------------------------------------------- the optimizer

class Optimizer:
    """Run the steppers, in order, on every parameter that has a gradient, keeping a state dict per parameter."""

    def __init__(self, params: Params, steppers: Stepper | Sequence[Stepper], **defaults: float):
        self.steppers = list(listify(steppers))  # a copy: the caller's list stays theirs
        declared = {k: v for f in self.steppers for k, v in get_defaults(f).items()}
        self.param_groups, extras = split_groups(params)
        self.hypers = [Hypers({**declared, **defaults, **x}, {"lr", *declared}, f"param group {i}")
                       for i, x in enumerate(extras)]
        self.state = {}

    @torch.no_grad()
    def step(self) -> None:
        """Each stepper, in order, on each parameter with a gradient; what a stepper returns joins that parameter's state."""
        for ps, hypers in zip(self.param_groups, self.hypers):
            for p in ps:
                if p.grad is not None:
                    state = self.state.setdefault(p, {})
                    for f in self.steppers:
                        state.update(f(p, **state, **hypers) or {})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients before the next backward pass (None frees memory; zeros keep the tensors)."""
        for p in (p for ps in self.param_groups for p in ps):
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    def state_dict(self) -> dict:
        """Hypers and per-parameter state (keyed by position, not identity), copied: `torch.save` it to resume."""
        params = [p for ps in self.param_groups for p in ps]
        return {"group_sizes": [len(ps) for ps in self.param_groups], "hypers": [dict(h) for h in self.hypers],
                "state": {i: copy.deepcopy(self.state[p]) for i, p in enumerate(params) if p in self.state}}

    def load_state_dict(self, sd: dict) -> None:
        """Resume exactly from `state_dict()` of an optimizer built the same way over the same-shaped parameters."""
        self.state = checked_state(sd, self.param_groups, self.hypers)
        for h, saved in zip(self.hypers, sd["hypers"]):
            h.update(saved)  # in place: schedulers may hold these dicts

    def __repr__(self) -> str:
        names = ", ".join(map(stepper_name, self.steppers))
        return f"{type(self).__name__}({sum(map(len, self.param_groups))} tensors; {names}; hypers={self.hypers})"


def stepper_name(f: Stepper) -> str:
    """`adam_step`, or `average_grad(dampening=True)` for a partial."""
    if isinstance(f, partial):
        return f"{f.func.__name__}({', '.join(f'{k}={v!r}' for k, v in f.keywords.items())})"
    return getattr(f, "__name__", repr(f))


# ---------------------------------------------------------------- statistics: steppers that return state

@with_defaults(mom=0.9)
def average_grad(p: Tensor, mom: float, dampening: bool = False, grad_avg: Tensor | None = None, **kwargs: Any) -> dict:
    """Momentum: grad_avg = mom * grad_avg + damp * grad, with damp = 1 - mom when dampened (Adam), else 1 (SGD)."""
    if grad_avg is None:
        grad_avg = torch.zeros_like(p)
    if dampening:  # mom * grad_avg + (1 - mom) * grad, in one pass over memory
        grad_avg.lerp_(p.grad, 1 - mom)
    else:
        grad_avg.mul_(mom).add_(p.grad)
    return {"grad_avg": grad_avg}


@with_defaults(sqr_mom=0.99)
def average_sqr_grad(p: Tensor, sqr_mom: float, sqr_avg: Tensor | None = None, **kwargs: Any) -> dict:
    """Dampened running average of the squared gradients: sqr_avg = sqr_mom * sqr_avg + (1 - sqr_mom) * grad**2."""
    if sqr_avg is None:
        sqr_avg = torch.zeros_like(p)
    sqr_avg.mul_(sqr_mom).addcmul_(p.grad, p.grad, value=1 - sqr_mom)
    return {"sqr_avg": sqr_avg}


def step_stat(p: Tensor, step: int = 0, **kwargs: Any) -> dict:
    """How many steps this parameter has taken: debiasing needs it."""
    return {"step": step + 1}


def adam_stats() -> list[Stepper]:
    """What Adam, LAMB and RAdam keep per parameter: dampened averages of the gradient and its square, a step count."""
    return [partial(average_grad, dampening=True), average_sqr_grad, step_stat]


# ---------------------------------------------------------------- steppers

def sgd_step(p: Tensor, lr: float, **kwargs: Any) -> None:
    """p <- p - lr * grad."""
    p.add_(p.grad, alpha=-lr)


@with_defaults(wd=0.0)
def weight_decay(p: Tensor, lr: float, wd: float, **kwargs: Any) -> None:
    """Decoupled weight decay: shrink p towards 0 by lr * wd, whatever the optimizer does with the gradient."""
    if wd != 0:
        p.mul_(1 - lr * wd)


@with_defaults(wd=0.0)
def l2_reg(p: Tensor, wd: float, **kwargs: Any) -> None:
    """L2 regularisation: add wd * p to the gradient, as wd/2 * ||p||^2 in the loss would; list it before the stats."""
    if wd != 0:
        p.grad.add_(p, alpha=wd)


def momentum_step(p: Tensor, lr: float, grad_avg: Tensor, **kwargs: Any) -> None:
    """p <- p - lr * grad_avg: SGD with the running average in place of the gradient."""
    p.add_(grad_avg, alpha=-lr)


def debias(mom: float, damp: float, step: int) -> float:
    """What an average started at 0 sums its weights to after `step` steps: divide by it to remove the bias to 0."""
    return damp * (1 - mom**step) / (1 - mom)


@with_defaults(eps=1e-5)
def adam_step(p: Tensor, lr: float, mom: float, sqr_mom: float, step: int, grad_avg: Tensor, sqr_avg: Tensor,
              eps: float, **kwargs: Any) -> None:
    """Adam: the debiased average gradient over the square root of the debiased average squared gradient."""
    denom = (sqr_avg / debias(sqr_mom, 1 - sqr_mom, step)).sqrt_().add_(eps)  # in place on the new tensor
    p.addcdiv_(grad_avg, denom, value=-lr / debias(mom, 1 - mom, step))


def trust_ratio(r1: Tensor, r2: Tensor, max_ratio: float = 10.0) -> Tensor:
    """r1 / r2 clamped at `max_ratio`; 1 when either norm is 0, so a zero-initialised bias still moves."""
    return torch.where((r1 > 0) & (r2 > 0), r1 / r2, 1.0).clamp(max=max_ratio)


@with_defaults(eps=1e-6, wd=0.0)
def lamb_step(p: Tensor, lr: float, mom: float, sqr_mom: float, step: int, grad_avg: Tensor, sqr_avg: Tensor,
              eps: float, wd: float, **kwargs: Any) -> None:
    """LAMB: the Adam update plus wd * p, scaled for each tensor by the trust ratio ||p|| / ||update||."""
    debias1, debias2 = debias(mom, 1 - mom, step), debias(sqr_mom, 1 - sqr_mom, step)
    # Adam's update, (grad_avg / debias1) / (sqrt(sqr_avg / debias2) + eps), is
    # scale * grad_avg / (sqrt(sqr_avg) + eps * sqrt(debias2)): the debiasing costs a number, not passes over the tensor
    scale = debias2**0.5 / debias1
    update = sqr_avg.sqrt().add_(eps * debias2**0.5)  # the one new tensor; the lines below work in it
    torch.div(grad_avg, update, out=update)  # Adam's update / scale
    update.add_(p, alpha=wd / scale)  # + wd * p / scale
    ratio = trust_ratio(vector_norm(p), scale * vector_norm(update))  # ||p|| / ||Adam + wd p||
    p.addcmul_(update, ratio, value=-lr * scale)  # p -= lr * ratio * (Adam + wd p)


@with_defaults(eps=1e-5)
def radam_step(p: Tensor, lr: float, mom: float, sqr_mom: float, step: int, grad_avg: Tensor, sqr_avg: Tensor,
               eps: float, **kwargs: Any) -> None:
    """RAdam: momentum SGD while rho <= 5, then Adam's step scaled by the rectifier of its adaptive rate's variance."""
    debias1, debias2 = debias(mom, 1 - mom, step), debias(sqr_mom, 1 - sqr_mom, step)
    rho_inf = 2 / (1 - sqr_mom) - 1
    rho = rho_inf - 2 * step * sqr_mom**step / (1 - sqr_mom**step)
    if rho <= 5:
        p.add_(grad_avg, alpha=-lr / debias1)
        return
    rect = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5
    p.addcdiv_(grad_avg, sqr_avg.sqrt().add_(eps), value=-lr * rect * debias2**0.5 / debias1)


# ---------------------------------------------------------------- Lookahead: a statistic and a stepper

def slow_weights(p: Tensor, slow_p: Tensor | None = None, **kwargs: Any) -> dict:
    """Lookahead's memory: the weights as they were before the first fast step (list it first)."""
    return {"slow_p": p.detach().clone() if slow_p is None else slow_p}


@with_defaults(k=6, alpha=0.5)
def lookahead_step(p: Tensor, step: int, slow_p: Tensor, k: int, alpha: float, **kwargs: Any) -> None:
    """Every k steps: the slow weights move alpha of the way to the fast ones, and the fast weights restart there."""
    if step % k == 0:
        slow_p.add_(p - slow_p, alpha=alpha)
        p.copy_(slow_p)


def lookahead(steppers: Sequence[Stepper]) -> list[Stepper]:
    """Lookahead (Zhang et al. 2019) around any steppers that count steps with `step_stat`."""
    return [slow_weights, *steppers, lookahead_step]
