"""Downloading and extracting datasets, offline only: archives are built here and served from 127.0.0.1."""
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import pytest
from PIL import Image

from teachkit.data import (IMAGENETTE_CLASSES, URLs, CorruptArchiveError, DownloadError, ImageList, data_dir,
                           download_url, get_files, image_extensions, is_synthetic, make_imagenette_like, untar_data,
                           valid_folder_name)
from teachkit.data.imagenette import imagenette


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cache and never the network by accident."""
    monkeypatch.setenv("TEACHKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("TEACHKIT_OFFLINE", raising=False)
    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)
    return tmp_path / "cache"


def make_tgz(name: str = "tiny-nette") -> bytes:
    """A .tgz holding `name/train/<class>/*.JPEG` and `name/val/<class>/*.JPEG`, like fast.ai's archives."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for split in ("train", "val"):
            for c in list(IMAGENETTE_CLASSES)[:2]:
                for i in range(3):
                    img = io.BytesIO()
                    Image.new("RGB", (20, 16), (i * 40, 90, 200)).save(img, "JPEG")
                    info = tarfile.TarInfo(f"{name}/{split}/{c}/{c}_{i}.JPEG")
                    info.size = len(img.getvalue())
                    tf.addfile(info, io.BytesIO(img.getvalue()))
    return buf.getvalue()


