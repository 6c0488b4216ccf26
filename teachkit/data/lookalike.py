"""A generated stand-in for Imagenette, for offline machines and quick test runs: same layout, learnable classes.

Ten classes named by Imagenette's synset ids (from `IMAGENETTE_CLASSES`, the one table of them), each a shape with a
colour, drawn at a random place, size and tilt on a noisy background with distractors.
`teachkit.data.imagenette.imagenette()` falls back to it when it can't download.
"""
from __future__ import annotations

import colorsys
import contextlib
import json
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..progress import progress_bar
from .cache import make_temp_dir, temp_name, write_error, writing
from .datasets import IMAGENETTE_CLASSES

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


# Each class's (shape, hue in degrees), in IMAGENETTE_CLASSES's order: hues 36 degrees apart (and jittered),
# shapes differ too.
_STYLES = dict(zip(IMAGENETTE_CLASSES, [
    ("fish", 100), ("triangle", 30), ("wide_rect", 220), ("saw", 0), ("cross", 280), ("ring", 50), ("hexagon", 140),
    ("tall_bar", 330), ("circle", 190), ("dome", 250)], strict=True))


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
    sometimes are. Generation is atomic and cached: calling again with the same arguments returns `path`,
    two processes generating it at once both get it, and a set an older teachkit made with other class ids
    is made again.
    """
    path = Path(path).expanduser()
    params = {"n_train": n_train, "n_valid": n_valid, "seed": seed, "short_side": short_side,
              "classes": list(IMAGENETTE_CLASSES)}
    if _made_with(path, params):
        return path
    _check_can_make(path, params)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(path, ".generating")
    try:
        with writing(path):
            _draw_dataset(tmp, n_train, n_valid, seed, short_side)
            (tmp / _SYNTHETIC_MARKER).write_text(json.dumps(params))
        _move_into_place(tmp, path, params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _draw_dataset(folder: Path, n_train: int, n_valid: int, seed: int, short_side: int | None) -> None:
    """Draw every image into `folder/train/<synset>/` and `folder/val/<synset>/`, the classes taking turns."""
    rng, synsets = random.Random(seed), list(_STYLES)
    side = int(max(500, short_side or 0) * 1.8) + 1  # the biggest image fits in one noise crop
    noise = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    jobs = [(split, i) for split, n in (("train", n_train), ("val", n_valid)) for i in range(n)]
    for k, (split, i) in enumerate(progress_bar(jobs, comment="drawing the Imagenette look-alike")):
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
        (folder / split / synset).mkdir(parents=True, exist_ok=True)
        im.save(folder / split / synset / name, quality=rng.randrange(80, 96))


def _marker(path: Path) -> dict | None:
    """The arguments a generated set at `path` was made with (None when `path` isn't one)."""
    try:
        return json.loads((path / _SYNTHETIC_MARKER).read_text())
    except FileNotFoundError:
        return None


def _made_with(path: Path, params: dict) -> bool:
    return _marker(path) == params


def _outdated(path: Path) -> bool:
    """True for a set generated by an older teachkit with other class ids (parachute's was once wrong)."""
    made = _marker(path)
    return made is not None and made.get("classes") != list(IMAGENETTE_CLASSES)


def _check_can_make(path: Path, params: dict) -> None:
    """Refuse to generate over other data, or too few images for ten classes."""
    if path.exists() and any(path.iterdir()) and not _outdated(path):
        args = ", ".join(f"{k}={v}" for k, v in params.items() if k != "classes")
        raise ValueError(f"{path} already exists and is not this generated dataset ({args}). "
                         "Delete it, or choose another path.")
    if params["n_train"] < 10 or params["n_valid"] < 10:
        raise ValueError(f"make_imagenette_like needs at least one image per class in each split: n_train and n_valid >= 10, "
                         f"got {params['n_train']} and {params['n_valid']}.")


def _move_into_place(tmp: Path, path: Path, params: dict) -> None:
    """Rename the finished `tmp` to `path`. Another process that generated the same set meanwhile (two notebooks
    started at once) counts as success: its set is kept and `tmp` is dropped."""
    try:
        if not _made_with(path, params):
            _make_room(path)
            tmp.rename(path)
    except OSError as e:
        if not _made_with(path, params):
            raise write_error(e, path) from e


def _make_room(path: Path) -> None:
    """Take away what is at `path` and may be replaced: an outdated generated set, or an empty folder."""
    old = temp_name(path, ".outdated")
    with contextlib.suppress(FileNotFoundError):  # nothing there, or another process took it away first
        if _outdated(path):
            path.rename(old)
        else:
            path.rmdir()  # empty, checked before generating; fails if another process filled it meanwhile
    shutil.rmtree(old, ignore_errors=True)


def is_synthetic(path: str | os.PathLike) -> bool:
    """True for a folder made by `make_imagenette_like`."""
    return (Path(path) / _SYNTHETIC_MARKER).exists()
