"""Batches travel as uint8 and are normalised on the device: normalize_chan on bytes, imagenette_dls, the recipe."""
import pytest
import torch
import torchvision.transforms.v2.functional as TVF

from teachkit.callbacks import BatchTransformXCallback
from teachkit.data import imagenette_stats, norm_imagenette, normalize_chan
from teachkit.learner import Callback, CancelFitException
from teachkit.mixup import MixUp
from teachkit.data.imagenette import get_data, imagenette_dls, imagenette_gpu_dls
from teachkit.recipe import build_learner
from teachkit.transforms import to_float_tensor

MEAN, STD = [0.47, 0.48, 0.45], [0.29, 0.28, 0.30]


@pytest.fixture(scope="module")
def smoke_path():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEACHKIT_SMOKE", "1")
        return get_data("imagenette-160")


@pytest.mark.parametrize("shape", [(4, 3, 9, 7), (3, 5, 5)])
def test_uint8_batches_normalise_as_torchvision_does_on_x_over_255(shape):
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = normalize_chan(x, MEAN, STD)
    ref = TVF.normalize(x.float() / 255, MEAN, STD)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(norm_imagenette(x), TVF.normalize(x.float() / 255, *[s.tolist() for s in imagenette_stats]),
                          atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_batches_normalise_exactly_as_before(dtype):
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)
    mean, std = torch.tensor(MEAN, dtype=dtype), torch.tensor(STD, dtype=dtype)
    out = normalize_chan(x, MEAN, STD)
    assert out.dtype == dtype and torch.equal(out, (x - mean[:, None, None]) / std[:, None, None])
    assert torch.allclose(out, TVF.normalize(x, MEAN, STD), atol=1e-6)


def test_uint8_normalising_keeps_channels_last():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    assert norm_imagenette(x).is_contiguous(memory_format=torch.channels_last)


def test_imagenette_dls_batches_are_uint8_and_normalise_to_the_float_pipelines(smoke_path):
    dls = imagenette_dls(smoke_path, 32, 16, workers=0)
    xb, _ = next(iter(dls.valid_dl))
    assert xb.dtype == torch.uint8 and xb.shape == (32, 3, 32, 32)
    as_before = normalize_chan(to_float_tensor(xb), *imagenette_stats)  # the old per-item to_float_tensor, normalised
    assert torch.allclose(norm_imagenette(xb), as_before, atol=1e-5)


def test_gpu_decode_path_batches_are_uint8_too(smoke_path):
    xb, _ = next(iter(imagenette_gpu_dls(smoke_path, 24, 8, workers=0, device="cpu").train_dl))
    assert xb.dtype == torch.uint8 and xb.shape == (8, 3, 24, 24)


class SeeInputs(Callback):
    """Record the dtype and range of the batch the model gets, after every other before_batch."""

    order = 100

    def before_fit(self):
        self.seen = []

    def before_batch(self):
        self.seen.append((self.xb.dtype, self.xb.min().item()))

    def after_pred(self):
        raise CancelFitException()  # one batch is enough


def test_the_recipe_normalises_uint8_batches_before_mixup(smoke_path):
    dls = imagenette_dls(smoke_path, 32, 16, workers=0)
    learn = build_learner(dls, "adam", progress=False, device="cpu", mixup=0.4)
    norm = next(cb for cb in learn.cbs if isinstance(cb, BatchTransformXCallback))
    mix = next(cb for cb in learn.cbs if isinstance(cb, MixUp))
    assert norm.order < mix.order  # MixUp blends normalised floats, never bytes
    see = SeeInputs()
    learn.fit(1, cbs=[see])
    (dtype, lo), = see.seen
    assert dtype == torch.float32 and lo < 0  # normalised: below zero somewhere, which no uint8 or [0, 1] batch is
