"""Small helpers every other module leans on: lists, composition, devices, seeds."""
from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["listify", "compose", "camel2snake", "default_device", "to_model_device", "train_modes", "restore_modes",
           "keep_modes", "set_seed", "derive_seed", "show_source"]


def listify(o: Any) -> list:
    """Turn None, a single object or any iterable (but not a string) into a list."""
    if o is None:
        return []
    if isinstance(o, list):
        return o
    if isinstance(o, (str, bytes)) or not isinstance(o, Iterable):
        return [o]
    return list(o)


def compose(x: Any, funcs: Callable | Iterable[Callable] | None, *args, order_key: str = "_order", **kwargs) -> Any:
    """Apply `funcs` to `x` one after the other, sorted by their `_order` (0 when missing)."""
    for f in sorted(listify(funcs), key=lambda o: getattr(o, order_key, 0)):
        x = f(x, *args, **kwargs)
    return x


def camel2snake(name: str) -> str:
    """`AvgStatsCallback` -> `avg_stats_callback`: how callbacks get their attribute names."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def default_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU: the device lessons train on without being told."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_model_device(model: torch.nn.Module, xb: torch.Tensor) -> torch.Tensor:
    """`xb` on the device of the model's parameters (unchanged for a model without any)."""
    return xb.to(next(model.parameters(), xb).device)


def train_modes(model: torch.nn.Module) -> dict[torch.nn.Module, bool]:
    """Every submodule's train/eval mode (True = training), to give back later with `restore_modes`."""
    return {m: m.training for m in model.modules()}


def restore_modes(modes: dict[torch.nn.Module, bool]) -> None:
    """Put each submodule back in the train/eval mode `train_modes` recorded."""
    for m, t in modes.items():
        m.train(t)


@contextmanager
def keep_modes(model: torch.nn.Module) -> Iterator[None]:
    """Give back every submodule's train/eval mode on exit, whatever the block switched."""
    modes = train_modes(model)
    try:
        yield
    finally:
        restore_modes(modes)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a lesson cell gives the same numbers every run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derive_seed(seed: int, i: int) -> int:
    """The seed of the i-th random stream grown from `seed`: NumPy's SeedSequence keeps the streams independent.

    (`seed + i` would not: stream 1 of seed 0 would be stream 0 of seed 1.)
    """
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def show_source(obj: Any) -> None:
    """Print an object's source, the way `??` does in Jupyter, so lessons can show the code they teach."""
    print(inspect.getsource(obj))
