"""Data augmentation (lesson 10): per-image PIL transforms, and batched tensor transforms that run on any device.

Per image, on PIL: flips, dihedral turns, crops and a perspective tilt, all done on bytes (fast) before the
image becomes a tensor. Per batch, on tensors: flips, rotations, zooms and tilts are each a 3x3 matrix per
sample; their product is turned into one sampling grid and applied with ONE `grid_sample` call, so every
image is resampled once, all at once, on the GPU when there is one.

Randomness is never global: every transform owns its generator (`random.Random` for PIL ones,
`torch.Generator` for batched ones), seeded from `seed`, or from the global RNGs when `seed` is None (so
`teachkit.utils.set_seed` still makes a whole cell reproducible). `reseed(seed)` starts it over.
"""
from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from PIL import Image

from .show import show_image, show_images
from .transforms import ResizeFixed, Transform, make_rgb, to_byte_tensor, to_float_tensor
from .utils import compose, derive_seed, listify

__all__ = ["Transform", "make_rgb", "ResizeFixed", "to_byte_tensor", "to_float_tensor", "show_image", "show_images",
           "PilTransform", "PilRandomFlip", "PilRandomDihedral", "GeneralCrop", "RandomCrop", "CenterCrop",
           "RandomResizedCrop", "PilTiltRandomCrop", "find_coeffs", "warp", "process_sz",
           "flip_matrix", "rotation_matrix", "zoom_matrix", "tilt_matrix", "homography_grid", "apply_matrices",
           "BatchTransform", "BatchFlip", "BatchRotate", "BatchZoom", "BatchWarp", "BatchAugment",
           "sample_grid", "show_samples"]

Size = int | tuple[int, int]

# ---------------------------------------------------------------- checks


def _check_p(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p is the probability of applying the transform and must be in [0, 1]; got {p}.")
    return p


def _check_range(lo: float, hi: float, what: str, name: str, low: float = 0.0, high: float = math.inf) -> None:
    if not low < lo <= hi <= high:
        raise ValueError(f"{name}: {what} must satisfy {low} < min <= max <= {high}; got ({lo}, {hi}).")


def _check_magnitude(magnitude: float, name: str) -> float:
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
        self.p = _check_p(p, type(self).__name__)
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


class GeneralCrop(PilTransform):
    """Crop a box given by `get_corners` and resize it to `size` in one `Image.Transform.EXTENT` call."""

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
        _check_range(*scale, "scale (fractions of the image area)", "RandomResizedCrop", high=1.0)
        _check_range(*ratio, "ratio (width / height of the crop)", "RandomResizedCrop")
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


class PilTiltRandomCrop(GeneralCrop):
    """A random crop whose corners also move by up to `magnitude` of its sides: a perspective tilt, one resample."""

    def __init__(self, size: Size = 128, crop_size: Size | None = None, magnitude: float = 0.0,
                 resample: Image.Resampling = Image.Resampling.BILINEAR, p: float = 1.0, seed: int | None = None):
        super().__init__(size, crop_size, resample, p, seed)
        self.magnitude = _check_magnitude(magnitude, "PilTiltRandomCrop")

    def encodes(self, item: Image.Image) -> Image.Image:
        wc, hc = self.crop_dims(*item.size)
        up, lr = (self.rng.uniform(-self.magnitude, self.magnitude) for _ in range(2))
        left, top = self.rng.uniform(0, item.size[0] - wc), self.rng.uniform(0, item.size[1] - hc)
        corners = ((-up, -lr), (up, 1 + lr), (1 - up, 1 - lr), (1 + up, lr))  # unit square, corners pushed in/out
        return warp(item, self.size, [(left + x * wc, top + y * hc) for x, y in corners], self.resample)


# ---------------------------------------------------------------- per batch, on tensors
# Each matrix maps OUTPUT coordinates to INPUT coordinates, in grid_sample's normalised [-1, 1] frame (x right,
# y down), as (n, 3, 3) float32 tensors on the CPU; the product of several is one combined transform.


def _eye(n: int) -> torch.Tensor:
    return torch.eye(3).repeat(n, 1, 1)


def flip_matrix(flips: torch.Tensor) -> torch.Tensor:
    """(n,) booleans -> (n, 3, 3): x -> -x where True (a left-right mirror), identity elsewhere."""
    m = _eye(len(flips))
    m[:, 0, 0] = 1 - 2 * flips.float()
    return m


def rotation_matrix(thetas: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
    """(n,) angles in degrees -> (n, 3, 3) rotations about the centre, clockwise on screen (y points down).

    `aspect` = width / height keeps the rotation rigid on non-square images.
    """
    rad = thetas.float() * (math.pi / 180)
    c, s = rad.cos(), rad.sin()
    m = _eye(len(thetas))
    m[:, 0, 0], m[:, 0, 1] = c, s / aspect  # normalised coords stretch x by width and y by height:
    m[:, 1, 0], m[:, 1, 1] = -s * aspect, c  # undo that, rotate, redo it, or non-square images get sheared
    return m


def zoom_matrix(scales: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(n,) zoom factors (>1 zooms in) and (n, 2) centres in [0, 1] -> (n, 3, 3); the view stays inside the image."""
    m = _eye(len(scales))
    inv = 1 / scales.float()
    m[:, 0, 0] = m[:, 1, 1] = inv
    m[:, :2, 2] = (1 - inv)[:, None] * (2 * centers.float() - 1)
    return m


def tilt_matrix(tilts: torch.Tensor) -> torch.Tensor:
    """(n, 2) corner shifts (as in PilTiltRandomCrop, fractions of a side) -> (n, 3, 3) homographies via find_coeffs."""
    targ = torch.tensor([[-1.0, -1], [-1, 1], [1, 1], [1, -1]]).expand(len(tilts), 4, 2)
    signs = torch.tensor([-1.0, 1, -1, 1])[:, None]  # the same corner pattern as the PIL version, in [-1, 1] units
    orig = targ + 2 * signs * tilts.float()[:, None, :]
    coeffs = find_coeffs(orig, targ)
    return torch.cat([coeffs, torch.ones(len(tilts), 1, dtype=coeffs.dtype)], 1).view(-1, 3, 3).float()


def homography_grid(mats: torch.Tensor, h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, 3, 3) matrices -> (n, h, w, 2) grid for grid_sample: each output pixel centre, mapped to where it reads from.

    For affine matrices this is `F.affine_grid(mats[:, :2], (n, c, h, w), align_corners=False)`; done by hand it
    also handles perspective (divide by the third coordinate) and is several times faster on the CPU, because
    it works on whole x, y planes and only permutes them into grid_sample's (x, y)-last layout at the end.
    """
    affine = bool((mats[:, 2, :2] == 0).all())  # checked where the matrices were drawn, before any device sync
    mats = mats.to(device) if device is not None else mats
    kw = dict(device=mats.device, dtype=mats.dtype)
    xs = torch.arange(w, **kw).mul_(2 / w).add_(1 / w - 1)  # pixel centres in [-1, 1]
    ys = torch.arange(h, **kw).mul_(2 / h).add_(1 / h - 1)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, **kw)]).view(3, h * w)
    if affine:  # the third coordinate stays 1: no division
        planes = mats[:, :2] @ base
    else:
        planes = mats @ base
        planes = planes[:, :2] / planes[:, 2:]
    return planes.view(-1, 2, h, w).permute(0, 2, 3, 1)


