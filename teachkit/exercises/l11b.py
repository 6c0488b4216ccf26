"""Lesson 11b's exercise: `replica_grads`, the gradients DistributedDataParallel hands every replica's optimizer.

Each of `world` replicas holds the same model and its share of the batch (rows rank, rank + world, ...), as a
DistributedSampler deals them. Each computes the gradient of its own mean loss; the all-reduce adds the replicas'
gradients and DDP divides by `world`. With equal shares that average is the gradient of the whole batch.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Case, Exercise, Mistake, Verdict


def solution_replica_grads(model: nn.Module, loss_func: Callable, xb: torch.Tensor, yb: torch.Tensor,
                           world: int) -> list[torch.Tensor]:
    """Per parameter: the mean over `world` replicas of the gradient of the loss on rows rank::world."""
    grads = [torch.zeros_like(p) for p in model.parameters()]
    for rank in range(world):
        model.zero_grad()
        loss_func(model(xb[rank::world]), yb[rank::world]).backward()
        for g, p in zip(grads, model.parameters()):
            g += p.grad / world
    return grads


def _case(n: int, world: int, seed: int) -> Callable[[], tuple]:
    def make() -> tuple:
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        return model, F.cross_entropy, torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g), world
    return make


CASES = [Case("2 replicas, batch of 32", _case(32, 2, 0)), Case("4 replicas, batch of 32", _case(32, 4, 1)),
         Case("3 replicas, batch of 30", _case(30, 3, 2))]


def _observe(fn: Callable, args: tuple) -> dict[str, Any]:
    model = args[0]
    grads = fn(*args)
    names = [n for n, _ in model.named_parameters()]
    if len(grads) != len(names):
        return {"the number of gradients": len(grads)}
    return {f"the gradient of {n}": torch.as_tensor(g).detach().clone() for n, g in zip(names, grads)}


def _summed(model, loss_func, xb, yb, world):
    return [g * world for g in solution_replica_grads(model, loss_func, xb, yb, world)]


def _rank0_only(model, loss_func, xb, yb, world):
    model.zero_grad()
    loss_func(model(xb[0::world]), yb[0::world]).backward()
    return [p.grad.clone() for p in model.parameters()]


def _stale_grads(model, loss_func, xb, yb, world):
    grads = [torch.zeros_like(p) for p in model.parameters()]
    model.zero_grad()
    for rank in range(world):
        loss_func(model(xb[rank::world]), yb[rank::world]).backward()
        for g, p in zip(grads, model.parameters()):
            g += p.grad / world  # p.grad still holds the earlier replicas' gradients too
    return grads


MISTAKES = [
    Mistake(_summed, "that is the sum of the replicas' gradients: the all-reduce adds them (and backward adds into "
                     ".grad), then DDP divides by the number of replicas, so a step equals one process's step on the "
                     "whole batch."),
    Mistake(_stale_grads, "zero the gradients before each replica's backward (model.zero_grad()): each replica "
                          "computes its own gradient from the same weights, not on top of the others'."),
    Mistake(_rank0_only, "every replica contributes its share: loop over all `world` ranks, not only rank 0."),
]

EXERCISE = Exercise("replica_grads", solution_replica_grads, CASES, _observe, MISTAKES, rtol=1e-4, atol=1e-6,
                    signature_hint="It is called as replica_grads(model, loss_func, xb, yb, world) and returns one "
                                   "tensor per parameter, in model.parameters() order.")


def check_replica_grads(fn: Callable) -> Verdict:
    """Check a learner's `replica_grads` against the reference: the averaged gradients DDP gives every replica."""
    return EXERCISE.check(fn)
