"""Per-item transforms for images (lesson 08): each a callable with an `_order` that `compose` sorts by."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


class Transform:
    """Base of per-item transforms: `_order` says where in the pipeline it runs (lower first)."""

    _order = 0


def make_rgb(item: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK and RGBA images all become 3-channel RGB."""
    return item if item.mode == "RGB" else item.convert("RGB")


class ResizeFixed(Transform):
    """Resize to a fixed square `size` (ignoring aspect ratio), as lesson 08 does before batching."""

    _order = 10

    def __init__(self, size: int | tuple[int, int], resample: Image.Resampling = Image.Resampling.BILINEAR):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.resample = resample

    def __call__(self, item: Image.Image) -> Image.Image:
        return item.resize(self.size, self.resample)


def to_byte_tensor(item: Image.Image) -> torch.Tensor:
    """PIL image (H, W, C uint8) -> uint8 tensor (C, H, W), without copying twice."""
    return torch.from_numpy(np.asarray(item).copy()).permute(2, 0, 1).contiguous()


to_byte_tensor._order = 20


def to_float_tensor(item: torch.Tensor) -> torch.Tensor:
    """uint8 tensor -> float tensor in [0, 1]."""
    return item.float().div_(255.0)


to_float_tensor._order = 30
