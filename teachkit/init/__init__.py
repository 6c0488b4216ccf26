"""LSUV initialisation (lesson 07a), in three modules read in this order:

- `lsuv`: the algorithm as on the slide (`lsuv_module`, `lsuv_loop`, `lsuv_update`, `measure`), its guard rails beside it;
- `fast`: `lsuv_init`, the whole model in about one forward pass (the fast path, tested equal to `lsuv`);
- `stepper`: `LSUVStepper`, one iteration at a time with every layer's statistics: the model behind the LSUV panel.
"""
from .fast import lsuv_in_one_pass, lsuv_init
from .lsuv import (LSUVReport, LSUVStep, LSUVWarning, batch_problem, lsuv_loop, lsuv_mode, lsuv_module, lsuv_modules,
                   lsuv_point, lsuv_step, lsuv_update, measure, point_stats)
from .stepper import LSUVStepper

__all__ = ["LSUVWarning", "LSUVStep", "LSUVReport", "lsuv_modules", "lsuv_update", "lsuv_module", "lsuv_loop",
           "lsuv_init", "lsuv_in_one_pass", "lsuv_step", "measure", "lsuv_point", "point_stats", "lsuv_mode",
           "batch_problem", "LSUVStepper"]