class Server:
    """A loopback HTTP server: `routes` maps a path to (body, declared Content-Length or None)."""

    def __init__(self):
        self.routes, self.hits = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length or len(body)))
                self.end_headers()
                self.wfile.write(body)  # when length > len(body), the connection closes early: an interrupted transfer
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def add(self, path: str, body: bytes, length: int | None = None) -> str:
        self.routes[path] = (body, length)
        return self.url + path


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def leftovers(root: Path) -> list[str]:
    """Everything under the cache: after a failure there must be nothing that looks like data."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------------------------- basics

def test_urls_and_cache_dir(cache, monkeypatch):
    assert URLs.IMAGENETTE_160 == "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
    assert all(getattr(URLs, k).endswith(".tgz") for k in dir(URLs) if k.isupper() and k != "S3")
    assert data_dir() == cache
    monkeypatch.delenv("TEACHKIT_DATA")
    assert data_dir() == Path.home() / ".teachkit" / "data"


def test_valid_folder_name(tmp_path):
    (tmp_path / "a" / "val").mkdir(parents=True)
    (tmp_path / "b" / "valid").mkdir(parents=True)
    assert valid_folder_name(tmp_path / "a") == "val" and valid_folder_name(tmp_path / "b") == "valid"
    with pytest.raises(ValueError, match="neither"):
        valid_folder_name(tmp_path)


# ------------------------------------------------------------------------------------------ untar_data

def test_untar_data_downloads_once_and_extracts(server, cache):
    url = server.add("/tiny-nette.tgz", make_tgz())
    path = untar_data(url)
    assert path == cache / "tiny-nette" and (cache / "archives" / "tiny-nette.tgz").exists()
    assert len(get_files(path, image_extensions, recurse=True)) == 12
    assert valid_folder_name(path) == "val"
    assert untar_data(url) == path and server.hits == ["/tiny-nette.tgz"]  # cached: no second request
    assert not [p for p in leftovers(cache) if ".part" in p or ".extracting" in p]


def test_untar_data_dest_and_file_url(tmp_path):
    archive = tmp_path / "tiny-nette.tgz"
    archive.write_bytes(make_tgz())
    path = untar_data(archive.as_uri(), dest=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "tiny-nette" and (path / "train").is_dir()


def test_archive_placed_by_hand_is_extracted_offline(cache, monkeypatch):
    monkeypatch.setenv("TEACHKIT_OFFLINE", "1")
    (cache / "archives").mkdir(parents=True)
    (cache / "archives" / "imagenette2-160.tgz").write_bytes(make_tgz("imagenette2-160"))
    assert untar_data(URLs.IMAGENETTE_160) == cache / "imagenette2-160"


def test_interrupted_download_leaves_nothing(server, cache):
    body = make_tgz()
    url = server.add("/tiny-nette.tgz", body[: len(body) // 2], length=len(body))
    with pytest.raises(DownloadError, match=f"stopped after {len(body) // 2:,} of {len(body):,} bytes"):
        untar_data(url)
    assert leftovers(cache) == ["archives"]
    server.add("/tiny-nette.tgz", body)  # the connection is back: the next call works
    assert (untar_data(url) / "val").is_dir()


def test_corrupt_archive_leaves_nothing(server, cache):
    good = make_tgz()
    url = server.add("/tiny-nette.tgz", good[:200] + bytes(len(good) - 200))  # complete transfer, damaged content
    with pytest.raises(CorruptArchiveError, match="(?s)tiny-nette.tgz.*deleted"):
        untar_data(url)
    assert leftovers(cache) == ["archives"]
    url = server.add("/junk.tgz", b"this is not a tar file" * 100)
    with pytest.raises(CorruptArchiveError):
        untar_data(url)
    assert leftovers(cache) == ["archives"]


def test_http_error_and_offline_messages(server, cache):
    with pytest.raises(DownloadError, match="HTTP 404.*archives/missing.tgz.*make_imagenette_like"):
        untar_data(server.url + "/missing.tgz")
    with socket.socket() as s:  # a port nobody listens on: what being offline looks like
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError) as e:
        untar_data(f"http://127.0.0.1:{port}/imagenette2-160.tgz")
    msg = str(e.value)
    assert f"http://127.0.0.1:{port}/imagenette2-160.tgz" in msg
    assert str(cache / "archives" / "imagenette2-160.tgz") in msg and "make_imagenette_like" in msg
    assert leftovers(cache) == ["archives"]


def test_offline_flag_never_connects(server, monkeypatch, tmp_path):
    monkeypatch.setenv("TEACHKIT_OFFLINE", "1")
    with pytest.raises(DownloadError, match="TEACHKIT_OFFLINE"):
        download_url(server.add("/x.tgz", b"x"), tmp_path / "x.tgz")
    assert server.hits == []


# ------------------------------------------------------------------------------------ generated data

def test_make_imagenette_like_layout(tmp_path):
    path = make_imagenette_like(tmp_path / "nette", n_train=40, n_valid=20, seed=0, short_side=None)
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == ["train", "val"]
    for split, n in (("train", 40), ("val", 20)):
        assert sorted(p.name for p in (path / split).iterdir()) == sorted(IMAGENETTE_CLASSES)
        files = get_files(path / split, image_extensions, recurse=True)
        assert len(files) == n and {f.suffix for f in files} == {".JPEG"}
    ims = [Image.open(f) for f in get_files(path, ".JPEG", recurse=True)]
    assert {im.mode for im in ims} == {"RGB", "L", "CMYK"}
    assert len({im.size for im in ims}) > 20 and len({round(im.width / im.height, 1) for im in ims}) > 3
    assert min(min(im.size) for im in ims) >= 160 and is_synthetic(path)


def test_make_imagenette_like_is_seeded_and_cached(tmp_path):
    a = make_imagenette_like(tmp_path / "a", 20, 10, seed=5, short_side=32)
    b = make_imagenette_like(tmp_path / "b", 20, 10, seed=5, short_side=32)
    fa, fb = (get_files(p, ".JPEG", recurse=True) for p in (a, b))
    assert [f.read_bytes() for f in fa] == [f.read_bytes() for f in fb]
    mtime = fa[0].stat().st_mtime_ns
    assert make_imagenette_like(a, 20, 10, seed=5, short_side=32) == a and fa[0].stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="already exists"):
        make_imagenette_like(a, 30, 10, seed=5, short_side=32)
    with pytest.raises(ValueError, match=">= 10"):
        make_imagenette_like(tmp_path / "c", 5, 10)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_generating_shows_progress_and_once_only(tmp_path, capsys):
    """A log (stdout is captured here, not a terminal) gets a start line and an end line counting every image."""
    path = make_imagenette_like(tmp_path / "like", n_train=20, n_valid=10, short_side=16)
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "look-alike" in line][0] == "drawing the Imagenette look-alike: started, 30 steps"
    assert any(line.startswith("drawing the Imagenette look-alike: done, 30/30") for line in out)
    make_imagenette_like(path, n_train=20, n_valid=10, short_side=16)
    assert "look-alike" not in capsys.readouterr().out  # cached: nothing drawn, no bar


def test_imagenette_falls_back_to_generated(cache, monkeypatch, capsys):
    monkeypatch.setenv("TEACHKIT_OFFLINE", "1")
    path = imagenette(160)
    out = capsys.readouterr().out
    assert "GENERATED" in out and str(path) in out and "TEACHKIT_OFFLINE" in out
    assert str(cache / "archives" / "imagenette2-160.tgz") in out  # where to put the real one
    assert is_synthetic(path) and path == cache / "imagenette2-160-synthetic"
    assert len(ImageList.from_files(path)) == 1000 and valid_folder_name(path) == "val"
    assert imagenette(160) == path  # generated once
    with pytest.raises(ValueError, match="160, 320 or None"):
        imagenette(128)


def test_imagenette_smoke_is_tiny_and_offline(cache, monkeypatch, capsys):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    (cache / "imagenette2-160" / "val").mkdir(parents=True)  # even with the real one cached
    path = imagenette(160)
    assert "TEACHKIT_SMOKE" in capsys.readouterr().out
    assert is_synthetic(path) and len(ImageList.from_files(path)) == 150


def test_imagenette_uses_real_data_when_cached(cache, capsys):
    (cache / "imagenette2-320" / "val").mkdir(parents=True)
    assert imagenette(320) == cache / "imagenette2-320"
    assert "real imagenette2-320" in capsys.readouterr().out


@pytest.mark.parametrize("has_filter", [True, False])
def test_archive_escaping_its_folder_is_refused(tmp_path, monkeypatch, has_filter):
    if not has_filter:  # Pythons before 3.11.4 / 3.10.12 have no extraction filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(CorruptArchiveError):
        untar_data(archive.as_uri(), dest=tmp_path / "d")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil").exists()
    good = tmp_path / "tiny-nette.tgz"
    good.write_bytes(make_tgz())
    assert (untar_data(good.as_uri(), dest=tmp_path / "d") / "train").is_dir()


def test_the_look_alike_has_imagenettes_classes_in_order(tmp_path):
    path = make_imagenette_like(tmp_path / "like", n_train=10, n_valid=10)
    assert sorted(p.name for p in (path / "train").iterdir()) == list(IMAGENETTE_CLASSES)
