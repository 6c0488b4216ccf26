"""The lesson-11 recipe as two functions: `build_learner` (model, init, optimizer, schedules, callbacks) and
`run_training` (data, Learner, fit, final metrics, a checkpoint to save or resume), which `python -m teachkit.train`
and notebook 11 call."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .callbacks import (AvgStatsCallback, BatchTransformXCallback, Checkpoint, DeviceCallback, ParamScheduler,
                        ProgressCallback, Recorder, TablePrinter, Throughput, accuracy)
from .checkpoint import CheckpointError, checkpoint_meta
from .choices import OPT_LRS, SCHEDS
from .data import norm_imagenette
from .data.databunch import DataBunch, close_workers
from .data.datasets import smoke_mode
from .distributed import (DistributedCallback, distributed_dls, gather_metrics, init_on_main, is_main, local_device,
                          main_process_first, process_group, world_size)
from .init import lsuv_init
from .errors import TeachkitError, user_message
from .learner import Callback, Learner
from .data.lookalike import is_synthetic
from .mixup import MixUp
from .models import conv_layer, get_cnn_model, init_cnn
from .optim import adam_opt, lamb_opt, ranger_opt, sgd_mom_opt, sgd_opt
from .data.imagenette import SMOKE, get_data, imagenette_dls
from .gpu import ChannelsLast, Compile
from .precision import MixedPrecision
from .schedule import flat_cos, momentum_cycle, one_cycle
from .utils import default_device, set_seed
from .xresnet import xresnet18, xresnet34, xresnet50

__all__ = ["OPT_CHOICES", "NFS", "ARCHS", "SCHEDS", "lesson_cnn", "make_model", "schedulers", "build_learner",
           "run_flags", "check_resume_flags", "resume_epoch", "run_training", "run_from_flags"]

OPT_CHOICES: dict[str, tuple[Callable, float]] = {
    "sgd": (sgd_opt, OPT_LRS["sgd"]), "momentum": (sgd_mom_opt, OPT_LRS["momentum"]), "adam": (adam_opt, OPT_LRS["adam"]),
    "lamb": (lamb_opt, OPT_LRS["lamb"]), "ranger": (ranger_opt, OPT_LRS["ranger"])}
"""Each optimizer the recipe offers: the teachkit.optim factory and the peak learning rate of its schedule
(`teachkit.choices.OPT_LRS`)."""

NFS = [64, 64, 128, 256]
"""Widths of the lesson-08 CNN after its stem."""


def lesson_cnn(c_in: int = 3, n_out: int = 10) -> nn.Module:
    """The lesson-08 CNN (GeneralRelu, BatchNorm), Kaiming-initialised."""
    return init_cnn(get_cnn_model(c_in, n_out, NFS, conv_layer, leak=0.1, sub=0.4, maxv=6.0))


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "cnn": lesson_cnn, "xresnet18": xresnet18, "xresnet34": xresnet34, "xresnet50": xresnet50}
"""Each model the recipe offers, called as `ARCHS[name](c_in=3, n_out=classes)`."""


def make_model(arch: str, n_out: int, c_in: int = 3) -> nn.Module:
    """The model named `arch` (a key of `ARCHS`) for `n_out` classes."""
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of {list(ARCHS)}.")
    return ARCHS[arch](c_in=c_in, n_out=n_out)


def schedulers(sched: str, lr: float, opt: str) -> list[ParamScheduler]:
    """`one-cycle`: lr up to `lr` and down, momentum (beta1) the other way (not for plain SGD, which has none);
    `flat-cos`: lr flat at `lr` for 75% of training, then a cosine to zero, momentum left at the optimizer's."""
    if sched == "flat-cos":
        return [ParamScheduler("lr", flat_cos(lr))]
    if sched != "one-cycle":
        raise ValueError(f"Unknown schedule {sched!r}; choose one of {list(SCHEDS)}.")
    return [ParamScheduler("lr", one_cycle(lr))] + ([] if opt == "sgd" else [ParamScheduler("mom", momentum_cycle())])


