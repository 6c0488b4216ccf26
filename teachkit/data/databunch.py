"""Batches (lesson 08's last step): DataLoaders over a labelled split, and the `DataBunch` that holds them.

    data = databunchify(split_data, bs=64)   # or split_data.to_databunch(bs=64)
    show_batch(data, names=IMAGENETTE_CLASSES)   # teachkit.show draws it
"""
from __future__ import annotations

import os
import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader, get_worker_info

from ..utils import derive_seed, listify

__all__ = ["DataBunch", "close_workers", "default_num_workers", "reseed_worker_tfms", "get_dls", "databunchify",
           "vocab_of"]


def vocab_of(ds: Any) -> list | None:
    """The vocab of a labelled dataset's category processor, if it has one."""
    for p in reversed(listify(getattr(ds, "proc_y", None))):
        if getattr(p, "vocab", None) is not None:
            return p.vocab
    return None


class DataBunch:
    """A training and a validation DataLoader, plus the number of input channels and classes.

    `close()` (or `with DataBunch(...) as data:`) stops the worker processes its DataLoaders keep between epochs;
    `Learner.fit` does it when it ends, and the next pass over the data starts new ones. A DataBunch that is
    dropped stops them too, before the garbage collector takes its loaders apart (see `close_workers`), even
    for a loader still held elsewhere: keep the DataBunch while you iterate over one of its loaders.
    """

    def __init__(self, train_dl: DataLoader, valid_dl: DataLoader, c_in: int | None = None, c_out: int | None = None):
        self.train_dl, self.valid_dl, self.c_in, self.c_out = train_dl, valid_dl, c_in, c_out
        # The finalizer holds the loaders, not `self`: it keeps them (with their queues) out of the garbage, so
        # their workers can shut down cleanly when `self` goes, even in a reference cycle.
        weakref.finalize(self, close_workers, [train_dl, valid_dl]).atexit = False

    @property
    def train_ds(self) -> Any:
        return self.train_dl.dataset

    @property
    def valid_ds(self) -> Any:
        return self.valid_dl.dataset

    def close(self) -> None:
        """Stop the DataLoader worker processes now (see `close_workers`)."""
        close_workers([self.train_dl, self.valid_dl])

    def __enter__(self) -> DataBunch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"DataBunch(train: {len(self.train_ds)} items, valid: {len(self.valid_ds)} items, "
                f"c_in={self.c_in}, c_out={self.c_out})")


def close_workers(loaders: Iterable[Any]) -> None:
    """Stop the worker processes that DataLoaders with `persistent_workers` keep alive between epochs.

    Kept in a reference cycle (a Learner and its callbacks), live workers make the garbage collector wait 5 s
    for each of them, in the middle of whatever runs then: the collector closes the loader's queues first, so the
    workers never hear they should stop and are killed after a timeout. A wrapper (`GpuJpegLoader`) holds its
    DataLoader in `.dl`; None is skipped. torch has no public call for this: the DataLoader's `_iterator` is what
    holds the workers.
    """
    for dl in loaders:
        dl = getattr(dl, "dl", dl)
        workers = getattr(dl, "_iterator", None)
        if workers is not None:
            dl._iterator = None
            workers._shutdown_workers()


def default_num_workers() -> int:
    """One DataLoader worker per CPU this process may use, at most 8."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(8, n)


def reseed_worker_tfms(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: give each worker its own stream of random augmentations.

    Workers start as copies of the main process, and so would the random generators that transforms own
    (`teachkit.augment`): every worker would draw the same crops and flips. torch gives each worker its own
    seed; reseed every transform that has a `reseed` method from it.
    """
    info = get_worker_info()
    for i, t in enumerate(listify(getattr(getattr(info.dataset, "x", None), "tfms", None))):
        if hasattr(t, "reseed"):
            t.reseed(derive_seed(info.seed, i))


def get_dls(train_ds: Any, valid_ds: Any, bs: int, num_workers: int = 0, **kwargs) -> tuple[DataLoader, DataLoader]:
    """Shuffled training and in-order validation DataLoaders (valid batches twice as big: no gradients to keep).

    With workers they stay alive between epochs, each with its own augmentation seed; with CUDA batches go to
    pinned memory for faster copies.
    """
    kwargs = {"num_workers": num_workers, "pin_memory": torch.cuda.is_available(),
              "persistent_workers": num_workers > 0, "worker_init_fn": reseed_worker_tfms, **kwargs}
    return DataLoader(train_ds, bs, shuffle=True, **kwargs), DataLoader(valid_ds, bs * 2, shuffle=False, **kwargs)


def databunchify(sd: Any, bs: int = 64, c_in: int | None = None, c_out: int | None = None,
                 num_workers: int | None = None, **kwargs) -> DataBunch:
    """DataLoaders for a labelled `teachkit.data.SplitData`; `c_out` defaults to the vocab size, `c_in` to the first
    item's channels.

    `num_workers` defaults to one per CPU (at most 8); pass 0 to load in this process (easiest to debug).
    """
    if c_out is None and (vocab := vocab_of(sd.train)) is not None:
        c_out = len(vocab)
    if c_in is None:
        x0 = sd.train[0][0]
        c_in = x0.shape[0] if isinstance(x0, torch.Tensor) and x0.ndim == 3 else None
    nw = default_num_workers() if num_workers is None else num_workers
    return DataBunch(*get_dls(sd.train, sd.valid, bs, num_workers=nw, **kwargs), c_in=c_in, c_out=c_out)
