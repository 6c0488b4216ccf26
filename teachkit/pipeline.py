"""The Imagenette input pipeline of lesson 11: which folder to read, the DataBunch built from it, and the options
that keep a GPU busy.

`get_data` turns a dataset name (or a folder) into a folder of images; `imagenette_dls` is lesson 08's data block
with lesson 10's augmentation on the training set. `python -m teachkit.train` and notebook 11 call both.

Worth the GPU (the `--gpu-decode`, `--channels-last` and `--compile` flags): `imagenette_gpu_dls` lets the
DataLoader workers only read files and decodes the JPEGs on the GPU (nvJPEG), with the same crops and flips;
`ChannelsLast` and `Compile` are callbacks for the model side. DataLoader workers stay alive between epochs and
fill pinned memory for asynchronous copies in both paths (`teachkit.data.get_dls`).
"""
from __future__ import annotations

import os
import random
import shutil
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from .augment import CenterCrop, GeneralCrop, PilRandomFlip, RandomResizedCrop
from .data import (CategoryProcessor, ImageList, LabeledData, SplitData, grandparent_splitter, label_by_func,
                   parent_labeler)
from .data.databunch import DataBunch, default_num_workers
from .distributed import distributed_dl
from .data.datasets import URLs, data_dir, smoke_mode, untar_data, valid_folder_name
from .data.imagenette import imagenette
from .learner import Callback
from .data.lookalike import make_imagenette_like
from .transforms import make_rgb, to_byte_tensor
from .utils import default_device

__all__ = ["DATASETS", "IMAGENETTE_SIZES", "SMOKE", "get_data", "imagenette_generated", "imagenette_labelled",
           "imagenette_dls", "JpegBytes", "collate_bytes", "decode_jpegs", "GpuJpegLoader", "imagenette_gpu_dls",
           "ChannelsLast", "compile_unsupported", "Compile"]

DATASETS = {
    "imagenette": URLs.IMAGENETTE, "imagenette-160": URLs.IMAGENETTE_160, "imagenette-320": URLs.IMAGENETTE_320,
    "imagewoof": URLs.IMAGEWOOF, "imagewoof-160": URLs.IMAGEWOOF_160, "imagewoof-320": URLs.IMAGEWOOF_320,
}
"""Names `get_data` accepts, besides `generated` and a folder (`teachkit.choices.DATASET_NAMES` for the CLI's parser).
Imagenette falls back to the generated set offline."""

IMAGENETTE_SIZES = {"imagenette": None, "imagenette-160": 160, "imagenette-320": 320}
"""The names `imagenette()` serves, falling back to the generated set offline."""

SMOKE = dict(n_train=600, n_valid=200, short_side=48, size=32, epochs=2, bs=32)
"""What `TEACHKIT_SMOKE=1` trains on: a small generated set, small images, a few short epochs."""


def get_data(name: str) -> Path:
    """The folder for a dataset name (downloaded once), `generated`, or a folder with train/ and val/.

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


def imagenette_dls(path: str | os.PathLike, size: int = 128, bs: int = 64, workers: int | None = None,
                   augment: bool = True, gpu_decode: bool = False, device: torch.device | str | None = None) -> DataBunch:
    """Lesson 08's data block, with lesson 10's augmentation on the training set.

    Training images: a random crop of 35-100% of the picture, resized to `size`, flipped half the time, all on
    bytes; validation images: the centre, zoomed in a little. Batches stay uint8 (0-255): a quarter of float's
    bytes from the workers and to the GPU; `BatchTransformXCallback(norm_imagenette)` makes them normalised floats
    on the device. Labels are the folder names, the vocab made from the training set; `workers` DataLoader
    processes (default one per CPU, at most 8). `gpu_decode`: the JPEGs are decoded on `device` when it is a GPU
    (`imagenette_gpu_dls`); without one, the CPU path, said in one line.
    """
    device = torch.device(device) if device is not None else default_device()
    if gpu_decode and device.type == "cuda":
        return imagenette_gpu_dls(path, size, bs, workers, augment, device)
    if gpu_decode:
        print("--gpu-decode: no CUDA GPU, so the JPEGs are decoded on the CPU (PIL, in the DataLoader workers).")
    valid_tfms = [make_rgb, CenterCrop(size), to_byte_tensor]
    train_tfms = ([make_rgb, RandomResizedCrop(size, scale=(0.35, 1)), PilRandomFlip(), to_byte_tensor] if augment
                  else valid_tfms)
    return imagenette_labelled(path, train_tfms, valid_tfms).to_databunch(bs, c_in=3, num_workers=workers)


def imagenette_labelled(path: str | os.PathLike, train_tfms: list, valid_tfms: list) -> SplitData:
    """Lesson 08's data block: the image files, split by their grandparent folder, labelled by their parent folder."""
    il = ImageList.from_files(path, tfms=train_tfms)
    sd = SplitData.split_by_func(il, partial(grandparent_splitter, valid_name=valid_folder_name(path)))
    ll = label_by_func(sd, parent_labeler, proc_y=CategoryProcessor())
    ll.valid.x.tfms = valid_tfms
    return ll


