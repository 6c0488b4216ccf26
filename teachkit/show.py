"""Look at images: one, or a grid with titles. Accepts PIL images and CHW tensors (uint8 or float)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

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
    """Draw images in a grid, `ncols` wide, each `size` inches square."""
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