def apply_matrices(x: torch.Tensor, mats: torch.Tensor, mode: str = "bilinear", pad_mode: str = "reflection") -> torch.Tensor:
    """Resample a (n, c, h, w) batch through per-sample matrices in one grid_sample; keeps shape, dtype and device.

    Sampling runs in float32 (float64 stays float64): a bfloat16 grid can't address pixels precisely, and
    integer images can't be interpolated; the result is cast back (rounded for integer dtypes).
    """
    if x.ndim != 4:
        raise ValueError(f"Batched transforms want a (batch, channels, height, width) tensor; got shape {tuple(x.shape)}. "
                         "Use x[None] for one image.")
    work = x.dtype if x.dtype == torch.float64 else torch.float32
    grid = homography_grid(mats.to(work), *x.shape[-2:], device=x.device)
    out = F.grid_sample(x.to(work), grid, mode=mode, padding_mode=pad_mode, align_corners=False)
    if x.dtype.is_floating_point:
        return out.to(x.dtype)
    info = torch.iinfo(x.dtype)
    return out.round_().clamp_(info.min, info.max).to(x.dtype)


MODES, PAD_MODES = ("bilinear", "nearest", "bicubic"), ("reflection", "border", "zeros")


class BatchTransform:
    """Random per-sample matrices for a batch, applied on whatever device the batch is on.

    Subclasses define `matrices(n, h, w)`; parameters are drawn on the CPU from `self.generator`, so the
    same seed gives the same batch on any device. `BatchAugment` multiplies several into one resample.
    """

    _order = 40  # after to_float_tensor (30), when used per item in an ItemList's tfms

    def __init__(self, p: float = 1.0, mode: str = "bilinear", pad_mode: str = "reflection", seed: int | None = None):
        name = type(self).__name__
        if mode not in MODES or pad_mode not in PAD_MODES:
            raise ValueError(f"{name}: mode must be one of {MODES} and pad_mode one of {PAD_MODES} (grid_sample's); "
                             f"got mode={mode!r}, pad_mode={pad_mode!r}.")
        self.p, self.mode, self.pad_mode = _check_p(p, name), mode, pad_mode
        self.reseed(seed)

    def reseed(self, seed: int | None = None) -> None:
        """Start the random stream over: the same seed gives the same batches."""
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**62, ())))

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) numbers from this transform's own generator."""
        return torch.rand(*shape, generator=self.generator)

    def uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return self.rand(n) * (hi - lo) + lo

    def chosen(self, n: int) -> torch.Tensor:
        """(n,) booleans: which samples get this transform (each with probability p)."""
        return self.rand(n) < self.p

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        """(n, 3, 3) output-to-input matrices for a batch of n images of h x w."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # one (channels, height, width) image, e.g. in a per-item pipeline
            return self(x[None])[0]
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} wants a (batch, channels, height, width) tensor or one "
                             f"(channels, height, width) image; got shape {tuple(x.shape)}.")
        n, _, h, w = x.shape
        return apply_matrices(x, self.matrices(n, h, w), self.mode, self.pad_mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'generator')})"


class BatchFlip(BatchTransform):
    """Mirror each sample left-right with probability `p`."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed=seed)

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        return flip_matrix(self.chosen(n))


