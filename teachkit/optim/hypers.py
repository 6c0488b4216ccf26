"""The guard rails of `teachkit.optim`: what a valid hyper-parameter is, checked once, where it is set.

A value is set in three places: when the optimizer is built, when `load_state_dict` resumes one, and when a
scheduler writes `opt.hypers[i][name] = v` between steps. Each group's hyper-parameters are a `Hypers`, a dict
that checks every value written to it, so a bad value fails at the line that set it, and `step` needs no check.

`HYPER_RULES` is the one table of valid ranges, shared with the optimizer playground. `lr = 0` is valid: a
warm-up starting at 0, an annealed end, or a frozen group; torch.optim accepts it too.
"""
from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor

from ..utils import listify

__all__ = ["HYPER_RULES", "TORCH_NAMES", "Hypers", "check_hypers", "split_groups", "checked_state"]

Params = Iterable[Tensor] | Iterable[Iterable[Tensor]] | Iterable[dict]

HYPER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v >= 0, ">= 0"),
    "mom": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "sqr_mom": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: v > 0, "> 0"),
    "wd": (lambda v: v >= 0, ">= 0"),
    "k": (lambda v: v >= 1 and v == int(v), "a whole number >= 1"),
    "alpha": (lambda v: 0 < v <= 1, "in (0, 1]"),
}
"""The valid range of each known hyper-parameter; every hyper-parameter must also be a finite number."""

TORCH_NAMES = {"beta1": "mom", "momentum": "mom", "beta2": "sqr_mom", "betas": "mom and sqr_mom", "weight_decay": "wd"}
"""torch.optim's names, and what teachkit calls them."""


def check_hypers(hypers: dict, known: Iterable[str], where: str) -> None:
    """Raise a ValueError naming the hyper-parameter and group that is unknown, not a number, NaN or out of range."""
    known = set(known)
    for k, v in hypers.items():
        if k not in known:
            hint = TORCH_NAMES.get(k) or next(iter(difflib.get_close_matches(k, known, n=1)), None)
            raise ValueError(f"Unknown hyper-parameter {k!r} in {where}" + (f" (did you mean {hint!r}?)" if hint else "")
                             + f"; this optimizer's hyper-parameters are {sorted(known)}.")
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"Hyper-parameter {k} in {where} must be a finite number, got {v!r}.")
        ok, rule = HYPER_RULES.get(k, (lambda v: True, ""))
        if not ok(v):
            raise ValueError(f"Hyper-parameter {k} in {where} must be {rule}, got {v!r}.")


class Hypers(dict):
    """One param group's hyper-parameters: a dict that checks every value written to it, and refuses deletions."""

    def __init__(self, values: dict, known: Iterable[str], where: str):
        self.known, self.where = frozenset(known), where
        if "lr" not in values:
            raise ValueError(f"{where.capitalize()} has no learning rate: pass lr=... to the optimizer.")
        check_hypers(values, self.known, where)
        super().__init__(values)

    def __setitem__(self, k: str, v: float) -> None:
        check_hypers({k: v}, self.known, self.where)
        super().__setitem__(k, v)

    def update(self, *args: Any, **kwargs: float) -> None:
        new = dict(*args, **kwargs)
        check_hypers(new, self.known, self.where)
        super().update(new)

    def __ior__(self, other: dict) -> Hypers:
        self.update(other)
        return self

    def setdefault(self, k: str, v: float) -> float:
        if k not in self:
            self[k] = v
        return self[k]

    def __reduce__(self) -> tuple:
        """Copy and pickle through `__init__`, so the checks come along."""
        return Hypers, (dict(self), self.known, self.where)

    def _refuse(self, *args: Any) -> None:
        raise ValueError(f"The hyper-parameters of {self.where} can be changed, not removed.")

    __delitem__ = pop = popitem = clear = _refuse


def split_groups(params: Params) -> tuple[list[list[Tensor]], list[dict]]:
    """Tensors, lists of tensors, or dicts with 'params' -> lists of tensors, and each group's own hypers."""
    if isinstance(params, Tensor):
        raise ValueError("params must be an iterable of tensors (e.g. model.parameters()), got a single tensor.")
    groups = list(params)
    if not groups:
        raise ValueError("The optimizer got no parameters: is the model empty, or was the generator already used?")
    if isinstance(groups[0], Tensor):
        groups = [groups]
    tensors, extras = [], []
    for i, g in enumerate(groups):
        g = dict(g) if isinstance(g, dict) else {"params": g}
        ps = g.pop("params", None)
        ps = [ps] if isinstance(ps, Tensor) else listify(ps)
        if not ps or not all(isinstance(p, Tensor) for p in ps):
            raise ValueError(f"Param group {i} must hold a non-empty list of tensors, got {ps!r}.")
        tensors.append(ps)
        extras.append(g)
    if len({id(p) for ps in tensors for p in ps}) != sum(map(len, tensors)):
        raise ValueError("A parameter appears twice in the optimizer's groups: each tensor belongs to one group.")
    return tensors, extras


def checked_state(sd: dict, param_groups: list[list[Tensor]], hypers: list[Hypers]) -> dict[Tensor, dict]:
    """The per-parameter state of a saved `state_dict`, on the parameters' devices; a ValueError if it does not fit."""
    sizes = [len(pg) for pg in param_groups]
    if sd["group_sizes"] != sizes:
        raise ValueError(f"The saved optimizer had groups of {sd['group_sizes']} parameters, this one has {sizes}.")
    for i, (h, saved) in enumerate(zip(hypers, sd["hypers"])):
        Hypers(saved, h.known, f"param group {i} of the loaded state")
    params = [p for pg in param_groups for p in pg]
    state = {}
    for i, s in sd["state"].items():
        p = params[int(i)]
        for k, v in s.items():
            if isinstance(v, Tensor) and v.shape != p.shape:
                raise ValueError(f"Saved state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                                 f"but the parameter has shape {tuple(p.shape)}.")
        state[p] = {k: v.to(p.device, copy=True) if isinstance(v, Tensor) else v for k, v in s.items()}
    return state
