"""The callback-driven training loop of lessons 09b/09c: `Learner`, `Callback` and the Cancel exceptions.

However `fit` ends (done, cancelled, an error, Ctrl-C), every callback's `after_fit` runs: the place to remove hooks
and close what a callback opened; then the DataLoader worker processes stop. `learn.pct_train` is the fraction of
training done, `learn.n_epoch` the epochs, `learn.epochs_done` how many of them are finished.

Every Learner also gets two guard rails, as callbacks: `OutputSizeCheck` (on the first batch, before any step: does
the model give a score for every class?) and `DivergenceCheck` (a NaN or infinite loss stops fit with a
`DivergenceError` saying where). `learn.save(path)` / `learn.load(path)` keep and restore a run (`teachkit.checkpoint`).
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data.databunch import close_workers
from .guards import DivergenceError, check_class_outputs, divergence_message
from .optim import sgd_opt
from .utils import camel2snake, listify, restore_modes, train_modes

__all__ = ["EVENTS", "LEGACY", "CancelFitException", "CancelEpochException", "CancelBatchException",
           "FromLearner", "Callback", "TrainEvalCallback", "OutputSizeCheck", "DivergenceCheck", "check_callback",
           "hypers_of", "param_getter", "default_opt_func", "check_epochs", "Learner"]

EVENTS = ("before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
          "after_backward", "after_step", "after_batch", "before_validate", "after_epoch", "after_fit",
          "after_cancel_batch", "after_cancel_epoch", "after_cancel_fit")
"""Every moment a callback can act on, in the order one `fit` meets them."""

LEGACY = {e.replace("before_", "begin_"): e for e in EVENTS if e.startswith("before_")}
"""course-v3 called them `begin_*`; callbacks written that way still work."""


class CancelFitException(Exception):
    """Raise in a callback to stop `fit` at once (after_cancel_fit and after_fit still run)."""


class CancelEpochException(Exception):
    """Raise in a callback to skip the rest of this epoch's training or validation batches."""


class CancelBatchException(Exception):
    """Raise in a callback to skip the rest of this batch (after_batch still runs)."""


