"""Data parallelism on torch.distributed: several processes, each a full replica of the model, one optimizer step.

Each process (a *rank*) trains on its own share of every batch. In `backward`, DistributedDataParallel (DDP)
averages the gradients of all ranks with an all-reduce, so every replica takes the same step from the same weights
and the replicas never drift apart. One step sees `bs x world_size` images: `--bs` is the batch size PER PROCESS.

torchrun starts the processes and tells each one who it is (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT):

    python -m torch.distributed.run --standalone --nproc_per_node=4 -m teachkit.train --bs 64   # 4 x 64 per step

In a Learner it is one callback, `DistributedCallback`: wrap the model in DDP, give each split a sampler that hands
each rank its share, and add up the metrics of all ranks so every rank (and the table rank 0 prints) sees the
numbers of the whole validation set. NCCL talks between GPUs, gloo between CPU processes. Before any of that the
ranks compare their data (`check_same_data`): a rank with other files would otherwise hang or crash mid-epoch.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from hashlib import sha256
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from .callbacks import AvgStats, AvgStatsCallback
from .data.databunch import DataBunch, vocab_of
from .errors import TeachkitError
from .learner import Callback
from .utils import default_device

__all__ = ["launched_by_torchrun", "local_device", "backend_for", "rank", "local_rank", "world_size", "is_main",
           "setup", "cleanup", "process_group", "main_process_first", "broadcast_module", "init_on_main",
           "ShardSampler", "distributed_dl", "distributed_dls", "DataMismatchError", "data_fingerprint",
           "data_mismatch", "check_same_data", "reduce_stats", "gather_metrics", "DistributedCallback"]


# ------------------------------------------------------------------------------ who am I, and the process group

def launched_by_torchrun() -> bool:
    """True in a process torchrun started: it sets RANK, LOCAL_RANK and WORLD_SIZE in the environment."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def local_rank() -> int:
    """This process's number on its own machine (0 when not launched by torchrun): which GPU it drives."""
    return int(os.environ.get("LOCAL_RANK", 0))


def local_device() -> torch.device:
    """GPU number LOCAL_RANK when there are GPUs, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else default_device()


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank() -> int:
    """This process's number among all processes (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 prints the progress, the table and the final metrics, and writes any file."""
    return rank() == 0


def setup(backend: str | None = None, timeout_s: float = 600.0) -> torch.device:
    """Join the process group torchrun described in the environment; returns this process's device.

    The backend follows the device (`backend_for`); a rank that waits longer than `timeout_s` for the others
    fails with an error instead of hanging forever.
    """
    if not launched_by_torchrun():
        raise ValueError("teachkit.distributed.setup: RANK, LOCAL_RANK and WORLD_SIZE are not set. Launch with "
                         "`python -m torch.distributed.run --nproc_per_node=N -m teachkit.train ...` (torchrun).")
    device = local_device()
    if device.type == "cuda":
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={device.index} but this machine has {torch.cuda.device_count()} GPU(s): "
                             "pass --nproc_per_node at most the number of GPUs.")
        torch.cuda.set_device(device)
    dist.init_process_group(backend or backend_for(device), timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)  # NCCL: bind this rank to its GPU
    return device


def cleanup() -> None:
    """Leave the process group (a no-op when there is none), after freeing what the last steps left behind.

    Objects in reference cycles (a Learner and its callbacks, DDP's autograd hooks) are otherwise freed only when
    the interpreter shuts down; a tensor a gloo thread still refers to then aborts the process ("terminate called
    without an active exception", SIGABRT) after a run that succeeded. `gc.collect()` frees them while Python is
    still alive.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextmanager
def process_group(backend: str | None = None, timeout_s: float = 600.0) -> Iterator[torch.device]:
    """`with process_group() as device:` joins the group torchrun set up and always leaves it: on success, on an
    error and on Ctrl-C. Without torchrun it is the one-process default device and changes nothing."""
    if not launched_by_torchrun():
        yield default_device()
        return
    device = setup(backend, timeout_s)
    try:
        yield device
    finally:
        cleanup()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Local rank 0 runs the block first (a download, a generated data set), the other ranks after it, so no two
    processes write the same files; outside a process group it just runs the block."""
    first = local_rank() == 0
    if dist.is_initialized() and not first:
        dist.barrier()
    yield
    if dist.is_initialized() and first:
        dist.barrier()


