"""Lesson 09b's exercise: a callback that stops training as soon as the loss is NaN, before it reaches the weights.

The checker trains a small model whose loss turns NaN at the 4th training batch, with the learner's callback,
and compares what happened with the reference: how fit ended, how many batches trained and stepped, whether
the weights and the gradients left in them are still finite, and whether a second fit, on a finite loss, keeps the
weights finite (a NaN gradient left behind is added to at the next backward, and stepped on).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Case, Exercise, Mistake, Verdict
from ..learner import CancelBatchException, CancelEpochException, CancelFitException, Callback, Learner
from ..toy import toy_databunch

NAN_AT = 3
"""The loss of the training batch with this index (from 0), and of every later one, is NaN."""


class SolutionStopOnNaN(Callback):
    """Stop `fit` when the loss is NaN or infinite: checked after the loss, before backward and step."""

    def after_loss(self):
        if not torch.isfinite(self.loss).all():
            raise CancelFitException()


class _Count(Callback):
    """Counts the training batches started and the optimizer steps taken."""

    order = -100

    def before_fit(self):
        self.batches, self.steps = 0, 0

    def before_batch(self):
        self.batches += self.in_train

    def after_step(self):
        self.steps += 1


def _nan_loss_from(k: int):
    """cross_entropy, but NaN from the k-th training call on (validation runs without gradients: not counted)."""
    calls = [0]

    def loss_func(pred, yb):
        loss = F.cross_entropy(pred, yb)
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] > k:
                return loss * float("nan")
        return loss
    return loss_func


def _setup(epochs: int) -> tuple:
    return (epochs,)


CASES = [Case(f"A loss that turns NaN at training batch {NAN_AT} (of 8), 2 epochs", lambda: _setup(2))]


def _observe(cb_class: Any, args: tuple) -> dict[str, Any]:
    (epochs,) = args
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        dls = toy_databunch("blobs", n_train=128, n_valid=64, bs=16)
        cb = cb_class()
        count = _Count()
        learn = Learner(model, dls, loss_func=_nan_loss_from(NAN_AT), lr=0.1, cbs=[cb, count])
        learn.remove_cbs(learn.divergence_check)  # the Learner's own guard rail: here the learner's callback is checked
        try:
            learn.fit(epochs)
            ended = "normally"
        except Exception as e:  # a callback that raises anything but the Cancel exceptions crashes fit
            if isinstance(e, NotImplementedError):
                raise
            ended = f"with {type(e).__name__}"
        seen = {"how fit ended": ended, "the number of training batches started": count.batches,
                "the number of optimizer steps": count.steps,
                "whether the weights are finite after fit": _finite(model, lambda p: p),
                "whether the gradients left in the parameters are finite after fit": _finite(model, lambda p: p.grad)}
        learn.loss_func = F.cross_entropy
        learn.fit(1)
    return {**seen, "whether the weights are finite after a second fit, on a finite loss": _finite(model, lambda p: p)}


def _finite(model: nn.Module, part: Any) -> bool:
    """True when `part(p)` (a parameter or its gradient; None: no gradient) is finite for every parameter."""
    return all(part(p) is None or bool(torch.isfinite(part(p)).all()) for p in model.parameters())


class _AfterBatch(Callback):
    def after_batch(self):
        if self.in_train and torch.isnan(self.loss):
            raise CancelFitException()


class _AfterBackward(Callback):
    def after_backward(self):
        if torch.isnan(self.loss):
            raise CancelFitException()


class _EqualsNaN(Callback):
    def after_loss(self):
        if self.loss == float("nan"):
            raise CancelFitException()


class _CancelBatch(Callback):
    def after_loss(self):
        if torch.isnan(self.loss):
            raise CancelBatchException()


class _CancelEpoch(Callback):
    def after_loss(self):
        if torch.isnan(self.loss):
            raise CancelEpochException()


class _PlainError(Callback):
    def after_loss(self):
        if math.isnan(self.loss.item()):
            raise ValueError("NaN loss")


MISTAKES = [
    Mistake(_AfterBatch, "by after_batch (or after_step) the NaN gradient is already in the weights: check in after_loss, before "
                         "backward and step run."),
    Mistake(_AfterBackward, "by after_backward the NaN loss has been backpropagated: the gradients are NaN, fit stops "
                            "before zero_grad, and the next fit adds its gradients to those NaNs and steps: NaN "
                            "weights. Check in after_loss, before backward runs."),
    Mistake(_EqualsNaN, "NaN is not equal to anything, itself included, so `loss == float('nan')` is always False: use "
                        "torch.isnan(self.loss) (or torch.isfinite to catch inf too)."),
    Mistake(_CancelBatch, "CancelBatchException only skips this batch, and training goes on: raise CancelFitException to "
                          "stop the whole fit."),
    Mistake(_CancelEpoch, "CancelEpochException only skips the rest of this pass, and the next epoch trains again: raise "
                          "CancelFitException to stop the whole fit."),
    Mistake(_PlainError, "any other exception crashes fit: raise CancelFitException, which the Learner catches, running "
                         "after_cancel_fit and after_fit so nothing is left half done."),
]

EXERCISE = Exercise("StopOnNaN", SolutionStopOnNaN, CASES, _observe, MISTAKES,
                    signature_hint="The checker creates your callback as StopOnNaN(), with no arguments.")


def check_stop_on_nan(cb_class: Any) -> Verdict:
    """Check a learner's `StopOnNaN` callback class by training with a loss that turns NaN."""
    return EXERCISE.check(cb_class)
