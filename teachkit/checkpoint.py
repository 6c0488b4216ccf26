"""Save a run and resume it: what `Learner.save(path)` writes and `Learner.load(path)` reads back.

A checkpoint holds all a run needs to go on as if it had never stopped: the weights (BatchNorm's running
statistics included), the optimizer's per-parameter state (momentum, Adam's averages, step counts), its
hyper-parameters and which optimizer it is (the steppers' names, or the torch class), how many epochs of how many
are done, and the state of every random generator that decides the next batches (torch's, Python's and NumPy's,
the training DataLoader's shuffling, each training transform's own). The schedules need nothing more: they are
functions of `pct_train`, which a resumed fit starts where it stopped. `meta` keeps what else the caller wants
beside it (the CLI: its flags, read back with `checkpoint_meta`).

    learn.fit(5, cbs=Checkpoint("run.pt"))     # Ctrl-C in epoch 3: run.pt holds epochs 0-2
    learn = make_learner().load("run.pt")      # the same model, optimizer and callbacks
    learn.fit(5, start_epoch=learn.epochs_done)

The resumed run ends with the same weights as an uninterrupted one when the data loads in the main process
(`num_workers=0`); worker processes start their own random streams each time, so augmentations then differ.
Files are written atomically (a temporary file, then `os.replace`) and read with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.cache import open_temp_file
from .errors import TeachkitError
from .optim import stepper_name
from .utils import listify

__all__ = ["FORMAT", "CheckpointError", "plain_model", "optimizer_kind", "save_checkpoint", "load_checkpoint",
           "checkpoint_meta", "check_state_fits", "data_rngs", "rng_states", "set_rng_states"]

FORMAT = "teachkit-checkpoint-1"
"""Written into every checkpoint, so a file of another kind is refused by name."""


class CheckpointError(TeachkitError, ValueError):
    """A checkpoint that can't be read, or does not fit the Learner it is loaded into."""


def plain_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (`.module`) or torch.compile (`._orig_mod`): its names are the
    ones a checkpoint keeps, whichever wrapper trained it."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return plain_model(model.module)
    compiled = getattr(model, "_orig_mod", None)
    return plain_model(compiled) if isinstance(compiled, nn.Module) else model


def optimizer_kind(opt: Any) -> str:
    """What makes `opt` the optimizer it is: its steppers' names (a teachkit Optimizer), or its class (torch's).

    Adam and LAMB keep state of the same names, so the state alone can't tell them apart; this can."""
    steppers = getattr(opt, "steppers", None)
    return ", ".join(map(stepper_name, steppers)) if steppers is not None else type(opt).__qualname__


# ------------------------------------------------------------------ writing

