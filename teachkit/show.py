"""Look at images: one, a titled grid, a one-canvas montage, and what an augmentation does to one image.

Accepts PIL images and CHW tensors (uint8 or float). `show_images` draws an axes per image (titles you can
restyle); `image_grid` packs images onto one canvas with `torchvision.utils.make_grid`, which draws many times
faster (matplotlib lays out every axes), for panels.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from .augment import BatchTransform
from .data.databunch import DataBunch, close_workers, vocab_of
from .transforms import make_rgb, to_byte_tensor, to_float_tensor
from .utils import compose, derive_seed, listify

__all__ = ["to_hwc", "to_chw", "show_image", "show_images", "fit_in_cell", "image_grid", "montage", "sample_grid",
           "show_samples", "show_batch"]

ImageLike = Image.Image | torch.Tensor | np.ndarray


def to_hwc(im: ImageLike) -> np.ndarray:
    """Whatever the image is, an HWC (or HW) array matplotlib can draw."""
    if isinstance(im, Image.Image):
        return np.asarray(im)
    if isinstance(im, torch.Tensor):
        im = im.detach().cpu()
        if im.ndim == 3 and im.shape[0] in (1, 3, 4):
            im = im.permute(1, 2, 0)
        im = im.squeeze(-1) if im.ndim == 3 and im.shape[-1] == 1 else im
        return (im.float().clamp(0, 1) if im.is_floating_point() else im).numpy()
    return np.asarray(im)


def to_chw(im: Image.Image | torch.Tensor) -> torch.Tensor:
    """A PIL image or a CHW tensor (uint8 counted as /255) -> a 3-channel float CHW tensor in [0, 1] on the CPU."""
    if isinstance(im, Image.Image):
        return to_float_tensor(to_byte_tensor(make_rgb(im)))
    im = im.detach().cpu()
    im = im.float() / 255 if not im.is_floating_point() else im.float()
    return im.expand(3, -1, -1) if im.shape[0] == 1 else im[:3]


def show_image(im: ImageLike, ax: plt.Axes | None = None, title: str | None = None, figsize: tuple[float, float] = (3, 3)) -> plt.Axes:
    """Draw one image without axes, optionally titled."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    arr = to_hwc(im)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def show_images(ims: Sequence[ImageLike], ncols: int = 4, titles: Sequence[str] | None = None, size: float = 2.5) -> plt.Figure:
    """Draw images in a grid, `ncols` wide, each `size` inches square, an axes (and title) per image."""
    if len(ims) == 0:
        raise ValueError("show_images got no images to show.")
    ncols = min(ncols, len(ims))
    nrows = -(-len(ims) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    titles = list(titles) if titles is not None else [None] * len(ims)
    for ax, im, t in zip(axes.flat, ims, titles):
        show_image(im, ax=ax, title=t)
    for ax in axes.flat[len(ims):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def fit_in_cell(x: torch.Tensor, cell: int, fill: float = 1.0) -> torch.Tensor:
    """A CHW image shrunk (aspect kept, antialiased) to fit a `cell` square, centred on a `fill` background."""
    h, w = x.shape[-2:]
    if max(h, w) > cell:
        k = cell / max(h, w)
        x = F.interpolate(x[None], size=(max(1, round(h * k)), max(1, round(w * k))), mode="bilinear",
                          antialias=True, align_corners=False)[0].clamp_(0, 1)
        h, w = x.shape[-2:]
    out = torch.full((x.shape[0], cell, cell), fill)
    top, left = (cell - h) // 2, (cell - w) // 2
    out[:, top:top + h, left:left + w] = x
    return out


def image_grid(ims: Sequence[Image.Image | torch.Tensor], ncols: int, cell: int = 128, pad: int = 6) -> torch.Tensor:
    """Images of any sizes on one white CHW canvas: each fitted in a `cell` square, `ncols` a row, `pad` apart.

    Cell (row, col) starts at pixel (pad + row * (cell + pad), pad + col * (cell + pad)).
    """
    if len(ims) == 0:
        raise ValueError("image_grid got no images to lay out.")
    tiles = [fit_in_cell(to_chw(im), cell) for im in ims]
    if len(tiles) == 1:  # make_grid returns a lone image as it is, without the padding around it
        return F.pad(tiles[0], [pad] * 4, value=1.0)
    return make_grid(tiles, nrow=ncols, padding=pad, pad_value=1.0)


def montage(original: Image.Image | torch.Tensor, samples: Sequence[Image.Image | torch.Tensor], cell: int = 128,
            pad: int = 6) -> tuple[torch.Tensor, int]:
    """The original, large, on the left of its samples (one row up to 3, then about twice as many columns as rows):
    a CHW canvas with no gaps to fill; and the width of the original's column."""
    rows = 1 if len(samples) <= 3 else max(2, round(math.sqrt(len(samples) / 2)))
    big = rows * cell + (rows - 1) * pad  # as tall as the rows of samples beside it
    left = image_grid([original], 1, big, pad)
    return torch.cat([left, image_grid(samples, math.ceil(len(samples) / rows), cell, pad)], dim=2), left.shape[2]


# ---------------------------------------------------------------- what an augmentation does


def sample_grid(tfm: Callable | Sequence[Callable], img: Image.Image | torch.Tensor, n: int = 8, seed: int | None = None) -> list:
    """`n` random outcomes of `tfm` (one transform or a pipeline) on the same image, to see what it really does.

    Batched transforms get the image repeated n times as one batch (and return CHW tensors); others are called
    n times. With a `seed`, copies of the transforms are reseeded (yours keep their own random stream), so the
    same seed draws the same grid.
    """
    tfms = listify(tfm)
    if seed is not None:
        tfms = copy.deepcopy(tfms)
        for i, t in enumerate(tfms):
            if hasattr(t, "reseed"):
                t.reseed(derive_seed(seed, i))
    if tfms and all(isinstance(t, BatchTransform) for t in tfms):
        return list(compose(to_chw(img)[None].expand(n, -1, -1, -1), tfms))
    return [compose(img, tfms) for _ in range(n)]


def show_samples(tfm: Callable | Sequence[Callable], img: Image.Image | torch.Tensor, n: int = 8, ncols: int = 4,
                 seed: int | None = None, size: float = 2.5) -> plt.Figure:
    """Draw `n` random outcomes of `tfm` on `img` as a grid: the first thing to do with any augmentation."""
    return show_images(sample_grid(tfm, img, n, seed), ncols=ncols, size=size)


def show_batch(data: DataBunch, n: int = 8, ncols: int = 4, valid: bool = False, size: float = 2.5,
               names: Mapping[Any, str] | None = None) -> Any:
    """Draw the first `n` images of a training (or `valid`) batch, titled with their labels.

    `names` maps labels to what to print, e.g. `teachkit.data.datasets.IMAGENETTE_CLASSES` for synset ids.
    """
    dl = data.valid_dl if valid else data.train_dl
    xb, yb = next(iter(dl))
    close_workers([dl])  # one batch is all it needs: no worker left waiting (see `close_workers`)
    xb, yb = xb[:n], yb[:n]
    vocab = vocab_of(dl.dataset)
    labels = [vocab[int(y)] if vocab is not None else str(int(y)) if y.ndim == 0 else str(y.tolist()) for y in yb]
    titles = [names.get(o, o) if names else o for o in labels]
    return show_images(list(xb), ncols=ncols, titles=[str(t) for t in titles], size=size)
