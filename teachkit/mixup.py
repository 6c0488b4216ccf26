"""MixUp and label smoothing (course-v3 lesson 12, notebook 10b): two ways to stop a classifier being over-confident.

MixUp (Zhang et al. 2017, https://arxiv.org/abs/1710.09412) trains on blends of two images,
`lam * x1 + (1 - lam) * x2`, and asks for the same blend of the two answers: since cross-entropy is linear in the
target, that is `lam * loss(pred, y1) + (1 - lam) * loss(pred, y2)`. Label smoothing (Szegedy et al. 2015,
https://arxiv.org/abs/1512.00567) asks for `1 - eps` on the right class and spreads `eps` over all classes, so the
model never needs infinite logits. Both are a `loss_func` or a `Callback` for teachkit's `Learner`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta

from .learner import Callback

__all__ = ["lin_comb", "reduce_loss", "LabelSmoothingCrossEntropy", "mixup_batch", "mixup_loss", "MixUp"]


def lin_comb(v1: Tensor | float, v2: Tensor | float, beta: Tensor | float) -> Tensor | float:
    """beta * v1 + (1 - beta) * v2: the blend MixUp and label smoothing are both made of."""
    return beta * v1 + (1 - beta) * v2


def reduce_loss(loss: Tensor, reduction: str = "mean") -> Tensor:
    """Average, sum or keep per-item losses, as `reduction` says (torch's loss functions' convention)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross-entropy against the target `1 - eps` on the right class plus `eps / c` on every class (the course's form).

    That target's loss splits in two: `(1 - eps) * nll` (the usual loss) plus `eps` times the mean over the `c`
    classes of `-log p`, which punishes any class the model rules out completely. It equals
    `nn.CrossEntropyLoss(label_smoothing=eps)`, which is what to train with (it is faster).
    """

    def __init__(self, eps: float = 0.1, reduction: str = "mean"):
        super().__init__()
        if not 0 <= eps <= 1:
            raise ValueError(f"Label smoothing eps must be between 0 and 1, got {eps}.")
        self.eps, self.reduction = eps, reduction

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        c = output.size(-1)
        log_preds = F.log_softmax(output, dim=-1)
        spread = reduce_loss(-log_preds.sum(dim=-1), self.reduction) / c
        nll = F.nll_loss(log_preds, target, reduction=self.reduction)
        return lin_comb(spread, nll, self.eps)


def mixup_batch(xb: Tensor, yb: Tensor, lam: float, shuffle: Tensor) -> tuple[Tensor, Tensor]:
    """Blend each image with the one `shuffle` puts beside it: `lam * xb + (1 - lam) * xb[shuffle]`, and those targets."""
    return lin_comb(xb, xb[shuffle], lam), yb[shuffle]


def mixup_loss(loss_func: Callable[[Tensor, Tensor], Tensor], pred: Tensor, yb: Tensor, yb1: Tensor,
               lam: float) -> Tensor:
    """The loss of a blended batch: `lam * loss(pred, yb) + (1 - lam) * loss(pred, yb1)`, the targets' blend."""
    return lin_comb(loss_func(pred, yb), loss_func(pred, yb1), lam)


class MixUp(Callback):
    """Train on blends of two images and their targets, with one `lam ~ Beta(alpha, alpha)` per batch.

    Before each training batch it draws `lam`, keeps `max(lam, 1 - lam)` (the same blends, but the batch's own
    images always weigh most, so the training accuracy against `yb` still means something), shuffles the batch
    on its device and blends it; the Learner's `loss_func` is swapped for the blended loss during `fit` and given
    back after it, even when `fit` fails. Validation batches are left alone. `order` 90: it runs after the device
    and normalisation callbacks, so it blends what the model sees.
    """

    order = 90

    def __init__(self, alpha: float = 0.4):
        if not alpha > 0:
            raise ValueError(f"MixUp needs alpha > 0 (0.2 to 0.4 is usual; leave the callback out for no MixUp), got {alpha}.")
        self.alpha = alpha
        self.distrib = Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self.old_loss_func = None

    def before_fit(self):
        self.old_loss_func, self.learn.loss_func = self.learn.loss_func, self.loss_func

    def before_batch(self):
        if not self.in_train:
            return
        lam = self.distrib.sample().item()
        self.lam = max(lam, 1 - lam)
        self.shuffle = torch.randperm(len(self.yb), device=self.yb.device)
        self.learn.xb, self.yb1 = mixup_batch(self.xb, self.yb, self.lam, self.shuffle)

    def loss_func(self, pred: Tensor, yb: Tensor) -> Tensor:
        """The blended loss while training; the original loss when validating."""
        if not self.in_train:
            return self.old_loss_func(pred, yb)
        return mixup_loss(self.old_loss_func, pred, yb, self.yb1, self.lam)

    def after_fit(self):
        if self.old_loss_func is not None and self.learn.loss_func == self.loss_func:
            self.learn.loss_func = self.old_loss_func
        self.old_loss_func = None
