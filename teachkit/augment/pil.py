"""Data augmentation per image, on PIL (lesson 10): flips, dihedral turns, crops and a perspective tilt.

All of them work on bytes (fast) before the image becomes a tensor; each crop resamples only once. The batched
tensor transforms, which run on the GPU, are in `teachkit.augment.batch`; `teachkit.show.show_samples` draws
what a transform does.

Randomness is never global: every transform owns a `random.Random`, seeded from `seed`, or from the global RNG
when `seed` is None (so `teachkit.utils.set_seed` still makes a whole cell reproducible). `reseed(seed)` starts
it over.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
from PIL import Image

from ..transforms import Transform, make_rgb

__all__ = ["GEOMETRIC_RESAMPLING", "PilTransform", "PilRandomFlip", "PilRandomDihedral", "GeneralCrop", "RandomCrop",
           "CenterCrop", "RandomResizedCrop", "PilTiltRandomCrop", "find_coeffs", "warp", "tilted_corners",
           "process_sz", "fit_crop", "centered"]

Size = int | tuple[int, int]

# ---------------------------------------------------------------- checks


def check_p(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p is the probability of applying the transform and must be in [0, 1]; got {p}.")
    return p


def check_range(lo: float, hi: float, what: str, name: str, low: float = 0.0, high: float = math.inf) -> None:
    if not low < lo <= hi <= high:
        raise ValueError(f"{name}: {what} must satisfy {low} < min <= max <= {high}; got ({lo}, {hi}).")


def check_magnitude(magnitude: float, name: str) -> float:
    if magnitude < 0:
        raise ValueError(f"{name}: magnitude is how far corners move, a fraction of the side, and can't be negative; "
                         f"got {magnitude}. Use 0 for no tilt.")
    return magnitude


GEOMETRIC_RESAMPLING = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def _check_resample(resample: Image.Resampling, name: str) -> Image.Resampling:
    """Pillow's `Image.transform` accepts only NEAREST, BILINEAR and BICUBIC: say so now, not at the first image."""
    resample = Image.Resampling(resample)
    if resample not in GEOMETRIC_RESAMPLING:
        raise ValueError(f"{name}: resample={resample.name} is not supported by Pillow's geometric transforms; "
                         f"use one of {[r.name for r in GEOMETRIC_RESAMPLING]}.")
    return resample


def process_sz(size: Size) -> tuple[int, int]:
    """An int or a (width, height) pair -> (width, height): `128` means a 128x128 square."""
    w, h = (size, size) if isinstance(size, int) else tuple(size)
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, as an int or a (width, height) pair; got {size}.")
    return int(w), int(h)


# ---------------------------------------------------------------- per image, on PIL


class PilTransform(Transform):
    """A random transform of a PIL image, applied with probability `p`, with its own seedable `random.Random`."""

    _order = 11  # after ResizeFixed (10), before to_byte_tensor (20)

    def __init__(self, p: float = 1.0, seed: int | None = None):
        self.p = check_p(p, type(self).__name__)
        self.reseed(seed)

    def reseed(self, seed: int | None = None) -> None:
        """Start the random stream over: the same seed gives the same sequence of outputs."""
        self.seed = seed
        self.rng = random.Random(random.getrandbits(64) if seed is None else seed)

    def __call__(self, item: Image.Image) -> Image.Image:
        item = make_rgb(item)  # grayscale, RGBA, CMYK, palette: all become RGB, never an error
        return self.encodes(item) if self.rng.random() < self.p else self.skip(item)

    def encodes(self, item: Image.Image) -> Image.Image:
        """The random change; subclasses define it."""
        raise NotImplementedError

    def skip(self, item: Image.Image) -> Image.Image:
        """What happens when the dice say no (probability 1 - p): nothing."""
        return item

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'rng')})"


class PilRandomFlip(PilTransform):
    """Mirror left-right with probability `p`: the cheapest augmentation there is, done on bytes."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed)

    def encodes(self, item: Image.Image) -> Image.Image:
        return item.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


class PilRandomDihedral(PilTransform):
    """With probability `p`, one of the 7 other symmetries of the square (flips, quarter turns, transposes)."""

    def __init__(self, p: float = 0.75, seed: int | None = None):
        super().__init__(p, seed)

    def encodes(self, item: Image.Image) -> Image.Image:
        return item.transpose(self.rng.choice(list(Image.Transpose)))


def fit_crop(w: float, h: float, tw: int, th: int) -> tuple[float, float]:
    """Largest (width, height) inside a w x h image with the aspect ratio of the target, so resizing won't squash."""
    k = min(w / tw, h / th)
    return tw * k, th * k


