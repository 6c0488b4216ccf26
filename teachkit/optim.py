"""The generic optimizer of lesson 09: one `Optimizer`, with SGD, momentum, Adam and LAMB as small parts.

Every optimizer here runs the same loop: for each parameter with a gradient, refresh some per-parameter
statistics (`Stat`s: running averages, a step count), then apply a few *steppers*, plain functions
`f(p, **hypers)` that change the parameter. Hyper-parameters live in `opt.hypers`, one dict per group,
so a scheduler can change them between steps.

Hyper-parameter names (the course's, one name each):

    lr       learning rate
    mom      momentum; for Adam and LAMB this is beta1
    sqr_mom  beta2 of Adam and LAMB: the momentum of the squared gradients
    eps      added to the denominator *outside* the square root, as torch.optim.Adam does
    wd       weight decay: decoupled (`weight_decay`), added to the gradient (`l2_reg`), or inside LAMB's step

Factory defaults (the course's): `sgd_opt` wd 0; `sgd_mom_opt` mom 0.9, wd 0.01; `adam_opt` mom 0.9,
sqr_mom 0.99, eps 1e-5, wd 0; `lamb_opt` mom 0.9, sqr_mom 0.99, eps 1e-6, wd 0. Every factory takes
`(params, lr, ...)`, so it (or a `partial` of it) is an `opt_func` for the Learner.

Order: steppers run sorted by `_order` (0 when missing), then in list order. Decoupled weight decay is
listed first, so it shrinks the weights the step started from, as torch's AdamW does. A stepper with a
negative `_order` (`l2_reg`) changes the gradient and runs before the stats, so momentum sees it.

LAMB, as in the paper (You et al. 2019, Algorithm 2) and the lesson: Adam's debiased update plus wd * p,
scaled for each tensor by ||p|| / ||update|| (L2 norms; the lesson's RMS norms give the same ratio),
clamped at 10, and set to 1 when either norm is 0 (a zero-initialised bias must still move; a tensor
with no update must not become NaN). No tensor is excluded: biases and norm weights are adapted too,
and give them a group with wd=0 to spare them weight decay. Variants you will meet: fastai v2 decays
the weights (decoupled) before the step, outside the ratio; timm clips the global gradient norm at 1,
does not clamp, and skips the ratio for tensors with wd 0; pytorch-lamb does not debias.

`foreach=True` runs the list versions (`torch._foreach_*`) of the stats and steppers that have one, and
the others one parameter at a time: fewer kernel launches on a GPU, the same numbers on the CPU.
"""
from __future__ import annotations

import copy
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from .utils import compose, listify

__all__ = ["Optimizer", "StatefulOptimizer", "Stat", "AverageGrad", "AverageSqrGrad", "StepCount",
           "sgd_step", "weight_decay", "l2_reg", "momentum_step", "adam_step", "lamb_step", "debias", "trust_ratio",
           "get_defaults", "maybe_update", "adam_stats", "sgd_opt", "sgd_mom_opt", "adam_opt", "lamb_opt"]

Hypers = dict[str, Any]
Params = Iterable[Tensor] | Iterable[Iterable[Tensor]] | Iterable[dict]


def get_defaults(o: Any) -> dict:
    """The hyper-parameters a stepper or stat needs, with their default values."""
    return getattr(o, "_defaults", {})


def maybe_update(os: Iterable, dest: dict, f: Callable[[Any], dict]) -> None:
    """Add to `dest` the keys of each `f(o)` it lacks: values the user gave always win."""
    for o in os:
        for k, v in f(o).items():
            if k not in dest:
                dest[k] = v


# ---------------------------------------------------------------- checking hyper-parameters

RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v >= 0, ">= 0"),
    "mom": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "sqr_mom": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: v > 0, "> 0"),
    "wd": (lambda v: v >= 0, ">= 0"),
}
"""The valid range of each known hyper-parameter; every hyper-parameter must also be a finite number."""

ALIASES = {"beta1": "mom", "momentum": "mom", "beta2": "sqr_mom", "betas": "mom and sqr_mom", "weight_decay": "wd"}
"""torch.optim's names, and what teachkit calls them."""


def check_hypers(hypers: Hypers, known: set[str], where: str) -> None:
    """Raise a ValueError naming the hyper-parameter and group that is unknown, not a number, NaN or out of range."""
    for k, v in hypers.items():
        if k not in known:
            hint = ALIASES.get(k) or next(iter(difflib.get_close_matches(k, known, n=1)), None)
            raise ValueError(f"Unknown hyper-parameter {k!r} in {where}" + (f" (did you mean {hint!r}?)" if hint else "")
                             + f"; this optimizer's hyper-parameters are {sorted(known)}.")
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"Hyper-parameter {k} in {where} must be a finite number, got {v!r}.")
        ok, rule = RULES.get(k, (lambda v: True, ""))
        if not ok(v):
            raise ValueError(f"Hyper-parameter {k} in {where} must be {rule}, got {v!r}.")


