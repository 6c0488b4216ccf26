"""The lesson-11 pipeline from a terminal: data block + augmentation + LSUV + LAMB/Adam + one-cycle on Imagenette.

    python -m teachkit.train --data imagenette-160 --size 128 --epochs 5 --bs 64 --opt lamb

prints the same table as the notebooks (one row per epoch), then the final metrics, the epoch time and the
training throughput. The functions below are the pieces notebook 11 calls: `get_data`, `get_dls`,
`build_learner`, `one_cycle`, `train`. With `TEACHKIT_SMOKE=1` it trains briefly on a small generated set
(CI, or checking an install on a CPU). Run `python -m teachkit.train --help` for every flag.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .augment import CenterCrop, PilRandomFlip, RandomResizedCrop
from .callbacks import (AvgStatsCallback, BatchTransformXCallback, DeviceCallback, MixedPrecision, ParamScheduler,
                        ProgressCallback, Recorder, TablePrinter, accuracy)
from .data import (CategoryProcessor, DataBunch, ImageList, SplitData, grandparent_splitter, label_by_func,
                   norm_imagenette, parent_labeler)
from .datasets import (URLs, CorruptArchiveError, DownloadError, data_dir, imagenette, is_synthetic,
                       make_imagenette_like, smoke_mode, untar_data, valid_folder_name)
from .init import lsuv_init
from .learner import Callback, Learner
from .models import conv_layer, get_cnn_model, init_cnn
from .optim import adam_opt, lamb_opt, sgd_mom_opt, sgd_opt
from .schedule import Schedule, combine_scheds, cos_1cycle_anneal
from .transforms import make_rgb, to_byte_tensor, to_float_tensor
from .utils import default_device, set_seed

__all__ = ["DATASETS", "OPTIMIZERS", "SMOKE", "get_data", "get_dls", "one_cycle", "build_learner",
           "Throughput", "train", "parse_args", "main"]

DATASETS = {
    "imagenette": URLs.IMAGENETTE, "imagenette-160": URLs.IMAGENETTE_160, "imagenette-320": URLs.IMAGENETTE_320,
    "imagewoof": URLs.IMAGEWOOF, "imagewoof-160": URLs.IMAGEWOOF_160, "imagewoof-320": URLs.IMAGEWOOF_320,
}
"""Names `--data` accepts, besides `generated` and a folder. Imagenette falls back to the generated set offline."""

OPTIMIZERS: dict[str, tuple[Callable, float]] = {
    "sgd": (sgd_opt, 0.3), "momentum": (sgd_mom_opt, 0.1), "adam": (adam_opt, 3e-3), "lamb": (lamb_opt, 1e-2)}
"""Each `--opt`: the teachkit.optim factory and the peak learning rate of its one-cycle schedule."""

NFS = [64, 64, 128, 256]
"""Widths of the lesson-08 CNN after its stem."""

SMOKE = dict(n_train=600, n_valid=200, short_side=48, size=32, epochs=2, bs=32)
"""What `TEACHKIT_SMOKE=1` trains on: a small generated set, small images, a few short epochs."""


IMAGENETTE_SIZES = {"imagenette": None, "imagenette-160": 160, "imagenette-320": 320}
"""The names `imagenette()` serves, falling back to the generated set offline."""


def get_data(name: str) -> Path:
    """The folder for `--data`: a dataset name (downloaded once), `generated`, or a folder with train/ and val/.

    Imagenette sizes fall back to the generated Imagenette-like set when they can't be downloaded (and say so);
    in smoke mode every name gives the small generated set of `SMOKE`.
    """
    if smoke_mode():
        return make_imagenette_like(data_dir() / "imagenette-smoke-train", SMOKE["n_train"], SMOKE["n_valid"],
                                    short_side=SMOKE["short_side"])
    if name == "generated":
        return imagenette_generated()
    if name in IMAGENETTE_SIZES:
        return imagenette(IMAGENETTE_SIZES[name])
    if name in DATASETS:
        return untar_data(DATASETS[name])
    return Path(name).expanduser()


def imagenette_generated() -> Path:
    """The generated Imagenette-like set (700 + 300 images, short side 160) without trying the network."""
    return make_imagenette_like(data_dir() / "imagenette2-160-synthetic", 700, 300, short_side=160)


def get_dls(path: str | os.PathLike, size: int = 128, bs: int = 64, workers: int | None = None,
            augment: bool = True) -> DataBunch:
    """Lesson 08's data block, with lesson 10's augmentation on the training set.

    Training images: a random crop of 35-100% of the picture, resized to `size`, flipped half the time, all on
    bytes; validation images: the centre, zoomed in a little. Labels are the folder names, the vocab made from
    the training set; `workers` DataLoader processes (default one per CPU, at most 8).
    """
    tensor = [to_byte_tensor, to_float_tensor]
    valid_tfms = [make_rgb, CenterCrop(size), *tensor]
    train_tfms = [make_rgb, RandomResizedCrop(size, scale=(0.35, 1)), PilRandomFlip(), *tensor] if augment else valid_tfms
    il = ImageList.from_files(path, tfms=train_tfms)
    sd = SplitData.split_by_func(il, partial(grandparent_splitter, valid_name=valid_folder_name(path)))
    ll = label_by_func(sd, parent_labeler, proc_y=CategoryProcessor())
    ll.valid.x.tfms = valid_tfms
    return ll.to_databunch(bs, c_in=3, num_workers=workers)


def one_cycle(peak: float, start: float = 0.1, end: float = 1e-5, pct_up: float = 0.3) -> Schedule:
    """Cosine warm-up from `peak*start` to `peak` over the first `pct_up` of training, then cosine down to `peak*end`."""
    return combine_scheds([pct_up, 1 - pct_up], cos_1cycle_anneal(peak * start, peak, peak * end))


def momentum_cycle(high: float = 0.95, low: float = 0.85, pct_up: float = 0.3) -> Schedule:
    """Momentum mirrors the learning rate: lowest when the learning rate is highest."""
    return combine_scheds([pct_up, 1 - pct_up], cos_1cycle_anneal(high, low, high))


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


def build_learner(dls: DataBunch, opt: str = "lamb", lr: float | None = None, wd: float = 1e-2, lsuv: bool = True,
                  mixed_precision: bool = False, progress: bool = True, device: str | torch.device | None = None) -> Learner:
    """The lesson-08 CNN (GeneralRelu, BatchNorm) with Kaiming then LSUV init, normalised inputs and a one-cycle schedule.

    `opt` is a key of `OPTIMIZERS`; `lr` its peak learning rate (default: the one in `OPTIMIZERS`). Momentum (beta1
    for Adam and LAMB) cycles from 0.95 down to 0.85 and back while the learning rate goes up and down.
    """
    if opt not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {opt!r}; choose one of {list(OPTIMIZERS)}.")
    opt_func, default_lr = OPTIMIZERS[opt]
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


def train(data: str = "imagenette-160", size: int = 128, epochs: int = 5, bs: int = 64, opt: str = "lamb",
          lr: float | None = None, wd: float = 1e-2, workers: int | None = None, lsuv: bool = True,
          augment: bool = True, mixed_precision: bool = False, seed: int = 42, progress: bool = True) -> dict[str, Any]:
    """Build the pipeline, train, and return the final metrics (valid accuracy, losses, timings, which data).

    `progress` shows fastprogress bars above the table; without them the table alone is printed (logs, CI).
    """
    if smoke_mode():
        size, epochs, bs = min(size, SMOKE["size"]), min(epochs, SMOKE["epochs"]), min(bs, SMOKE["bs"])
        workers = 0 if workers is None else workers  # starting worker processes costs more than loading 800 tiny files
        print(f"TEACHKIT_SMOKE=1: a small generated set, {size}px, {epochs} epoch(s), batch size {bs}.")
    set_seed(seed)
    path = get_data(data)
    dls = get_dls(path, size, bs, workers, augment)
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


# ------------------------------------------------------------------------------------------ command line

def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {s!r}")
        return v
    return parse


def _number(positive: bool) -> Callable[[str], float]:
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not (v > 0 if positive else v >= 0) or v == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number {'> 0' if positive else '>= 0'}, got {s!r}")
        return v
    return parse


def _dataset(s: str) -> str:
    if s in DATASETS or s == "generated":
        return s
    p = Path(s).expanduser()
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{s!r} is neither a dataset ({', '.join([*DATASETS, 'generated'])}) "
                                         "nor an existing folder")
    if not (p / "train").is_dir() or not ((p / "val").is_dir() or (p / "valid").is_dir()):
        raise argparse.ArgumentTypeError(f"folder {s!r} needs train/ and val/ (or valid/) sub-folders, "
                                         "each with one folder of images per class")
    return s


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m teachkit.train",
        description="Train the lesson-11 pipeline (data block, augmentation, LSUV, one-cycle, LAMB/Adam/SGD) on "
                    "Imagenette or a folder of images, and print the progress table and the final metrics. "
                    "Uses the GPU when there is one. TEACHKIT_SMOKE=1 trains briefly on a small generated set, whatever "
                    "--data, at most 32 px, 2 epochs and batch size 32; "
                    "TEACHKIT_DATA sets the dataset cache (default ~/.teachkit/data).",
        epilog="The course's reference: Imagenette-160 at 128 px, 5 epochs, about 73.6% valid accuracy.")
    p.add_argument("--data", type=_dataset, default="imagenette-160", metavar="NAME|FOLDER",
                   help=f"one of {', '.join(DATASETS)} (downloaded once into the cache; Imagenette falls back to a "
                        "generated look-alike offline), 'generated' (that look-alike), or a folder with train/ and "
                        "val/ sub-folders holding one folder of images per class (default: %(default)s)")
    p.add_argument("--size", type=_int_at_least(16), default=128,
                   help="side of the square training images, in pixels, at least 16 (default: %(default)s)")
    p.add_argument("--epochs", type=_int_at_least(1), default=5, help="number of epochs (default: %(default)s)")
    p.add_argument("--bs", type=_int_at_least(2), default=64,
                   help="training batch size; validation batches are twice as big (default: %(default)s)")
    p.add_argument("--opt", choices=list(OPTIMIZERS), default="lamb",
                   help="optimizer from teachkit.optim: sgd, momentum (SGD with momentum), adam or lamb "
                        "(default: %(default)s)")
    p.add_argument("--lr", type=_number(positive=True), default=None,
                   help="peak learning rate of the one-cycle schedule; default per optimizer: "
                        + ", ".join(f"{k} {v[1]:g}" for k, v in OPTIMIZERS.items()))
    p.add_argument("--wd", type=_number(positive=False), default=1e-2, help="weight decay, decoupled (inside the step for LAMB) (default: %(default)s)")
    p.add_argument("--workers", type=_int_at_least(0), default=None,
                   help="DataLoader worker processes; 0 loads in this process (default: one per CPU, at most 8)")
    p.add_argument("--no-lsuv", dest="lsuv", action="store_false", help="skip LSUV: Kaiming init only")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random crops or flips: training images are centre-cropped like validation ones")
    p.add_argument("--mixed-precision", action="store_true",
                   help="forward pass and loss in bfloat16 (torch.autocast); fastest on recent GPUs")
    p.add_argument("--seed", type=int, default=42, help="random seed for weights, shuffling and augmentation (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the flags, train, print the final metrics; returns them too (for tests and scripts)."""
    args = parse_args(argv)
    if smoke_mode():
        torch.set_num_threads(1)  # tiny tensors gain nothing from more threads, and CI machines are shared
    try:
        res = train(**vars(args), progress=sys.stdout.isatty())
    except (DownloadError, CorruptArchiveError) as e:
        sys.exit(f"error: {e}")
    print(f"\nFinal: valid accuracy {res['valid_accuracy']:.4f}, valid loss {res['valid_loss']:.4f}, "
          f"train loss {res['train_loss']:.4f}")
    print(f"{res['epochs']} epoch(s) in {res['seconds']:.1f} s ({res['epoch_seconds']:.1f} s per epoch), "
          f"training at {res['images_per_s']:.0f} images/s on {default_device().type}")
    if res["synthetic"]:
        print("(on the GENERATED Imagenette-like set: not comparable with the course's 73.6% on Imagenette-160)")
    return res


if __name__ == "__main__":
    main()
