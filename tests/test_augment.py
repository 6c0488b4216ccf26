"""teachkit.augment: per-image PIL transforms and batched tensor transforms (lesson 10)."""
import inspect
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib import cbook
from PIL import Image
from torch import nn

from teachkit import augment as A
from teachkit.augment import (CenterCrop, PilRandomDihedral, PilRandomFlip, PilTiltRandomCrop, RandomCrop,
                              RandomResizedCrop, find_coeffs, tilted_corners)
from teachkit.augment import (BatchAugment, BatchFlip, BatchRotate, BatchWarp, BatchZoom, homography_grid,
                                    rotation_matrix, tilt_matrix, zoom_matrix)
from teachkit.callbacks import BatchTransformXCallback
from teachkit.data.databunch import DataBunch
from teachkit.show import sample_grid, show_samples
from teachkit.transforms import ResizeFixed, make_rgb, to_byte_tensor, to_float_tensor
from teachkit.learner import Callback, Learner
from teachkit.panels.sampler import transform_params
from teachkit.utils import compose, set_seed

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """Grace Hopper, shrunk so tests stay quick: a real photo with edges, not noise."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return im.convert("RGB").resize((120, 100), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.rand(6, 3, 24, 32, generator=torch.Generator().manual_seed(0))


def arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im).astype(np.int16)


# ------------------------------------------------------------------ per image

def test_flip_twice_is_identity(photo):
    flip = PilRandomFlip(p=1.0)
    once = flip(photo)
    assert not np.array_equal(arr(once), arr(photo))
    assert np.array_equal(arr(flip(once)), arr(photo))


def test_p_zero_leaves_image_alone(photo):
    assert np.array_equal(arr(PilRandomFlip(p=0)(photo)), arr(photo))
    assert np.array_equal(arr(PilRandomDihedral(p=0)(photo)), arr(photo))


def test_dihedral_keeps_pixels_and_changes_something():
    im = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))
    t = PilRandomDihedral(p=1.0, seed=0)
    outs = [t(im) for _ in range(30)]
    assert all(sorted(arr(o).ravel()) == sorted(arr(im).ravel()) for o in outs)
    assert len({np.asarray(o).tobytes() for o in outs}) == 7  # the 7 non-identity symmetries all turn up


CROPS = [lambda s: RandomCrop(s, seed=0), lambda s: CenterCrop(s), lambda s: RandomResizedCrop(s, seed=0),
         lambda s: PilTiltRandomCrop(s, magnitude=0.2, seed=0), lambda s: RandomCrop(s, crop_size=500, seed=0),
         lambda s: RandomResizedCrop(s, p=0.0)]


@pytest.mark.parametrize("make", CROPS)
@pytest.mark.parametrize("in_size", [(64, 64), (65, 65), (121, 40), (40, 121), (7, 3)])
@pytest.mark.parametrize("size", [32, 33, (40, 24), (24, 41)])
def test_crops_return_requested_size(make, in_size, size):
    tfm = make(size)
    want = (size, size) if isinstance(size, int) else size
    for _ in range(3):
        out = tfm(Image.new("RGB", in_size, (10, 20, 30)))
        assert out.size == want and out.mode == "RGB"


def test_zero_magnitude_tilt_is_identity(photo):
    tfm = PilTiltRandomCrop(size=photo.size, crop_size=photo.size, magnitude=0.0, seed=0)
    assert np.abs(arr(tfm(photo)) - arr(photo)).max() <= 1


def test_tilt_moves_pixels(photo):
    tfm = PilTiltRandomCrop(size=photo.size, crop_size=photo.size, magnitude=0.25, seed=0)
    assert np.abs(arr(tfm(photo)) - arr(photo)).mean() > 5


def test_center_crop_scale_one_on_square_is_identity(photo):
    sq = photo.crop((0, 0, 100, 100))
    assert np.abs(arr(CenterCrop(100, scale=1.0)(sq)) - arr(sq)).max() <= 1


def test_find_coeffs_maps_target_corners_onto_source():
    src = torch.tensor([[3.0, 5], [-2, 60], [70, 66], [58, -4]])
    targ = torch.tensor([[0.0, 0], [0, 64], [64, 64], [64, 0]])
    a, b, c, d, e, f, g, h = find_coeffs(src, targ).tolist()
    for (x, y), (u, v) in zip(targ.tolist(), src.tolist()):
        den = g * x + h * y + 1
        assert (a * x + b * y + c) / den == pytest.approx(u, abs=1e-6)
        assert (d * x + e * y + f) / den == pytest.approx(v, abs=1e-6)
    batched = find_coeffs(src.expand(3, 4, 2), targ.expand(3, 4, 2))
    assert batched.shape == (3, 8) and torch.allclose(batched[2], find_coeffs(src, targ))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "I;16"])
@pytest.mark.parametrize("tfm", [PilRandomFlip(p=1), PilRandomDihedral(p=1), RandomCrop(16), CenterCrop(16),
                                 RandomResizedCrop(16), PilTiltRandomCrop(16, magnitude=0.1)], ids=repr)
def test_other_modes_become_rgb(mode, tfm):
    im = Image.new("RGB", (30, 20), (200, 100, 50)).convert(mode)
    out = tfm(im)
    assert out.mode == "RGB"
    assert to_byte_tensor(out).shape[0] == 3


def test_pipeline_sorted_by_order(photo):
    gray = photo.convert("L")
    x = compose(gray, [to_float_tensor, to_byte_tensor, PilRandomFlip(seed=0), RandomResizedCrop(48, seed=0)])
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert not hasattr(A, "ResizeFixed") and not hasattr(A, "show_images")  # each name has one home, not re-exported


def test_pil_transforms_reproducible_with_seed(photo):
    def draws(seed):
        t = PilTiltRandomCrop(40, magnitude=0.3, seed=seed)
        return [np.asarray(t(photo)).tobytes() for _ in range(4)]
    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    t = RandomResizedCrop(40, seed=5)
    first = [np.asarray(t(photo)).tobytes() for _ in range(3)]
    t.reseed(5)
    assert [np.asarray(t(photo)).tobytes() for _ in range(3)] == first


def test_unseeded_transforms_follow_set_seed(photo):
    def draws():
        set_seed(0)
        t, b = RandomCrop(30), BatchAugment()
        return np.asarray(t(photo)).tobytes(), b(torch.ones(2, 3, 8, 8).cumsum(-1))
    (p1, b1), (p2, b2) = draws(), draws()
    assert p1 == p2 and torch.equal(b1, b2)


@pytest.mark.parametrize("bad", [
    lambda: PilRandomFlip(p=1.5), lambda: PilRandomDihedral(p=-0.1), lambda: BatchFlip(p=2),
    lambda: RandomResizedCrop(32, scale=(0.5, 1.5)), lambda: RandomResizedCrop(32, scale=(0.0, 1.0)),
    lambda: RandomResizedCrop(32, scale=(0.8, 0.5)), lambda: RandomResizedCrop(32, ratio=(2.0, 1.0)),
    lambda: PilTiltRandomCrop(32, magnitude=-0.1), lambda: BatchWarp(magnitude=-1.0), lambda: CenterCrop(32, scale=0.5),
    lambda: BatchZoom(min_zoom=0.0), lambda: BatchAugment(pad_mode='reflect'), lambda: RandomCrop(0), lambda: BatchFlip()(torch.zeros(3, 3)),
])
def test_bad_arguments_raise_value_error_saying_what(bad):
    with pytest.raises(ValueError, match=r"got"):
        bad()


ALL = [PilRandomFlip, PilRandomDihedral, RandomCrop, CenterCrop, RandomResizedCrop, PilTiltRandomCrop,
       BatchFlip, BatchRotate, BatchZoom, BatchWarp]


@pytest.mark.parametrize("cls", ALL)
def test_constructor_parameters_are_simple_attributes(cls):
    """The augmentation sampler panel reads a transform's knobs from its signature and its attributes."""
    tfm = cls()
    for name, par in inspect.signature(cls).parameters.items():
        assert par.default is not inspect.Parameter.empty, f"{cls.__name__}({name}) needs a default"
        assert hasattr(tfm, name), f"{cls.__name__} should store {name} as an attribute"