def __getattr__(name: str) -> Any:
    if name == "CancelTrainException":  # course-v3 code meets a clear message, even in `from ... import`
        raise ImportError("CancelTrainException is not in teachkit: course-v3 used it to stop fit (raise "
                          "CancelFitException), fastai v2 to skip the rest of training (raise CancelEpochException "
                          "in a training batch: validation still runs).", name=__name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FromLearner:
    """`cb.loss` reads `cb.learn.loss`, unless the callback has a `loss` of its own: what `Callback.__getattr__`
    does for every name, without the failed lookup it starts with (about half a microsecond, many times a batch)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, cb: Any, owner: type | None = None) -> Any:
        return self if cb is None else getattr(cb.learn, self.name)


class Callback:
    """A small object with methods named after events; `order` decides who runs first.

    It reads the Learner's state as its own: `self.loss` is `self.learn.loss` (set it with `self.learn.loss = ...`).
    """

    order = 0
    # What callbacks read every batch, read fast; any other name goes through __getattr__ below.
    model, opt, dls, xb, yb, pred, loss, in_train, epoch, iter, iters, n_epoch, pct_train = (
        FromLearner() for _ in range(13))

    def set_learner(self, learn: "Learner") -> None:
        """Remember the Learner, so `self.epoch` or `self.model` read through to it."""
        self.learn = learn

    @property
    def name(self) -> str:
        """The attribute the Learner exposes this callback as: `Recorder` -> `learn.recorder`."""
        return camel2snake(type(self).__name__.removesuffix("Callback") or "callback")

    def __getattr__(self, k: str) -> Any:
        if k == "learn":  # not set yet: avoid recursing forever
            raise AttributeError(k)
        return getattr(self.learn, k)

    def method(self, event: str) -> Callable[[], Any] | None:
        """This callback's handler for `event` (or its course-v3 `begin_*` name), or None if it has none: a method of
        its class, or a function set on the callback itself (`cb.after_batch = fn`), which wins, as attributes do.
        A Learner reads handlers when it builds its dispatch table: when callbacks change, and as every fit starts."""
        own, cls = vars(self), type(self)
        name = event if event in own or hasattr(cls, event) else event.replace("before_", "begin_")
        return getattr(self, name) if callable(own.get(name, getattr(cls, name, None))) else None

    def __call__(self, event: str) -> Any:
        f = self.method(event)
        return f() if f else None


class TrainEvalCallback(Callback):
    """Put the model in train or eval mode and count progress: `n_iter` training batches, `pct_train` of training
    done, `epochs_done`; a resumed fit (`start_epoch`) counts from where the interrupted one stopped."""

    def before_fit(self):
        self.learn.pct_train = self.start_epoch / self.n_epoch
        self.learn.n_iter = self.start_epoch * len(self.dls.train_dl) if self.start_epoch else 0
        self.learn.epochs_done = self.start_epoch

    def before_train(self):
        self.model.train()

    def after_batch(self):
        if self.in_train:
            self.learn.pct_train += 1.0 / (self.iters * self.n_epoch)
            self.learn.n_iter += 1

    def before_validate(self):
        self.model.eval()

    def after_epoch(self):
        self.learn.pct_train = (self.epoch + 1) / self.n_epoch
        self.learn.epochs_done = self.epoch + 1


def hypers_of(opt: Any) -> list[dict]:
    """One dict of hyper-parameters per group: teachkit's `opt.hypers`, or torch's `param_groups`."""
    return opt.hypers if hasattr(opt, "hypers") else opt.param_groups


# ------------------------------------------------------------------ guard rails every Learner has (teachkit.guards)

class OutputSizeCheck(Callback):
    """On the first batch of each fit, before any step: one output per class (`check_class_outputs`). A refused
    model is left as it was, BatchNorm statistics included (the first forward pass moved them)."""

    def before_fit(self):
        self.buffers = [b.detach().clone() for b in self.model.buffers()]

    def after_pred(self):
        if self.buffers is None:
            return
        buffers, self.buffers = self.buffers, None
        try:
            check_class_outputs(self.pred, self.yb, getattr(self.dls, "c_out", None))
        except ValueError:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            raise


class DivergenceCheck(Callback):
    """Stop fit with a `DivergenceError` at the first NaN or infinite loss, naming the batch and the lr.

    It reads the loss before `MixedPrecision` (order 10) scales it, and never looks at gradients: a float16 step
    skipped because a *gradient* overflowed is loss scaling at work, not divergence. The LR finder (order 1) stops
    on such a loss first: finding where the loss explodes is its job.
    """

    order = 5

    def after_loss(self):
        if not finite(self.loss):
            raise DivergenceError(divergence_message(self.loss.item(), self.epoch, self.iter, self.in_train,
                                                     [h["lr"] for h in hypers_of(self.opt)], self.model.parameters()))


def finite(loss: torch.Tensor) -> bool:
    """Is every value of `loss` finite? One `.item()` for the usual scalar loss (the cheapest check per batch)."""
    loss = loss.detach()
    return math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss).all())


def check_callback(cb: Callback) -> None:
    """Refuse a callback with a method, or a handler set on it, that looks like an event but isn't one (a typo never
    runs)."""
    for attr in sorted({*dir(type(cb)), *vars(cb)}):
        if attr.startswith(("before_", "after_", "begin_")) and attr not in EVENTS and attr not in LEGACY:
            close = difflib.get_close_matches(attr, EVENTS + tuple(LEGACY), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{type(cb).__name__}.{attr} is not a Learner event, so it would never run.{hint} "
                             f"Events are: {', '.join(EVENTS)}.")


def dispatch_table(cbs: Iterable[Callback]) -> dict[str, list[Callable[[], Any]]]:
    """Event -> the methods that handle it, callbacks sorted by `order` once, not at every event."""
    ordered = sorted(cbs, key=lambda c: c.order)
    return {e: [f for cb in ordered if (f := handler(cb, e))] for e in EVENTS}


def handler(cb: Callback, event: str) -> Callable[[], Any] | None:
    """What runs `event` on `cb`: its method, or the callback itself when it overrides `__call__` (it hears every event)."""
    return partial(cb, event) if type(cb).__call__ is not Callback.__call__ else cb.method(event)


def param_getter(model: nn.Module) -> Iterable[nn.Parameter]:
    """What the optimizer gets by default: every parameter of the model."""
    return model.parameters()


def default_opt_func(params: Iterable, lr: float):
    """Plain SGD from `teachkit.optim`."""
    return sgd_opt(params, lr=lr)


class Learner:
    """Model + data + loss + optimizer, and a loop that calls callbacks at every event."""

    def __init__(self, model: nn.Module, dls: Any, loss_func: Callable = F.cross_entropy,
                 opt_func: Callable = default_opt_func, lr: float = 1e-2, cbs: Iterable[Callback] | None = None,
                 splitter: Callable = param_getter):
        if dls is None or not (hasattr(dls, "train_dl") and hasattr(dls, "valid_dl")):
            raise ValueError("Learner needs data: pass a DataBunch (anything with .train_dl and .valid_dl), "
                             f"got {type(dls).__name__}. Build one with teachkit.data.databunchify or DataBunch(train_dl, valid_dl).")
        if not isinstance(model, nn.Module):
            raise ValueError(f"Learner needs an nn.Module as model, got {type(model).__name__}.")
        self.model, self.dls, self.loss_func, self.opt_func, self.lr, self.splitter = model, dls, loss_func, opt_func, lr, splitter
        self.opt, self.cbs, self.logger, self.in_train, self.epochs_done, self.handlers = None, [], print, False, 0, {}
        self.add_cbs([TrainEvalCallback(), OutputSizeCheck(), DivergenceCheck()] + listify(cbs))

    def add_cbs(self, cbs: Iterable[Callback]) -> None:
        """Attach callbacks and make each reachable by name, e.g. `learn.recorder`; all are checked first, the ones
        attached before too (a handler may have been set on one since)."""
        cbs = listify(cbs)
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise ValueError(f"Callbacks must be Callback instances, got {cb!r}. Did you pass the class instead of calling it?")
        for cb in [*self.cbs, *cbs]:
            check_callback(cb)
        for cb in cbs:
            cb.set_learner(self)
            setattr(self, cb.name, cb)
            self.cbs.append(cb)
        self.handlers = dispatch_table(self.cbs)

    def remove_cbs(self, cbs: Iterable[Callback]) -> None:
        """Detach callbacks added for one `fit` only."""
        cbs = listify(cbs)
        if not cbs:
            return
        for cb in cbs:
            self.cbs.remove(cb)
            if getattr(self, cb.name, None) is cb:
                delattr(self, cb.name)
        self.handlers = dispatch_table(self.cbs)

    def __call__(self, event: str) -> None:
        """Run `event` on every callback that handles it, in `order` (the table is built when callbacks change)."""
        if event not in self.handlers:
            close = difflib.get_close_matches(event, EVENTS, n=1)
            raise ValueError(f"Unknown event {event!r}." + (f" Did you mean {close[0]!r}?" if close else ""))
        for handle in self.handlers[event]:
            handle()

    def one_batch(self, i: int, xb: Any, yb: Any) -> None:
        """Predict, compute the loss and, when training, backprop and step: one batch."""
        try:
            self.iter, self.xb, self.yb = i, xb, yb
            self("before_batch")
            self.pred = self.model(self.xb)
            self("after_pred")
            self.loss = self.loss_func(self.pred, self.yb)
            self("after_loss")
            if not self.in_train:
                return
            self.loss.backward()
            self("after_backward")
            self.opt.step()
            self("after_step")
            self.opt.zero_grad()
        except CancelBatchException:
            self("after_cancel_batch")
        finally:
            self("after_batch")

    def all_batches(self, dl: Iterable) -> None:
        """Run `one_batch` over a whole DataLoader."""
        self.dl, self.iters = dl, len(dl)
        try:
            for i, (xb, yb) in enumerate(dl):
                self.one_batch(i, xb, yb)
        except CancelEpochException:
            self("after_cancel_epoch")

    def fit(self, n_epoch: int, cbs: Iterable[Callback] | None = None, reset_opt: bool = False,
            lr: float | Sequence[float] | None = None, start_epoch: int = 0) -> None:
        """Train for `n_epoch` epochs, validating after each; `cbs` are added for this call only.

        Every group of the optimizer starts at `lr` (one per group, or one for all; default `learn.lr`), whatever
        a schedule or the LR finder left. `start_epoch` resumes an interrupted run at that epoch: `learn.load(path)`,
        then `fit(n_epoch, start_epoch=learn.epochs_done)` with the callbacks of the first run.
        However fit ends (done, cancelled, an error, Ctrl-C), every callback's `after_fit` runs and `cbs` are removed.
        """
        check_epochs(n_epoch, start_epoch)
        cbs = listify(cbs)
        if reset_opt or self.opt is None:
            self.create_opt()
        self.start_lrs(self.lr if lr is None else lr)
        self.add_cbs(cbs)
        modes = train_modes(self.model)
        try:
            self.n_epoch, self.start_epoch, self.loss = n_epoch, start_epoch, torch.tensor(0.0)
            self("before_fit")
            for self.epoch in range(start_epoch, n_epoch):
                self.in_train = True
                self("before_epoch")
                self("before_train")
                self.all_batches(self.dls.train_dl)
                self.in_train = False
                with torch.no_grad():
                    self("before_validate")
                    self.all_batches(self.dls.valid_dl)
                self("after_epoch")
        except CancelFitException:
            self("after_cancel_fit")
        except BaseException:
            self.undo_unfinished_batch(modes)
            raise
        finally:
            self.end_fit(cbs)

    # ------------------------------------------------------------------ the optimizer, and saving a run

    def create_opt(self) -> None:
        """A new optimizer over `splitter(model)` at `learn.lr`: a fresh start for the step statistics."""
        self.opt = self.opt_func(self.splitter(self.model), lr=self.lr)

    def start_lrs(self, lr: float | Sequence[float]) -> None:
        """Put every parameter group's learning rate at `lr` (a number, or one per group) before a fit."""
        groups = hypers_of(self.opt)
        lrs = list(lr) if isinstance(lr, Sequence) else [lr] * len(groups)
        if len(lrs) != len(groups):
            raise ValueError(f"fit got {len(lrs)} learning rates for {len(groups)} parameter groups: "
                             "pass one, or one per group.")
        for h, v in zip(groups, lrs):
            h["lr"] = v

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> Path:
        """Write the weights, the optimizer (state and hypers), the epoch count and the random states to `path`,
        atomically (a half-written file never replaces a good one), with `meta` beside them; `load` resumes from it."""
        if self.opt is None:
            self.create_opt()
        return save_checkpoint(self, path, meta)

    def load(self, path: str | os.PathLike) -> "Learner":
        """Restore what `save` wrote; a checkpoint that does not fit the model or the optimizer is a ValueError
        naming what differs, and changes nothing."""
        if self.opt is None:
            self.create_opt()
        load_checkpoint(self, path)
        return self

    # ------------------------------------------------------------------ guard rails: cleaning up after any exit

    def undo_unfinished_batch(self, modes: dict[nn.Module, bool]) -> None:
        """After an error or Ctrl-C: the model's train/eval modes as before fit, no gradient left for the next step."""
        restore_modes(modes)
        self.in_train = False
        if self.opt is not None:
            self.opt.zero_grad()

    def end_fit(self, cbs: list[Callback]) -> None:
        """`after_fit` on every callback even if one fails (its error is raised after the others ran), drop `cbs`."""
        try:
            first_error = None
            for cb in sorted(self.cbs, key=lambda c: c.order):
                try:
                    cb("after_fit")
                except BaseException as e:  # noqa: B036 (a second Ctrl-C waits until every callback cleaned up)
                    first_error = first_error or e
            if first_error is not None:
                raise first_error
        finally:
            self.remove_cbs(cbs)
            close_workers([self.dls.train_dl, self.dls.valid_dl, getattr(self, "dl", None)])


def check_epochs(n_epoch: int, start_epoch: int) -> None:
    """A fit needs at least one epoch to run: 0 <= start_epoch < n_epoch."""
    if n_epoch < 1:
        raise ValueError(f"n_epoch must be a positive number of epochs, got {n_epoch}.")
    if not 0 <= start_epoch < n_epoch:
        raise ValueError(f"start_epoch must be in [0, n_epoch) = [0, {n_epoch}), got {start_epoch}: "
                         + ("that run has no epoch left to train." if start_epoch >= n_epoch else "count from 0."))
