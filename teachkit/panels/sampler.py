"""AugmentSampler: the model behind the augmentation panel, with no widgets, so it can be tested (and scripted) alone.

It holds the images to pick from, one transform class and its parameter values, how many samples to draw, a seed and
a mode ('pil': per-image transforms on PIL images, 'batched': tensor transforms on a batch, one `grid_sample`).
`params()` reads the transform's own constructor signature, so a view can build a control per parameter; the same
seed always draws the same samples; `render()` draws the original, large, beside the samples as one PNG.
"""
from __future__ import annotations

import inspect
import numbers
import os
import textwrap
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib import cbook
from PIL import Image

from ..augment import (GEOMETRIC_RESAMPLING, BatchFlip, BatchRotate, BatchTransform, BatchWarp, BatchZoom, CenterCrop,
                      PilRandomDihedral, PilRandomFlip, PilTiltRandomCrop, RandomCrop, RandomResizedCrop)
from ..data import ItemList, ImageList
from ..data.files import open_image
from ..render import canvas_png, fixed_figure
from ..show import montage, sample_grid
from ..transforms import make_rgb

__all__ = ["SAMPLER_MODES", "PIL_TFMS", "BATCH_TFMS", "COUNTERPARTS", "Param", "transform_params", "sample_image",
           "AugmentSampler"]

SAMPLER_MODES = ("pil", "batched")
"""What the sampler runs: per-image PIL transforms, or batched tensor transforms."""
PIL_TFMS = (RandomResizedCrop, PilTiltRandomCrop, RandomCrop, CenterCrop, PilRandomFlip, PilRandomDihedral)
BATCH_TFMS = (BatchZoom, BatchWarp, BatchFlip, BatchRotate)
COUNTERPARTS = {RandomResizedCrop: BatchZoom, PilTiltRandomCrop: BatchWarp, PilRandomFlip: BatchFlip,
                PilRandomDihedral: BatchRotate}
"""What toggling the mode switches to: the batched transform closest to each PIL one, and back."""
COUNTERPARTS |= {v: k for k, v in COUNTERPARTS.items()}

# PIL's geometric transforms (EXTENT, PERSPECTIVE), which the crops use, refuse every other resampling filter.
_CHOICES = {Image.Resampling: GEOMETRIC_RESAMPLING}  # what Pillow's geometric transforms accept
_SKIPPED = {"seed"}  # the sampler's own seed drives every transform's randomness

# (name, kind) -> (low, high, step) for sliders; other parameters get a range around their default.
# A tilt's corners move by up to 2 * magnitude in all: from magnitude 0.25 on, the quadrilateral can fold over itself.
_RANGES = {("p", "float"): (0.0, 1.0, 0.05), ("magnitude", "float"): (0.0, 0.25, 0.01),
           ("max_deg", "float"): (0.0, 180.0, 1.0), ("min_zoom", "float"): (1.0, 3.0, 0.05),
           ("max_zoom", "float"): (1.0, 3.0, 0.05), ("scale", "float"): (1.0, 2.0, 0.01),
           ("size", "int"): (16, 512, 8), ("scale", "tuple"): (0.05, 1.0, 0.01), ("ratio", "tuple"): (0.25, 4.0, 0.01)}


