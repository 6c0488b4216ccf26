"""Imagenette for the lessons: the folder (the real set when it can be had, else the generated look-alike, and it says
which) and lesson 11's input pipeline over it.

`get_data` turns a dataset name (or a folder) into a folder of images; `imagenette_dls` is lesson 08's data block
with lesson 10's augmentation on the training set. `python -m teachkit.train` and notebook 11 call both. With
`gpu_decode` the JPEGs are decoded on the GPU (`teachkit.data.gpu_jpeg`), with the same crops and flips. DataLoader
workers stay alive between epochs (within a fit) and fill pinned memory for asynchronous copies in both paths.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..augment import CenterCrop, PilRandomFlip, RandomResizedCrop
from ..distributed import distributed_dl
from ..transforms import make_rgb, to_byte_tensor
from ..utils import default_device
from .block import CategoryProcessor, ImageList, SplitData, grandparent_splitter, label_by_func, parent_labeler
from .databunch import DataBunch, default_num_workers
from .datasets import (CorruptArchiveError, DownloadError, URLs, archive_name, data_dir, dataset_name, smoke_mode,
                       untar_data, valid_folder_name)
from .gpu_jpeg import GpuJpegLoader, JpegBytes, collate_bytes
from .lookalike import make_imagenette_like

__all__ = ["imagenette", "DATASETS", "IMAGENETTE_SIZES", "SMOKE", "get_data", "imagenette_generated",
           "imagenette_labelled", "imagenette_dls", "imagenette_gpu_dls"]


def imagenette(size: int | None = 160, dest: str | os.PathLike | None = None) -> Path:
    """Imagenette's folder: the real one (size 160, 320 or None for full size) when cached or downloadable,
    else a generated Imagenette-like set in the cache. Prints which it is; `teachkit.data.lookalike.is_synthetic(path)`
    tells too.

    The generated set has 700 train + 300 val images. With `TEACHKIT_SMOKE=1` (quick test runs of the
    lessons) it is always a tiny generated set, 100 + 50 images, and nothing is downloaded. A cache that
    can't be written (a full disk) raises `CacheWriteError` rather than falling back: nothing would fit there.
    """
    urls = {160: URLs.IMAGENETTE_160, 320: URLs.IMAGENETTE_320, None: URLs.IMAGENETTE}
    if size not in urls:
        raise ValueError(f"imagenette(size) takes 160, 320 or None (full size), got {size!r}.")
    root = Path(dest).expanduser() if dest is not None else data_dir()
    name = dataset_name(archive_name(urls[size]))
    if smoke_mode():
        why, (n_train, n_valid), name = "TEACHKIT_SMOKE is set: a tiny dataset for a quick run.", (100, 50), name + "-smoke"
    else:
        try:
            path = untar_data(urls[size], root)
            print(f"Using the real {name} at {path}.")
            return path
        except (DownloadError, CorruptArchiveError) as e:
            why, (n_train, n_valid) = str(e), (700, 300)
    path = make_imagenette_like(root / f"{name}-synthetic", n_train, n_valid, short_side=size)
    print(f"{why}\nUsing a GENERATED Imagenette-like set instead ({n_train} train + {n_valid} val images of coloured "
          f"shapes) at {path}. Figures will differ from the real dataset's.")
    return path


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
    """Lesson 08's data block: the image files, split by their grandparent folder, labelled by their parent folder.

    Linked folders are followed (each real folder once): a dataset whose train/ and val/ live on another disk."""
    il = ImageList.from_files(path, tfms=train_tfms, followlinks=True)
    sd = SplitData.split_by_func(il, partial(grandparent_splitter, valid_name=valid_folder_name(path)))
    ll = label_by_func(sd, parent_labeler, proc_y=CategoryProcessor())
    ll.valid.x.tfms = valid_tfms
    return ll


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
