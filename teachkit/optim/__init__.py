"""The generic optimizer (lesson 09), in four modules read in this order:

- `optimizer`: `Optimizer` and its steppers, the idea as on the slide (SGD, momentum, weight decay, Adam, LAMB, RAdam,
  Lookahead);
- `factories`: the ready-made optimizers (`sgd_opt`, `adam_opt`, `lamb_opt`, ...), `opt_func`s for the Learner;
- `foreach`: the fast path, the same steppers over whole lists of tensors (`ForeachOptimizer`), tested equal;
- `hypers`: the guard rails: every hyper-parameter checked where it is set (`HYPER_RULES`).
"""
from .optimizer import (Optimizer, adam_stats, adam_step, average_grad, average_sqr_grad, debias, get_defaults,
                        l2_reg, lamb_step, lookahead, lookahead_step, momentum_step, radam_step, sgd_step,
                        slow_weights, step_stat, stepper_name, trust_ratio, weight_decay, with_defaults)
from .factories import (adam_opt, lamb_opt, make_optimizer, radam_opt, ranger_opt, sgd_mom_opt, sgd_opt)
from .foreach import (FOREACH_VERSIONS, ForeachOptimizer, foreach_step)
from .hypers import (HYPER_RULES, Hypers, TORCH_NAMES, check_hypers, checked_state, split_groups)

__all__ = ["Optimizer", "with_defaults", "get_defaults", "sgd_step", "weight_decay", "l2_reg", "average_grad",
           "average_sqr_grad", "step_stat", "momentum_step", "debias", "adam_step", "trust_ratio", "lamb_step",
           "radam_step", "slow_weights", "lookahead_step", "lookahead", "adam_stats", "stepper_name",
           "make_optimizer", "sgd_opt", "sgd_mom_opt", "adam_opt", "lamb_opt", "radam_opt", "ranger_opt",
           "ForeachOptimizer", "foreach_step", "FOREACH_VERSIONS", "HYPER_RULES", "TORCH_NAMES", "Hypers",
           "check_hypers", "split_groups", "checked_state"]