class Param(NamedTuple):
    """One constructor parameter of a transform: what a control for it needs."""

    name: str
    kind: str  # "float", "int", "tuple" (a pair of numbers), "bool" or "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _kind(default: Any) -> str | None:
    """The kind of control a default value calls for; None when there is none (e.g. a default of None)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, Enum):  # before int: PIL's Resampling is an IntEnum
        return "choice"
    if isinstance(default, numbers.Integral):
        return "int"
    if _is_real(default):
        return "float"
    if isinstance(default, tuple) and len(default) == 2 and all(map(_is_real, default)):
        return "tuple"
    return None


def _range(name: str, kind: str, default: Any) -> tuple[float | None, float | None, float | None]:
    """Slider (low, high, step): a known range for the usual parameters, else one around the default."""
    if (name, kind) in _RANGES:
        return _RANGES[name, kind]
    if kind == "int":
        return 0, max(10, 4 * abs(default)), 1
    if kind in ("float", "tuple"):
        vals = default if kind == "tuple" else (default,)
        lo, hi = min(0.0, *vals), max(1.0, *(4 * abs(v) for v in vals))
        return lo, hi, (hi - lo) / 100
    return None, None, None


def transform_params(cls: type) -> list[Param]:
    """The parameters of `cls`'s constructor a control can set: keyword ones whose default is a number, pair, bool or enum.

    Left out (they keep their defaults): `seed`, parameters defaulting to None (e.g. `crop_size`), `*args`.
    """
    res = []
    for p in inspect.signature(cls).parameters.values():
        kind = _kind(p.default)
        if p.name in _SKIPPED or kind is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        choices = _CHOICES.get(type(p.default), tuple(type(p.default))) if kind == "choice" else ()
        res.append(Param(p.name, kind, p.default, *_range(p.name, kind, p.default), choices))
    return res


def _convert(cls: type, p: Param, value: Any) -> Any:
    """`value` as parameter `p` of `cls` takes it, or a ValueError saying what it takes."""
    if p.kind == "bool" and isinstance(value, bool):
        return value
    if p.kind == "int" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if p.kind == "float" and _is_real(value):
        return float(value)
    if p.kind == "tuple" and isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_real, value)):
        return tuple(float(v) for v in value)
    if p.kind == "choice":
        for c in p.choices:
            if value == c or value == getattr(c, "name", None):
                return c
    what = {"bool": "True or False", "int": "a whole number", "float": "a number",
            "tuple": f"a pair of numbers like {p.default}",
            "choice": "one of " + ", ".join(getattr(c, "name", str(c)) for c in p.choices)}[p.kind]
    raise ValueError(f"{cls.__name__}: {p.name} takes {what}; got {value!r}.")


def _attr_value(cls: type, p: Param, obj: Any) -> Any:
    """A transform instance's value for `p` (stored under the same name); GeneralCrop keeps `size` as (w, h)."""
    v = getattr(obj, p.name, p.default)
    if p.kind == "int" and isinstance(v, tuple) and len(set(v)) == 1:
        v = v[0]
    return _convert(cls, p, v)


def _fmt(v: Any) -> str:
    """A parameter value, short: enums by name, floats to 3 significant digits."""
    if isinstance(v, Enum):
        return v.name
    if isinstance(v, tuple):
        return f"({', '.join(map(_fmt, v))})"
    return f"{v:.3g}" if isinstance(v, float) else repr(v)


def sample_image() -> Path:
    """The photo matplotlib ships (Grace Hopper): an image every install has."""
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _items(items: Any) -> list:
    """Images or image paths from: None (the sample photo), an image, a file, a folder, an ImageList or a list."""
    if items is None:
        return [sample_image()]
    if isinstance(items, Image.Image):
        return [items]
    if isinstance(items, (str, os.PathLike)):
        path = Path(items)
        if path.is_dir():
            return ImageList.from_files(path).items  # raises a ValueError saying what to check when there are none
        if not path.is_file():
            raise ValueError(f"{path} is neither an image file nor a folder. Check the path, or pass None for the "
                             "sample photo.")
        return [path]
    res = list(items.items if isinstance(items, ItemList) else items)
    bad = [o for o in res if not isinstance(o, (Image.Image, str, os.PathLike))]
    if not res or bad:
        raise ValueError(f"No images to sample from{f' in {bad[0]!r}' if bad else ''}: pass a folder, an ImageList, "
                         "PIL images or image paths (None: a sample photo).")
    return res


def _tfm_classes(tfms: Any) -> tuple[dict[str, type], dict[type, dict[str, Any]]]:
    """Offered transforms by name, and the parameter values of those given as instances."""
    classes, values = {}, {}
    for t in tfms:
        cls = t if isinstance(t, type) else type(t)
        if not hasattr(cls, "_order"):
            raise ValueError(f"{t!r} is not a transform class or instance, e.g. RandomResizedCrop or BatchZoom(1, 2).")
        classes[cls.__name__] = cls
        if not isinstance(t, type):
            values[cls] = {p.name: _attr_value(cls, p, t) for p in transform_params(cls)}
    return classes, values


