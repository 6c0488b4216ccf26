"""Finding and opening image files (lesson 08's first step): `get_files` lists them fast, `open_image` decodes one."""
from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import TeachkitError
from ..utils import listify

__all__ = ["image_extensions", "normalize_extensions", "get_files", "linked_folders", "to_8bit", "ImageLoadError",
           "open_image"]

image_extensions: set[str] = {k for k, v in mimetypes.types_map.items() if v.startswith("image/")}
"""Every extension `mimetypes` knows as an image, lower-case with the dot: '.jpg', '.jpeg', '.png', ..."""

PathLike = str | os.PathLike


def normalize_extensions(extensions: str | Iterable[str] | None) -> set[str]:
    """'JPG', '.jpg' or ['jpg', '.PNG'] -> {'.jpg', '.png'}: how extensions are compared."""
    return {e.lower() if e.startswith(".") else "." + e.lower() for e in listify(extensions)}


def _scan(folder: Path, extensions: set[str], followlinks: bool = False) -> tuple[list[Path], list[str]]:
    """Files of `folder` (sorted, filtered, hidden ones skipped) and the names of its visible sub-folders.

    A link to a folder is neither unless `followlinks`, as with `os.walk`: it isn't walked into (a link loop would
    never end, a link to `valid/` inside `train/` would leak validation images into training). A link to a file is
    a file."""
    files, dirs = [], []
    with os.scandir(folder) as it:  # scandir tells files from folders without a `stat` call per file
        for e in it:
            name = e.name
            if name.startswith("."):
                continue
            if e.is_dir():
                if followlinks or not e.is_symlink():
                    dirs.append(name)
            elif not extensions or (i := name.rfind(".")) > 0 and name[i:].lower() in extensions:
                files.append(name)
    return _children(folder, sorted(files)), sorted(dirs)


def _children(folder: Path, names: list[str]) -> list[Path]:
    """`[folder / n for n in names]`, faster: `iterdir` builds each child without parsing its name again, which is
    most of the cost of `/` on a big folder (a file deleted meanwhile is left out)."""
    if not names:
        return []
    by_name = {p.name: p for p in folder.iterdir()}
    return [by_name[n] for n in names if n in by_name]


def get_files(path: PathLike, extensions: str | Iterable[str] | None = None, recurse: bool = False,
              include: Iterable[str] | None = None, followlinks: bool = False) -> list[Path]:
    """Files under `path` with one of `extensions` (any case; all when None), sorted, hidden files and folders skipped.

    `recurse` walks sub-folders with `os.scandir` (no `stat` call per file, which is why it is fast), not
    following links to folders, as `os.walk` doesn't; `include` limits the walk to these top-level
    sub-folders, e.g. `['train']`. `followlinks=True` walks linked folders too, each real folder once (so a link
    loop ends); the files keep the path they were found under.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"get_files: {path} is not a folder. Check the path (untar_data returns the dataset's folder).")
    exts = normalize_extensions(extensions)
    include = None if include is None else set(listify(include))
    res, todo, top, walked = [], [path], True, set()
    while todo:
        folder = todo.pop()
        if followlinks and not _first_visit(folder, walked):
            continue
        files, dirs = _scan(folder, exts, followlinks)
        res += files
        if recurse:
            if top and include is not None:
                dirs = [d for d in dirs if d in include]
            todo += [folder / d for d in reversed(dirs)]  # reversed: the stack pops them in name order
        top = False
    return res


def _first_visit(folder: Path, walked: set[str]) -> bool:
    """Whether the real folder behind `folder` is new to `walked` (and now in it)."""
    real = os.path.realpath(folder)
    if real in walked:
        return False
    walked.add(real)
    return True


def linked_folders(path: PathLike) -> list[str]:
    """Names of the visible links to folders in `path`, which `get_files` doesn't walk into unless told to (hidden
    ones it skips either way)."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_symlink() and e.is_dir())


_16_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # "I": how Pillow before 11 opens a 16-bit PNG


def to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit grayscale image as 8-bit 'L', each value v becoming v >> 8 (65535 -> 255); other images unchanged.

    Pillow's own `convert('L')` or `convert('RGB')` clips instead: every value above 255, most of a 16-bit
    picture, would turn white."""
    if im.mode not in _16_BIT_MODES:
        return im
    return Image.fromarray((np.asarray(im).clip(0, 65535) >> 8).astype(np.uint8))


class ImageLoadError(TeachkitError, OSError):
    """An image file could not be opened or decoded; the message names the file."""


def open_image(fn: PathLike, tfms: Callable | Sequence[Callable] | None = None) -> Image.Image:
    """Open and decode `fn`, letting `tfms` with a `before_load` hook (JPEG draft mode) act before decoding.

    16-bit grayscale images (PNG, TIFF) come back as 8-bit 'L', scaled (see `to_8bit`).
    Corrupt or truncated files raise `ImageLoadError` naming the file. Truncated JPEGs are refused
    rather than silently padded with gray; set `PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True` to load them.
    """
    im = None
    try:
        im = Image.open(fn)
        for t in listify(tfms):
            if hasattr(t, "before_load"):
                t.before_load(im)
        im.load()
        return to_8bit(im)
    except Exception as e:
        if im is not None:
            im.close()
        hint = (" To load what is there (the rest filled with gray), set PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True."
                if "truncated" in str(e) else "")
        raise ImageLoadError(f"Could not read image {fn}: {type(e).__name__}: {e}. Delete or replace the file.{hint}") from e
