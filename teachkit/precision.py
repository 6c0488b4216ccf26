"""Mixed precision (course-v3 lesson 12, notebook 10c): compute in 16 bits, keep the weights in 32.

float16 has 10 bits of mantissa and a range of about 6e-8 to 65504: small gradients underflow to 0 and
big activations overflow to inf. The course's recipe (Micikevicius et al. 2017, https://arxiv.org/abs/1710.03740):
keep fp32 "master" weights and update those, run the forward and backward passes in fp16, and multiply the
loss by a large *loss scale* so the gradients stay above fp16's floor, dividing them back before the step.
The scale is dynamic: halve it and skip the step when a gradient overflows, double it after a run of good steps.

Today `torch.autocast` does the casting per operation (matmuls and convs in 16 bits, reductions and losses in
32), so the weights never leave fp32: they are the master copy. bfloat16 keeps fp32's 8 exponent bits (same
range, coarser steps), so it needs no loss scaling: it is what the CPU and Ampere-or-later GPUs use. Older GPUs
use float16 with the `LossScaler` below. (torch.amp.GradScaler does the same scaling for torch.optim optimizers;
it reads `optimizer.param_groups` as dicts of "params", which teachkit's own optimizers are not, so the callback
unscales the model's gradients itself, with the same rule.)
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .learner import Callback, CancelBatchException

__all__ = ["pick_dtype", "grads_finite", "LossScaler", "MixedPrecision"]


def pick_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 where it is native (the CPU, GPUs of compute capability 8.0 "Ampere" and later), else float16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return torch.bfloat16 if device.type == "cpu" else torch.float16


def grads_finite(params: Iterable[Tensor]) -> bool:
    """True when no gradient holds an inf or a NaN (one check for all of them: a single GPU sync)."""
    gs = [p.grad for p in params if p.grad is not None]
    return bool(torch.stack([g.isfinite().all() for g in gs]).all()) if gs else True


class LossScaler:
    """Dynamic loss scaling: multiply the loss by `scale`; on overflow halve it (and skip the step), and double it
    after `growth_interval` good steps in a row. Defaults are torch.amp.GradScaler's (2**16, 2000). The course's
    dynamic scaler (notebook 10c) started at 2**24 (`max_loss_scale`) and doubled after 500 good steps; 512 was its
    fixed scale, used when dynamic scaling was off."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1 and growth_interval >= 1):
            raise ValueError("LossScaler needs init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
                             f"growth_interval >= 1, got {init_scale}, {growth_factor}, {backoff_factor}, {growth_interval}.")
        self.scale, self.growth_factor, self.backoff_factor = init_scale, growth_factor, backoff_factor
        self.growth_interval, self.good_steps = growth_interval, 0

    def unscale_(self, params: Iterable[Tensor]) -> bool:
        """Divide every gradient by the scale, in place; True when all are finite (the step may go ahead)."""
        params = [p for p in params if p.grad is not None]
        for p in params:
            p.grad.div_(self.scale)
        return grads_finite(params)

    def update(self, found_inf: bool) -> None:
        """Halve the scale after an overflow; double it after `growth_interval` steps without one."""
        if found_inf:
            self.scale, self.good_steps = self.scale * self.backoff_factor, 0
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale, self.good_steps = self.scale * self.growth_factor, 0

    def __repr__(self) -> str:
        return f"LossScaler(scale={self.scale:g}, good_steps={self.good_steps}/{self.growth_interval})"


class MixedPrecision(Callback):
    """Forward pass and loss under `torch.autocast`; bfloat16 where supported, else float16 with loss scaling.

    `dtype=None` picks (`pick_dtype`) for the model's device and says which in one line. With float16, the loss is
    scaled after the loss is computed (other callbacks' `after_loss` with a lower `order` still see the true
    loss), and after the backward pass the gradients are unscaled and checked: on an overflow the step is skipped
    (`CancelBatchException`) and the scale halved. Backward runs outside autocast, as PyTorch recommends.
    """

    order = 10

    def __init__(self, dtype: torch.dtype | None = None, scaler: LossScaler | None = None):
        if dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"MixedPrecision computes in torch.bfloat16 or torch.float16 (None: pick), got {dtype}.")
        self.requested, self.given_scaler, self.autocast = dtype, scaler, None

    def before_fit(self):
        p = next(self.model.parameters(), None)
        self.device_type = p.device.type if p is not None else "cpu"
        self.dtype = self.requested or pick_dtype(p.device if p is not None else "cpu")
        self.scaler = (self.given_scaler or LossScaler()) if self.dtype == torch.float16 else None
        how = "with dynamic loss scaling" if self.scaler else "(no loss scaling needed)"
        print(f"MixedPrecision: {str(self.dtype).removeprefix('torch.')} autocast on {self.device_type} {how}")

    def before_batch(self):
        self.autocast = torch.autocast(device_type=self.device_type, dtype=self.dtype)
        self.autocast.__enter__()

    def after_loss(self):
        self.leave_autocast()
        if self.scaler is not None and self.in_train:
            self.true_loss = self.loss
            self.learn.loss = self.loss * self.scaler.scale  # small gradients stay above float16's floor

    def after_backward(self):
        if self.scaler is None:
            return
        self.learn.loss = self.true_loss  # what recorders and the LR finder read
        found_inf = not self.scaler.unscale_(self.model.parameters())
        self.scaler.update(found_inf)
        if found_inf:
            self.opt.zero_grad()
            raise CancelBatchException()  # skip this step; the next batch tries again with half the scale

    def after_batch(self):
        self.leave_autocast()  # a cancelled or failed batch never reached after_loss

    def leave_autocast(self) -> None:
        if self.autocast is not None:
            self.autocast.__exit__(None, None, None)
            self.autocast = None
