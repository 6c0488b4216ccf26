"""Batched augmentation (lesson 10): random per-sample matrices, applied to a whole batch on any device.

Flips, rotations, zooms and tilts are each a 3x3 matrix per sample; their product is turned into one sampling
grid and applied with ONE `grid_sample` call, so every image is resampled once, all at once, on the GPU when
there is one. The per-image PIL transforms are in `teachkit.augment.pil`.

Randomness is never global: every transform owns a `torch.Generator`, seeded from `seed`, or from the global
RNG when `seed` is None (so `teachkit.utils.set_seed` still makes a whole cell reproducible).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .pil import check_magnitude, check_p, check_range, find_coeffs, tilted_corners
from ..utils import derive_seed

__all__ = ["INTERP_MODES", "PAD_MODES", "flip_matrix", "rotation_matrix", "zoom_matrix", "tilt_matrix",
           "homography_grid", "apply_matrices", "BatchTransform", "BatchFlip", "BatchRotate", "BatchZoom",
           "BatchWarp", "BatchAugment"]

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
    """(n, 2) corner shifts (up, lr), as in PilTiltRandomCrop -> (n, 3, 3) homographies via find_coeffs.

    The tilted quadrilateral is shrunk back inside the image (`tilted_corners`), so a tilt never reads padding.
    """
    up, lr = tilts.double().unbind(1)
    orig = torch.stack([torch.stack(c, -1) for c in tilted_corners(up, lr)], 1) * 2 - 1  # unit square -> [-1, 1]
    targ = torch.tensor([[-1.0, -1], [-1, 1], [1, 1], [1, -1]], dtype=orig.dtype).expand(len(tilts), 4, 2)
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


INTERP_MODES = ("bilinear", "nearest", "bicubic")
"""How `grid_sample` interpolates (its `mode`)."""
PAD_MODES = ("reflection", "border", "zeros")
"""What `grid_sample` reads outside the image (its `padding_mode`)."""


class BatchTransform:
    """Random per-sample matrices for a batch, applied on whatever device the batch is on.

    Subclasses define `matrices(n, h, w)`; parameters are drawn on the CPU from `self.generator`, so the
    same seed gives the same batch on any device. `BatchAugment` multiplies several into one resample.
    """

    _order = 40  # after to_float_tensor (30), when used per item in an ItemList's tfms

    def __init__(self, p: float = 1.0, mode: str = "bilinear", pad_mode: str = "reflection", seed: int | None = None):
        name = type(self).__name__
        if mode not in INTERP_MODES or pad_mode not in PAD_MODES:
            raise ValueError(f"{name}: mode must be one of {INTERP_MODES} and pad_mode one of {PAD_MODES} "
                             f"(grid_sample's); got mode={mode!r}, pad_mode={pad_mode!r}.")
        self.p, self.mode, self.pad_mode = check_p(p, name), mode, pad_mode
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
        check_range(min_zoom, max_zoom, "zoom factors (1 = as is, 2 = twice as close)", "BatchZoom")
        super().__init__(p, seed=seed)
        self.min_zoom, self.max_zoom = min_zoom, max_zoom

    def matrices(self, n: int, h: int, w: int) -> torch.Tensor:
        scales, centers = self.uniform(n, self.min_zoom, self.max_zoom), self.rand(n, 2)
        return zoom_matrix(torch.where(self.chosen(n), scales, 1.0), centers)


class BatchWarp(BatchTransform):
    """Tilt each sample in perspective, with probability `p`: corners move by up to `magnitude` of a side.

    As in `PilTiltRandomCrop`, the view is taken inside the tilted region: no padding shows. Up to magnitude 0.25
    the quadrilateral stays convex; beyond, it can fold over itself.
    """

    def __init__(self, magnitude: float = 0.2, p: float = 0.75, seed: int | None = None):
        super().__init__(p, seed=seed)
        self.magnitude = check_magnitude(magnitude, "BatchWarp")

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