def split_groups(params: Params) -> tuple[list[list[Tensor]], list[Hypers]]:
    """Tensors, lists of tensors, or dicts with 'params' -> lists of tensors, and each group's own hypers."""
    if isinstance(params, Tensor):
        raise ValueError("params must be an iterable of tensors (e.g. model.parameters()), got a single tensor.")
    groups = list(params)
    if not groups:
        raise ValueError("The optimizer got no parameters: is the model empty, or was the generator already used?")
    if isinstance(groups[0], Tensor):
        groups = [groups]
    tensors, extras = [], []
    for i, g in enumerate(groups):
        g = dict(g) if isinstance(g, dict) else {"params": g}
        ps = g.pop("params", None)
        ps = [ps] if isinstance(ps, Tensor) else listify(ps)
        if not ps or not all(isinstance(p, Tensor) for p in ps):
            raise ValueError(f"Param group {i} must hold a non-empty list of tensors, got {ps!r}.")
        tensors.append(ps)
        extras.append(g)
    if len({id(p) for ps in tensors for p in ps}) != sum(map(len, tensors)):
        raise ValueError("A parameter appears twice in the optimizer's groups: each tensor belongs to one group.")
    return tensors, extras


# ---------------------------------------------------------------- the optimizers

class Optimizer:
    """Apply the steppers to every parameter that has a gradient, with one dict of hyper-parameters per group."""

    stats: list = []  # a plain Optimizer keeps no per-parameter statistics

    def __init__(self, params: Params, steppers: Callable | Sequence[Callable], foreach: bool = False, **defaults: float):
        self.steppers = sorted(listify(steppers), key=lambda f: getattr(f, "_order", 0))
        self.known = {"lr"} | {k for f in [*self.stats, *self.steppers] for k in get_defaults(f)}
        maybe_update(self.steppers, defaults, get_defaults)
        self.param_groups, extras = split_groups(params)
        self.hypers = [{**defaults, **x} for x in extras]
        self.foreach, self.state = foreach, {}
        self.check()

    def check(self) -> None:
        """Validate every group's hypers: at construction, and before each step since schedulers change them."""
        for i, h in enumerate(self.hypers):
            if "lr" not in h:
                raise ValueError(f"Param group {i} has no learning rate: pass lr=... to the optimizer.")
            check_hypers(h, self.known, f"param group {i}")

    def grad_params(self) -> list[tuple[Tensor, Hypers]]:
        """Every (parameter, its group's hypers) pair where the parameter has a gradient."""
        return [(p, h) for pg, h in zip(self.param_groups, self.hypers) for p in pg if p.grad is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients before the next backward pass (None frees memory; zeros keep the tensors)."""
        for pg in self.param_groups:
            for p in pg:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient; the update itself is not recorded by autograd."""
        self.check()
        if not self.foreach:
            for p, h in self.grad_params():
                self.step_param(p, h)
            return
        for pg, h in zip(self.param_groups, self.hypers):
            self.step_group([p for p in pg if p.grad is not None], h)

    def step_param(self, p: Tensor, hypers: Hypers) -> None:
        """The lesson: run the steppers on one parameter."""
        compose(p, self.steppers, **hypers)

    def step_group(self, ps: list[Tensor], hypers: Hypers) -> None:
        """The same maths on a whole group at once, with each stepper's `_foreach` version when it has one."""
        run_steppers(self.steppers, ps, [{} for _ in ps], hypers)

    def state_dict(self) -> dict:
        """Hypers and per-parameter state (keyed by position, not identity), copied: `torch.save` it to resume."""
        params = [p for pg in self.param_groups for p in pg]
        return {"group_sizes": [len(pg) for pg in self.param_groups], "hypers": copy.deepcopy(self.hypers),
                "state": {i: copy.deepcopy(self.state[p]) for i, p in enumerate(params) if p in self.state}}

    def load_state_dict(self, sd: dict) -> None:
        """Resume exactly from `state_dict()` of an optimizer built the same way over the same-shaped parameters."""
        sizes = [len(pg) for pg in self.param_groups]
        if sd["group_sizes"] != sizes:
            raise ValueError(f"The saved optimizer had groups of {sd['group_sizes']} parameters, this one has {sizes}.")
        for i, h in enumerate(sd["hypers"]):
            check_hypers(h, self.known, f"param group {i} of the loaded state")
        params = [p for pg in self.param_groups for p in pg]
        state = {}
        for i, s in sd["state"].items():
            p = params[int(i)]
            for k, v in s.items():
                if isinstance(v, Tensor) and v.shape != p.shape:
                    raise ValueError(f"Saved state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                                     f"but the parameter has shape {tuple(p.shape)}.")
            state[p] = {k: v.to(p.device, copy=True) if isinstance(v, Tensor) else v for k, v in s.items()}
        for h, saved in zip(self.hypers, sd["hypers"]):  # edit in place: schedulers may hold these dicts
            h.clear()
            h.update(saved)
        self.state = state

    def __repr__(self) -> str:
        parts = ", ".join([repr(s) for s in self.stats] + [getattr(f, "__name__", repr(f)) for f in self.steppers])
        return f"{type(self).__name__}({sum(map(len, self.param_groups))} tensors; {parts}; hypers={self.hypers})"


class StatefulOptimizer(Optimizer):
    """An Optimizer whose `stats` keep per-parameter state (averages, counts) that the steppers read."""

    def __init__(self, params: Params, steppers: Callable | Sequence[Callable], stats: Stat | Sequence[Stat] | None = None,
                 foreach: bool = False, **defaults: float):
        self.stats = listify(stats)
        maybe_update(self.stats, defaults, get_defaults)
        super().__init__(params, steppers, foreach=foreach, **defaults)

    def state_of(self, p: Tensor) -> dict:
        """The state of `p`, created by every stat the first time `p` is stepped."""
        if p not in self.state:
            self.state[p] = {}
            maybe_update(self.stats, self.state[p], lambda o: o.init_state(p))
        return self.state[p]

    def step_param(self, p: Tensor, hypers: Hypers) -> None:
        """Gradient changers (negative `_order`, like `l2_reg`) first, then the stats, then the other steppers."""
        state = self.state_of(p)
        compose(p, before_stats(self.steppers), **state, **hypers)
        for stat in self.stats:
            stat.update(p, state, **hypers)
        compose(p, after_stats(self.steppers), **state, **hypers)

    def step_group(self, ps: list[Tensor], hypers: Hypers) -> None:
        """`step_param` for a whole group, with list versions of the stats and steppers."""
        states = [self.state_of(p) for p in ps]
        run_steppers(before_stats(self.steppers), ps, states, hypers)
        for stat in self.stats:
            stat.update_foreach(ps, states, **hypers)
        run_steppers(after_stats(self.steppers), ps, states, hypers)


def before_stats(steppers: list[Callable]) -> list[Callable]:
    """Steppers that change the gradient (negative `_order`): the stats must see their result."""
    return [f for f in steppers if getattr(f, "_order", 0) < 0]


def after_stats(steppers: list[Callable]) -> list[Callable]:
    """Steppers that change the parameter, reading the stats."""
    return [f for f in steppers if getattr(f, "_order", 0) >= 0]


def run_steppers(steppers: list[Callable], ps: list[Tensor], states: list[dict], hypers: Hypers) -> None:
    """Each stepper on the whole group: its `_foreach` version on lists, or else one parameter at a time."""
    if not ps:
        return
    lists = {k: [s[k] for s in states] for k in states[0]}
    for f in steppers:
        if hasattr(f, "_foreach"):
            f._foreach(ps, **lists, **hypers)
        else:
            for p, s in zip(ps, states):
                f(p, **s, **hypers)


# ---------------------------------------------------------------- stats

class Stat:
    """Per-parameter state: `init_state` creates it, `update` refreshes it (in place) before each step."""

    _defaults: dict = {}

    def init_state(self, p: Tensor) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def update(self, p: Tensor, state: dict, **hypers: Any) -> dict:
        raise NotImplementedError

    def update_foreach(self, ps: list[Tensor], states: list[dict], **hypers: Any) -> None:
        """`update` for a whole group; subclasses replace the loop with torch._foreach_* ops."""
        for p, state in zip(ps, states):
            self.update(p, state, **hypers)


class AverageGrad(Stat):
    """Momentum: grad_avg = mom * grad_avg + damp * grad, with damp = 1 - mom when dampened (Adam), else 1 (SGD)."""

    _defaults = dict(mom=0.9)

    def __init__(self, dampening: bool = False):
        self.dampening = dampening

    def init_state(self, p: Tensor) -> dict:
        return {"grad_avg": torch.zeros_like(p)}

    def update(self, p: Tensor, state: dict, mom: float, **kwargs: Any) -> dict:
        state["mom_damp"] = 1 - mom if self.dampening else 1.0
        if self.dampening:  # mom * grad_avg + (1 - mom) * grad, in one pass over memory
            state["grad_avg"].lerp_(p.grad, 1 - mom)
        else:
            state["grad_avg"].mul_(mom).add_(p.grad)
        return state

    def update_foreach(self, ps: list[Tensor], states: list[dict], mom: float, **kwargs: Any) -> None:
        damp = 1 - mom if self.dampening else 1.0
        avgs = [s["grad_avg"] for s in states]
        if self.dampening:
            torch._foreach_lerp_(avgs, grads(ps), 1 - mom)
        else:
            torch._foreach_mul_(avgs, mom)
            torch._foreach_add_(avgs, grads(ps))
        for s in states:
            s["mom_damp"] = damp


class AverageSqrGrad(Stat):
    """Running average of squared gradients: sqr_avg = sqr_mom * sqr_avg + damp * grad**2 (dampened by default)."""

    _defaults = dict(sqr_mom=0.99)

    def __init__(self, dampening: bool = True):
        self.dampening = dampening

    def init_state(self, p: Tensor) -> dict:
        return {"sqr_avg": torch.zeros_like(p)}

    def update(self, p: Tensor, state: dict, sqr_mom: float, **kwargs: Any) -> dict:
        state["sqr_damp"] = 1 - sqr_mom if self.dampening else 1.0
        state["sqr_avg"].mul_(sqr_mom).addcmul_(p.grad, p.grad, value=state["sqr_damp"])
        return state

    def update_foreach(self, ps: list[Tensor], states: list[dict], sqr_mom: float, **kwargs: Any) -> None:
        damp = 1 - sqr_mom if self.dampening else 1.0
        avgs, gs = [s["sqr_avg"] for s in states], grads(ps)
        torch._foreach_mul_(avgs, sqr_mom)
        torch._foreach_addcmul_(avgs, gs, gs, value=damp)
        for s in states:
            s["sqr_damp"] = damp


class StepCount(Stat):
    """How many steps this parameter has taken: debiasing needs it."""

    def init_state(self, p: Tensor) -> dict:
        return {"step": 0}

    def update(self, p: Tensor, state: dict, **kwargs: Any) -> dict:
        state["step"] += 1
        return state


# ---------------------------------------------------------------- steppers

def sgd_step(p: Tensor, lr: float, **kwargs: Any) -> Tensor:
    """p <- p - lr * grad."""
    return p.add_(p.grad, alpha=-lr)


def weight_decay(p: Tensor, lr: float, wd: float, **kwargs: Any) -> Tensor:
    """Decoupled weight decay: shrink p towards 0 by lr * wd, whatever the optimizer does with the gradient."""
    return p.mul_(1 - lr * wd) if wd != 0 else p


weight_decay._defaults = dict(wd=0.0)


def l2_reg(p: Tensor, wd: float, **kwargs: Any) -> Tensor:
    """L2 regularisation: add wd * p to the gradient, as the gradient of wd/2 * ||p||^2 in the loss would."""
    if wd != 0:
        p.grad.add_(p, alpha=wd)
    return p


l2_reg._defaults = dict(wd=0.0)
l2_reg._order = -1  # it changes the gradient, so it runs before the stats read it


def momentum_step(p: Tensor, lr: float, grad_avg: Tensor, **kwargs: Any) -> Tensor:
    """p <- p - lr * grad_avg: SGD with the running average in place of the gradient."""
    return p.add_(grad_avg, alpha=-lr)


def debias(mom: float, damp: float, step: int) -> float:
    """What an average started at 0 sums its weights to after `step` steps: divide by it to remove the bias to 0."""
    return damp * (1 - mom**step) / (1 - mom)


def adam_step(p: Tensor, lr: float, mom: float, mom_damp: float, step: int, sqr_mom: float, sqr_damp: float,
              grad_avg: Tensor, sqr_avg: Tensor, eps: float, **kwargs: Any) -> Tensor:
    """Adam: the debiased average gradient over the square root of the debiased average squared gradient."""
    debias1 = debias(mom, mom_damp, step)
    debias2 = debias(sqr_mom, sqr_damp, step)
    denom = (sqr_avg / debias2).sqrt_().add_(eps)  # in place on the new tensor: one allocation, not three
    return p.addcdiv_(grad_avg, denom, value=-lr / debias1)


adam_step._defaults = dict(eps=1e-5)


def trust_ratio(r1: Tensor, r2: Tensor, max_ratio: float = 10.0) -> Tensor:
    """r1 / r2 clamped at `max_ratio`; 1 when either norm is 0, so a zero-initialised bias still moves."""
    return torch.where((r1 > 0) & (r2 > 0), r1 / r2, torch.ones_like(r1)).clamp(max=max_ratio)


def lamb_step(p: Tensor, lr: float, mom: float, mom_damp: float, step: int, sqr_mom: float, sqr_damp: float,
              grad_avg: Tensor, sqr_avg: Tensor, eps: float, wd: float, **kwargs: Any) -> Tensor:
    """LAMB: the Adam update plus wd * p, scaled for each tensor by the trust ratio ||p|| / ||update||."""
    debias1 = debias(mom, mom_damp, step)
    debias2 = debias(sqr_mom, sqr_damp, step)
    update = (grad_avg / debias1) / ((sqr_avg / debias2).sqrt() + eps) + wd * p
    ratio = trust_ratio(p.norm(), update.norm())
    return p.sub_(update.mul_(lr * ratio))


lamb_step._defaults = dict(eps=1e-6, wd=0.0)


# ---------------------------------------------------------------- the same steppers on lists of tensors (speed)

def grads(ps: list[Tensor]) -> list[Tensor]:
    """The gradients of a list of parameters."""
    return [p.grad for p in ps]


def _sgd_step_foreach(ps: list[Tensor], lr: float, **kwargs: Any) -> None:
    torch._foreach_add_(ps, grads(ps), alpha=-lr)


def _weight_decay_foreach(ps: list[Tensor], lr: float, wd: float, **kwargs: Any) -> None:
    if wd != 0:
        torch._foreach_mul_(ps, 1 - lr * wd)


def _l2_reg_foreach(ps: list[Tensor], wd: float, **kwargs: Any) -> None:
    if wd != 0:
        torch._foreach_add_(grads(ps), ps, alpha=wd)


def _momentum_step_foreach(ps: list[Tensor], lr: float, grad_avg: list[Tensor], **kwargs: Any) -> None:
    torch._foreach_add_(ps, grad_avg, alpha=-lr)


def _adam_step_foreach(ps: list[Tensor], lr: float, mom: float, mom_damp: list[float], step: list[int], sqr_mom: float,
                       sqr_damp: list[float], grad_avg: list[Tensor], sqr_avg: list[Tensor], eps: float, **kwargs: Any) -> None:
    denom = torch._foreach_div(sqr_avg, [debias(sqr_mom, d, s) for d, s in zip(sqr_damp, step)])
    torch._foreach_sqrt_(denom)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(ps, grad_avg, denom, [-lr / debias(mom, d, s) for d, s in zip(mom_damp, step)])


sgd_step._foreach = _sgd_step_foreach
weight_decay._foreach = _weight_decay_foreach
l2_reg._foreach = _l2_reg_foreach
momentum_step._foreach = _momentum_step_foreach
adam_step._foreach = _adam_step_foreach


# ---------------------------------------------------------------- ready-made optimizers: `opt_func`s for the Learner

def sgd_opt(params: Params, lr: float, wd: float = 0.0, foreach: bool = False) -> Optimizer:
    """SGD with decoupled weight decay. For L2 instead: `Optimizer(params, [l2_reg, sgd_step], lr=lr, wd=wd)`."""
    return Optimizer(params, [weight_decay, sgd_step], foreach=foreach, lr=lr, wd=wd)


def sgd_mom_opt(params: Params, lr: float, mom: float = 0.9, wd: float = 0.01, foreach: bool = False) -> StatefulOptimizer:
    """SGD with (undampened, as in torch.optim.SGD) momentum and decoupled weight decay."""
    return StatefulOptimizer(params, [weight_decay, momentum_step], AverageGrad(), foreach=foreach, lr=lr, mom=mom, wd=wd)


def adam_stats() -> list[Stat]:
    """What Adam and LAMB keep per parameter: dampened averages of the gradient and its square, and a step count."""
    return [AverageGrad(dampening=True), AverageSqrGrad(), StepCount()]


def adam_opt(params: Params, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5, wd: float = 0.0,
             foreach: bool = False) -> StatefulOptimizer:
    """Adam with decoupled weight decay applied first (torch's AdamW when wd > 0); mom, sqr_mom are beta1, beta2."""
    return StatefulOptimizer(params, [weight_decay, adam_step], adam_stats(), foreach=foreach,
                             lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)


def lamb_opt(params: Params, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-6, wd: float = 0.0,
             foreach: bool = False) -> StatefulOptimizer:
    """LAMB (You et al. 2019); wd is inside its step, so don't add `weight_decay`. See the module docstring."""
    return StatefulOptimizer(params, lamb_step, adam_stats(), foreach=foreach,
                             lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)
