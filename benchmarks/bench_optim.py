"""Time per optimizer step of teachkit's Adam against torch.optim.AdamW on an ~11M-parameter model, on the CPU.

Run as `python -m benchmarks.bench_optim`. Only the optimizer step is timed: the gradients are random
tensors set once, so the forward and backward passes cost nothing here. Each optimizer is timed in
several rounds, interleaved with the others, and its fastest round is kept (the machine may be shared).
Ratios compare numbers measured in this same process, with torch's default number of threads.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torchvision

from teachkit.optim import adam_opt

HYPERS = dict(lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)


def make_model() -> torch.nn.Module:
    """torchvision's ResNet-18: 11.7M parameters in 62 tensors, with random gradients."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1000)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def optimizers(params: list[torch.Tensor]) -> dict[str, Callable]:
    """Name -> one optimizer over `params`, every one with the same hyper-parameters."""
    h = HYPERS
    torch_kw = dict(lr=h["lr"], betas=(h["mom"], h["sqr_mom"]), eps=h["eps"], weight_decay=h["wd"])
    return {"teachkit adam_opt": adam_opt(params, **h),
            "teachkit adam_opt(foreach=True)": adam_opt(params, **h, foreach=True),
            "torch.optim.AdamW(foreach=False)": torch.optim.AdamW(params, foreach=False, **torch_kw),
            "torch.optim.AdamW(foreach=True)": torch.optim.AdamW(params, foreach=True, **torch_kw)}


def time_steps(opts: dict, n_steps: int = 3, n_rounds: int = 10) -> dict[str, float]:
    """Fastest round's mean seconds per `step()`: rounds are interleaved, and the fastest is the least disturbed."""
    for opt in opts.values():  # warm up: allocate state, fault in memory
        opt.step()
    rounds = {name: [] for name in opts}
    for _ in range(n_rounds):
        for name, opt in opts.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                opt.step()
            rounds[name].append((time.perf_counter() - start) / n_steps)
    return {name: min(ts) for name, ts in rounds.items()}


def run() -> list[dict]:
    """One row per (teachkit Adam path, torch baseline): milliseconds per step and their ratio."""
    model = make_model()
    n = sum(p.numel() for p in model.parameters())
    times = time_steps(optimizers(list(model.parameters())))
    rows = []
    for ours in ("teachkit adam_opt", "teachkit adam_opt(foreach=True)"):
        for base in ("torch.optim.AdamW(foreach=False)", "torch.optim.AdamW(foreach=True)"):
            rows.append({"figure": f"{ours} step, {n / 1e6:.1f}M params, CPU", "value": round(times[ours] * 1e3, 2), "unit": "ms",
                         "baseline": base, "baseline_value": round(times[base] * 1e3, 2),
                         "ratio": round(times[ours] / times[base], 3)})
    return rows


def show(rows: list[dict]) -> None:
    """Print the rows as a table."""
    print(f"{'figure':<58} {'ms':>8}   {'baseline':<34} {'ms':>8} {'ratio':>7}")
    for r in rows:
        print(f"{r['figure']:<58} {r['value']:>8.2f}   {r['baseline']:<34} {r['baseline_value']:>8.2f} {r['ratio']:>7.3f}")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    show(run())