# ------------------------------------------------------------------ batched

def test_homography_grid_matches_affine_grid():
    thetas = torch.tensor([10.0, -20, 0, 45])
    m = rotation_matrix(thetas, 32 / 24) @ zoom_matrix(torch.tensor([1.0, 1.3, 2, 1.1]), torch.rand(4, 2))
    ours = homography_grid(m, 24, 32)
    ref = F.affine_grid(m[:, :2], (4, 3, 24, 32), align_corners=False)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("tfm", [BatchRotate(max_deg=0, p=1), BatchWarp(magnitude=0, p=1), BatchZoom(1, 1, p=1),
                                 BatchAugment(BatchRotate(0, p=1), BatchWarp(0, p=1), BatchZoom(1, 1, p=1)),
                                 BatchAugment(BatchFlip(p=0), BatchRotate(p=0), BatchZoom(p=0), BatchWarp(p=0))], ids=repr)
def test_zero_magnitude_batched_is_identity(tfm, batch):
    assert torch.allclose(tfm(batch), batch, atol=1e-5)


def test_batched_flip_twice_is_identity(batch):
    flip = BatchFlip(p=1.0)
    once = flip(batch)
    assert torch.allclose(once, batch.flip(-1), atol=1e-5)
    assert torch.allclose(flip(once), batch, atol=1e-5)