# ------------------------------------------------------------------------------------------ same weights

def broadcast_module(model: nn.Module, src: int = 0) -> nn.Module:
    """Copy every parameter and buffer of rank `src`'s model into the other ranks' models, in place."""
    with torch.no_grad():
        for t in model.state_dict().values():  # tensors sharing storage with the model's
            dist.broadcast(t, src)
    return model


def init_on_main(model: nn.Module, init: Callable[[nn.Module], Any]) -> nn.Module:
    """Run `init` (e.g. LSUV on a batch) on rank 0 only, then give every rank rank 0's weights."""
    if is_main():
        init(model)
    return broadcast_module(model) if dist.is_initialized() else model


# ------------------------------------------------------------------------------------------ each rank its share

class ShardSampler(Sampler[int]):
    """Items rank, rank + world, rank + 2*world, ... in order: validation's share, each item counted exactly once.

    DistributedSampler pads the data set with repeated items so every rank gets as many batches as the others;
    training needs that (each backward waits for every rank), validation does not, and padding would count a
    few images twice in the validation metrics.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank_: int | None = None):
        self.n, self.world = len(dataset), world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_ is None else rank_

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def distributed_dl(dl: DataLoader, train: bool, seed: int = 0) -> DataLoader:
    """The same DataLoader (batch size, workers, collate...) reading only this rank's share of the data set.

    Training: a `DistributedSampler` that shuffles when `dl` did (call `set_epoch` each epoch for a new order);
    validation: a `ShardSampler`. Already distributed loaders come back unchanged.
    """
    if isinstance(getattr(dl, "sampler", None), (DistributedSampler, ShardSampler)):
        return dl
    if not isinstance(dl, DataLoader):
        raise ValueError(f"distributed_dl: can only re-shard a torch DataLoader, got {type(dl).__name__}. Build it with "
                         "a DistributedSampler (training) or a ShardSampler (validation) yourself.")
    ds = dl.dataset
    shuffle = isinstance(dl.sampler, RandomSampler)
    sampler = (DistributedSampler(ds, world_size(), rank(), shuffle=shuffle, seed=seed, drop_last=dl.drop_last)
               if train else ShardSampler(ds))
    return DataLoader(ds, dl.batch_size, sampler=sampler, num_workers=dl.num_workers, collate_fn=dl.collate_fn,
                      pin_memory=dl.pin_memory, drop_last=dl.drop_last, timeout=dl.timeout,
                      worker_init_fn=dl.worker_init_fn, multiprocessing_context=dl.multiprocessing_context,
                      prefetch_factor=dl.prefetch_factor, persistent_workers=dl.persistent_workers)


def distributed_dls(dls: DataBunch, seed: int = 0) -> DataBunch:
    """`dls` with each DataLoader reading only this rank's share (`distributed_dl`), once every rank has checked
    that they all hold the same data (`check_same_data`)."""
    check_same_data(dls)
    return DataBunch(distributed_dl(dls.train_dl, True, seed), distributed_dl(dls.valid_dl, False), dls.c_in, dls.c_out)


# ------------------------------------------------------------------------------------------ the same data

class DataMismatchError(TeachkitError, ValueError):
    """The ranks hold different data: their batches would not line up, and DDP would hang or fail mid-epoch."""


def data_fingerprint(dls: DataBunch) -> dict[str, Any]:
    """What every rank must agree on: how many train and valid items, and the class list (its length and a hash)."""
    vocab = vocab_of(dls.train_ds)
    return {"train": len(dls.train_ds), "valid": len(dls.valid_ds), "classes": None if vocab is None else len(vocab),
            "vocab": None if vocab is None else sha256(repr(list(vocab)).encode()).hexdigest()}


def data_mismatch(prints: list[dict[str, Any]]) -> str | None:
    """How each rank's `data_fingerprint` differs from rank 0's, in words; None when they all agree."""
    diffs = []
    for r, fp in enumerate(prints[1:], 1):
        diffs += [f"rank {r} has {fp[k]} {k} items, rank 0 has {prints[0][k]}" for k in ("train", "valid")
                  if fp[k] != prints[0][k]]
        if fp["vocab"] != prints[0]["vocab"]:
            n, n0 = ("no" if c is None else c for c in (fp["classes"], prints[0]["classes"]))
            diffs.append(f"rank {r} has {n} classes, rank 0 has {n0}" if n != n0 else
                         f"rank {r}'s class names differ from rank 0's (both {n} classes)")
    if not diffs:
        return None
    return ("The ranks were given different data: " + "; ".join(diffs) + ". Every process must see the same data "
            "folder (the same files, split and labels): check the path each one reads (TEACHKIT_DATA), and let one "
            "process download or generate it before the others read it (`with main_process_first():`).")


def check_same_data(dls: DataBunch) -> None:
    """Compare every rank's `data_fingerprint` (one small all_gather) and raise the same `DataMismatchError` on
    every rank if any differs, instead of a hang or a "collective mismatch" in the middle of an epoch."""
    if problem := data_mismatch(_gather(data_fingerprint(dls))):
        raise DataMismatchError(problem)


# ------------------------------------------------------------------------------------------ the same numbers

def reduce_stats(stats: AvgStats, device: torch.device | None = None) -> None:
    """Add up the totals of every rank (all-reduce) so each rank's averages are those of the whole data set."""
    device = device or (local_device() if dist.get_backend() == "nccl" else torch.device("cpu"))
    t = torch.tensor([stats.tot_loss, stats.count, *stats.tot_mets], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    stats.tot_loss, stats.count, *stats.tot_mets = t.tolist()
    stats.count = int(stats.count)


def gather_metrics(metrics: dict[str, float]) -> list[dict[str, float]]:
    """Every rank's `metrics`, in rank order (one process: a list of one), to check they agree."""
    return _gather(metrics)


def _gather(obj: Any) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order; one process: a list of one."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def _silent(*args: Any, **kwargs: Any) -> None:
    """The logger of ranks other than 0: the table is printed once, by rank 0."""


class DistributedCallback(Callback):
    """Train this process's replica with DistributedDataParallel, on its share of the data.

    before_fit: the ranks check they all hold the same data (`check_same_data`), each split gets this rank's
    sampler, the model is wrapped in DDP (which copies rank 0's weights to every rank), ranks other than 0 log
    nothing. Every epoch: a new shuffle (`set_epoch`), rank 0's BatchNorm statistics for validation (the plain
    model: no gradients, so no rank waits for another), then the metrics of all ranks added up before
    `AvgStatsCallback` logs them. after_fit: the plain model and data come back.
    A callback that stops on its own rank's loss (`LRFinder`) would leave the other ranks waiting: find the
    learning rate in one process.
    """

    order = -2  # before ProgressCallback (-1), TrainEvalCallback and AvgStatsCallback (0)

    def __init__(self, device: torch.device | None = None, seed: int = 0):
        self.device, self.seed, self.plain = device, seed, None

    def before_fit(self):
        if not dist.is_initialized():
            raise ValueError("DistributedCallback needs a process group: launch with torchrun and call "
                             "teachkit.distributed.setup() (or use `with process_group():`) before fit.")
        device = torch.device(self.device) if self.device is not None else local_device()
        if device.type == "cuda" and device.index is None:  # plain "cuda": the GPU setup() bound this rank to
            device = torch.device("cuda", torch.cuda.current_device())
        self.plain = self.model, self.dls, self.logger  # what after_fit gives back
        self.learn.dls = distributed_dls(self.dls, self.seed)
        self.ddp = DDP(self.model.to(device), device_ids=[device.index] if device.type == "cuda" else None)
        self.learn.model = self.ddp
        if not is_main():
            self.learn.logger = _silent

    def before_epoch(self):
        sampler = getattr(self.dls.train_dl, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)  # without it every epoch would see the same order

    def before_train(self):
        self.learn.model = self.ddp

    def before_validate(self):
        self.learn.model = self.ddp.module
        with torch.no_grad():  # BatchNorm's running statistics moved with each rank's own last batch
            for b in self.model.buffers():
                dist.broadcast(b, 0)

    def after_epoch(self):
        for cb in self.learn.cbs:
            if isinstance(cb, AvgStatsCallback):
                reduce_stats(cb.train_stats)
                reduce_stats(cb.valid_stats)

    def after_fit(self):
        if self.plain is not None:  # None: before_fit never got that far
            self.learn.model, self.learn.dls, self.learn.logger = self.plain
            self.plain = None
