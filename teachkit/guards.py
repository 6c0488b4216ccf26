"""The Learner's guard rails, in teachkit's words: a model with too few outputs for the classes, and a diverged run.

`teachkit.learner` runs them from two callbacks every Learner has, `OutputSizeCheck` and `DivergenceCheck`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .errors import TeachkitError

__all__ = ["DivergenceError", "check_class_outputs", "divergence_message"]


class DivergenceError(TeachkitError, FloatingPointError):
    """Training diverged: a loss became NaN or infinite (`DivergenceCheck` says at which batch, and the lr)."""


def check_class_outputs(pred: Any, yb: Any, n_classes: int | None) -> None:
    """Refuse class scores too few for the labels, before torch says "Target 7 is out of bounds" (or stops at a
    CUDA device-side assert). Only integer labels with one score per class along dim 1 are checked."""
    if not (isinstance(pred, torch.Tensor) and isinstance(yb, torch.Tensor)) or pred.ndim != yb.ndim + 1:
        return
    if yb.is_floating_point() or yb.is_complex() or yb.dtype == torch.bool or not yb.numel():
        return
    n_out, top = pred.shape[1], int(yb.max())
    needed = max(n_classes or 0, top + 1)
    if n_out < needed:
        why = f"the DataBunch says c_out={n_classes}" if needed == n_classes else f"this batch has label {top}"
        raise ValueError(f"The model gives {n_out} outputs per item, but the data has {needed} classes ({why}). "
                         f"A classifier needs one output per class: build the model with {needed} outputs (e.g. "
                         f"n_out=dls.c_out, or a last layer nn.Linear(..., {needed})).")


def divergence_message(loss: float, epoch: int, batch: int, in_train: bool, lrs: Sequence[float],
                       params: Iterable[nn.Parameter]) -> str:
    """Where the loss stopped being finite, at which lr, whether the weights are lost already, and what to try."""
    where = f"epoch {epoch}, {'training' if in_train else 'validation'} batch {batch}"
    finite = all(bool(torch.isfinite(p).all()) for p in params)
    weights = ("still finite (this batch took no step)" if finite else
               "NaN or infinite already: start again from a checkpoint or new weights")
    return (f"Training diverged: the loss is {loss} at {where}, learning rate {', '.join(f'{v:.3g}' for v in lrs)}. "
            f"The weights are {weights}. Lower the learning rate (the LR finder shows where the loss explodes), use a "
            "schedule that warms up, or check the inputs for NaN.")
