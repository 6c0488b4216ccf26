"""A generated stand-in for Imagenette, for offline machines and quick test runs: same layout, learnable classes.

Ten classes named by Imagenette's synset ids, each a shape with a colour, drawn at a random place, size and tilt
on a noisy background with distractors. `teachkit.datasets.imagenette()` falls back to it when it can't download.
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["make_imagenette_like", "is_synthetic"]

_SYNTHETIC_MARKER = ".teachkit-synthetic"


def _poly(kind: str) -> list[tuple[float, float]]:
    """The outline of a class's shape, in units of the object's radius, centred on 0."""
    def circle(n=28, ax=1.0, ay=1.0, a0=0.0, a1=2 * math.pi):
        return [(ax * math.cos(a0 + (a1 - a0) * i / n), ay * math.sin(a0 + (a1 - a0) * i / n)) for i in range(n + 1)]
    shapes = {
        "fish": circle(ax=1.0, ay=0.45)[:15] + [(-1.0, -0.1), (-1.35, -0.55), (-1.35, 0.55), (-1.0, 0.1)]
                + circle(ax=1.0, ay=0.45)[15:],
        "triangle": [(0, -1), (0.9, 0.7), (-0.9, 0.7)],
        "wide_rect": [(-1, -0.55), (1, -0.55), (1, 0.55), (-1, 0.55)],
        "saw": [(-1, 0.3), (1, 0.3)] + [(1 - 0.2 * i, -0.3 if i % 2 else -0.6) for i in range(11)],
        "cross": [(-0.25, -1), (0.25, -1), (0.25, -0.45), (0.7, -0.45), (0.7, 0.05), (0.25, 0.05), (0.25, 1),
                  (-0.25, 1), (-0.25, 0.05), (-0.7, 0.05), (-0.7, -0.45), (-0.25, -0.45)],
        "hexagon": circle(n=6),
        "tall_bar": [(-0.4, -1), (0.4, -1), (0.4, 1), (-0.4, 1)],
        "circle": circle(),
        "dome": circle(n=20, a0=math.pi, a1=2 * math.pi) + [(0.9, 0.15), (0, 0.9), (-0.9, 0.15)],
    }
    return shapes[kind]


# Imagenette's synset ids (its classes, in its order) -> (shape, hue in degrees).
# Hues are 36 degrees apart and jittered; shapes differ too.
_STYLES = {
    "n01440764": ("fish", 100), "n02102040": ("triangle", 30), "n02979186": ("wide_rect", 220),
    "n03000684": ("saw", 0), "n03028079": ("cross", 280), "n03394916": ("ring", 50),
    "n03417042": ("hexagon", 140), "n03425413": ("tall_bar", 330), "n03445777": ("circle", 190),
    "n03888605": ("dome", 250)}


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb((hue % 360) / 360, sat, val))


def _draw_object(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * 0.35)))
        return
    c, s = math.cos(angle), math.sin(angle)
    draw.polygon([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in _poly(kind)], fill=fill)


def _synthetic_image(rng: random.Random, noise: np.ndarray, synset: str, w: int, h: int) -> Image.Image:
    """One picture: a jittered-colour class shape at a random place, size and tilt, on a noisy background."""
    y0, x0 = rng.randrange(noise.shape[0] - h + 1), rng.randrange(noise.shape[1] - w + 1)
    base = np.array(_rgb(rng.uniform(0, 360), rng.uniform(0, 0.35), rng.uniform(0.25, 0.9)), dtype=np.int16)
    bg = (base + (noise[y0:y0 + h, x0:x0 + w].astype(np.int16) - 128) * rng.uniform(0.2, 0.6)).clip(0, 255)
    im = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    short = min(w, h)
    for _ in range(rng.randrange(3)):  # distractors: small dull blobs
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), short * rng.uniform(0.04, 0.1)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgb(rng.uniform(0, 360), 0.15, rng.uniform(0.2, 0.9)))
    kind, hue = _STYLES[synset]
    r = short * rng.uniform(0.22, 0.4)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    colour = _rgb(hue + rng.uniform(-10, 10), rng.uniform(0.65, 1), rng.uniform(0.6, 1))
    _draw_object(draw, kind, cx, cy, r, rng.uniform(-0.4, 0.4), colour)
    return im


def make_imagenette_like(path: str | os.PathLike, n_train: int = 700, n_valid: int = 300, seed: int = 0,
                         short_side: int | None = 160) -> Path:
    """Generate a small, learnable stand-in for Imagenette with its layout: `train/` and `val/`, ten synset folders, `.JPEG`s.

    Each class is a shape with a colour (jittered), at a random place, size and tilt, on a noisy
    background with distractors. Images have `short_side` pixels on their short side (varied 160-500
    when None) and varied aspect ratios; about 1 in 30 is grayscale and 1 in 90 CMYK, as real photos
    sometimes are. Generation is atomic and cached: calling again with the same arguments returns `path`.
    """
    path = Path(path).expanduser()
    params = {"n_train": n_train, "n_valid": n_valid, "seed": seed, "short_side": short_side}
    marker = path / _SYNTHETIC_MARKER
    if marker.exists() and json.loads(marker.read_text()) == params:
        return path
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"{path} already exists and is not this generated dataset ({params}). "
                         "Delete it, or choose another path.")
    if n_train < 10 or n_valid < 10:
        raise ValueError(f"make_imagenette_like needs at least one image per class in each split: n_train and n_valid >= 10, "
                         f"got {n_train} and {n_valid}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    rng, synsets = random.Random(seed), list(_STYLES)
    side = int(max(500, short_side or 0) * 1.8) + 1  # the biggest image fits in one noise crop
    noise = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".generating"))
    try:
        k = 0
        for split, n in (("train", n_train), ("val", n_valid)):
            for i in range(n):
                synset = synsets[i % 10]
                short = short_side or rng.randrange(160, 501)
                long = int(short * rng.choice([1.0, 1.25, 1.33, 1.5, rng.uniform(1.0, 1.8)]))
                w, h = (long, short) if rng.random() < 0.7 else (short, long)
                im = _synthetic_image(rng, noise, synset, w, h)
                if k % 30 == 7:
                    im = im.convert("L")
                elif k % 90 == 13:
                    im = im.convert("CMYK")
                name = f"{synset}_{10000 + i}.JPEG" if split == "train" else f"ILSVRC2012_val_{k:08d}.JPEG"
                folder = tmp / split / synset
                folder.mkdir(parents=True, exist_ok=True)
                im.save(folder / name, quality=rng.randrange(80, 96))
                k += 1
        (tmp / _SYNTHETIC_MARKER).write_text(json.dumps(params))
        if path.exists():
            path.rmdir()  # empty, checked above
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def is_synthetic(path: str | os.PathLike) -> bool:
    """True for a folder made by `make_imagenette_like`."""
    return (Path(path) / _SYNTHETIC_MARKER).exists()
