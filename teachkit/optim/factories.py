"""The optimizers of lessons 09 and 12 as one-line factories: `Optimizer` with a list of steppers and its defaults.

Every factory takes `(params, lr, ...)`, so it (or a `partial` of it) is an `opt_func` for the Learner; `foreach=True`
gives the same optimizer on the list path of `teachkit.optim.foreach` (the same numbers, fewer kernel launches on a GPU).
"""
from __future__ import annotations

from collections.abc import Sequence

from .foreach import ForeachOptimizer
from .hypers import Params
from .optimizer import (Optimizer, Stepper, adam_stats, adam_step, average_grad, lamb_step, lookahead, momentum_step,
                        radam_step, sgd_step, weight_decay)

__all__ = ["make_optimizer", "sgd_opt", "sgd_mom_opt", "adam_opt", "lamb_opt", "radam_opt", "ranger_opt"]


def make_optimizer(params: Params, steppers: Sequence[Stepper], foreach: bool = False, **hypers: float) -> Optimizer:
    """`Optimizer(params, steppers, **hypers)`, or its list-path twin `ForeachOptimizer` when `foreach`."""
    return (ForeachOptimizer if foreach else Optimizer)(params, steppers, **hypers)


def sgd_opt(params: Params, lr: float, wd: float = 0.0, foreach: bool = False) -> Optimizer:
    """SGD with decoupled weight decay. For L2 instead: `Optimizer(params, [l2_reg, sgd_step], lr=lr, wd=wd)`."""
    return make_optimizer(params, [weight_decay, sgd_step], foreach=foreach, lr=lr, wd=wd)


def sgd_mom_opt(params: Params, lr: float, mom: float = 0.9, wd: float = 0.01, foreach: bool = False) -> Optimizer:
    """SGD with (undampened, as in torch.optim.SGD) momentum and decoupled weight decay."""
    return make_optimizer(params, [weight_decay, average_grad, momentum_step], foreach=foreach, lr=lr, mom=mom, wd=wd)


def adam_opt(params: Params, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5, wd: float = 0.0,
             foreach: bool = False) -> Optimizer:
    """Adam with decoupled weight decay applied first (torch's AdamW when wd > 0); mom, sqr_mom are beta1, beta2."""
    return make_optimizer(params, [weight_decay, *adam_stats(), adam_step], foreach=foreach,
                     lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)


def lamb_opt(params: Params, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-6, wd: float = 0.0,
             foreach: bool = False) -> Optimizer:
    """LAMB (You et al. 2019); wd is inside its step, so no `weight_decay` stepper. See the module docstring."""
    return make_optimizer(params, [*adam_stats(), lamb_step], foreach=foreach, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)


def radam_opt(params: Params, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5, wd: float = 0.0,
              foreach: bool = False) -> Optimizer:
    """RAdam with decoupled weight decay applied first (torch's RAdam with decoupled_weight_decay=True)."""
    return make_optimizer(params, [weight_decay, *adam_stats(), radam_step], foreach=foreach,
                     lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)


def ranger_opt(params: Params, lr: float, mom: float = 0.95, sqr_mom: float = 0.99, eps: float = 1e-6, wd: float = 0.01,
               k: int = 6, alpha: float = 0.5, foreach: bool = False) -> Optimizer:
    """Ranger: Lookahead over RAdam, with fastai's `ranger` defaults (its Imagenette entries tuned mom and wd)."""
    return make_optimizer(params, lookahead([weight_decay, *adam_stats(), radam_step]), foreach=foreach,
                     lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, k=k, alpha=alpha)
