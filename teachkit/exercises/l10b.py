"""Lesson 10b's exercises: the MixUp loss and label-smoothing cross-entropy, checked against teachkit.mixup.

1. `mixup_loss(loss_func, pred, yb, yb1, lam)`: the loss of a batch blended as `lam * x + (1 - lam) * x[shuffle]`.
2. `label_smoothing_ce(output, target, eps)`: cross-entropy against `1 - eps` on the right class plus `eps / c`
   on every class, as `nn.CrossEntropyLoss(label_smoothing=eps)` computes it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import Case, Exercise, Mistake, Verdict

# ---------------------------------------------------------------- 1. the MixUp loss


def solution_mixup_loss(loss_func: Any, pred: Tensor, yb: Tensor, yb1: Tensor, lam: float) -> Tensor:
    """lam times the loss against the batch's own targets, plus (1 - lam) times the loss against the shuffled ones."""
    return lam * loss_func(pred, yb) + (1 - lam) * loss_func(pred, yb1)


def _mixup_inputs(seed: int, lam: float) -> tuple:
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(8, 5, generator=g)
    yb = torch.randint(0, 5, (8,), generator=g)
    return pred, yb, yb[torch.randperm(8, generator=g)], lam


MIXUP_CASES = [Case("A batch blended with lam = 0.7", lambda: _mixup_inputs(0, 0.7)),
               Case("A batch blended with lam = 0.55", lambda: _mixup_inputs(1, 0.55)),
               Case("A batch blended with lam = 0.3 (the shuffled images weigh more)", lambda: _mixup_inputs(2, 0.3))]


def _observe_mixup(fn: Any, inputs: tuple) -> dict[str, Any]:
    """The weight each target's loss gets (read with a loss that is 1 for one target and 0 for the other), and the
    loss with cross-entropy."""
    pred, yb, yb1, lam = inputs

    def indicator(of: Tensor):  # the two target tensors differ in every case, so equal values mean "this one"
        return lambda p, y: torch.tensor(1.0) if torch.equal(torch.as_tensor(y), of) else torch.tensor(0.0)

    return {"the weight of the loss against yb (the batch's own targets)": float(fn(indicator(yb), pred, yb, yb1, lam)),
            "the weight of the loss against yb1 (the shuffled targets)": float(fn(indicator(yb1), pred, yb, yb1, lam)),
            "the cross-entropy MixUp loss": fn(F.cross_entropy, pred, yb, yb1, lam)}


def _max_lam(loss_func, pred, yb, yb1, lam):
    lam = max(lam, 1 - lam)  # the course does this when it mixes the images, not in the loss
    return lam * loss_func(pred, yb) + (1 - lam) * loss_func(pred, yb1)


MIXUP_MISTAKES = [
    Mistake(_max_lam, "use lam as it is given: the images were blended with it, so the losses must be too. "
                      "max(lam, 1 - lam) belongs where the images are mixed (the course's MixUp callback); inside the "
                      "loss it swaps the weights whenever lam < 0.5."),
    Mistake(lambda lf, p, y, y1, lam: (1 - lam) * lf(p, y) + lam * lf(p, y1),
            "lam goes with the batch's own targets yb (the image that weighs lam in the blend), 1 - lam with yb1."),
    Mistake(lambda lf, p, y, y1, lam: (lf(p, y) + lf(p, y1)) / 2,
            "weigh the two losses by lam and 1 - lam, the weights of the two images in the blend, not half and half."),
    Mistake(lambda lf, p, y, y1, lam: lam * lf(p, y),
            "the shuffled images are in the blend too: add (1 - lam) * loss_func(pred, yb1)."),
    Mistake(lambda lf, p, y, y1, lam: lam * lf(p, y) + lam * lf(p, y1),
            "the two weights must add up to 1: lam and 1 - lam."),
]

MIXUP = Exercise("mixup_loss", solution_mixup_loss, MIXUP_CASES, _observe_mixup, MIXUP_MISTAKES,
                 signature_hint="It is called as mixup_loss(loss_func, pred, yb, yb1, lam).")


def check_mixup_loss(fn: Any) -> Verdict:
    """Check a learner's `mixup_loss(loss_func, pred, yb, yb1, lam)` against `solution_mixup_loss`."""
    return MIXUP.check(fn)


# ---------------------------------------------------------------- 2. label smoothing

def solution_label_smoothing_ce(output: Tensor, target: Tensor, eps: float) -> Tensor:
    """(1 - eps) * the usual cross-entropy + eps * the mean over classes of -log p (averaged over the batch)."""
    log_preds = F.log_softmax(output, dim=-1)
    spread = -log_preds.mean(dim=-1).mean()
    nll = F.nll_loss(log_preds, target)
    return (1 - eps) * nll + eps * spread


def _ls_inputs(seed: int, n_classes: int, eps: float, scale: float) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, n_classes, generator=g) * scale, torch.randint(0, n_classes, (16,), generator=g), eps


LS_CASES = [Case("4 classes, eps = 0.3", lambda: _ls_inputs(0, 4, 0.3, 3.0)),
            Case("10 classes, eps = 0.1", lambda: _ls_inputs(1, 10, 0.1, 1.0))]


def _observe_ls(fn: Any, inputs: tuple) -> dict[str, Any]:
    output, target, eps = inputs
    return {"the loss": torch.as_tensor(fn(output, target, eps)).float().reshape(())}


def _no_mean_over_classes(output, target, eps):
    log_preds = F.log_softmax(output, dim=-1)
    return (1 - eps) * F.nll_loss(log_preds, target) + eps * -log_preds.sum(dim=-1).mean()


def _swapped_eps(output, target, eps):
    return solution_label_smoothing_ce(output, target, 1 - eps)


def _wrong_classes_only(output, target, eps):
    c = output.size(-1)
    smooth = torch.full_like(output, eps / (c - 1)).scatter_(1, target[:, None], 1 - eps)
    return -(smooth * F.log_softmax(output, dim=-1)).sum(-1).mean()


def _softmax_not_log(output, target, eps):
    p = F.softmax(output, dim=-1)
    return (1 - eps) * F.nll_loss(p.log(), target) + eps * -p.mean(dim=-1).mean()


LS_MISTAKES = [
    Mistake(_no_mean_over_classes, "eps is spread over the c classes, eps / c each: average -log p over the classes "
                                   "(or divide the sum by c)."),
    Mistake(_swapped_eps, "the usual loss keeps most of the weight: (1 - eps) * nll + eps * the spread part."),
    Mistake(_wrong_classes_only, "PyTorch (and the course) spread eps over all c classes, the right one included: "
                                 "the target is 1 - eps + eps / c on the right class and eps / c elsewhere."),
    Mistake(_softmax_not_log, "the spread part is the mean of -log p, not of p: use log_softmax for both parts."),
]

LABEL_SMOOTHING = Exercise("label_smoothing_ce", solution_label_smoothing_ce, LS_CASES, _observe_ls, LS_MISTAKES,
                           rtol=1e-4, atol=1e-6,
                           signature_hint="It is called as label_smoothing_ce(output, target, eps) and returns the "
                                          "mean loss over the batch.")


def check_label_smoothing_ce(fn: Any) -> Verdict:
    """Check a learner's `label_smoothing_ce(output, target, eps)` against the course's formula."""
    return LABEL_SMOOTHING.check(fn)

