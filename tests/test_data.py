"""The data block API on a generated Imagenette-like tree: files, splits, labels, images, batches, training."""
import functools
import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch import nn

from teachkit.data import (CategoryProcessor, ImageList, ItemList, LabeledData, ListContainer, SplitData, channel_stats,
                           grandparent_splitter, label_by_func, normalize_chan, parent_labeler, random_splitter)
from teachkit.data import files as tk_files
from teachkit.data.databunch import DataBunch, databunchify
from teachkit.show import show_batch
from teachkit.data import IMAGENETTE_CLASSES
from teachkit.data.imagenette import imagenette_labelled
from teachkit.data import ImageLoadError, get_files, image_extensions, open_image
from teachkit.data import make_imagenette_like
from teachkit.transforms import ResizeFixed, make_rgb, to_byte_tensor, to_float_tensor

SYNSETS = sorted(IMAGENETTE_CLASSES)
TFMS = [make_rgb, ResizeFixed(32), to_byte_tensor, to_float_tensor]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_imagenette_like(tmp_path_factory.mktemp("data") / "nette", n_train=60, n_valid=30, seed=1, short_side=48)


def val_split(il):
    return SplitData.split_by_func(il, functools.partial(grandparent_splitter, valid_name="val"))


# ------------------------------------------------------------------------------------------------ files

def test_get_files_counts_and_order(tree):
    files = get_files(tree, image_extensions, recurse=True)
    assert len(files) == 90 and all(isinstance(f, Path) for f in files)
    assert files == sorted(files, key=lambda p: p.parts)  # deterministic, folder by folder
    assert len(get_files(tree / "train" / SYNSETS[0], image_extensions)) == 6
    assert get_files(tree, image_extensions) == []  # no recursion: the root holds only folders
    assert len(get_files(tree, image_extensions, recurse=True, include=["train"])) == 60
    assert len(get_files(tree, ".JPEG", recurse=True)) == len(get_files(tree, ["jpeg"], recurse=True)) == 90
    assert get_files(tree, ".png", recurse=True) == []


def test_get_files_skips_hidden_and_filters_extensions(tmp_path):
    (tmp_path / ".hidden_dir").mkdir()
    (tmp_path / ".hidden_dir" / "a.jpg").touch()
    (tmp_path / "sub").mkdir()
    for name in ["b.JPG", ".c.jpg", "d.txt", "noext", "sub/e.png"]:
        (tmp_path / name).touch()
    assert [f.name for f in get_files(tmp_path, image_extensions, recurse=True)] == ["b.JPG", "e.png"]
    assert {f.name for f in get_files(tmp_path)} == {"b.JPG", "d.txt", "noext"}  # no extensions: every visible file
    assert "sub" not in {f.name for f in get_files(tmp_path)}


def test_get_files_not_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        get_files(tmp_path / "missing")


def test_image_list_empty_folder_error(tmp_path):
    (tmp_path / "notes.txt").touch()
    with pytest.raises(ValueError, match=f"No image files in {tmp_path}.*\\.jpg"):
        ImageList.from_files(tmp_path)


# ------------------------------------------------------------------------------------------- containers

def test_list_container_indexing():
    lc = ListContainer(list("abcdefghijkl"))
    assert lc[0] == "a" and lc[np.int64(1)] == "b" and lc[torch.tensor(2)] == "c"
    assert lc[:3] == ["a", "b", "c"]
    assert lc[[0, 2]] == ["a", "c"] and lc[torch.tensor([1, 3])] == ["b", "d"]
    mask = [i % 4 == 0 for i in range(12)]
    assert lc[mask] == ["a", "e", "i"] == lc[np.array(mask)] == lc[torch.tensor(mask)]
    with pytest.raises(ValueError, match="one entry per item"):
        lc[[True, False]]
    assert repr(lc).startswith("ListContainer (12 items)") and repr(lc).endswith("...]")
    assert repr(ListContainer([1, 2])) == "ListContainer (2 items)\n[1, 2]"


def test_item_list_applies_tfms_by_order():
    add = lambda x: x + 1  # noqa: E731
    double = lambda x: x * 2  # noqa: E731
    double._order = 1
    il = ItemList([1, 2, 3], path="/data", tfms=[double, add])  # add (order 0) runs first
    assert il[0] == 4 and il[1:] == [6, 8]
    new = il.new([10])
    assert type(new) is ItemList and new.path == Path("/data") and new[0] == 22
    assert "Path: /data" in repr(il)