class AugmentSampler:
    """Samples of one augmentation on one image: pick image, transform, parameters, n, seed and mode; then `render()`.

    Images larger than `max_size` are shrunk first (aspect kept), so resampling stays interactive.
    """

    def __init__(self, items: Any = None, tfms: Sequence | None = None, tfm: str | type | None = None, n: int = 8,
                 seed: int = 0, max_size: int | None = 256):
        self.items = _items(items)
        self.names = [Path(o).name if isinstance(o, (str, os.PathLike)) else f"image {i}" for i, o in enumerate(self.items)]
        self.tfms, self._given = _tfm_classes(tfms if tfms is not None else PIL_TFMS + BATCH_TFMS)
        if not self.tfms:
            raise ValueError("No transforms to sample: pass some, e.g. tfms=[RandomResizedCrop, BatchZoom].")
        self.max_size, self.n, self.seed, self.index = max_size, n, seed, 0
        self._fig_key, self._fig = None, None  # what `render` draws on, kept while the montage keeps its size
        default = RandomResizedCrop if RandomResizedCrop in self.tfms.values() else next(iter(self.tfms.values()))
        self.set_transform(tfm or default)

    # ------------------------------------------------------------ settings, checked

    @property
    def index(self) -> int:
        """Which of `items` is sampled."""
        return self._index

    @index.setter
    def index(self, i: int) -> None:
        if not isinstance(i, numbers.Integral) or not 0 <= i < len(self.items):
            raise ValueError(f"Image index {i!r} is out of range: pick 0 to {len(self.items) - 1}.")
        self._index, self._image = int(i), None

    @property
    def n(self) -> int:
        """How many samples to draw."""
        return self._n

    @n.setter
    def n(self, n: int) -> None:
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or not 1 <= n <= 64:
            raise ValueError(f"n is the number of samples to draw, from 1 to 64; got {n!r}.")
        self._n = int(n)

    @property
    def seed(self) -> int:
        """Seed of the draw: the same seed gives the same samples."""
        return self._seed

    @seed.setter
    def seed(self, seed: int) -> None:
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"The seed must be a whole number >= 0; got {seed!r}.")
        self._seed = int(seed)

    @property
    def mode(self) -> str:
        """'batched' when the transform works on tensor batches, else 'pil'."""
        return "batched" if issubclass(self.tfm, BatchTransform) else "pil"

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in SAMPLER_MODES:
            raise ValueError(f"mode is 'pil' (per-image transforms) or 'batched' (tensor batches); got {mode!r}.")
        if mode == self.mode:
            return
        options = self.choices(mode)
        if not options:
            raise ValueError(f"No {mode} transform to switch to; pass one in tfms, e.g. "
                             f"{(PIL_TFMS if mode == 'pil' else BATCH_TFMS)[0].__name__}.")
        twin = COUNTERPARTS.get(self.tfm)
        self.set_transform(twin if twin in self.tfms.values() else options[0], keep=self.values)

    def choices(self, mode: str | None = None) -> list[str]:
        """Names of the offered transforms of `mode` (default: the current mode)."""
        mode = mode or self.mode
        return [k for k, c in self.tfms.items() if issubclass(c, BatchTransform) == (mode == "batched")]

    def set_transform(self, tfm: str | type, keep: dict[str, Any] | None = None) -> None:
        """Sample `tfm` (a name or class from `tfms`), from its given or default values; `keep` carries same-named ones."""
        cls = self.tfms.get(tfm) if isinstance(tfm, str) else tfm if tfm in self.tfms.values() else None
        if cls is None:
            raise ValueError(f"Unknown transform {getattr(tfm, '__name__', tfm)!r}: pick one of {', '.join(self.tfms)} "
                             "(or pass it in tfms).")
        self.tfm = cls
        self.values = dict(self._given.get(cls) or {p.name: p.default for p in self.params()})
        for p in self.params():
            if keep and p.name in keep:
                self.values[p.name] = _convert(cls, p, keep[p.name])

    def params(self) -> list[Param]:
        """The current transform's settable parameters, read from its signature."""
        return transform_params(self.tfm)

    def set_param(self, name: str, value: Any) -> None:
        """Set one parameter; a wrong name, a wrong type or a value the transform refuses raises a ValueError."""
        p = next((p for p in self.params() if p.name == name), None)
        if p is None:
            raise ValueError(f"{self.tfm.__name__} has no parameter {name!r}; it has {', '.join(self.values)}.")
        new = {**self.values, name: _convert(self.tfm, p, value)}
        self.transform(new)  # let the transform check it (e.g. min_zoom <= max_zoom) before keeping it
        self.values = new

    # ------------------------------------------------------------ sampling

    def transform(self, values: dict[str, Any] | None = None) -> Any:
        """An instance of the transform with the current (or given) values, seeded with `seed`."""
        seeded = "seed" in inspect.signature(self.tfm).parameters
        return self.tfm(**(self.values if values is None else values), **({"seed": self.seed} if seeded else {}))

    @property
    def image(self) -> Image.Image:
        """The picked image as RGB, shrunk to `max_size`; opened once per pick."""
        if self._image is None:
            o = self.items[self.index]
            im = make_rgb(o if isinstance(o, Image.Image) else open_image(o))
            if self.max_size and max(im.size) > self.max_size:
                im = im.copy()
                im.thumbnail((self.max_size, self.max_size), Image.Resampling.LANCZOS)
            self._image = im
        return self._image

    def sample(self) -> list[Image.Image | torch.Tensor]:
        """`n` samples of the transform on the image: PIL images ('pil') or CHW float tensors ('batched')."""
        return sample_grid(self.transform(), self.image, self.n, seed=self.seed)

    def resample(self) -> None:
        """Move on to a new draw, the next seed: `sample()` and `render()` then show other samples."""
        self.seed += 1

    def describe(self) -> str:
        """`RandomResizedCrop(size=128, scale=(0.35, 1), ...)`: the transform as the samples were drawn."""
        return f"{self.tfm.__name__}({', '.join(f'{k}={_fmt(v)}' for k, v in self.values.items())})"

    def render(self, cell: int = 128, dpi: int = 72) -> bytes:
        """PNG of the original and the `n` samples (see `montage`), titled with transform, mode, seed and settings."""
        canvas, split = montage(self.image, self.sample(), cell)
        settings = textwrap.fill(", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items()),
                                 (canvas.shape[2] - split) // 6)
        text = f"{self.n} samples of {self.tfm.__name__}, {self.mode} mode, seed {self.seed}\n{settings}"
        fig, picture, title = self._figure(canvas.shape[1:], split, text.count("\n") + 1, dpi)
        picture.set_data((canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        title.set_text(text)
        fig.canvas.draw()
        return canvas_png(fig)

    def _figure(self, hw: tuple[int, int], split: int, lines: int, dpi: int) -> tuple:
        """(figure, picture, title) for `render`, kept while the layout stays (a new figure costs more than a
        redraw): the montage pasted pixel for pixel (`figimage`: no resampling) below a band of `lines` of text,
        with "original" over the original's column and the title over the samples'."""
        key = (tuple(hw), split, lines, dpi)
        if self._fig_key != key:
            (h, w), band = hw, 12 * lines + 8
            fig = fixed_figure(w / dpi, (h + band) / dpi, dpi)
            picture = fig.figimage(np.zeros((h, w, 3), np.uint8))
            fig.text(split / 2 / w, h / (h + band), "original", fontsize=9, ha="center", va="bottom")
            title = fig.text((split + w) / 2 / w, 1 - 3 / (h + band), "", fontsize=9, ha="center", va="top")
            self._fig_key, self._fig = key, (fig, picture, title)
        return self._fig

    def __repr__(self) -> str:
        return (f"AugmentSampler({self.describe()}, {self.mode}, n={self.n}, seed={self.seed}, "
                f"image {self.index}: {self.names[self.index]})")
