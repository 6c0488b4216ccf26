"""The callbacks of lessons 09b/09c: metrics, recording, scheduling, the LR finder, devices, progress, checkpoints."""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from fastprogress.fastprogress import format_time

from .learner import CancelFitException, Callback, hypers_of
from .progress import aligned_row, master_bar, progress_bar
from .schedule import Schedule, sched_exp
from .utils import default_device, listify

__all__ = ["AvgStats", "AvgStatsCallback", "accuracy", "Recorder", "ParamScheduler", "LRFinder",
           "DeviceCallback", "BatchTransformXCallback", "Throughput", "TablePrinter", "ProgressCallback",
           "Checkpoint"]


def accuracy(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose highest score is the right class."""
    return (out.argmax(dim=1) == yb).float().mean()


class AvgStats:
    """Running, batch-size-weighted averages of the loss and the metrics over one pass."""

    def __init__(self, metrics: Sequence[Callable], in_train: bool):
        self.metrics, self.in_train = listify(metrics), in_train
        self.reset()

    def reset(self) -> None:
        self.tot_loss, self.count, self.tot_mets = 0.0, 0, [0.0] * len(self.metrics)

    @property
    def avg_stats(self) -> list[float]:
        """Mean loss then each mean metric."""
        return [o / max(self.count, 1) for o in [self.tot_loss, *self.tot_mets]]

    def accumulate(self, learn: Any) -> None:
        bn = len(learn.xb)
        self.tot_loss += learn.loss.item() * bn
        self.count += bn
        for i, m in enumerate(self.metrics):
            self.tot_mets[i] += float(m(learn.pred, learn.yb)) * bn

    def __repr__(self) -> str:
        return f"{'train' if self.in_train else 'valid'}: {[round(s, 6) for s in self.avg_stats]}" if self.count else ""


class AvgStatsCallback(Callback):
    """Average loss and metrics for training and validation, logged as one table row per epoch."""

    def __init__(self, metrics: Callable | Sequence[Callable] = accuracy):
        self.train_stats, self.valid_stats = AvgStats(metrics, True), AvgStats(metrics, False)

    def before_fit(self):
        names = ["loss"] + [m.__name__ for m in self.train_stats.metrics]
        self.logger(["epoch"] + [f"train_{n}" for n in names] + [f"valid_{n}" for n in names] + ["time"])

    def before_epoch(self):
        self.train_stats.reset()
        self.valid_stats.reset()
        self.start_time = time.time()

    def after_loss(self):
        stats = self.train_stats if self.in_train else self.valid_stats
        with torch.no_grad():
            stats.accumulate(self.learn)

    def after_epoch(self):
        row = [str(self.epoch)] + [f"{v:.6f}" for o in (self.train_stats, self.valid_stats) for v in o.avg_stats]
        self.logger(row + [format_time(time.time() - self.start_time)])


class Recorder(Callback):
    """Keep the learning rate of every group and the loss of every training batch, and plot them."""

    def before_fit(self):
        self.lrs, self.losses = [[] for _ in hypers_of(self.opt)], []

    def after_batch(self):
        if not self.in_train:
            return
        for pg, lrs in zip(hypers_of(self.opt), self.lrs):
            lrs.append(pg["lr"])
        self.losses.append(self.loss.detach().item())

    def plot_lr(self, pgid: int = -1) -> plt.Axes:
        """Learning rate against iteration, for group `pgid`."""
        _, ax = plt.subplots()
        ax.plot(self.lrs[pgid])
        ax.set(xlabel="iteration", ylabel="learning rate")
        return ax

    def plot_loss(self, skip_last: int = 0) -> plt.Axes:
        """Training loss against iteration."""
        _, ax = plt.subplots()
        ax.plot(self.losses[: len(self.losses) - skip_last])
        ax.set(xlabel="iteration", ylabel="training loss")
        return ax

    def plot(self, skip_last: int = 0, pgid: int = -1) -> plt.Axes:
        """Loss against learning rate (log scale): the picture the LR finder is read from."""
        n = len(self.losses) - skip_last
        _, ax = plt.subplots()
        ax.plot(self.lrs[pgid][:n], self.losses[:n])
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss")
        return ax


class ParamScheduler(Callback):
    """Set hyper-parameter `pname` of every group from a schedule before each training batch."""

    order = 1

    def __init__(self, pname: str, sched_funcs: Schedule | Sequence[Schedule]):
        self.pname, self.sched_funcs = pname, sched_funcs

    def before_fit(self):
        groups = hypers_of(self.opt)
        funcs = self.sched_funcs if isinstance(self.sched_funcs, (list, tuple)) else [self.sched_funcs] * len(groups)
        if len(funcs) != len(groups):
            raise ValueError(f"ParamScheduler({self.pname!r}) got {len(funcs)} schedules for {len(groups)} "
                             "parameter groups: pass one schedule, or one per group.")
        if self.pname not in groups[0]:
            raise ValueError(f"ParamScheduler: the optimizer has no hyper-parameter {self.pname!r}; it has {sorted(groups[0])}.")
        self.funcs = funcs

    def before_batch(self):
        if self.in_train:
            for f, h in zip(self.funcs, hypers_of(self.opt)):
                h[self.pname] = f(self.pct_train)


class LRFinder(Callback):
    """Grow the learning rate exponentially each batch and stop once the loss explodes; then put the weights and
    the optimizer back as they were, so the Learner trains on as if the search had never run."""

    order = 1

    def __init__(self, max_iter: int = 100, min_lr: float = 1e-6, max_lr: float = 10.0):
        self.max_iter, self.min_lr, self.max_lr = max_iter, min_lr, max_lr

    def set_learner(self, learn):
        """Added for the search's fit: note how many epochs the Learner had trained, to give the counts back after."""
        super().set_learner(learn)
        self.counts = learn.epochs_done, getattr(learn, "n_epoch", 0)

    def before_fit(self):
        self.best_loss = math.inf
        self.saved = self.model, copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.opt.state_dict())

    def before_batch(self):
        if not self.in_train:
            raise CancelFitException()  # one pass over training batches is the whole experiment
        lr = sched_exp(self.min_lr, self.max_lr)(self.n_iter / self.max_iter)
        for h in hypers_of(self.opt):
            h["lr"] = lr

    def after_loss(self):
        loss = self.loss.item()
        if self.n_iter >= self.max_iter or not math.isfinite(loss) or loss > self.best_loss * 10:
            raise CancelFitException()  # before the step: an exploded loss moves no weight
        self.best_loss = min(self.best_loss, loss)

    def after_fit(self):
        """However the search ended (done, Ctrl-C, an error): the weights (BatchNorm statistics too), the
        optimizer's state and hyper-parameters, and the epoch counts (what `save` records) as before it."""
        saved = self.__dict__.pop("saved", None)
        if saved is None:  # fit failed before this callback's before_fit
            return
        model, weights, opt_state = saved
        model.load_state_dict(weights)
        self.opt.load_state_dict(opt_state)
        self.learn.epochs_done, self.learn.n_epoch = self.counts


