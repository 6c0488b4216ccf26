"""Writing into the dataset cache under real use: a shared cache's permissions, two processes at once, a full disk.

Offline: archives are built here and read through file:// URLs.
"""
import builtins
import errno
import io
import multiprocessing
import os
import stat
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from teachkit.data import DownloadError, download_url, untar_data
from teachkit.data import is_synthetic, make_imagenette_like


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TEACHKIT_DATA", str(tmp_path / "cache"))
    for name in ("TEACHKIT_OFFLINE", "TEACHKIT_SMOKE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def make_tgz(path: Path, names: list[str]) -> Path:
    """A .tgz holding a tiny JPEG under each of `names`."""
    img = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 90)).save(img, "JPEG")
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(img.getvalue())
            tf.addfile(info, io.BytesIO(img.getvalue()))
    return path


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# ------------------------------------------------------------------------------------------------ the umask

@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_cache_files_get_the_umasks_permissions(tmp_path, cache, umask):
    """What a plain `open` and `mkdir` would give (0644/0755 with umask 022), not tempfile's private 0600/0700."""
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    archive = make_tgz(tmp_path / "flat.tgz", ["train/a.jpg", "val/b.jpg"])  # no common top folder
    path = untar_data(archive.as_uri())
    assert mode(cache / "archives" / "flat.tgz") == file_mode
    assert mode(path) == dir_mode  # the extraction folder itself became the dataset
    like = make_imagenette_like(cache / "like", n_train=10, n_valid=10, short_side=16)
    made = [like, *like.rglob("*")]
    assert len(made) > 20
    assert {str(p.relative_to(cache)): mode(p) for p in made} == {
        str(p.relative_to(cache)): dir_mode if p.is_dir() else file_mode for p in made}


# ----------------------------------------------------------------------------------- two processes at once

def generate_alongside_another(path: str, barrier) -> None:
    """In a child process: generate the look-alike, but hold the first rename until the other process reaches its
    own, so both finish generating before either moves its set into place (the race, every time)."""
    rename, held = Path.rename, []

    def rename_when_both_are_ready(self, target):
        if not held:
            held.append(True)
            barrier.wait(timeout=300)
        return rename(self, target)

    Path.rename = rename_when_both_are_ready
    make_imagenette_like(path, n_train=10, n_valid=10, short_side=16)


def test_two_processes_generating_at_once_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, path = ctx.Barrier(2), tmp_path / "cache" / "like"
    procs = [ctx.Process(target=generate_alongside_another, args=(str(path), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    assert [p.exitcode for p in procs] == [0, 0]
    assert is_synthetic(path) and len(list(path.rglob("*.JPEG"))) == 20
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # the loser's copy is gone


# --------------------------------------------------------------------------------------------- a full disk

class FullDiskFile:
    """A file on a disk with `room` bytes left: writing past them fails with ENOSPC, as a real full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, b) -> int:
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fill_disk(monkeypatch, room: int = 100, refuse: int | None = None) -> None:
    """Files opened for writing under a name ending in `.part` get `room` bytes (or can't be created: `refuse`)."""
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if not (str(file).endswith(".part") and set(mode) & set("wxa")):
            return real_open(file, mode, *args, **kwargs)
        if refuse is not None:
            raise OSError(refuse, os.strerror(refuse), str(file))
        return FullDiskFile(real_open(file, mode, *args, **kwargs), room)

    monkeypatch.setattr(builtins, "open", open_)


def test_a_full_disk_while_downloading_says_so_not_offline(tmp_path, cache, monkeypatch):
    archive = make_tgz(tmp_path / "tiny.tgz", ["tiny/train/a.jpg", "tiny/val/b.jpg"])
    fill_disk(monkeypatch)
    with pytest.raises(OSError) as e:
        untar_data(archive.as_uri())
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and not isinstance(e.value, DownloadError)  # imagenette() won't fall back
    assert "is full" in msg and str(cache / "archives") in msg and "TEACHKIT_DATA" in msg
    assert "offline" not in msg.lower()
    assert leftovers(cache) == ["archives"]  # no hidden .part file


def test_an_unwritable_cache_says_where_not_offline(tmp_path, monkeypatch):
    archive = make_tgz(tmp_path / "tiny.tgz", ["tiny/a.jpg"])
    fill_disk(monkeypatch, refuse=errno.EROFS)
    with pytest.raises(OSError) as e:
        download_url(archive.as_uri(), tmp_path / "dl" / "tiny.tgz")
    msg = str(e.value)
    assert e.value.errno == errno.EROFS and "offline" not in msg.lower()
    assert str(tmp_path / "dl") in msg and "may write" in msg
    assert leftovers(tmp_path / "dl") == []


def test_a_full_disk_while_extracting_keeps_the_archive_and_nothing_else(tmp_path, cache, monkeypatch):
    (cache / "archives").mkdir(parents=True)
    make_tgz(cache / "archives" / "tiny.tgz", ["tiny/train/a.jpg", "tiny/val/b.jpg"])

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tarfile, "copyfileobj", disk_full)  # how tarfile writes a member's bytes
    with pytest.raises(OSError) as e:
        untar_data((tmp_path / "never-fetched" / "tiny.tgz").as_uri())
    assert e.value.errno == errno.ENOSPC and "is full" in str(e.value) and str(cache) in str(e.value)
    assert leftovers(cache) == ["archives", "archives/tiny.tgz"]  # the archive is fine: kept, nothing half-extracted


def test_a_full_disk_while_generating_says_so_and_leaves_nothing(cache, monkeypatch):
    save, saved = Image.Image.save, []

    def save_until_full(self, fp, *args, **kwargs):
        if len(saved) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(fp)
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    with pytest.raises(OSError) as e:
        make_imagenette_like(cache / "like", n_train=10, n_valid=10, short_side=16)
    assert e.value.errno == errno.ENOSPC and "is full" in str(e.value) and str(cache) in str(e.value)
    assert leftovers(cache) == []