def build_learner(dls: DataBunch, opt: str = "lamb", lr: float | None = None, wd: float = 1e-2, lsuv: bool = True,
                  mixed_precision: bool = False, progress: bool = True, device: str | torch.device | None = None,
                  channels_last: bool = False, compile_model: bool = False, *, arch: str = "cnn",
                  sched: str = "one-cycle", mixup: float = 0.0, label_smoothing: float = 0.0,
                  cbs: Sequence[Callback] = ()) -> Learner:
    """The lesson-11 Learner: a model (`arch`), LSUV init for the lesson CNN, normalised inputs, a schedule.

    `opt` is a key of `OPT_CHOICES`; `lr` its peak learning rate (default: the one in `OPT_CHOICES`). `sched` is
    one of `SCHEDS`; `mixup` > 0 blends batches (`MixUp(mixup)`); `label_smoothing` is PyTorch's; `cbs` are added.
    XResNets keep their own init (residual BatchNorms at zero), so LSUV applies to the lesson CNN only. Under
    torchrun, LSUV runs on rank 0 and every rank gets its weights; training is data parallel.
    """
    if opt not in OPT_CHOICES:
        raise ValueError(f"Unknown optimizer {opt!r}; choose one of {list(OPT_CHOICES)}.")
    opt_func, default_lr = OPT_CHOICES[opt]
    lr = default_lr if lr is None else lr
    device = torch.device(device) if device is not None else default_device()
    model = make_model(arch, dls.c_out).to(device)
    if lsuv and arch == "cnn":
        xb, _ = next(iter(dls.train_dl))
        close_workers([dls.train_dl])  # workers start again with fit: none left alive in an unused Learner
        init_on_main(model, lambda m: lsuv_init(m, norm_imagenette(xb.to(device)), progress=False))
    cbs = [DeviceCallback(device), BatchTransformXCallback(norm_imagenette), AvgStatsCallback(accuracy), Recorder(),
           Throughput(), *schedulers(sched, lr, opt), *cbs, *speed_callbacks(device, channels_last, compile_model)]
    if mixup:
        cbs.append(MixUp(mixup))
    if mixed_precision:
        cbs.append(MixedPrecision())
    if progress and is_main():
        cbs.append(ProgressCallback())
    loss_func = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    learn = Learner(model, dls, loss_func, partial(opt_func, wd=wd), lr, cbs)
    if not progress:
        learn.logger = TablePrinter()
    return learn


def speed_callbacks(device: torch.device, channels_last: bool, compile_model: bool) -> list[Callback]:
    """What `--channels-last`, `--compile` and a torchrun launch add: layout, compiler, data parallel."""
    cbs: list[Callback] = [ChannelsLast()] if channels_last else []
    if dist.is_initialized():
        cbs.append(DistributedCallback(device))
    return cbs + ([Compile(device)] if compile_model else [])


def run_flags(data: str, size: int, epochs: int, bs: int, opt: str, lr: float, wd: float, augment: bool,
              mixed_precision: bool, seed: int, arch: str, sched: str, mixup: float, label_smoothing: float) -> dict:
    """The flags that decide what a run computes, kept in its checkpoints: a resume with others would not be the same
    run (a folder is kept as its absolute path, so `~/imgs` and `/home/me/imgs` agree). Speed flags (workers,
    channels-last, compile, GPU decoding) may change; LSUV doesn't matter (the weights come from the checkpoint)."""
    folder = Path(data).expanduser()
    return dict(data=str(folder.resolve()) if folder.is_dir() else data, size=size, epochs=epochs, bs=bs, opt=opt,
                lr=lr, wd=wd, augment=augment, mixed_precision=mixed_precision, seed=seed, arch=arch, sched=sched,
                mixup=mixup, label_smoothing=label_smoothing)


def check_resume_flags(path: str | os.PathLike, flags: dict) -> None:
    """A CheckpointError naming each flag that differs from the run that saved `path` (saved vs now), before
    anything is built: the saved optimizer's hypers (wd) would silently win, and other data, schedules or seeds
    would make another run."""
    saved = checkpoint_meta(path).get("flags", {})
    if differ := [f"{k} (saved {saved[k]!r}, now {v!r})" for k, v in flags.items() if k in saved and saved[k] != v]:
        raise CheckpointError(f"{path} was saved by a run with other flags: {', '.join(differ)}. Resume with the "
                              "flags of the run that saved it, or start a new run without --resume.")


def resume_epoch(learn: Learner, path: str | os.PathLike, epochs: int) -> int:
    """Load the checkpoint at `path` into `learn` and return the epoch to go on from; a CheckpointError when that
    run had another number of epochs (its schedules would change) or has none left."""
    learn.load(path)
    if learn.n_epoch != epochs:
        raise CheckpointError(f"{path} is from a run of {learn.n_epoch} epochs: resuming it for {epochs} would change "
                              f"its schedules. Pass --epochs {learn.n_epoch} (and the run's other flags).")
    if learn.epochs_done >= epochs:
        raise CheckpointError(f"{path} finished all {epochs} epochs of its run: nothing is left to resume.")
    return learn.epochs_done


