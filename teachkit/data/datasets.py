"""Where datasets come from: download and extract safely into a cache; what Imagenette's folders hold.

`IMAGENETTE_CLASSES` is the one table of Imagenette's classes: `teachkit.data.lookalike` names the generated set's
folders from it, so the real dataset and its stand-in can't disagree. `teachkit.data.imagenette.imagenette()`
chooses between the two.

Environment variables:
- `TEACHKIT_DATA`: the cache folder (default `~/.teachkit/data`); archives go in its `archives/`.
- `TEACHKIT_OFFLINE=1`: never try the network; `imagenette()` goes straight to the generated set.
- `TEACHKIT_SMOKE=1`: `imagenette()` generates a tiny set (quick notebook test runs).
"""
from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from .cache import CacheWriteError, make_temp_dir, open_temp_file, write_error, writing
from ..errors import TeachkitError
from ..progress import progress_bar

__all__ = ["URLs", "IMAGENETTE_CLASSES", "DownloadError", "CorruptArchiveError", "CacheWriteError", "smoke_mode",
           "data_dir",
           "valid_folder_name", "download_url", "untar_data", "archive_name", "dataset_name"]


class URLs:
    """Where the fast.ai image-classification archives live. v2 (Dec 2019): 70/30 split, folders `train`/`val`."""

    S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
    IMAGENETTE = f"{S3}imagenette2.tgz"
    IMAGENETTE_160 = f"{S3}imagenette2-160.tgz"
    IMAGENETTE_320 = f"{S3}imagenette2-320.tgz"
    IMAGEWOOF = f"{S3}imagewoof2.tgz"
    IMAGEWOOF_160 = f"{S3}imagewoof2-160.tgz"
    IMAGEWOOF_320 = f"{S3}imagewoof2-320.tgz"
    # v1, the course's: a much smaller validation set
    IMAGENETTE_V1 = f"{S3}imagenette.tgz"
    IMAGENETTE_V1_160 = f"{S3}imagenette-160.tgz"
    IMAGENETTE_V1_320 = f"{S3}imagenette-320.tgz"


IMAGENETTE_CLASSES: dict[str, str] = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player", "n03000684": "chain saw",
    "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck", "n03425413": "gas pump",
    "n03445777": "golf ball", "n03888257": "parachute"}
"""Imagenette's WordNet ids (its folder names, in sorted order) and what they are."""


class DownloadError(TeachkitError, ConnectionError):
    """A dataset could not be downloaded; the message says where to put the file by hand."""


class CorruptArchiveError(TeachkitError, ValueError):
    """An archive could not be extracted (damaged or not an archive); it has been deleted."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def smoke_mode() -> bool:
    """True when `TEACHKIT_SMOKE=1`: tiny data and short runs, for CI and for CPUs."""
    return _env_flag("TEACHKIT_SMOKE")


def data_dir() -> Path:
    """The dataset cache: `$TEACHKIT_DATA`, else `~/.teachkit/data`."""
    return Path(os.environ.get("TEACHKIT_DATA") or Path.home() / ".teachkit" / "data").expanduser()


def valid_folder_name(path: str | os.PathLike) -> str:
    """The validation folder of an extracted dataset, 'val' (Imagenette) or 'valid' (fastai's default)."""
    for name in ("val", "valid"):
        if (Path(path) / name).is_dir():
            return name
    raise ValueError(f"{path} has neither a 'val' nor a 'valid' folder; found "
                     f"{sorted(p.name for p in Path(path).iterdir() if p.is_dir())}.")


def archive_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"Can't tell the file name from the URL {url!r}.")
    return name


def dataset_name(archive_name: str) -> str:
    for ext in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if archive_name.endswith(ext):
            return archive_name[: -len(ext)]
    return archive_name


def _offline_message(url: str, archive: Path, why: str) -> str:
    return (f"Could not download {url} ({why}). If this machine is offline, download that file elsewhere and put it "
            f"at {archive}: the next call extracts it. Or generate an Imagenette-like set to work with: "
            "teachkit.data.make_imagenette_like(path) (teachkit.data.imagenette.imagenette() does that by itself).")


