"""Per-item transforms for images (lesson 08): each a callable with an `_order` that `compose` sorts by.

A transform may also define `before_load(img)`: `ImageList` calls it on the freshly opened, not yet
decoded image. That is the only moment Pillow can decode a JPEG at 1/2, 1/4 or 1/8 scale (`draft`),
which `ResizeFixed` uses to skip most of the decoding work for big photos.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


class Transform:
    """Base of per-item transforms: `_order` says where in the pipeline it runs (lower first)."""

    _order = 0


def make_rgb(item: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK and RGBA images all become 3-channel RGB."""
    if item.mode == "RGB":
        return item
    if item.mode == "P" and "transparency" in item.info:  # Pillow asks for RGBA first, else it warns
        item = item.convert("RGBA")
    return item.convert("RGB")


class ResizeFixed(Transform):
    """Resize to a fixed square `size` (ignoring aspect ratio), as lesson 08 does before batching.

    With `draft=True` a JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that is still at least
    `size` on both sides, then resized: the same picture for a fraction of the decoding time.
    """

    _order = 10

    def __init__(self, size: int | tuple[int, int], resample: Image.Resampling = Image.Resampling.BILINEAR,
                 draft: bool = True):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"ResizeFixed: size is a side in pixels or a (width, height) pair of them, each >= 1; "
                             f"got {size!r}.")
        self.resample, self.draft = resample, draft

    def before_load(self, item: Image.Image) -> None:
        """Ask a not-yet-decoded JPEG to decode at reduced scale; other formats ignore it."""
        if self.draft:
            item.draft("RGB", self.size)

    def __call__(self, item: Image.Image) -> Image.Image:
        return item if item.size == self.size else item.resize(self.size, self.resample)

    def __repr__(self) -> str:
        return f"ResizeFixed(size={self.size}, resample={self.resample.name}, draft={self.draft})"


def to_byte_tensor(item: Image.Image) -> torch.Tensor:
    """PIL image (H, W, C uint8) -> contiguous uint8 tensor (C, H, W); a 1-channel image gets C=1."""
    arr = np.asarray(item)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())  # a C-ordered, writable copy; NumPy makes it several times faster than torch


to_byte_tensor._order = 20


def to_float_tensor(item: torch.Tensor) -> torch.Tensor:
    """uint8 tensor -> float tensor in [0, 1] (a new tensor: the input is left as it was)."""
    return item.float() / 255.0


to_float_tensor._order = 30