def run_training(data: str = "imagenette-160", size: int = 128, epochs: int = 5, bs: int = 64, opt: str = "lamb",
                 lr: float | None = None, wd: float = 1e-2, workers: int | None = None, lsuv: bool = True,
                 augment: bool = True, mixed_precision: bool = False, seed: int = 42, progress: bool = True,
                 channels_last: bool = False, compile_model: bool = False, gpu_decode: bool = False,
                 arch: str = "cnn", sched: str = "one-cycle", mixup: float = 0.0, label_smoothing: float = 0.0,
                 save: str | os.PathLike | None = None, resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Build the pipeline, train, and return the final metrics (valid accuracy, losses, timings, which data).

    `progress` shows progress bars above the table; without them the table alone is printed (logs, CI).
    Under torchrun `bs` is the batch size of each process: one step sees `bs x world_size` images.
    `save`: a checkpoint after every epoch (rank 0 writes it). `resume`: go on from a checkpoint of a run with the
    same flags, at the epoch after its last finished one (LSUV is skipped: the weights come from the checkpoint).
    """
    say = print if is_main() else (lambda *a, **k: None)  # data parallel: rank 0 speaks for all
    if smoke_mode():
        size, epochs, bs = min(size, SMOKE["size"]), min(epochs, SMOKE["epochs"]), min(bs, SMOKE["bs"])
        workers = 0 if workers is None else workers  # starting worker processes costs more than loading 800 tiny files
        say(f"TEACHKIT_SMOKE=1: a small generated set, {size}px, {epochs} epoch(s), batch size {bs}.")
    lr = OPT_LRS.get(opt) if lr is None else lr  # an unknown opt is refused by build_learner
    flags = run_flags(data, size, epochs, bs, opt, lr, wd, augment, mixed_precision, seed, arch, sched, mixup,
                      label_smoothing)
    if resume:
        check_resume_flags(resume, flags)
    set_seed(seed)
    with main_process_first():  # one process per machine downloads or generates the data
        path = get_data(data)
    device = local_device()
    quiet_fallback = device.type != "cuda" and not is_main()  # without a GPU, rank 0 alone says so
    dls = imagenette_dls(path, size, bs, workers, augment, gpu_decode and not quiet_fallback, device)
    if dist.is_initialized():
        dls = distributed_dls(dls, seed)
        say(f"Data parallel: {world_size()} processes ({dist.get_backend()}), batch size {bs} per process, "
            f"{bs * world_size()} images per step.")
    say(f"Data: {path} ({'GENERATED Imagenette-like set' if is_synthetic(path) else 'real images'}), "
        f"{len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, {dls.c_out} classes.")
    learn = build_learner(dls, opt, lr, wd, lsuv and not resume, mixed_precision, progress, device, channels_last,
                          compile_model, arch=arch, sched=sched, mixup=mixup, label_smoothing=label_smoothing,
                          cbs=[Checkpoint(save, meta={"flags": flags})] if save and is_main() else [])
    start = resume_epoch(learn, resume, epochs) if resume else 0
    if start:
        say(f"Resuming {resume}: epochs 0-{start - 1} of {epochs} are done, training epoch {start} on.")
    learn.fit(epochs, start_epoch=start)
    t = learn.throughput
    train_loss, train_acc = learn.avg_stats.train_stats.avg_stats
    valid_loss, valid_acc = learn.avg_stats.valid_stats.avg_stats
    return dict(data=str(path), synthetic=is_synthetic(path), size=size, epochs=epochs, bs=bs, opt=opt, arch=arch,
                train_loss=train_loss, train_accuracy=train_acc, valid_loss=valid_loss, valid_accuracy=valid_acc,
                seconds=t.total, epoch_seconds=t.total / (epochs - start), images_per_s=t.images_per_s * world_size(),
                world_size=world_size(), start_epoch=start)


def run_from_flags(flags: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """What `python -m teachkit.train` does with its parsed flags: train (in torchrun's process group when
    launched by it), print the final metrics, return them. teachkit's own errors (`TeachkitError`: a failed download,
    a diverged run, a checkpoint that doesn't fit, ...) end the program with their message (exit status 1), not a
    traceback."""
    if smoke_mode():
        torch.set_num_threads(1)  # tiny tensors gain nothing from more threads, and CI machines are shared
    with process_group():  # under torchrun: join the other processes, and always leave the group
        try:
            res = run_training(**flags, progress=progress)
        except TeachkitError as e:
            sys.exit(f"error: {user_message(e)}")
        ranks = gather_metrics({k: res[k] for k in ("valid_loss", "valid_accuracy", "train_loss")})
        if not is_main():
            return res
    print(f"\nFinal: valid accuracy {res['valid_accuracy']:.4f}, valid loss {res['valid_loss']:.4f}, "
          f"train loss {res['train_loss']:.4f}")
    print(f"{res['epochs'] - res['start_epoch']} epoch(s) in {res['seconds']:.1f} s ({res['epoch_seconds']:.1f} s "
          f"per epoch), training at {res['images_per_s']:.0f} images/s on {default_device().type}"
          + (f" ({res['world_size']} processes together)" if res["world_size"] > 1 else ""))
    if len(ranks) > 1:
        agree = all(r == ranks[0] for r in ranks)
        print(f"All {len(ranks)} ranks agree on these metrics." if agree else
              "Ranks DISAGREE on the metrics: " + "; ".join(f"rank {i}: {r}" for i, r in enumerate(ranks)))
    if res["synthetic"]:
        print("(on the GENERATED Imagenette-like set: not comparable with the course's ~73.6% on Imagenette v1)")
    return res