# ------------------------------------------------------------------- a pipeline worth the GPU: decode JPEGs there


class JpegBytes(Dataset):
    """(the file's bytes as a uint8 tensor, label) per item: DataLoader workers only read, the GPU decodes."""

    def __init__(self, ld: LabeledData):
        self.files, self.ys, self.proc_y = list(ld.x.items), list(ld.y.items), ld.proc_y  # proc_y: the class names

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return read_file(str(self.files[i])), self.ys[i]


def collate_bytes(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Files differ in length, so a batch is a list of byte tensors and a tensor of labels."""
    return [b for b, _ in batch], torch.tensor([y for _, y in batch])


def decode_jpegs(raw: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """RGB uint8 (3, H, W) images on `device` from JPEG bytes, the whole batch in one call (nvJPEG on a GPU).

    A file the batch decoder refuses (a CMYK JPEG, a PNG named .JPEG) is decoded alone, on the CPU if need be.
    """
    try:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return [decode_one(r, device) for r in raw]


def decode_one(raw: torch.Tensor, device: torch.device) -> torch.Tensor:
    try:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return decode_image(raw, mode=ImageReadMode.RGB).to(device)


class GpuJpegLoader:
    """Wrap a DataLoader of `JpegBytes`: decode each batch on `device`, crop and resize it there, flip: uint8 batches.

    The crops are the CPU pipeline's own transforms (`RandomResizedCrop`, `CenterCrop`) asked only for their box,
    so both paths cut the same kind of crop; resizing is bilinear with antialiasing, rounded back to uint8 as the CPU
    path's batches are (`norm_imagenette` then makes them floats).
    """

    def __init__(self, dl: DataLoader, crop: GeneralCrop, p_flip: float, device: torch.device, seed: int | None = None):
        self.dl, self.crop, self.p_flip, self.device = dl, crop, p_flip, torch.device(device)
        self.rng = random.Random(seed)

    dataset = property(lambda self: self.dl.dataset)
    sampler = property(lambda self: self.dl.sampler)
    batch_size = property(lambda self: self.dl.batch_size)

    def __len__(self) -> int:
        return len(self.dl)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for raw, yb in self.dl:
            yield self.decode(raw), yb.to(self.device, non_blocking=True)

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.crop_one(img) for img in decode_jpegs(raw, self.device)])

    def crop_one(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        left, top, right, bottom = self.crop.get_corners(w, h, *self.crop.crop_dims(w, h))
        tw, th = self.crop.size
        out = TF.resized_crop(img.float(), round(top), round(left), max(1, round(bottom - top)),
                              max(1, round(right - left)), [th, tw], antialias=True)
        out = out.flip(-1) if self.rng.random() < self.p_flip else out
        return out.clamp_(0, 255).round_().to(torch.uint8)


def imagenette_gpu_dls(path: str | os.PathLike, size: int = 128, bs: int = 64, workers: int | None = None,
                       augment: bool = True, device: torch.device | str | None = None) -> DataBunch:
    """`imagenette_dls` with the JPEGs decoded on `device` (`decode_jpeg(device="cuda")`): the same crops and flips.

    Workers only read files; in a process group each rank reads its share (`teachkit.distributed.distributed_dl`).
    """
    device = torch.device(device) if device is not None else default_device()
    ll = imagenette_labelled(path, [], [])
    nw = default_num_workers() if workers is None else workers
    kw = dict(num_workers=nw, collate_fn=collate_bytes, pin_memory=False, persistent_workers=nw > 0)
    train_dl = DataLoader(JpegBytes(ll.train), bs, shuffle=True, **kw)
    valid_dl = DataLoader(JpegBytes(ll.valid), bs * 2, shuffle=False, **kw)
    if dist.is_initialized():  # shard before wrapping: DistributedCallback can't re-shard a GpuJpegLoader
        train_dl, valid_dl = distributed_dl(train_dl, True), distributed_dl(valid_dl, False)
    train_crop = RandomResizedCrop(size, scale=(0.35, 1)) if augment else CenterCrop(size)
    return DataBunch(GpuJpegLoader(train_dl, train_crop, 0.5 if augment else 0.0, device),
                     GpuJpegLoader(valid_dl, CenterCrop(size), 0.0, device), c_in=3, c_out=len(ll.train.proc_y.vocab))


# ------------------------------------------------------------------- the model side: layout and compiler

class ChannelsLast(Callback):
    """Weights and batches in the (N, H, W, C) layout ("channels last") that GPU tensor cores convolve fastest.

    Runs before `DistributedCallback` so DDP wraps the converted weights; on a CPU it works, rarely faster.
    """

    order = -3

    def before_fit(self):
        self.model.to(memory_format=torch.channels_last)

    def before_batch(self):
        if self.xb.ndim == 4:
            self.learn.xb = self.xb.contiguous(memory_format=torch.channels_last)


def compile_unsupported(device: torch.device) -> str | None:
    """Why `torch.compile` can't run here (None when it can): Python version, no Triton for the GPU, no C++ compiler."""
    from torch._dynamo.eval_frame import is_dynamo_supported
    from torch.utils._triton import has_triton
    if not is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} with torch {torch.__version__}"
    if device.type == "cuda" and not has_triton():
        return "torch.compile needs Triton for GPU kernels and it is not installed"
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        return "torch.compile needs a C++ compiler (g++ or clang++) for CPU kernels and none was found"
    return None