class BatchRotate(BatchTransform):
    """Rotate each sample, with probability `p`, by an angle uniform in [-max_deg, max_deg] degrees."""

    def __init__(self, max_deg: float = 30.0, p: float = 0.75, seed: int | None = None):
        super().__init__(p, seed=seed)
        self.max_deg = max_deg

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        thetas = self.uniform(n, -self.max_deg, self.max_deg)
        return rotation_matrix(torch.where(self.chosen(n), thetas, 0.0), aspect=w / h)


class BatchZoom(BatchTransform):
    """Zoom each sample, with probability `p`, by a factor in [min_zoom, max_zoom] around a random centre."""

    def __init__(self, min_zoom: float = 1.0, max_zoom: float = 1.4, p: float = 0.75, seed: int | None = None):
        _check_range(min_zoom, max_zoom, "zoom factors (1 = as is, 2 = twice as close)", "BatchZoom")
        super().__init__(p, seed=seed)
        self.min_zoom, self.max_zoom = min_zoom, max_zoom

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        scales, centers = self.uniform(n, self.min_zoom, self.max_zoom), self.rand(n, 2)
        return zoom_matrix(torch.where(self.chosen(n), scales, 1.0), centers)


class BatchWarp(BatchTransform):
    """Tilt each sample in perspective, with probability `p`: corners move by up to `magnitude` of a side."""

    def __init__(self, magnitude: float = 0.2, p: float = 0.75, seed: int | None = None):
        super().__init__(p, seed=seed)
        self.magnitude = _check_magnitude(magnitude, "BatchWarp")

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        tilts = self.uniform(2 * n, -self.magnitude, self.magnitude).view(n, 2)
        return tilt_matrix(tilts * self.chosen(n)[:, None])


class BatchAugment(BatchTransform):
    """Several batched transforms as one: their matrices are multiplied, so each image is resampled only once.

    With no transforms given: flip, rotate, zoom and warp with their defaults. `seed` reseeds the parts
    (each with its own derived seed), so `BatchAugment(seed=0)` is reproducible as a whole.
    """

    def __init__(self, *tfms: BatchTransform, mode: str = "bilinear", pad_mode: str = "reflection", seed: int | None = None):
        self.tfms = list(tfms) or [BatchFlip(), BatchRotate(), BatchZoom(), BatchWarp()]
        super().__init__(1.0, mode, pad_mode, seed)

    def reseed(self, seed: int | None = None) -> None:
        super().reseed(seed)
        if seed is not None:
            for i, t in enumerate(self.tfms):
                t.reseed(derive_seed(seed, i))

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        m = _eye(n)
        for t in self.tfms:  # output -> input maps chain left to right: the first is applied to the image first
            m = m @ t.matrices(n, h, w)
        return m

    def __repr__(self) -> str:
        return f"BatchAugment({', '.join(map(repr, self.tfms))}, mode={self.mode!r}, pad_mode={self.pad_mode!r})"


# ---------------------------------------------------------------- looking at samples


def _reseed_all(tfms: list, seed: int) -> None:
    for i, t in enumerate(tfms):
        if hasattr(t, "reseed"):
            t.reseed(derive_seed(seed, i))


def _as_float(img: Image.Image | torch.Tensor) -> torch.Tensor:
    if isinstance(img, Image.Image):
        return to_float_tensor(to_byte_tensor(make_rgb(img)))
    return img if img.is_floating_point() else img.float() / 255


def sample_grid(tfm: Callable | Sequence[Callable], img: Image.Image | torch.Tensor, n: int = 8, seed: int | None = None) -> list:
    """`n` random outcomes of `tfm` (one transform or a pipeline) on the same image, to see what it really does.

    Batched transforms get the image repeated n times as one batch (and return CHW tensors); others are called
    n times. With a `seed`, copies of the transforms are reseeded (yours keep their own random stream), so the
    same seed draws the same grid.
    """
    tfms = listify(tfm)
    if seed is not None:
        tfms = copy.deepcopy(tfms)
        _reseed_all(tfms, seed)
    if tfms and all(isinstance(t, BatchTransform) for t in tfms):
        return list(compose(_as_float(img)[None].expand(n, -1, -1, -1), tfms))
    return [compose(img, tfms) for _ in range(n)]


def show_samples(tfm: Callable | Sequence[Callable], img: Image.Image | torch.Tensor, n: int = 8, ncols: int = 4,
                 seed: int | None = None, size: float = 2.5) -> plt.Figure:
    """Draw `n` random outcomes of `tfm` on `img` as a grid: the first thing to do with any augmentation."""
    return show_images(sample_grid(tfm, img, n, seed), ncols=ncols, size=size)