def test_rotation_half_turn_and_quarter_turn(batch):
    half = BatchRotate(180, p=1)
    half.uniform = lambda n, lo, hi: torch.full((n,), 180.0)
    assert torch.allclose(half(batch), batch.flip(-1, -2), atol=1e-5)
    wide = torch.rand(2, 3, 8, 16)  # non-square: the middle square must turn rigidly, not shear
    quarter = BatchRotate(90, p=1)
    quarter.uniform = lambda n, lo, hi: torch.full((n,), 90.0)
    mid = slice(4, 12)
    assert torch.allclose(quarter(wide)[..., mid], torch.rot90(wide[..., mid], -1, (2, 3)), atol=1e-5)


def test_probability_per_sample():
    flips = BatchFlip(p=0.3, seed=0).matrices(2000, 8, 8)[:, 0, 0]
    assert 0.25 < (flips < 0).float().mean() < 0.35


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8])
def test_batched_keeps_shape_dtype_device(device, dtype, batch):
    x = (batch * 255).to(dtype) if dtype == torch.uint8 else batch.to(dtype)
    out = BatchAugment(seed=0)(x.to(device))
    assert out.shape == x.shape and out.dtype == dtype and out.device.type == device
    assert torch.isfinite(out.float()).all()


def test_batched_reproducible_with_seed(batch):
    a, b, c = BatchAugment(seed=3), BatchAugment(seed=3), BatchAugment(seed=4)
    ya = [a(batch) for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(ya, [b(batch) for _ in range(2)]))
    assert not torch.allclose(ya[0], ya[1])
    assert not torch.allclose(ya[0], c(batch))
    a.reseed(3)
    assert torch.equal(a(batch), ya[0])


def test_single_image_through_batched(batch):
    out = BatchAugment(seed=0)(batch[0])
    assert out.shape == batch[0].shape


def test_in_learner_through_batch_transform_callback():
    x = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(0))
    ds = torch.utils.data.TensorDataset(x, y)
    dls = DataBunch(torch.utils.data.DataLoader(ds, 8), torch.utils.data.DataLoader(ds, 16))
    seen = []

    class Spy(Callback):
        order = 5

        def before_batch(self):
            seen.append(self.xb)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    learn = Learner(model, dls, opt_func=lambda ps, lr: torch.optim.SGD(ps, lr=lr), lr=0.1,
                    cbs=[BatchTransformXCallback(BatchAugment(seed=0)), Spy()])
    learn.fit(1)
    assert math.isfinite(learn.loss.item())
    assert seen[0].shape == (8, 3, 16, 16) and not torch.allclose(seen[0], x[:8])


# ------------------------------------------------------------------ looking

def test_sample_grid_pil_pipeline(photo):
    tfms = [RandomResizedCrop(40), PilRandomFlip()]
    a, b = sample_grid(tfms, photo, n=6, seed=0), sample_grid(tfms, photo, n=6, seed=0)
    assert len(a) == 6 and all(im.size == (40, 40) for im in a)
    assert [np.asarray(o).tobytes() for o in a] == [np.asarray(o).tobytes() for o in b]
    assert len({np.asarray(o).tobytes() for o in a}) > 1


