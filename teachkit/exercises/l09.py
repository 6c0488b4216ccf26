"""Lesson 09's exercise: a LARS stepper, checked against the reference on a weight and a zero-initialised bias.

LARS (You, Gitman & Ginsburg, https://arxiv.org/abs/1708.03888) is SGD whose step for each tensor is scaled by
a *trust ratio*: `trust_coeff * ||w|| / (||g|| + wd * ||w||)`, one number per tensor, 1 when a norm is 0.
LAMB (lesson 09) is the same idea applied to Adam's step.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import Case, Exercise, Mistake, Verdict

HYPERS = dict(lr=0.5, wd=0.1, trust_coeff=0.02, eps=1e-8)
"""The hyper-parameters the checker steps with; `mom` is passed too, as an optimizer passes all of its own."""


def solution_lars_step(p: Tensor, lr: float, wd: float = 0.0, trust_coeff: float = 0.02, eps: float = 1e-8,
                       **kwargs: Any) -> None:
    """One LARS step on one tensor: the gradient plus weight decay, times lr and the tensor's trust ratio."""
    w_norm, g_norm = p.norm(), p.grad.norm()
    ratio = trust_coeff * w_norm / (g_norm + wd * w_norm + eps)
    ratio = torch.where((w_norm == 0) | (g_norm == 0), 1.0, ratio)  # a zero-initialised bias must still move
    p.sub_(lr * ratio * (p.grad + wd * p))


def _tensors(seed: int, bias_scale: float, weight_grad_scale: float = 0.05) -> tuple[Tensor, Tensor]:
    """A weight (16x8) and a bias (16), each with a gradient; the bias is all zeros when bias_scale is 0, the
    weight's gradient when weight_grad_scale is 0."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(16, 8, generator=g) * 0.5).requires_grad_()
    b = (torch.randn(16, generator=g) * bias_scale).requires_grad_()
    w.grad = torch.randn(16, 8, generator=g) * weight_grad_scale
    b.grad = torch.randn(16, generator=g) * 0.1
    return w, b


CASES = [Case("A weight and a zero-initialised bias", lambda: _tensors(0, 0.0)),
         Case("A weight and a bias that has already moved", lambda: _tensors(1, 0.1)),
         Case("A weight whose gradient is all zeros (weight decay alone moves it)", lambda: _tensors(2, 0.1, 0.0))]


def _observe(step: Any, tensors: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """How much one step of `step` moves each tensor, stepped one tensor at a time as the Optimizer does."""
    out = {}
    for name, p in zip(["the change of the weight", "the change of the bias"], tensors):
        before = p.detach().clone()
        with torch.no_grad():
            step(p, mom=0.9, **HYPERS)
        out[name] = p.detach() - before
    return out


def _per_element(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    ratio = trust_coeff * p.abs() / (p.grad.abs() + wd * p.abs() + eps)
    ratio = torch.where((p == 0) | (p.grad == 0), 1.0, ratio)
    p.sub_(lr * ratio * (p.grad + wd * p))


def _no_zero_fix(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    w_norm, g_norm = p.norm(), p.grad.norm()
    p.sub_(lr * trust_coeff * w_norm / (g_norm + wd * w_norm + eps) * (p.grad + wd * p))


def _only_zero_weight(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    w_norm, g_norm = p.norm(), p.grad.norm()
    ratio = torch.where(w_norm == 0, 1.0, trust_coeff * w_norm / (g_norm + wd * w_norm + eps))
    p.sub_(lr * ratio * (p.grad + wd * p))


def _no_wd_in_ratio(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    w_norm, g_norm = p.norm(), p.grad.norm()
    ratio = torch.where((w_norm == 0) | (g_norm == 0), 1.0, trust_coeff * w_norm / (g_norm + eps))
    p.sub_(lr * ratio * (p.grad + wd * p))


def _no_wd_in_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    w_norm, g_norm = p.norm(), p.grad.norm()
    ratio = torch.where((w_norm == 0) | (g_norm == 0), 1.0, trust_coeff * w_norm / (g_norm + wd * w_norm + eps))
    p.sub_(lr * ratio * p.grad)


def _no_trust_coeff(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    solution_lars_step(p, lr, wd, 1.0, eps)


def _uphill(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    before = p.detach().clone()
    solution_lars_step(p, lr, wd, trust_coeff, eps)
    p.copy_(2 * before - p)


def _not_in_place(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    p = p - lr * (p.grad + wd * p)  # rebinds the name: the parameter itself never changes


MISTAKES = [
    Mistake(_per_element, "is the trust ratio computed per tensor? It is one number for the whole tensor, "
                          "from its norms (p.norm(), p.grad.norm()), not one per element."),
    Mistake(_only_zero_weight, "the ratio is 1 when ||g|| is 0 too, not only when ||w|| is 0: a tensor with no "
                               "gradient then still decays by lr * wd * p, as it would in plain SGD "
                               "(torch.where((w_norm == 0) | (g_norm == 0), 1.0, ratio))."),
    Mistake(_no_zero_fix, "when ||w|| or ||g|| is 0 the ratio must be 1: otherwise a zero-initialised bias gets "
                          "ratio 0 and never moves (torch.where((w_norm == 0) | (g_norm == 0), 1.0, ratio))."),
    Mistake(_no_wd_in_ratio, "the ratio's denominator is ||g|| + wd * ||w||: weight decay is part of the update "
                             "the ratio scales."),
    Mistake(_no_wd_in_step, "the update is the gradient *plus* weight decay, p.grad + wd * p, times the ratio."),
    Mistake(_no_trust_coeff, "multiply the ratio by trust_coeff (0.02 here): ||w|| / ||g|| alone steps far too much."),
    Mistake(_uphill, "your step goes uphill: subtract the update (p.sub_(...)), don't add it."),
    Mistake(_not_in_place, "change p in place (p.sub_(...)): `p = p - ...` only rebinds your local name, the "
                           "parameter never changes."),
]

EXERCISE = Exercise("lars_step", solution_lars_step, CASES, _observe, MISTAKES, rtol=1e-4, atol=1e-7,
                    signature_hint="A stepper is called as step(p, lr=..., wd=..., trust_coeff=..., eps=..., mom=...): "
                                   "an optimizer passes every hyper-parameter it has, so end the signature with **kwargs.")


def check_lars_step(fn: Any) -> Verdict:
    """Check a learner's `lars_step(p, lr, wd, trust_coeff, eps, **kwargs)` against `solution_lars_step`."""
    return EXERCISE.check(fn)