def download_url(url: str, dest: str | os.PathLike, timeout: float = 30, chunk_size: int = 1 << 20,
                 show_progress: bool = True) -> Path:
    """Download `url` to `dest` through a temporary file renamed at the end: `dest` exists only when complete.

    A network failure raises `DownloadError` (what to do offline); a failure to write here (a full disk, a
    read-only folder) raises `CacheWriteError` (where). Either way the temporary file is removed.
    """
    dest = Path(dest)
    if _env_flag("TEACHKIT_OFFLINE"):
        raise DownloadError(_offline_message(url, dest, "TEACHKIT_OFFLINE is set"))
    with writing(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, f = open_temp_file(dest, ".part")
    try:
        got, total = _copy_url(url, f, dest, timeout, chunk_size, show_progress)
        if total and got != total:
            raise DownloadError(f"Download of {url} stopped after {got:,} of {total:,} bytes (connection closed). "
                                f"Nothing was kept; run again to retry, or put the file at {dest} by hand.")
        with writing(dest):
            os.replace(tmp, dest)
        return dest
    except (DownloadError, CacheWriteError):
        raise
    except urllib.error.HTTPError as e:
        raise DownloadError(_offline_message(url, dest, f"HTTP {e.code} {e.reason}")) from e
    except urllib.error.URLError as e:
        raise DownloadError(_offline_message(url, dest, str(e.reason))) from e
    except (OSError, ValueError) as e:  # timeouts, resets, http.client errors
        raise DownloadError(_offline_message(url, dest, f"{type(e).__name__}: {e}")) from e
    finally:
        with contextlib.suppress(OSError):  # the file is thrown away: flushing what a full disk refused can't matter
            f.close()
        tmp.unlink(missing_ok=True)


def _copy_url(url: str, f: BinaryIO, dest: Path, timeout: float, chunk_size: int,
              show_progress: bool) -> tuple[int, int]:
    """Stream `url` into the open file `f` and close it: (bytes received, bytes announced or 0).

    Only the writes are wrapped in `writing`, so a full disk is told apart from a dropped connection."""
    with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "teachkit"}), timeout=timeout) as r:
        total, got = int(r.headers.get("Content-Length") or 0), 0
        pbar = (progress_bar(range(total), leave=False, comment=f"downloading {dest.name}")
                if show_progress and total else None)
        if pbar is not None:
            pbar.update(0)
        while chunk := r.read(chunk_size):
            with writing(dest):
                f.write(chunk)
            got += len(chunk)
            if pbar is not None:
                pbar.update(got)
    with writing(dest):
        f.close()  # flushing the last bytes can fill the disk too
    return got, total


def _extract_all(tf: tarfile.TarFile, dest: Path) -> None:
    """Extract every member inside `dest`, refusing links or paths that would land outside it."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 and 3.10.12
        tf.extractall(dest, filter="data")
        return
    for m in tf.getmembers():
        if m.issym() or m.islnk() or not (dest / m.name).resolve().is_relative_to(dest.resolve()):
            raise tarfile.TarError(f"refusing to extract {m.name!r}: a link or a path outside the folder")
    tf.extractall(dest)


_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def _extract(archive: Path, dest: Path) -> Path:
    """Extract into a temporary folder next to `dest`, then rename it: `dest` exists only when complete."""
    with writing(dest):
        tmp = make_temp_dir(dest, ".extracting")
    try:
        try:
            with tarfile.open(archive) as tf:
                _extract_all(tf, tmp)
        except _ARCHIVE_ERRORS as e:
            archive.unlink(missing_ok=True)
            raise CorruptArchiveError(f"Could not extract {archive} ({type(e).__name__}: {e}): the file is damaged or "
                                      "not an archive. It has been deleted; run again to download it again.") from e
        except OSError as e:  # a full disk, most likely: the archive is fine, keep it
            raise write_error(e, dest) from e
        entries = [p for p in tmp.iterdir() if not p.name.startswith(".")]
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp  # archives usually hold one folder
        try:
            src.rename(dest)
        except OSError as e:
            if not dest.is_dir():  # another process finishing first is fine; anything else is not
                raise write_error(e, dest) from e
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def untar_data(url: str, dest: str | os.PathLike | None = None) -> Path:
    """Download (once) and extract (once) the archive at `url`; returns the dataset's folder.

    Everything goes under `dest` (default `data_dir()`): the archive in `archives/`, the data in a
    folder named after it. An interrupted download or extraction leaves nothing that counts as cached.
    """
    root = Path(dest).expanduser() if dest is not None else data_dir()
    fname = archive_name(url)
    path = root / dataset_name(fname)
    if path.is_dir():
        return path
    archive = root / "archives" / fname
    if not archive.exists():
        download_url(url, archive)
    print(f"Extracting {archive} to {path}")
    return _extract(archive, path)