def centered(w: float, h: float, wc: float, hc: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a wc x hc box in the middle of a w x h image."""
    left, top = (w - wc) / 2, (h - hc) / 2
    return left, top, left + wc, top + hc


def inside(corners: tuple[float, float, float, float], w: int, h: int) -> bool:
    """Whether the box (left, top, right, bottom) lies within a w x h image, as `Image.resize(box=...)` requires."""
    left, top, right, bottom = corners
    return 0 <= left < right <= w and 0 <= top < bottom <= h


class GeneralCrop(PilTransform):
    """Crop a box given by `get_corners` and resize it to `size` in one resampling step."""

    def __init__(self, size: Size = 128, crop_size: Size | None = None,
                 resample: Image.Resampling = Image.Resampling.BILINEAR, p: float = 1.0, seed: int | None = None):
        super().__init__(p, seed)
        self.size, self.resample = process_sz(size), _check_resample(resample, type(self).__name__)
        self.crop_size = None if crop_size is None else process_sz(crop_size)

    def default_crop_size(self, w: int, h: int) -> tuple[float, float]:
        """The crop when `crop_size` is None: the largest one with the output's aspect ratio."""
        return fit_crop(w, h, *self.size)

    def crop_dims(self, w: int, h: int) -> tuple[float, float]:
        """Crop (width, height) for a w x h image, never larger than the image."""
        wc, hc = self.default_crop_size(w, h) if self.crop_size is None else self.crop_size
        return min(wc, w), min(hc, h)

    def get_corners(self, w: int, h: int, wc: float, hc: float) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the box to keep; subclasses make it random."""
        return centered(w, h, wc, hc)

    def crop(self, item: Image.Image, corners: tuple[float, float, float, float]) -> Image.Image:
        """Map the box onto a `size` image: the course's `Image.Transform.EXTENT` mapping, done by `resize(box=)`.

        `resize` with a box is the same mapping, about twice as fast, and it antialiases when shrinking (better
        quality); it only takes boxes inside the image, so a box reaching outside goes through EXTENT (black there).
        """
        if inside(corners, *item.size):
            return item.resize(self.size, self.resample, box=corners)
        return item.transform(self.size, Image.Transform.EXTENT, corners, resample=self.resample)

    def encodes(self, item: Image.Image) -> Image.Image:
        return self.crop(item, self.get_corners(*item.size, *self.crop_dims(*item.size)))

    def skip(self, item: Image.Image) -> Image.Image:
        return self.crop(item, centered(*item.size, *self.crop_dims(*item.size)))  # still the requested size


class RandomCrop(GeneralCrop):
    """A `crop_size` box (default: the largest with the output's aspect) at a random place, resized to `size`."""

    def get_corners(self, w: int, h: int, wc: float, hc: float) -> tuple[float, float, float, float]:
        left, top = self.rng.uniform(0, w - wc), self.rng.uniform(0, h - hc)
        return left, top, left + wc, top + hc


class CenterCrop(GeneralCrop):
    """The middle of the image, zoomed in by `scale` (1.14 keeps ~77% of the area), resized to `size`: for validation."""

    def __init__(self, size: Size = 128, scale: float = 1.14, resample: Image.Resampling = Image.Resampling.BILINEAR):
        if scale < 1:
            raise ValueError(f"CenterCrop: scale is a zoom factor >= 1 (1 keeps the largest centred crop, 1.14 zooms "
                             f"in 14%); got {scale}.")
        super().__init__(size, resample=resample)
        self.scale = scale

    def default_crop_size(self, w: int, h: int) -> tuple[float, float]:
        wc, hc = fit_crop(w, h, *self.size)
        return wc / self.scale, hc / self.scale


class RandomResizedCrop(GeneralCrop):
    """The ImageNet-winning augmentation: a box of random area (`scale`) and aspect (`ratio`), resized to `size`."""

    def __init__(self, size: Size = 128, scale: tuple[float, float] = (0.35, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), resample: Image.Resampling = Image.Resampling.BILINEAR,
                 p: float = 1.0, seed: int | None = None):
        check_range(*scale, "scale (fractions of the image area)", "RandomResizedCrop", high=1.0)
        check_range(*ratio, "ratio (width / height of the crop)", "RandomResizedCrop")
        super().__init__(size, resample=resample, p=p, seed=seed)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def get_corners(self, w: int, h: int, wc: float, hc: float) -> tuple[float, float, float, float]:
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):  # a box that fits inside the image, usually at the first try
            area = self.rng.uniform(*self.scale) * w * h
            aspect = math.exp(self.rng.uniform(*log_ratio))
            new_w, new_h = math.sqrt(area * aspect), math.sqrt(area / aspect)
            if new_w <= w and new_h <= h:
                left, top = self.rng.uniform(0, w - new_w), self.rng.uniform(0, h - new_h)
                return left, top, left + new_w, top + new_h
        aspect = min(max(w / h, self.ratio[0]), self.ratio[1])  # give up: the largest centred box in ratio range
        return centered(w, h, *fit_crop(w, h, aspect * 1000, 1000))


def find_coeffs(orig_pts: Sequence | torch.Tensor, targ_pts: Sequence | torch.Tensor) -> torch.Tensor:
    """The 8 homography coefficients sending each of 4 target points onto its original point, by solving Ax = B.

    Works on one set of points (4, 2) or a batch (..., 4, 2); returns (..., 8), in float64 for precision.
    """
    o = torch.as_tensor(orig_pts, dtype=torch.float64)
    t = torch.as_tensor(targ_pts, dtype=torch.float64)
    tx, ty, ox, oy = t[..., 0], t[..., 1], o[..., 0], o[..., 1]
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    rows_x = torch.stack([tx, ty, one, zero, zero, zero, -ox * tx, -ox * ty], -1)  # ox * (g tx + h ty + 1) = a tx + b ty + c
    rows_y = torch.stack([zero, zero, zero, tx, ty, one, -oy * tx, -oy * ty], -1)  # oy * (g tx + h ty + 1) = d tx + e ty + f
    A = torch.stack([rows_x, rows_y], -2).flatten(-3, -2)  # (..., 8, 8): rows x0, y0, x1, y1, ...
    return torch.linalg.solve(A, o.flatten(-2))  # course-v3's torch.solve(B, A) had the arguments the other way round


def warp(item: Image.Image, size: Size, src_coords: Sequence, resample: Image.Resampling = Image.Resampling.BILINEAR) -> Image.Image:
    """Map the quadrilateral `src_coords` (top-left, bottom-left, bottom-right, top-right) onto a `size` image."""
    w, h = process_sz(size)
    coeffs = find_coeffs(src_coords, ((0, 0), (0, h), (w, h), (w, 0)))
    return item.transform((w, h), Image.Transform.PERSPECTIVE, coeffs.tolist(), resample=resample)


def tilted_corners(up: float, lr: float) -> list[tuple[float, float]]:
    """The unit square's corners (top-left, bottom-left, bottom-right, top-right) tilted, then shrunk back inside it.

    Pushing the corners by `up` (along x) and `lr` (along y) makes a quadrilateral that sticks out of the square by
    |up| and |lr| on each side; reading pixels there would bring in black wedges. So the quadrilateral is scaled
    back inside the square: the crop is taken inside the tilted region, and never reads outside the image.
    """
    corners = ((-up, -lr), (up, 1 + lr), (1 - up, 1 - lr), (1 + up, lr))  # course-v3's corner pattern
    return [((x + abs(up)) / (1 + 2 * abs(up)), (y + abs(lr)) / (1 + 2 * abs(lr))) for x, y in corners]


class PilTiltRandomCrop(GeneralCrop):
    """A random crop seen in perspective: its corners move by up to `magnitude` of its sides, one resample.

    The tilted quadrilateral always lies inside the crop box (see `tilted_corners`), so no pixel comes from
    outside the image. Up to magnitude 0.25 the quadrilateral stays convex; beyond, it can fold over itself.
    """

    def __init__(self, size: Size = 128, crop_size: Size | None = None, magnitude: float = 0.0,
                 resample: Image.Resampling = Image.Resampling.BILINEAR, p: float = 1.0, seed: int | None = None):
        super().__init__(size, crop_size, resample, p, seed)
        self.magnitude = check_magnitude(magnitude, "PilTiltRandomCrop")

    def encodes(self, item: Image.Image) -> Image.Image:
        wc, hc = self.crop_dims(*item.size)
        up, lr = (self.rng.uniform(-self.magnitude, self.magnitude) for _ in range(2))
        left, top = self.rng.uniform(0, item.size[0] - wc), self.rng.uniform(0, item.size[1] - hc)
        return warp(item, self.size, [(left + x * wc, top + y * hc) for x, y in tilted_corners(up, lr)], self.resample)
