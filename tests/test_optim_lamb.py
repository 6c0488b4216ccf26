"""LAMB's step works in place (one new full-size tensor per parameter) and gives the numbers of in-place LAMBs."""
import math

import pytest
import torch
from test_optim import LambNet, assert_same_params, small_net, train
from timm.optim import Lamb
from torch.utils._python_dispatch import TorchDispatchMode

from teachkit.optim import adam_step, lamb_opt, lamb_step


class InPlaceLamb:
    """LAMB as a plain loop of in-place ops, written apart from teachkit: one scratch buffer per tensor, reused.

    m, v: dampened averages; s = m^ / (sqrt(v^) + eps) + wd w; w <- w - lr * ratio * s, with ratio = ||w|| / ||s||
    clamped at 10, and 1 when either norm is 0 (as in teachkit.optim's docstring: Algorithm 2 of You et al.).
    """

    def __init__(self, param_groups: list[dict], b1: float, b2: float, eps: float):
        self.groups, self.b1, self.b2, self.eps, self.t = param_groups, b1, b2, eps, 0
        ps = [w for g in param_groups for w in g["params"]]
        self.m, self.v, self.buf = ({w: torch.zeros_like(w) for w in ps} for _ in range(3))

    @torch.no_grad()
    def step(self):
        self.t += 1
        for g in self.groups:
            for w in g["params"]:
                m, v, s = self.m[w], self.v[w], self.buf[w]
                m.mul_(self.b1).add_(w.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(w.grad, w.grad, value=1 - self.b2)
                torch.sqrt(v, out=s).div_(math.sqrt(1 - self.b2 ** self.t)).add_(self.eps)
                s.reciprocal_().mul_(m).div_(1 - self.b1 ** self.t).add_(w, alpha=g["wd"])
                w_norm, s_norm = w.norm().item(), s.norm().item()
                ratio = 1.0 if w_norm == 0 or s_norm == 0 else min(w_norm / s_norm, 10.0)
                w.add_(s, alpha=-g["lr"] * ratio)

    def zero_grad(self):
        for g in self.groups:
            for w in g["params"]:
                w.grad = None


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lamb_matches_an_in_place_lamb_after_100_steps(dtype, foreach):
    """Every branch (clamp, ratio, ||w|| = 0, ||s|| = 0), two groups, float32 and float64."""
    a, b = LambNet().to(dtype), LambNet().to(dtype)
    train(a, lamb_opt(a.param_groups(lr=1e-2, wd=0.05), lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-6, foreach=foreach))
    train(b, InPlaceLamb(b.param_groups(lr=1e-2, wd=0.05), b1=0.9, b2=0.99, eps=1e-6))
    assert_same_params(a, b, atol=1e-13 if dtype == torch.float64 else 2e-5)  # weights up to ~25: rounding only


def unclamped_lamb_net() -> LambNet:
    """LambNet with weights of everyday size: every trust ratio stays under 10, where timm (no clamp) agrees."""
    net = LambNet()
    with torch.no_grad():
        net.lin1.weight.div_(100)
    return net


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
def test_lamb_matches_timms_lamb_after_100_steps(foreach):
    """timm's Lamb, an in-place LAMB written apart from teachkit, set to its math: no gradient clipping, the ratio on
    every tensor (also where wd is 0). Two groups, a zero bias (||w|| = 0) and an unused tensor (||s|| = 0)."""
    a, b = unclamped_lamb_net(), unclamped_lamb_net()
    train(a, lamb_opt(a.param_groups(lr=1e-2, wd=0.05), lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-6, foreach=foreach))
    timm_groups = [{"params": g["params"], "lr": g["lr"], "weight_decay": g["wd"]} for g in b.param_groups(1e-2, 0.05)]
    train(b, Lamb(timm_groups, betas=(0.9, 0.99), eps=1e-6, max_grad_norm=None, always_adapt=True, foreach=foreach))
    assert not torch.equal(a.lin1.weight, unclamped_lamb_net().lin1.weight)  # it trained
    assert_same_params(a, b, atol=1e-12)  # float64: only rounding differs


class NewFullSizeTensors(TorchDispatchMode):
    """Record every op that returns a tensor of `numel` elements that is none of its inputs (a new allocation)."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {t.untyped_storage().data_ptr() for t in tensors((args, kwargs))}
        out = func(*args, **kwargs)
        self.ops += [func.__name__ for t in tensors(out)
                     if t.numel() == self.numel and t.untyped_storage().data_ptr() not in inputs]
        return out


def tensors(x) -> list[torch.Tensor]:
    """The tensors inside nested tuples, lists and dicts."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    return [t for y in x for t in tensors(y)] if isinstance(x, (list, tuple)) else []


@pytest.mark.parametrize("stepper", [adam_step, lamb_step])
def test_step_allocates_one_full_size_tensor_and_keeps_the_state(stepper):
    torch.manual_seed(0)
    p = torch.randn(64, 32)
    p.grad = torch.randn(64, 32)
    grad_avg, sqr_avg = torch.randn(64, 32), torch.rand(64, 32)
    state = dict(grad_avg=grad_avg.clone(), sqr_avg=sqr_avg.clone(), step=3)
    with NewFullSizeTensors(p.numel()) as new:
        stepper(p, lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-6, wd=0.1, **state)
    assert len(new.ops) <= 1, f"{stepper.__name__} made {len(new.ops)} full-size tensors: {new.ops}"
    assert torch.equal(state["grad_avg"], grad_avg) and torch.equal(state["sqr_avg"], sqr_avg)

