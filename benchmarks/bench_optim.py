"""Time per optimizer step of teachkit's Adam and LAMB against baselines on ~11M-parameter models, on the CPU.

Run as `python -m benchmarks.bench_optim`. Only the optimizer step is timed: the gradients are random
tensors set once, so the forward and backward passes cost nothing here. Each optimizer is timed in
many rounds, interleaved with the others; a row gives the medians, and as ratio the median of the rounds' ratios
(a round's two figures were measured side by side, so load that comes and goes on a shared machine cancels out).
Ratios compare numbers measured in this same process, with torch's default number of threads (LAMB also with 1).

Adam is compared with torch.optim.AdamW. torch has no LAMB, so LAMB's reference is timm's `Lamb` (a widely used
in-place LAMB, written apart from teachkit), set to teachkit's math: no global gradient clipping, the trust ratio on
every tensor (timm leaves the ratio unclamped; teachkit's clamp at 10 is one op on a number). Each teachkit path
meets timm's path of the same kind: one tensor at a time, or lists. A second baseline, `InPlaceLamb`, does the
passes of teachkit's `lamb_step` as one plain loop: the gap to it is what the generic `Optimizer` costs, four
stepper calls per tensor. All on the parameters of the course's xresnet18 (10 classes, as in lesson 11: 68 tensors,
31 of them zero at the start, which takes the ratio-1 branch).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median

import torch
import torchvision
from timm.optim import Lamb

from teachkit.optim import adam_opt, lamb_opt
from teachkit.xresnet import xresnet18

HYPERS = dict(lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)


def with_random_grads(model: torch.nn.Module) -> torch.nn.Module:
    """The model, each parameter given a random gradient."""
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def make_model() -> torch.nn.Module:
    """torchvision's ResNet-18: 11.7M parameters in 62 tensors, with random gradients."""
    torch.manual_seed(0)
    return with_random_grads(torchvision.models.resnet18(num_classes=1000))


class InPlaceLamb:
    """The equal-work baseline: teachkit's LAMB math and passes as one hand-written loop (wd * p inside the step,
    debiased averages, ratio ||p|| / ||update|| clamped at 10, and 1 when either norm is 0). One new tensor per
    parameter and the fewest passes over it: the debiasing is folded into numbers (Adam's update is
    c * m / (sqrt(v) + eps * sqrt(bias2)) with c = sqrt(bias2) / bias1), and the last pass is one addcmul_."""

    def __init__(self, params: list[torch.Tensor], lr: float, mom: float, sqr_mom: float, eps: float, wd: float):
        self.params, self.hypers, self.t = params, (lr, mom, sqr_mom, eps, wd), 0
        self.avgs = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        lr, mom, sqr_mom, eps, wd = self.hypers
        self.t += 1
        root2 = (1 - sqr_mom**self.t) ** 0.5
        c = root2 / (1 - mom**self.t)
        for p, (m, v) in zip(self.params, self.avgs):
            m.lerp_(p.grad, 1 - mom)
            v.mul_(sqr_mom).addcmul_(p.grad, p.grad, value=1 - sqr_mom)
            u = v.sqrt().add_(eps * root2)
            torch.div(m, u, out=u).add_(p, alpha=wd / c)  # the update over c
            p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(u) * c
            ratio = torch.where((p_norm > 0) & (u_norm > 0), p_norm / u_norm, 1.0).clamp_(max=10.0)
            p.addcmul_(u, ratio, value=-lr * c)


def optimizers(params: list[torch.Tensor]) -> dict[str, Callable]:
    """Name -> one optimizer over `params`, every one with the same hyper-parameters."""
    h = HYPERS
    torch_kw = dict(lr=h["lr"], betas=(h["mom"], h["sqr_mom"]), eps=h["eps"], weight_decay=h["wd"])
    return {"teachkit adam_opt": adam_opt(params, **h),
            "teachkit adam_opt(foreach=True)": adam_opt(params, **h, foreach=True),
            "torch.optim.AdamW(foreach=False)": torch.optim.AdamW(params, foreach=False, **torch_kw),
            "torch.optim.AdamW(foreach=True)": torch.optim.AdamW(params, foreach=True, **torch_kw)}


