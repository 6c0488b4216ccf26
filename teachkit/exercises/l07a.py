"""Lesson 07a's exercise: `lsuv_module`, LSUV on one layer, checked against `teachkit.init.lsuv_module`.

The checker builds a small MLP whose biases are far from zero, tunes its middle Linear layer with the learner's
function and with teachkit's, and compares the outcome: the mean and std of the layer's output, hooks left
behind, other layers touched, and the direction of the weights (LSUV rescales them, it does not redraw them).
Further cases pass `tol` and `max_iter`, and one layer can never reach std 1 (its biases alone spread its outputs
more): there a loop that ignores `max_iter` would never end, so every run has a budget of forward passes.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..init import LSUVWarning, lsuv_module
from . import Case, Exercise, Mistake, Verdict


def solution_lsuv_module(model: nn.Module, layer: nn.Module, xb: torch.Tensor, tol: float = 1e-3,
                         max_iter: int = 10) -> tuple[float, float]:
    """LSUV on `layer`: divide its weight by its output's std until that is 1, then move its bias to centre the mean."""
    def stats():
        out = []
        h = layer.register_forward_hook(lambda m, i, o: out.append((o.mean().item(), o.std().item())))
        try:
            with torch.no_grad():
                model(xb)
        finally:
            h.remove()  # a hook left behind would run on every later forward pass
        return out[0]

    for _ in range(max_iter):  # bounded: the course's `while` loops could spin forever
        mean, std = stats()
        if abs(std - 1) > tol:
            with torch.no_grad():
                layer.weight.div_(std)
        elif abs(mean) > tol:
            with torch.no_grad():
                layer.bias.sub_(mean)
        else:
            break
    return stats()


def _reference(model: nn.Module, layer: nn.Module, xb: torch.Tensor, **kwargs: Any) -> Any:
    with warnings.catch_warnings():  # the layer that can't converge: LSUVWarning says so, the checker knows
        warnings.simplefilter("ignore", LSUVWarning)
        return lsuv_module(model, layer, xb, **kwargs)


def _mlp_and_batch(seed: int, bias_std: float | None = None, **kwargs: Any) -> tuple:
    """A 3-layer MLP with biases in [-1, 1] (so one rescale is not enough), its middle Linear, a batch, and the
    keyword arguments to tune it with; `bias_std`: that Linear's biases drawn with this spread instead."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 2 - 1)
        if bias_std is not None:
            model[2].bias.copy_(torch.randn(64, generator=g) * bias_std)
    return model, model[2], torch.randn(128, 20, generator=g) * 2 + 1, kwargs


CASES = [Case("The middle layer of a small MLP", lambda: _mlp_and_batch(0)),
         Case("Another MLP, another batch", lambda: _mlp_and_batch(1)),
         Case("A layer whose biases alone spread its outputs to std 1.5 (it can never reach std 1), max_iter=10",
              lambda: _mlp_and_batch(2, bias_std=1.5, tol=1e-3, max_iter=10)),
         Case("tol=0.2 (close enough after one rescale)", lambda: _mlp_and_batch(2, tol=0.2, max_iter=10)),
         Case("max_iter=2 (two updates, then stop)", lambda: _mlp_and_batch(2, tol=1e-3, max_iter=2))]

BUDGET = 200
"""Forward passes through the layer one run may make; the reference makes at most max_iter + 1."""


class _OverBudget(Exception):
    """The learner's function ran more forward passes than `BUDGET`: its loop does not stop."""


@contextmanager
def _forward_budget(layer: nn.Module, n: int) -> Iterator[None]:
    """Raise `_OverBudget` at the (n + 1)-th forward pass through `layer`, so a loop that never ends is reported."""
    calls = [0]

    def count(m, inputs):
        calls[0] += 1
        if calls[0] > n:
            raise _OverBudget()
    h = layer.register_forward_pre_hook(count)
    try:
        yield
    finally:
        h.remove()


STOPPED = f"whether it returned (within {BUDGET} forward passes of the model)"


