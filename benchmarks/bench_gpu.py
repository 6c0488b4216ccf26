"""What the GPU options buy: images/s of the Imagenette input pipeline and of training at 128 px, and epoch time.

Run as `python -m benchmarks.bench_gpu` on a machine with CUDA; without one it prints one skip line and reports no
rows. Data: Imagenette-160 when it is in the cache or can be downloaded, else the generated look-alike (each
figure says which). Rows, each against a baseline measured in this process:
- input pipeline (decode, crop, resize, flip, onto the GPU): `--gpu-decode` (nvJPEG) against PIL in DataLoader workers;
- training, lesson CNN and XResNet-18 (if `teachkit.xresnet` is importable): the fast options (channels_last,
  bfloat16 autocast, GPU decode) against plain float32 with CPU decode, in images/s and in seconds per epoch
  (training + validation). The goal on an H100/H200-class GPU: lesson CNN 5 epochs of Imagenette-160 in <= 40 s
  (the course: 67 s on a 2019 GPU), input pipeline >= 5,000 images/s.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from teachkit.callbacks import AvgStatsCallback, BatchTransformXCallback, DeviceCallback, accuracy
from teachkit.data import norm_imagenette
from teachkit.data.databunch import DataBunch, default_num_workers
from teachkit.data import is_synthetic
from teachkit.learner import Callback, Learner
from teachkit.optim import adam_opt
from teachkit.data.imagenette import get_data, imagenette_dls, imagenette_gpu_dls
from teachkit.gpu import ChannelsLast
from teachkit.precision import MixedPrecision
from teachkit.recipe import lesson_cnn

SIZE, BS = 128, 64


class EpochTimer(Callback):
    """Wall time of each whole epoch (training + validation) and of each training pass, images seen in training."""

    def before_fit(self):
        self.epochs, self.train_times, self.images = [], [], []

    def before_epoch(self):
        torch.cuda.synchronize()
        self.start, self.n = time.perf_counter(), 0

    def after_batch(self):
        if self.in_train:
            self.n += len(self.yb)

    def before_validate(self):
        torch.cuda.synchronize()
        self.train_times.append(time.perf_counter() - self.start)
        self.images.append(self.n)

    def after_epoch(self):
        torch.cuda.synchronize()
        self.epochs.append(time.perf_counter() - self.start)


def endless(dl) -> Iterator:
    """The batches of `dl`, epoch after epoch: a small data set still gives as many batches as asked."""
    while True:
        yield from dl


def pipeline_images_per_s(dl, device: torch.device, n_batches: int = 60, warmup: int = 5) -> float:
    """Images/s of iterating `dl` with every batch on `device` (after `warmup` batches: workers starting)."""
    it, n = endless(dl), 0
    for _ in range(warmup):
        next(it)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _, (xb, yb) in zip(range(n_batches), it):
        xb = xb.to(device, non_blocking=True)
        n += len(yb)
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def xresnet18_or_none() -> Callable[[int], torch.nn.Module] | None:
    try:
        from teachkit.xresnet import xresnet18
    except ImportError:
        return None
    return lambda c_out: xresnet18(c_in=3, n_out=c_out)


def train_timing(make_model: Callable[[int], torch.nn.Module], dls: DataBunch, device: torch.device, fast: bool,
                 epochs: int = 2) -> tuple[float, float]:
    """(training images/s, seconds per epoch) of the last of `epochs` epochs: the first one warms cuDNN up."""
    torch.manual_seed(0)
    cbs = [DeviceCallback(device), BatchTransformXCallback(norm_imagenette), AvgStatsCallback(accuracy), EpochTimer()]
    if fast:
        cbs += [ChannelsLast(), MixedPrecision(torch.bfloat16)]
    learn = Learner(make_model(dls.c_out).to(device), dls, F.cross_entropy, adam_opt, 3e-3, cbs)
    learn.logger = lambda row: None
    learn.fit(epochs)
    t = learn.epoch_timer
    return t.images[-1] / t.train_times[-1], t.epochs[-1]


def run(device: torch.device | None = None) -> list[dict]:
    """Rows of pipeline and training figures; none (and a skip line) without CUDA."""
    if not torch.cuda.is_available():
        print("bench_gpu: skipped, no CUDA GPU on this machine (torch.cuda.is_available() is False).")
        return []
    device = device or torch.device("cuda")
    torch.backends.cudnn.benchmark = True  # same input shapes every batch: let cuDNN pick its fastest kernels
    path = get_data("imagenette-160")
    data = f"{'generated look-alike' if is_synthetic(path) else 'Imagenette-160'}, {SIZE}px, bs {BS}"
    nw = default_num_workers()
    cpu_dls, gpu_dls = imagenette_dls(path, SIZE, BS, nw), imagenette_gpu_dls(path, SIZE, BS, nw, device=device)
    pipe_cpu = pipeline_images_per_s(cpu_dls.train_dl, device)
    pipe_gpu = pipeline_images_per_s(gpu_dls.train_dl, device)
    gpu_name = torch.cuda.get_device_name(device)
    rows = [{"figure": f"input pipeline, JPEG decode on the GPU ({data}, {gpu_name})", "value": round(pipe_gpu),
             "unit": "images/s", "baseline": f"PIL decode in {nw} DataLoader workers, pinned copy",
             "baseline_value": round(pipe_cpu), "ratio": round(pipe_gpu / pipe_cpu, 2)}]
    models = {"lesson CNN": lambda c_out: lesson_cnn(n_out=c_out)}
    if (xres := xresnet18_or_none()) is not None:
        models["XResNet-18"] = xres
    for name, make in models.items():
        plain_ips, plain_epoch = train_timing(make, cpu_dls, device, fast=False)
        fast_ips, fast_epoch = train_timing(make, gpu_dls, device, fast=True)
        where = f"{name}, {data}, {gpu_name}"
        rows += [
            {"figure": f"training, channels_last + bf16 + GPU decode ({where})", "value": round(fast_ips),
             "unit": "images/s", "baseline": "float32, NCHW, PIL decode", "baseline_value": round(plain_ips),
             "ratio": round(fast_ips / plain_ips, 2)},
            {"figure": f"one epoch, train + valid, fast options ({where}; goal for the lesson CNN on Imagenette-160: "
                       f"<= 8 s)", "value": round(fast_epoch, 2), "unit": "s", "baseline": "float32, NCHW, PIL decode",
             "baseline_value": round(plain_epoch, 2), "ratio": round(fast_epoch / plain_epoch, 2)}]
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['figure']}: {r['value']:,} {r['unit']}  (baseline {r['baseline']}: {r['baseline_value']:,}, "
              f"ratio {r['ratio']}x)")
