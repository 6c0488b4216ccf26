"""Imagenette for the lessons: the real set when it can be had, else the generated look-alike (it says which)."""
from __future__ import annotations

import os
from pathlib import Path

from .datasets import CorruptArchiveError, DownloadError, URLs, archive_name, data_dir, dataset_name, smoke_mode, untar_data
from .lookalike import make_imagenette_like

__all__ = ["imagenette"]


def imagenette(size: int | None = 160, dest: str | os.PathLike | None = None) -> Path:
    """Imagenette's folder: the real one (size 160, 320 or None for full size) when cached or downloadable,
    else a generated Imagenette-like set in the cache. Prints which it is; `teachkit.data.lookalike.is_synthetic(path)`
    tells too.

    The generated set has 700 train + 300 val images. With `TEACHKIT_SMOKE=1` (quick test runs of the
    lessons) it is always a tiny generated set, 100 + 50 images, and nothing is downloaded. A cache that
    can't be written (a full disk) raises `CacheWriteError` rather than falling back: nothing would fit there.
    """
    urls = {160: URLs.IMAGENETTE_160, 320: URLs.IMAGENETTE_320, None: URLs.IMAGENETTE}
    if size not in urls:
        raise ValueError(f"imagenette(size) takes 160, 320 or None (full size), got {size!r}.")
    root = Path(dest).expanduser() if dest is not None else data_dir()
    name = dataset_name(archive_name(urls[size]))
    if smoke_mode():
        why, (n_train, n_valid), name = "TEACHKIT_SMOKE is set: a tiny dataset for a quick run.", (100, 50), name + "-smoke"
    else:
        try:
            path = untar_data(urls[size], root)
            print(f"Using the real {name} at {path}.")
            return path
        except (DownloadError, CorruptArchiveError) as e:
            why, (n_train, n_valid) = str(e), (700, 300)
    path = make_imagenette_like(root / f"{name}-synthetic", n_train, n_valid, short_side=size)
    print(f"{why}\nUsing a GENERATED Imagenette-like set instead ({n_train} train + {n_valid} val images of coloured "
          f"shapes) at {path}. Figures will differ from the real dataset's.")
    return path