def _observe(fn: Any, args: tuple) -> dict[str, Any]:
    model, layer, xb, kwargs = args
    before = {k: v.clone() for k, v in model.state_dict().items()}
    w0 = layer.weight.detach().clone()
    try:
        with _forward_budget(layer, BUDGET):
            fn(model, layer, xb, **kwargs)
    except _OverBudget:
        return {STOPPED: False}
    out = []
    with torch.no_grad():
        h = layer.register_forward_hook(lambda m, i, o: out.append(o))
        model(xb)
        h.remove()
    tuned = {f"{n}.{k}" for n, m in model.named_modules() if m is layer for k in ("weight", "bias")}
    others = sorted(k for k, v in model.state_dict().items() if k not in tuned and not torch.equal(v, before[k]))
    w = layer.weight.detach()
    cos = torch.nn.functional.cosine_similarity(w.flatten(), w0.flatten(), dim=0).item()
    return {STOPPED: True, "the number of hooks left on the model": sum(len(m._forward_hooks) for m in model.modules()),
            "the list of other parameters it changed": others,
            "the cosine between the weight before and after (1: rescaled, not redrawn)": round(cos, 3),
            "the std of the layer's output": round(out[0].std().item(), 2),
            "the mean of the layer's output": round(out[0].mean().item(), 2)}


def _hook_left(model, layer, xb, tol=1e-3, max_iter=10):
    solution_lsuv_module(model, layer, xb, tol, max_iter)
    layer.register_forward_hook(lambda m, i, o: None)


def _no_shift(model, layer, xb, tol=1e-3, max_iter=10):
    for _ in range(max_iter):
        with torch.no_grad():
            layer.weight.div_(_out(model, layer, xb).std())


def _out(model, layer, xb):
    out = []
    h = layer.register_forward_hook(lambda m, i, o: out.append(o))
    model(xb)
    h.remove()
    return out[0]


def _once(model, layer, xb, tol=1e-3, max_iter=10):
    with torch.no_grad():
        layer.weight.div_(_out(model, layer, xb).std())
        layer.bias.sub_(_out(model, layer, xb).mean())


def _every_layer(model, layer, xb, tol=1e-3, max_iter=10):
    for m in model:
        if isinstance(m, nn.Linear):
            solution_lsuv_module(model, m, xb, tol, max_iter)


def _redrawn(model, layer, xb, tol=1e-3, max_iter=10):
    with torch.no_grad():
        nn.init.kaiming_normal_(layer.weight)
    solution_lsuv_module(model, layer, xb, tol, max_iter)


def _unbounded(model, layer, xb, tol=1e-3, max_iter=10):
    while True:  # the course's `while`: no max_iter
        with torch.no_grad():
            out = _out(model, layer, xb)
            if abs(out.std() - 1) > tol:
                layer.weight.div_(out.std())
            elif abs(out.mean()) > tol:
                layer.bias.sub_(out.mean())
            else:
                return


def _fixed_tol(model, layer, xb, tol=1e-3, max_iter=10):
    solution_lsuv_module(model, layer, xb, 1e-3, max_iter)


def _own_max_iter(model, layer, xb, tol=1e-3, max_iter=10):
    solution_lsuv_module(model, layer, xb, tol, 10)


MISTAKES = [
    Mistake(_fixed_tol, "use the `tol` you are given, not a number of your own: with tol=0.2 the layer is done as soon as "
                        "its std is within 0.2 of 1 (and its mean within 0.2 of 0)."),
    Mistake(_own_max_iter, "stop after `max_iter` updates, the argument, not a number of your own: with max_iter=2 "
                           "two updates are made, then the function returns."),
    Mistake(_unbounded, "bound your loop by max_iter (for _ in range(max_iter), leaving early once the std and mean are "
                        "within tol): this layer's biases alone spread its outputs beyond std 1, no rescaling gets it "
                        "there, and a `while` loop on the tolerance never ends."),
    Mistake(_hook_left, "remove your hook when you are done (h.remove() in a finally:, or `with Hooks(...)`): a hook left "
                        "behind runs on every forward pass of training."),
    Mistake(_no_shift, "once the std is 1, centre the mean: subtract it from the layer's bias (the course moved "
                       "GeneralRelu's `sub` instead), then measure again."),
    Mistake(_once, "measure again after each change, in a loop (bounded by max_iter): the bias spreads the outputs too, "
                   "so one division does not land the std on 1."),
    Mistake(_every_layer, "lsuv_module tunes only the layer it is given; lsuv_init runs it on every layer, in order."),
    Mistake(_redrawn, "LSUV rescales the weights the init gave; redrawing them throws that init away."),
]

EXERCISE = Exercise("lsuv_module", _reference, CASES, _observe, MISTAKES, rtol=0.0, atol=0.011,
                    signature_hint="It is called as lsuv_module(model, layer, xb, tol=..., max_iter=...): the whole "
                                   "model, the layer to tune (a module inside it), a batch, the tolerance on the mean "
                                   "and std, and the most updates to make.",
                    solution=solution_lsuv_module)


def check_lsuv_module(fn: Any) -> Verdict:
    """Check a learner's `lsuv_module(model, layer, xb)` against `teachkit.init.lsuv_module`."""
    return EXERCISE.check(fn)
