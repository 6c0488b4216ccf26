"""teachkit.panels.sampler.AugmentSampler: the augmentation panel's model, tested without widgets."""
import numpy as np
import pytest
import torch
from PIL import Image

from teachkit.augment import CenterCrop, PilRandomFlip, PilTiltRandomCrop, RandomResizedCrop
from teachkit.augment import BatchAugment, BatchFlip, BatchWarp, BatchZoom
from teachkit.data import ImageList
from teachkit.panels.sampler import AugmentSampler, Param, sample_image, transform_params
from teachkit.show import image_grid, montage, to_hwc
from teachkit.transforms import to_byte_tensor, to_float_tensor


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three small images of different colours and sizes, one in a sub-folder."""
    root = tmp_path_factory.mktemp("imgs")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (40, 30)), ("b.jpg", (50, 50)), ("sub/c.png", (30, 60))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / name)
    return root


def arrays(samples) -> list[np.ndarray]:
    return [np.asarray(to_hwc(s), dtype=np.float32) for s in samples]


def same(a, b) -> bool:
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b)))


def small(**kwargs) -> AugmentSampler:
    return AugmentSampler(max_size=96, n=4, **kwargs)


# ------------------------------------------------------------------ parameters from signatures

def test_params_read_from_the_signature():
    ps = {p.name: p for p in transform_params(RandomResizedCrop)}
    assert list(ps) == ["size", "scale", "ratio", "resample", "p"]  # no seed (the sampler's), no crop_size (None)
    assert [ps[k].kind for k in ps] == ["int", "tuple", "tuple", "choice", "float"]
    assert ps["scale"].default == (0.35, 1.0) and ps["p"][3:6] == (0.0, 1.0, 0.05)
    assert Image.Resampling.LANCZOS not in ps["resample"].choices  # PIL's EXTENT transform refuses it
    assert {p.name: p.kind for p in transform_params(BatchZoom)} == {"min_zoom": "float", "max_zoom": "float", "p": "float"}
    assert [p.name for p in transform_params(BatchAugment)] == []  # *tfms and strings: nothing a slider can set


def test_sensible_slider_ranges():
    for cls in (RandomResizedCrop, PilTiltRandomCrop, CenterCrop, BatchZoom, BatchWarp):
        for p in transform_params(cls):
            assert isinstance(p, Param)
            if p.kind in ("int", "float"):
                assert p.low <= p.default <= p.high and 0 < p.step <= (p.high - p.low) / 10
            if p.kind == "tuple":
                assert p.low <= min(p.default) and max(p.default) <= p.high


# ------------------------------------------------------------------ sampling

def test_defaults_sample_the_sample_photo():
    s = small()
    assert s.names == ["grace_hopper.jpg"] and sample_image().is_file()
    assert max(s.image.size) == 96 and s.image.mode == "RGB"  # shrunk to max_size, aspect kept
    assert s.tfm is RandomResizedCrop and s.mode == "pil"
    out = s.sample()
    assert len(out) == 4 and all(isinstance(o, Image.Image) and o.size == (128, 128) for o in out)


def test_same_seed_same_samples_and_resample_differs():
    s = small()
    first = s.sample()
    assert same(first, s.sample())
    s.resample()
    assert s.seed == 1 and not same(first, s.sample())
    s.seed = 0
    assert same(first, s.sample())
    assert same(first, small().sample())  # a fresh sampler with the same seed draws the same


def test_batched_mode_gives_tensors_and_is_seeded():
    s = small(tfm="BatchZoom")
    assert s.mode == "batched"
    out = s.sample()
    assert all(isinstance(o, torch.Tensor) and o.shape == (3, *s.image.size[::-1]) for o in out)
    assert same(out, s.sample())
    s.resample()
    assert not same(out, s.sample())


def test_toggling_mode_switches_to_the_counterpart():
    s = small(tfm=PilRandomFlip)
    s.set_param("p", 1.0)
    s.mode = "batched"
    assert s.tfm is BatchFlip and s.values == {"p": 1.0}  # same-named values carry over
    flipped = s.sample()[0]
    assert torch.allclose(flipped, to_float_tensor(to_byte_tensor(s.image)).flip(-1), atol=1e-5)
    s.mode = "pil"
    assert s.tfm is PilRandomFlip
    s.set_transform("CenterCrop")  # no batched twin: the first batched transform
    s.mode = "batched"
    assert s.tfm is BatchZoom
    assert s.choices("pil")[0] == "RandomResizedCrop" and "BatchWarp" in s.choices()


def test_set_param_changes_the_samples():
    s = small(tfm="PilTiltRandomCrop")
    flat = s.sample()
    s.set_param("magnitude", 0.2)
    assert s.values["magnitude"] == 0.2 and s.transform().magnitude == 0.2
    assert not same(flat, s.sample())
    s.set_param("resample", "NEAREST")  # a choice by name
    assert s.values["resample"] is Image.Resampling.NEAREST
    s.set_param("size", 64)
    assert s.sample()[0].size == (64, 64)
    s.n = 2
    assert len(s.sample()) == 2


def test_render_png_changes_with_the_seed():
    s = small()
    png = s.render()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    s.resample()
    assert s.render() != png
    s.seed = 0
    assert s.render() == png


# ------------------------------------------------------------------ images from anywhere

def test_images_from_folder_imagelist_list_and_file(folder):
    s = AugmentSampler(folder, n=2)
    assert s.names == ["a.png", "b.jpg", "c.png"]
    s.index = 2
    assert s.image.size == (30, 60)
    assert AugmentSampler(ImageList.from_files(folder)).names == s.names
    assert AugmentSampler(folder / "b.jpg").image.size == (50, 50)
    ims = [Image.new("L", (20, 10)), Image.new("RGBA", (8, 8))]
    s = AugmentSampler(ims)
    assert s.names == ["image 0", "image 1"] and s.image.mode == "RGB"


def test_tfms_as_instances_start_from_their_values():
    s = AugmentSampler(tfms=[RandomResizedCrop(64, scale=(0.5, 1.0)), BatchZoom(1.2, 2.0)], n=2, max_size=96)
    assert s.values == {"size": 64, "scale": (0.5, 1.0), "ratio": (0.75, 4 / 3),
                        "resample": Image.Resampling.BILINEAR, "p": 1.0}
    s.mode = "batched"
    assert s.values == {"min_zoom": 1.2, "max_zoom": 2.0, "p": 1.0}  # its own values, then same-named ones carried


# ------------------------------------------------------------------ bad input says what to do

def test_bad_input_raises_helpful_errors(folder, tmp_path):
    s = small()
    with pytest.raises(ValueError, match="Unknown transform 'Blur'.*RandomResizedCrop"):
        s.set_transform("Blur")
    with pytest.raises(ValueError, match="has no parameter 'zoom'"):
        s.set_param("zoom", 1.0)
    with pytest.raises(ValueError, match="size takes a whole number"):
        s.set_param("size", 12.5)
    with pytest.raises(ValueError, match="scale takes a pair of numbers"):
        s.set_param("scale", "wide")
    with pytest.raises(ValueError, match="resample takes one of NEAREST, BILINEAR, BICUBIC"):
        s.set_param("resample", "LANCZOS")
    with pytest.raises(ValueError, match="scale"):  # the transform's own check: scale must be within (0, 1]
        s.set_param("scale", (0.5, 2.0))
    assert s.values["scale"] == (0.35, 1.0)  # refused values are not kept
    with pytest.raises(ValueError, match="mode is 'pil'"):
        s.mode = "gpu"
    with pytest.raises(ValueError, match="No batched transform"):
        AugmentSampler(tfms=[RandomResizedCrop]).mode = "batched"
    with pytest.raises(ValueError, match="from 1 to 64"):
        s.n = 0
    with pytest.raises(ValueError, match="seed must be"):
        s.seed = -3
    with pytest.raises(ValueError, match="out of range: pick 0 to 0"):
        s.index = 1
    with pytest.raises(ValueError, match="No image files"):
        AugmentSampler(tmp_path)
    with pytest.raises(ValueError, match="neither an image file nor a folder"):
        AugmentSampler(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="No images to sample from"):
        AugmentSampler([])
    with pytest.raises(ValueError, match="No images to sample from in 3"):
        AugmentSampler([folder / "a.png", 3])
    with pytest.raises(ValueError, match="not a transform"):
        AugmentSampler(tfms=[len])


def pixel(canvas: torch.Tensor, x: int, y: int) -> tuple:
    return tuple((canvas[:, y, x] * 255).round().int().tolist())


def test_image_grid_fits_every_image_in_a_cell():
    ims = [Image.new("RGB", (200, 100), "red"), torch.zeros(3, 50, 60), Image.new("RGB", (128, 128), "blue")]
    canvas = image_grid(ims, ncols=2, cell=128, pad=6)
    assert canvas.shape == (3, 2 * 134 + 6, 2 * 134 + 6)
    assert pixel(canvas, 6 + 64, 6 + 64) == (255, 0, 0)  # the wide image, shrunk to 128x64, centred
    assert pixel(canvas, 6 + 64, 6 + 10) == (255, 255, 255)  # above it: background
    assert pixel(canvas, 140 + 64, 6 + 64) == (0, 0, 0)  # the tensor, at its own size (60x50)...
    assert pixel(canvas, 140 + 64, 6 + 64 - 30) == (255, 255, 255)  # ... not stretched to the cell
    assert pixel(canvas, 6 + 64, 140 + 64) == (0, 0, 255)
    assert image_grid(ims[:1], ncols=1, cell=128, pad=6).shape == (3, 140, 140)  # padded like a grid of one


def test_montage_puts_the_original_large_beside_the_samples():
    orig, blue = Image.new("RGB", (300, 300), "red"), Image.new("RGB", (128, 128), "blue")
    canvas, split = montage(orig, [blue] * 4, cell=128, pad=6)
    assert canvas.shape == (3, 274, 274 + 274) and split == 274  # two rows of two samples beside an original 2 cells tall
    assert pixel(canvas, 7, 7) == pixel(canvas, 6 + 261, 6 + 261) == (255, 0, 0)  # the original, shrunk, fills its big cell
    assert all(pixel(canvas, x + 64, y + 64) == (0, 0, 255) for x in (280, 414) for y in (6, 140))
    one_row, split = montage(orig, [blue] * 3, cell=128, pad=6)
    assert one_row.shape == (3, 140, 140 + 3 * 134 + 6) and split == 140
