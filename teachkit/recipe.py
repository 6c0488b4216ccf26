"""The lesson-11 recipe as two functions: `build_learner` (model, init, optimizer, schedules, callbacks) and
`run_training` (data, Learner, fit, final metrics), which `python -m teachkit.train` and notebook 11 call."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from .callbacks import (AvgStatsCallback, BatchTransformXCallback, DeviceCallback, MixedPrecision, ParamScheduler,
                        ProgressCallback, Recorder, TablePrinter, Throughput, accuracy)
from .data import DataBunch, norm_imagenette
from .datasets import is_synthetic, smoke_mode
from .init import lsuv_init
from .learner import Learner
from .models import conv_layer, get_cnn_model, init_cnn
from .optim import adam_opt, lamb_opt, sgd_mom_opt, sgd_opt
from .pipeline import SMOKE, get_data, imagenette_dls
from .schedule import momentum_cycle, one_cycle
from .utils import default_device, set_seed

__all__ = ["OPT_CHOICES", "NFS", "build_learner", "run_training"]

OPT_CHOICES: dict[str, tuple[Callable, float]] = {
    "sgd": (sgd_opt, 0.3), "momentum": (sgd_mom_opt, 0.1), "adam": (adam_opt, 3e-3), "lamb": (lamb_opt, 1e-2)}
"""Each optimizer the recipe offers: the teachkit.optim factory and the peak learning rate of its schedule."""

NFS = [64, 64, 128, 256]
"""Widths of the lesson-08 CNN after its stem."""


def build_learner(dls: DataBunch, opt: str = "lamb", lr: float | None = None, wd: float = 1e-2, lsuv: bool = True,
                  mixed_precision: bool = False, progress: bool = True, device: str | torch.device | None = None) -> Learner:
    """The lesson-08 CNN (GeneralRelu, BatchNorm) with Kaiming then LSUV init, normalised inputs and a one-cycle schedule.

    `opt` is a key of `OPT_CHOICES`; `lr` its peak learning rate (default: the one in `OPT_CHOICES`). Momentum (beta1
    for Adam and LAMB) cycles from 0.95 down to 0.85 and back while the learning rate goes up and down.
    """
    if opt not in OPT_CHOICES:
        raise ValueError(f"Unknown optimizer {opt!r}; choose one of {list(OPT_CHOICES)}.")
    opt_func, default_lr = OPT_CHOICES[opt]
    lr = default_lr if lr is None else lr
    device = torch.device(device) if device is not None else default_device()
    model = init_cnn(get_cnn_model(3, dls.c_out, NFS, conv_layer, leak=0.1, sub=0.4, maxv=6.0)).to(device)
    if lsuv:
        xb, _ = next(iter(dls.train_dl))
        lsuv_init(model, norm_imagenette(xb.to(device)), progress=False)
    scheds = [ParamScheduler("lr", one_cycle(lr))]
    if opt != "sgd":
        scheds.append(ParamScheduler("mom", momentum_cycle()))
    cbs = [DeviceCallback(device), BatchTransformXCallback(norm_imagenette), AvgStatsCallback(accuracy), Recorder(),
           Throughput(), *scheds]
    if mixed_precision:
        cbs.append(MixedPrecision())
    if progress:
        cbs.append(ProgressCallback())
    learn = Learner(model, dls, F.cross_entropy, partial(opt_func, wd=wd), lr, cbs)
    if not progress:
        learn.logger = TablePrinter()
    return learn


def run_training(data: str = "imagenette-160", size: int = 128, epochs: int = 5, bs: int = 64, opt: str = "lamb",
                 lr: float | None = None, wd: float = 1e-2, workers: int | None = None, lsuv: bool = True,
                 augment: bool = True, mixed_precision: bool = False, seed: int = 42,
                 progress: bool = True) -> dict[str, Any]:
    """Build the pipeline, train, and return the final metrics (valid accuracy, losses, timings, which data).

    `progress` shows progress bars above the table; without them the table alone is printed (logs, CI).
    """
    if smoke_mode():
        size, epochs, bs = min(size, SMOKE["size"]), min(epochs, SMOKE["epochs"]), min(bs, SMOKE["bs"])
        workers = 0 if workers is None else workers  # starting worker processes costs more than loading 800 tiny files
        print(f"TEACHKIT_SMOKE=1: a small generated set, {size}px, {epochs} epoch(s), batch size {bs}.")
    set_seed(seed)
    path = get_data(data)
    dls = imagenette_dls(path, size, bs, workers, augment)
    print(f"Data: {path} ({'GENERATED Imagenette-like set' if is_synthetic(path) else 'real images'}), "
          f"{len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, {dls.c_out} classes.")
    learn = build_learner(dls, opt, lr, wd, lsuv, mixed_precision, progress)
    learn.fit(epochs)
    t = learn.throughput
    train_loss, train_acc = learn.avg_stats.train_stats.avg_stats
    valid_loss, valid_acc = learn.avg_stats.valid_stats.avg_stats
    return dict(data=str(path), synthetic=is_synthetic(path), size=size, epochs=epochs, bs=bs, opt=opt,
                train_loss=train_loss, train_accuracy=train_acc, valid_loss=valid_loss, valid_accuracy=valid_acc,
                seconds=t.total, epoch_seconds=t.total / epochs, images_per_s=t.images_per_s)