class Compile(Callback):
    """Train and validate through `torch.compile(model)`: the first batches are slow (compiling), the rest faster.

    Where it can't run (`compile_unsupported`) it says why and trains the plain model; an error while compiling
    falls back to eager PyTorch for that piece (dynamo's `suppress_errors`), with a warning.
    """

    order = -1  # after DistributedCallback (-2) has picked the model of this pass: DDP to train, the module to validate

    def __init__(self, device: torch.device | str | None = None, **kwargs: Any):
        self.device = torch.device(device) if device is not None else default_device()
        self.kwargs, self.compiled, self.original = kwargs, {}, {}

    def before_fit(self):
        self.reason = compile_unsupported(self.device) if "backend" not in self.kwargs else None
        if self.reason:
            print(f"--compile: {self.reason}; training without torch.compile.")
        self.suppress = torch._dynamo.config.suppress_errors
        torch._dynamo.config.suppress_errors = True
        self.use_compiled()

    def before_train(self):
        self.use_compiled()

    def before_validate(self):
        self.use_compiled()

    def use_compiled(self) -> None:
        m = self.model
        if self.reason or m in self.original:
            return
        if m not in self.compiled:
            self.compiled[m] = torch.compile(m, **self.kwargs)
            self.original[self.compiled[m]] = m
        self.learn.model = self.compiled[m]

    def after_fit(self):
        self.learn.model = self.original.get(self.model, self.model)
        self.compiled, self.original = {}, {}
        torch._dynamo.config.suppress_errors = self.suppress