def save_checkpoint(learn: Any, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write `learn`'s model, optimizer, epoch count and random states to `path` (temporary file, then replace);
    `meta` (plain numbers, strings, lists and dicts) is kept alongside for `checkpoint_meta`: the CLI keeps its flags."""
    path = Path(path)
    state = {"format": FORMAT, "model": plain_model(learn.model).state_dict(), "opt": learn.opt.state_dict(),
             "opt_kind": optimizer_kind(learn.opt), "epochs_done": learn.epochs_done,
             "n_epoch": getattr(learn, "n_epoch", 0), "rng": rng_states(data_rngs(learn.dls.train_dl)),
             "meta": meta or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, f = open_temp_file(path, ".tmp")  # the cache's temporary files: the umask's permissions, not mkstemp's 0600
    try:
        with f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------ reading

def load_checkpoint(learn: Any, path: str | os.PathLike) -> None:
    """Restore what `save_checkpoint` wrote into `learn`; checked first, so a checkpoint that doesn't fit changes nothing."""
    state = read_checkpoint(path)
    model = plain_model(learn.model)
    check_state_fits(model.state_dict(), state["model"], f"{path} does not fit this model")
    check_same_optimizer(state, learn.opt, path)  # before the state check: it names both optimizers
    check_state_fits(learn.opt.state_dict(), state["opt"], f"{path} does not fit this optimizer", shapes=False)
    rngs = data_rngs(learn.dls.train_dl)
    if len(rngs) != len(state["rng"]["data"]):
        raise CheckpointError(f"{path} saved {len(state['rng']['data'])} random generators of the training data "
                              f"(shuffling, transforms), this DataBunch has {len(rngs)}: build the data the run was "
                              "saved with.")
    try:
        learn.opt.load_state_dict(state["opt"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit this optimizer: {e} Build the optimizer the run was saved "
                              "with (same opt_func and parameter groups).") from e
    model.load_state_dict(state["model"])
    set_rng_states(rngs, state["rng"])
    learn.epochs_done, learn.n_epoch = state["epochs_done"], state["n_epoch"]


def check_same_optimizer(state: dict, opt: Any, path: str | os.PathLike) -> None:
    """A CheckpointError when the checkpoint was saved by another kind of optimizer than `opt` (files written before
    teachkit recorded the kind are not checked)."""
    saved, now = state.get("opt_kind"), optimizer_kind(opt)
    if saved is not None and saved != now:
        raise CheckpointError(f"{path} was saved by another optimizer: saved [{saved}], now [{now}]. Build the "
                              "Learner with the optimizer the run was saved with (the same opt_func; from the CLI, the "
                              "same --opt), then load.")


def checkpoint_meta(path: str | os.PathLike) -> dict:
    """The `meta` that `save_checkpoint` kept with the run at `path` (empty when none was given); the tensors are
    mapped, not read, so a resume that looks at its flags first does not read the whole file twice."""
    return read_checkpoint(path, mmap=True).get("meta", {})


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """The checkpoint's contents, on the CPU (`mmap`: tensors mapped from the file, read only when used); a
    CheckpointError for a file that isn't a teachkit checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises many kinds for a file that is not one of its own
        raise CheckpointError(f"{path} is not a checkpoint torch can read ({type(e).__name__}: {e}).") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a teachkit checkpoint (written by Learner.save): it has no "
                              f"format {FORMAT!r}. For bare weights use model.load_state_dict(torch.load(path)).")
    return state


def check_state_fits(mine: dict, saved: dict, what: str, shapes: bool = True) -> None:
    """Raise a CheckpointError naming the keys missing, unexpected and (with `shapes`) of another shape."""
    def some(names: list[str]) -> str:
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    problems = []
    if missing := [k for k in mine if k not in saved]:
        problems.append(f"missing from the checkpoint: {some(missing)}")
    if unexpected := [k for k in saved if k not in mine]:
        problems.append(f"in the checkpoint but not here: {some(unexpected)}")
    if shapes and (differ := [f"{k} (saved {tuple(saved[k].shape)}, here {tuple(v.shape)})" for k, v in mine.items()
                              if k in saved and isinstance(v, torch.Tensor) and saved[k].shape != v.shape]):
        problems.append(f"of another shape: {some(differ)}")
    if problems:
        raise CheckpointError(f"{what}: {'; '.join(problems)}. Build the Learner the run was saved from (same "
                              "architecture, number of classes and optimizer), then load.")


# ------------------------------------------------------------------ random generators

def data_rngs(dl: Any) -> list[random.Random | torch.Generator]:
    """The generators that decide the next training batches besides the global ones: the DataLoader's shuffling
    (its `generator`, its sampler's), a wrapper's own (`GpuJpegLoader.rng`), each training transform's `rng`."""
    owners = [dl, getattr(dl, "dl", None)]
    owners += [getattr(o, "sampler", None) for o in owners]
    owners += listify(getattr(getattr(getattr(dl, "dataset", None), "x", None), "tfms", None))
    found = {}
    for o in owners:
        for g in (getattr(o, "generator", None), getattr(o, "rng", None)):
            if isinstance(g, (random.Random, torch.Generator)):
                found.setdefault(id(g), g)
    return list(found.values())


def rng_states(rngs: Iterable[random.Random | torch.Generator]) -> dict:
    """The state of torch's (CPU and CUDA), Python's and NumPy's global generators, and of `rngs`, in types
    `torch.load(weights_only=True)` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "data": [g.get_state() if isinstance(g, torch.Generator) else g.getstate() for g in rngs]}


def set_rng_states(rngs: list[random.Random | torch.Generator], state: dict) -> None:
    """Put every generator back where `rng_states` saw it (the CUDA ones when there are as many GPUs)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    for g, s in zip(rngs, state["data"]):
        g.set_state(s) if isinstance(g, torch.Generator) else g.setstate(s)