def time_steps(opts: dict, n_steps: int = 3, n_rounds: int = 15) -> dict[str, list[float]]:
    """Each optimizer's mean seconds per `step()` in each round; the rounds are interleaved."""
    for opt in opts.values():  # warm up: allocate state, fault in memory
        opt.step()
    rounds = {name: [] for name in opts}
    for _ in range(n_rounds):
        for name, opt in opts.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                opt.step()
            rounds[name].append((time.perf_counter() - start) / n_steps)
    return rounds


def lamb_optimizers(params: list[torch.Tensor]) -> dict[str, Callable]:
    """Name -> one LAMB over `params`: teachkit's two paths, timm's two, the equal-work loop; the same hypers."""
    h = {**HYPERS, "eps": 1e-6}
    timm_kw = dict(lr=h["lr"], betas=(h["mom"], h["sqr_mom"]), eps=h["eps"], weight_decay=h["wd"], max_grad_norm=None,
                   always_adapt=True)
    return {"teachkit lamb_opt": lamb_opt(params, **h),
            "teachkit lamb_opt(foreach=True)": lamb_opt(params, **h, foreach=True),
            "timm Lamb(foreach=False)": Lamb(params, foreach=False, **timm_kw),
            "timm Lamb(foreach=True)": Lamb(params, foreach=True, **timm_kw),
            "equal-work in-place loop": InPlaceLamb(params, **h)}


def row(figure: str, times: dict[str, list[float]], ours: str, base: str) -> dict:
    """One row: our median milliseconds per step, the baseline's, the median of the rounds' ratios."""
    return {"figure": figure, "value": round(median(times[ours]) * 1e3, 2), "unit": "ms", "baseline": base,
            "baseline_value": round(median(times[base]) * 1e3, 2),
            "ratio": round(median(a / b for a, b in zip(times[ours], times[base])), 3)}


def run() -> list[dict]:
    """One row per (teachkit path, baseline): Adam against torch.optim.AdamW, LAMB against timm's Lamb and the loop."""
    model = make_model()
    n = sum(p.numel() for p in model.parameters())
    times = time_steps(optimizers(list(model.parameters())))
    rows = [row(f"{ours} step, {n / 1e6:.1f}M params, CPU", times, ours, base)
            for ours in ("teachkit adam_opt", "teachkit adam_opt(foreach=True)")
            for base in ("torch.optim.AdamW(foreach=False)", "torch.optim.AdamW(foreach=True)")]
    return rows + lamb_rows(torch.get_num_threads()) + lamb_rows(1)


def lamb_rows(n_threads: int) -> list[dict]:
    """LAMB's two paths against timm's of the same kind, and the equal-work loop, with `n_threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        torch.manual_seed(0)
        params = list(with_random_grads(xresnet18(n_out=10)).parameters())
        n = sum(p.numel() for p in params)
        times = time_steps(lamb_optimizers(params))
    finally:
        torch.set_num_threads(before)
    pairs = [("teachkit lamb_opt", "timm Lamb(foreach=False)"),
             ("teachkit lamb_opt(foreach=True)", "timm Lamb(foreach=True)"),
             ("teachkit lamb_opt", "equal-work in-place loop")]
    return [row(f"{ours} step, xresnet18 {n / 1e6:.1f}M params, CPU, {n_threads} thread(s)", times, ours, base)
            for ours, base in pairs]


def show(rows: list[dict]) -> None:
    """Print the rows as a table."""
    print(f"{'figure':<80} {'ms':>8}   {'baseline':<34} {'ms':>8} {'ratio':>7}")
    for r in rows:
        print(f"{r['figure']:<80} {r['value']:>8.2f}   {r['baseline']:<34} {r['baseline_value']:>8.2f} {r['ratio']:>7.3f}")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    show(run())