def test_sample_grid_batched_one_call(photo):
    out = sample_grid(BatchAugment(), photo, n=5, seed=1)
    assert len(out) == 5 and out[0].shape == (3, 100, 120) and out[0].dtype == torch.float32
    again = sample_grid(BatchAugment(), photo, n=5, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(out, again))


def test_show_samples_draws_a_grid(photo):
    fig = show_samples(PilRandomDihedral(), photo, n=6, ncols=3, seed=0)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6
    plt.close(fig)


@pytest.mark.parametrize("make", [lambda: RandomCrop(32, resample=Image.Resampling.LANCZOS),
                                  lambda: PilTiltRandomCrop(32, resample=Image.Resampling.BOX)])
def test_crops_refuse_resampling_pillow_transforms_cannot_do(make):
    with pytest.raises(ValueError, match="NEAREST"):
        make()


def test_batch_transform_runs_last_in_a_per_item_pipeline():
    img = Image.new("L", (20, 12), 128)
    out = compose(img, [BatchFlip(p=1.0, seed=0), make_rgb, to_byte_tensor, to_float_tensor])
    assert out.shape == (3, 12, 20) and out.dtype == torch.float32


def test_sample_grid_with_a_seed_leaves_the_callers_transform_alone():
    img = Image.new("RGB", (64, 48), "red")
    tfm = RandomResizedCrop(16, seed=3)
    expected = RandomResizedCrop(16, seed=3)
    sample_grid(tfm, img, n=4, seed=0)
    assert [tfm.get_corners(64, 48, 64, 48) for _ in range(3)] == [expected.get_corners(64, 48, 64, 48) for _ in range(3)]


# ------------------------------------------------------------------ tilts never read outside the image

def offered_magnitudes(cls) -> list[float]:
    """Every magnitude the augmentation panel's slider offers for `cls`."""
    p = next(p for p in transform_params(cls) if p.name == "magnitude")
    return [round(p.low + i * p.step, 6) for i in range(round((p.high - p.low) / p.step) + 1)]


@pytest.mark.parametrize("in_size", [(160, 120), (64, 64), (37, 90)])
@pytest.mark.parametrize("crop_size", [None, (30, 30), "whole"])
def test_tilted_crop_has_no_black_pixels_at_any_offered_magnitude(in_size, crop_size):
    white = Image.new("RGB", in_size, "white")
    mags = offered_magnitudes(PilTiltRandomCrop)
    assert mags[0] == 0 and mags[-1] == 0.25 and len(mags) > 20
    for i, m in enumerate(mags):
        tfm = PilTiltRandomCrop(32, crop_size=in_size if crop_size == "whole" else crop_size, magnitude=m, seed=i)
        for _ in range(20):
            assert np.asarray(tfm(white)).min() == 255, f"black pixels at magnitude {m}"


def test_batched_tilt_reads_no_padding_at_any_offered_magnitude():
    white = torch.ones(32, 3, 24, 40)
    for i, m in enumerate(offered_magnitudes(BatchWarp)):
        tfm = BatchWarp(m, p=1, seed=i)
        assert tfm(white).min() > 1 - 1e-5, f"padding read at magnitude {m}"
        tfm.pad_mode = "zeros"  # with zero padding, only the outermost pixels may blend (grid_sample's edge)
        assert tfm(white)[..., 1:-1, 1:-1].min() > 1 - 1e-5


def test_batched_and_pil_tilts_move_the_same_corners():
    tilts = torch.tensor([[0.2, -0.1], [-0.25, 0.2], [0.0, 0.05]])
    m = tilt_matrix(tilts).double()
    for (up, lr), mat in zip(tilts.tolist(), m):
        out_corners = torch.tensor([[-1.0, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], dtype=torch.float64)
        src = (mat @ out_corners.T).T
        src = (src[:, :2] / src[:, 2:] + 1) / 2  # where each output corner reads, in the unit square
        assert torch.allclose(src, torch.tensor(tilted_corners(up, lr), dtype=torch.float64), atol=1e-5)