def test_image_list_gives_rgb_tensors(tree):
    il = ImageList.from_files(tree, tfms=TFMS)
    x = il[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    raw = ImageList.from_files(tree)
    modes = {raw[i].mode for i in range(len(raw))}
    assert {"RGB", "L", "CMYK"} <= modes  # the generator mixes in grayscale and CMYK photos, as Imagenette has
    assert {il[i].shape for i in range(len(il))} == {(3, 32, 32)}


# -------------------------------------------------------------------------------------------- splitting

def test_grandparent_splitter_and_split_data(tree):
    assert grandparent_splitter(Path("x/val/n0/a.jpg"), valid_name="val") is True
    assert grandparent_splitter(Path("x/train/n0/a.jpg")) is False
    assert grandparent_splitter(Path("x/test/n0/a.jpg")) is None
    sd = val_split(ImageList.from_files(tree, tfms=TFMS))
    assert (len(sd.train), len(sd.valid)) == (60, 30)
    assert type(sd.train) is ImageList and sd.train.tfms is sd.valid.tfms
    assert all(f.parent.parent.name == "val" for f in sd.valid.items)
    assert sd.path == tree  # attributes come from train
    assert pickle.loads(pickle.dumps(sd)).train.items == sd.train.items


def test_split_drops_items_in_neither_and_says_how_many(tree, tmp_path):
    items = ImageList([Path(f"r/train/c/{i}.jpg") for i in range(5)] + [Path("r/val/c/v.jpg"), Path("r/test/c/t.jpg")])
    with pytest.warns(UserWarning, match="dropped 1 of 7"):
        sd = val_split(items)
    assert (len(sd.train), len(sd.valid)) == (5, 1)


def test_split_with_wrong_valid_name_is_an_error(tree):
    il = ImageList.from_files(tree)
    with pytest.raises(ValueError, match="0 in valid.*valid_name='val'"):
        SplitData.split_by_func(il, grandparent_splitter)  # default valid_name='valid'; Imagenette uses 'val'


def test_random_splitter_is_seeded_and_order_free(tree):
    files = get_files(tree, image_extensions, recurse=True)
    f = random_splitter(0.25, seed=3)
    first = [f(o) for o in files]
    assert first == [random_splitter(0.25, seed=3)(o) for o in files]
    assert [f(o) for o in reversed(files)] == first[::-1]
    assert first != [random_splitter(0.25, seed=4)(o) for o in files]
    assert 0.1 < sum(first) / len(first) < 0.4
    with pytest.raises(ValueError, match="between 0 and 1"):
        random_splitter(25)


# -------------------------------------------------------------------------------------------- labelling

def test_label_vocab_from_train(tree):
    ll = label_by_func(val_split(ImageList.from_files(tree, tfms=TFMS)), parent_labeler, proc_y=CategoryProcessor())
    proc = ll.train.proc_y
    assert proc.vocab == SYNSETS and proc.otoi[SYNSETS[3]] == 3
    assert ll.valid.proc_y is proc
    x, y = ll.train[0]
    assert x.shape == (3, 32, 32) and y == 0
    assert ll.train.y_obj(0) == SYNSETS[0] and ll.valid.y_obj(slice(0, 2)) == [SYNSETS[0]] * 2
    assert proc.deprocess([1, 2]) == SYNSETS[1:3]
    assert [ll.valid.y_obj(i) for i in range(len(ll.valid))] == [parent_labeler(f) for f in ll.valid.x.items]
    assert len(ll.train) == 60 and "LabeledData" in repr(ll.train)


def test_unseen_label_error_names_it():
    proc = CategoryProcessor()
    assert proc(["cat", "dog", "cat"]) == [0, 1, 0]
    with pytest.raises(ValueError, match="'bird' is not in the vocab.*2 classes: 'cat', 'dog'"):
        proc(["dog", "bird"])
    with pytest.raises(ValueError, match="no vocab"):
        CategoryProcessor().deprocess([0])


def test_labeled_data_from_item_lists():
    ld = LabeledData.label_by_func(ItemList(["a1", "b2", "a3"]), lambda s: s[0], proc_y=CategoryProcessor())
    assert ld[1] == ("b2", 1) and ld.y_obj(2) == "a"


# ---------------------------------------------------------------------------------------------- images

def save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    arr = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 480x640 blocks
    return Image.fromarray(arr)


def test_odd_modes_load_as_rgb(tmp_path, photo):
    files = [save(photo.convert("CMYK"), tmp_path / "cmyk.jpg"), save(photo.convert("RGBA"), tmp_path / "rgba.png"),
             save(photo.convert("L"), tmp_path / "gray.jpg"),
             save(photo.convert("P"), tmp_path / "pal.png", transparency=0)]
    il = ImageList(files, tmp_path, tfms=TFMS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Pillow's palette-transparency warning
        for i in range(len(il)):
            assert il[i].shape == (3, 32, 32)
    assert to_byte_tensor(photo.convert("L")).shape == (1, 480, 640)


def test_corrupt_and_truncated_files_name_the_file(tmp_path, photo, monkeypatch):
    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all" * 10)
    il = ImageList.from_files(tmp_path, tfms=TFMS)
    with pytest.raises(ImageLoadError, match=r"garbage\.jpg"):
        il[0]
    with pytest.raises(ImageLoadError, match=r"truncated\.jpg.*LOAD_TRUNCATED_IMAGES"):
        il[1]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert il[1].shape == (3, 32, 32)  # the documented opt-in loads what is there


def test_errors_in_dataloader_workers_name_the_file(tmp_path, photo):
    save(photo, tmp_path / "good.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    ld = LabeledData.label_by_func(ImageList.from_files(tmp_path, tfms=TFMS), lambda f: 0)
    dl = torch.utils.data.DataLoader(ld, batch_size=2, num_workers=1)
    with pytest.raises(ImageLoadError, match=r"bad\.jpg"):
        next(iter(dl))


def test_draft_resize_matches_full_decode(tmp_path, photo):
    fn = save(photo, tmp_path / "big.jpg", quality=95)
    drafted = open_image(fn, [ResizeFixed(128)])
    assert drafted.size == (320, 240)  # decoded at 1/2 scale: still >= 128 on both sides
    full = open_image(fn, [ResizeFixed(128, draft=False)])
    assert full.size == (640, 480)
    a = to_float_tensor(to_byte_tensor(ResizeFixed(128)(drafted)))
    b = to_float_tensor(to_byte_tensor(ResizeFixed(128)(full)))
    assert (a - b).abs().mean() < 0.03  # the same picture
    assert open_image(save(photo, tmp_path / "p.png"), [ResizeFixed(128)]).size == (640, 480)  # PNG: no draft


# ---------------------------------------------------------------------------------------------- batches

@pytest.fixture(scope="module")
def data(tree) -> DataBunch:
    ll = label_by_func(val_split(ImageList.from_files(tree, tfms=TFMS)), parent_labeler, proc_y=CategoryProcessor())
    return databunchify(ll, bs=16, num_workers=0)


def test_databunchify(data, tree):
    assert (data.c_in, data.c_out) == (3, 10)
    assert len(data.train_ds) == 60 and len(data.valid_ds) == 30
    xb, yb = next(iter(data.train_dl))
    assert xb.shape == (16, 3, 32, 32) and yb.dtype == torch.int64
    assert next(iter(data.valid_dl))[0].shape[0] == 30  # valid batches are twice as big
    assert data.train_dl.pin_memory == torch.cuda.is_available()
    ll = label_by_func(val_split(ImageList.from_files(tree, tfms=TFMS)), parent_labeler, proc_y=CategoryProcessor())
    two = ll.to_databunch(bs=8, c_out=7, num_workers=2)
    assert two.c_out == 7 and two.train_dl.num_workers == 2 and two.train_dl.persistent_workers
    assert next(iter(two.train_dl))[0].shape == (8, 3, 32, 32)


def test_normalize_and_channel_stats(data):
    mean, std = channel_stats(data.train_ds, n=1000)  # more than there are: all of them
    assert mean.shape == std.shape == (3,) and (0 < mean).all() and (mean < 1).all()
    xs = torch.stack([data.train_ds[i][0] for i in range(len(data.train_ds))])
    flat = normalize_chan(xs, mean, std).transpose(0, 1).flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-4) and torch.allclose(flat.std(1), torch.ones(3), atol=1e-3)
    sample_mean, _ = channel_stats(data.train_ds, n=20)
    assert (sample_mean - mean).abs().max() < 0.1
    assert torch.allclose(normalize_chan(torch.ones(3, 2, 2), [0.5] * 3, [0.5] * 3), torch.ones(3, 2, 2))


def test_show_batch_titles(data):
    fig = show_batch(data, n=6, ncols=3, valid=True, names=IMAGENETTE_CLASSES)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == [IMAGENETTE_CLASSES[parent_labeler(f)] for f in data.valid_ds.x.items[:6]]  # valid: file order
    assert titles[0] == "tench"
    assert [a.get_title() for a in show_batch(data, n=2, valid=True).axes][0] == SYNSETS[0]


# --------------------------------------------------------------------------------------------- training

def test_small_cnn_learns_generated_imagenette(tmp_path):
    """Lesson 08's recipe (BN conv layers, normalised inputs, SGD with momentum) clearly beats chance (10 %)."""
    from teachkit.callbacks import AvgStatsCallback, BatchTransformXCallback, accuracy
    from teachkit.learner import Learner
    from teachkit.utils import set_seed

    set_seed(0)
    path = make_imagenette_like(tmp_path / "nette", n_train=400, n_valid=200, seed=0, short_side=40)
    ll = label_by_func(val_split(ImageList.from_files(path, tfms=TFMS)), parent_labeler, proc_y=CategoryProcessor())
    data = databunchify(ll, bs=16, num_workers=0)
    norm = functools.partial(normalize_chan, **dict(zip(["mean", "std"], channel_stats(ll.train))))

    def conv(ni, nf, stride=2):
        return nn.Sequential(nn.Conv2d(ni, nf, 3, stride, 1), nn.BatchNorm2d(nf), nn.ReLU())

    model = nn.Sequential(conv(3, 16), conv(16, 32), conv(32, 64), conv(64, 64),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, data.c_out))
    stats = AvgStatsCallback(accuracy)
    learn = Learner(model, data, nn.functional.cross_entropy, functools.partial(torch.optim.SGD, momentum=0.9),
                    lr=0.05, cbs=[stats, BatchTransformXCallback(norm)])
    learn.logger = lambda *a: None
    learn.fit(3)
    valid_acc = stats.valid_stats.avg_stats[1]
    assert valid_acc > 0.4, f"valid accuracy {valid_acc:.2f}: chance is 0.10"


def test_dataloader_workers_draw_different_augmentations(tmp_path):
    """Without reseeding, every worker is a copy of the same transform RNG and would crop identically."""
    from teachkit.augment import RandomResizedCrop
    from teachkit.data.databunch import get_dls

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    ds = LabeledData(ItemList([img] * 8, tfms=[RandomResizedCrop(16, seed=0), to_byte_tensor]), ItemList([0] * 8))
    train_dl, _ = get_dls(ds, ds, bs=4, num_workers=2, persistent_workers=False)
    b0, b1 = list(train_dl)  # worker 0 makes the first batch, worker 1 the second
    assert not torch.equal(b0[0], b1[0])


def test_to_float_tensor_leaves_its_input_alone():
    x = torch.full((3, 2, 2), 255.0)
    assert to_float_tensor(x).max() == 1.0 and x.max() == 255.0


def test_random_splitter_treats_str_and_path_alike():
    f = random_splitter(0.5, seed=1)
    names = [f"/data/train/cls{i % 3}/img{i}.jpg" for i in range(50)]
    assert [f(n) for n in names] == [f(Path(n)) for n in names]


def test_resize_fixed_refuses_a_zero_size():
    with pytest.raises(ValueError, match="size"):
        ResizeFixed(0)


def test_to_databunch_is_a_method_of_split_data(tree):
    assert "to_databunch" in vars(SplitData)  # defined in the class, not patched in from another module
    ll = label_by_func(val_split(ImageList.from_files(tree, tfms=TFMS)), parent_labeler, proc_y=CategoryProcessor())
    data = ll.to_databunch(bs=4, num_workers=0)
    assert isinstance(data, DataBunch) and data.c_out == 10 and next(iter(data.train_dl))[0].shape[0] == 4


def test_get_files_equals_the_plain_walk(tree):
    """The fast listing (scandir + iterdir) gives exactly what `os.walk` and `folder / name` give, in name order."""
    import os
    expected = []
    for folder, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        expected += [Path(folder) / f for f in sorted(files) if not f.startswith(".")
                     and Path(f).suffix.lower() in image_extensions]
    assert get_files(tree, image_extensions, recurse=True) == expected and len(expected) > 50


def walk_reference(path: Path) -> list[Path]:
    """What `os.walk` (followlinks=False, the default) lists, in name order, hidden entries skipped."""
    import os
    expected = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        expected += [Path(folder) / f for f in sorted(files) if not f.startswith(".")]
    return expected


def test_get_files_does_not_follow_links_to_folders_as_os_walk_doesnt(tmp_path):
    for name in ["train/tench/a.jpg", "train/tench/b.jpg", "valid/tench/c.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "train" / "x").symlink_to(Path("..") / "valid", target_is_directory=True)  # valid/ inside train/
    (tmp_path / "train" / "loop").symlink_to(Path(".."), target_is_directory=True)  # a link loop
    (tmp_path / "train" / "tench" / "d.jpg").symlink_to(Path("a.jpg"))  # a linked file is still a file
    files = get_files(tmp_path, recurse=True)
    assert files == walk_reference(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "train/tench/a.jpg", "train/tench/b.jpg", "train/tench/d.jpg", "valid/tench/c.jpg"]
    assert get_files(tmp_path / "train", recurse=True) == walk_reference(tmp_path / "train")  # no validation leak


def test_linked_split_folders_are_named_and_followed_when_asked(tmp_path):
    """A dataset whose train/ and val/ are links (say to a faster disk): found empty without a word before."""
    store, ds = tmp_path / "store", tmp_path / "imagenette"
    for name in ["train/tench/a.jpg", "train/tench/b.jpg", "val/tench/c.jpg"]:
        (store / name).parent.mkdir(parents=True, exist_ok=True)
        (store / name).write_bytes(b"x")
    ds.mkdir()
    for split in ["train", "val"]:
        (ds / split).symlink_to(store / split, target_is_directory=True)
    (store / "train" / "tench" / "loop").symlink_to(ds, target_is_directory=True)  # a loop back to the top
    (ds / ".snapshot").symlink_to(store, target_is_directory=True)  # hidden: skipped either way, so not named
    assert get_files(ds, recurse=True) == []
    with pytest.raises(ValueError, match=r"`\. train, val are links to folders.*followlinks=True"):
        ImageList.from_files(ds)
    files = get_files(ds, ".jpg", recurse=True, followlinks=True)  # each real folder once: the loop ends
    assert [f.relative_to(ds).as_posix() for f in files] == ["train/tench/a.jpg", "train/tench/b.jpg", "val/tench/c.jpg"]
    assert len(ImageList.from_files(ds, followlinks=True)) == 3
    ll = imagenette_labelled(ds, [], [])  # the lessons' and the CLI's data block follows them
    assert (len(ll.train), len(ll.valid)) == (2, 1)


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    gradient = (np.arange(64 * 32, dtype=np.uint32) * 32).astype(np.uint16).reshape(32, 64)  # 0 ... 65504
    Image.fromarray(gradient).save(tmp_path / "gray16.png")  # a 16-bit grayscale PNG
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    expected = torch.from_numpy((gradient // 257).astype(np.int64))  # each 16-bit value in 8 bits
    x = ImageList([tmp_path / "gray16.png"], tmp_path, tfms=[make_rgb, to_byte_tensor])[0]
    assert x.shape == (3, 32, 64) and x.dtype == torch.uint8
    assert (x.long() - expected).abs().max() <= 1  # v >> 8 and v // 257 differ by at most 1; clipping: by ~250
    assert len(x[0].unique()) == 256  # the whole gradient, not a white picture
    im = np.array(open_image(tmp_path / "gray16.png"))
    as_int32 = Image.fromarray(gradient.astype(np.int32))  # mode "I": how older Pillows open a 16-bit PNG
    assert np.array_equal(np.array(tk_files.to_8bit(as_int32)), im) and np.array_equal(im, x[0].numpy())
