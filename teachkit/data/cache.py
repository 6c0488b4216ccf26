"""Writing into the dataset cache safely, for downloads, extraction and the generated look-alike.

Everything is built under a hidden temporary name beside its target, then renamed into place whole. The
temporary file or folder is created with a plain `open`/`mkdir`, so it gets the permissions the umask gives any
new file (0644/0755 with the usual umask 022), not `tempfile`'s private 0600/0700: a class cache shared by
students stays readable. A full disk or an unwritable folder raises `CacheWriteError` saying so, and where.
"""
from __future__ import annotations

import errno
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import TeachkitError

__all__ = ["CacheWriteError", "temp_name", "make_temp_dir", "open_temp_file", "write_error", "writing"]

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class CacheWriteError(TeachkitError, OSError):
    """The cache could not be written (disk full, read-only, no permission); the message says where and what to do."""


def temp_name(dest: Path, suffix: str) -> Path:
    """A fresh hidden name beside `dest`, e.g. `.imagenette2-160.tgz.3f9a1c0e.part`: same folder, so the final
    rename is atomic; hidden, so nothing that lists the cache mistakes it for data."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{suffix}")


def make_temp_dir(dest: Path, suffix: str) -> Path:
    """A new empty folder beside `dest`, with the umask's permissions (as `mkdir` gives; `mkdtemp` gives 0700)."""
    tmp = temp_name(dest, suffix)
    tmp.mkdir()
    return tmp


def open_temp_file(dest: Path, suffix: str) -> tuple[Path, BinaryIO]:
    """A new file beside `dest`, open for writing, with the umask's permissions (`mkstemp` gives 0600)."""
    tmp = temp_name(dest, suffix)
    return tmp, open(tmp, "xb")


def write_error(e: OSError, dest: Path) -> CacheWriteError:
    """`e`, raised while writing `dest`, as an error that says whether the disk is full or the folder unwritable."""
    folder = dest.parent
    if e.errno in _DISK_FULL:
        what = (f"The disk holding {folder} is full: could not write {dest.name} there ({e.strerror}). Free some "
                "space on it, or set TEACHKIT_DATA to a folder on a disk with room, then run again.")
    else:
        what = (f"Could not write {dest} ({e.strerror or e}). Check that you may write to {folder}, or set "
                "TEACHKIT_DATA to a folder you can write to, then run again.")
    what += " Nothing half-written was kept."
    return CacheWriteError(e.errno, what) if e.errno else CacheWriteError(what)


@contextmanager
def writing(dest: Path) -> Iterator[None]:
    """Turn an `OSError` from writing `dest` (or its temporary file) into a `CacheWriteError` that names it."""
    try:
        yield
    except CacheWriteError:
        raise
    except OSError as e:
        raise write_error(e, dest) from e