class DeviceCallback(Callback):
    """Move the model, then every batch, to `device` (CUDA when available, else the CPU)."""

    def __init__(self, device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else default_device()

    def before_fit(self):
        self.model.to(self.device)

    def before_batch(self):
        nb = self.device.type == "cuda"
        self.learn.xb, self.learn.yb = self.xb.to(self.device, non_blocking=nb), self.yb.to(self.device, non_blocking=nb)


class BatchTransformXCallback(Callback):
    """Apply `tfm` to every input batch: normalisation, reshaping, GPU augmentation (`train_only=True`)."""

    order = 2

    def __init__(self, tfm: Callable[[torch.Tensor], torch.Tensor], train_only: bool = False):
        self.tfm, self.train_only = tfm, train_only

    def before_batch(self):
        if self.in_train or not self.train_only:
            self.learn.xb = self.tfm(self.xb)


class Throughput(Callback):
    """Time the training passes: images per second and seconds per epoch (validation included)."""

    def before_fit(self):
        self.train_time, self.n_images, self.fit_start = 0.0, 0, time.perf_counter()

    def before_train(self):
        self.start = time.perf_counter()

    def after_batch(self):
        if self.in_train:
            self.n_images += len(self.yb)

    def before_validate(self):
        if torch.cuda.is_available():  # CUDA runs asynchronously: wait for the last batch before reading the clock
            torch.cuda.synchronize()
        self.train_time += time.perf_counter() - self.start

    def after_fit(self):
        self.total = time.perf_counter() - self.fit_start

    @property
    def images_per_s(self) -> float:
        return self.n_images / max(self.train_time, 1e-9)


class TablePrinter:
    """Print the rows `AvgStatsCallback` logs as aligned columns: ProgressCallback's table without the bars (for logs)."""

    def __call__(self, row: list[str]) -> None:
        if not hasattr(self, "widths"):
            self.widths = [max(len(c), 8) for c in row]
        print(aligned_row(row, self.widths), flush=True)


class ProgressCallback(Callback):
    """Progress bars for epochs and batches (teachkit.progress: plain lines in a log); the stats table goes under them."""

    order = -1

    def before_fit(self):
        self.mbar, self.pb = master_bar(range(self.n_epoch)), None
        self.mbar.on_iter_begin()
        self.old_logger, self.learn.logger = self.logger, partial(self.mbar.write, table=True)

    def after_batch(self):
        self.pb.update(self.iter + 1)

    def before_train(self):
        self.set_pb(self.dls.train_dl)

    def before_validate(self):
        self.set_pb(self.dls.valid_dl)

    def set_pb(self, dl) -> None:
        self.close_pb()
        self.pb = progress_bar(dl, parent=self.mbar, leave=False)
        self.pb.update(0)
        self.mbar.update(self.epoch)

    def after_fit(self):
        """Runs on every exit of fit (Ctrl-C included): close the bars, give the logger back."""
        mbar = self.__dict__.pop("mbar", None)
        if mbar is None:  # fit failed before this callback's before_fit
            return
        try:
            self.close_pb()
            mbar.on_iter_end()
        finally:
            self.learn.logger = self.old_logger

    def close_pb(self) -> None:
        """A batch bar left unfinished (cancelled or interrupted) is marked as stopped, not left drawn half-way."""
        if self.pb is not None and getattr(self.pb, "last_v", None) is not None and not getattr(self.pb, "finished", False):
            self.pb.on_interrupt()
        self.pb = None


class Checkpoint(Callback):
    """Save the Learner (as `learn.save(path)`, atomically) after every epoch, or only after the last one: a run that
    stops (Ctrl-C, a crash) resumes from its last finished epoch with `learn.load(path)` and
    `learn.fit(n_epoch, start_epoch=learn.epochs_done)`. `meta` is kept with it (`checkpoint_meta`)."""

    order = 50  # after the callbacks that finish an epoch: statistics, the epoch count

    def __init__(self, path: str | os.PathLike, every_epoch: bool = True, meta: dict | None = None):
        self.path, self.every_epoch, self.meta = Path(path), every_epoch, meta

    def after_epoch(self):
        if self.every_epoch or self.epoch == self.n_epoch - 1:
            self.learn.save(self.path, self.meta)
