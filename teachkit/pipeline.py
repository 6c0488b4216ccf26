"""The Imagenette input pipeline of lesson 11: which folder to read, and the DataBunch built from it.

`get_data` turns a dataset name (or a folder) into a folder of images; `imagenette_dls` is lesson 08's data block
with lesson 10's augmentation on the training set. `python -m teachkit.train` and notebook 11 call both.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from .augment import CenterCrop, PilRandomFlip, RandomResizedCrop
from .data import CategoryProcessor, DataBunch, ImageList, SplitData, grandparent_splitter, label_by_func, parent_labeler
from .datasets import URLs, data_dir, imagenette, make_imagenette_like, smoke_mode, untar_data, valid_folder_name
from .transforms import make_rgb, to_byte_tensor, to_float_tensor

__all__ = ["DATASETS", "IMAGENETTE_SIZES", "SMOKE", "get_data", "imagenette_generated", "imagenette_dls"]

DATASETS = {
    "imagenette": URLs.IMAGENETTE, "imagenette-160": URLs.IMAGENETTE_160, "imagenette-320": URLs.IMAGENETTE_320,
    "imagewoof": URLs.IMAGEWOOF, "imagewoof-160": URLs.IMAGEWOOF_160, "imagewoof-320": URLs.IMAGEWOOF_320,
}
"""Names `get_data` accepts, besides `generated` and a folder. Imagenette falls back to the generated set offline."""

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
