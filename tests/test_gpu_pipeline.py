"""The GPU options on a CPU: GPU-style JPEG decoding run on the CPU, channels_last, torch.compile and their fallbacks."""
import io

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from teachkit.callbacks import AvgStatsCallback
from teachkit.data.databunch import DataBunch
from teachkit.learner import Callback, Learner
from teachkit.optim import adam_opt
from teachkit.data.gpu_jpeg import GpuJpegLoader, decode_jpegs
from teachkit.data.imagenette import get_data, imagenette_dls, imagenette_gpu_dls
from teachkit.gpu import ChannelsLast, Compile
from teachkit.recipe import build_learner
from teachkit.train import parse_args


@pytest.fixture(scope="module")
def smoke_path():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEACHKIT_SMOKE", "1")
        return get_data("imagenette-160")


def test_decoding_the_jpegs_as_on_a_gpu_gives_the_cpu_paths_validation_images(smoke_path):
    cpu = imagenette_dls(smoke_path, 32, 16, workers=0)
    gpu = imagenette_gpu_dls(smoke_path, 32, 16, workers=0, device="cpu")  # the GPU path, with the CPU as its device
    (xc, yc), (xg, yg) = next(iter(cpu.valid_dl)), next(iter(gpu.valid_dl))
    assert isinstance(gpu.valid_dl, GpuJpegLoader) and gpu.c_out == cpu.c_out == 10
    assert torch.equal(yc, yg) and xg.shape == xc.shape == (32, 3, 32, 32)
    assert xg.dtype == xc.dtype == torch.uint8  # both paths hand uint8 batches to norm_imagenette
    # the same centre crop; antialiased resize vs PIL's draft + bilinear
    assert (xg.float() - xc.float()).abs().mean() / 255 < 0.05


def test_gpu_path_training_batches_are_random_crops_as_bytes(smoke_path):
    dls = imagenette_gpu_dls(smoke_path, 24, 8, workers=0, device="cpu")
    xb, yb = next(iter(dls.train_dl))
    assert xb.shape == (8, 3, 24, 24) and xb.dtype == torch.uint8 and xb.float().std() > 0
    assert len(dls.train_dl) == 75 and yb.dtype == torch.int64


def test_a_png_named_jpeg_is_still_decoded():
    def encoded(fmt: str) -> torch.Tensor:
        buf = io.BytesIO()
        Image.new("L", (20, 10), 128).save(buf, fmt)  # grayscale: decoded to RGB all the same
        return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    imgs = decode_jpegs([encoded("JPEG"), encoded("PNG")], torch.device("cpu"))
    assert [tuple(i.shape) for i in imgs] == [(3, 10, 20), (3, 10, 20)]


def test_gpu_decode_without_a_gpu_says_so_and_uses_the_cpu_path(smoke_path, capsys):
    dls = imagenette_dls(smoke_path, 32, 16, workers=0, gpu_decode=True, device="cpu")
    assert "no CUDA GPU" in capsys.readouterr().out
    assert isinstance(dls.train_dl, DataLoader)


def tiny_cnn_learner(cbs=()) -> Learner:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    dls = DataBunch(DataLoader(TensorDataset(x[:48], y[:48]), 16), DataLoader(TensorDataset(x[48:], y[48:]), 16))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    learn = Learner(model, dls, F.cross_entropy, adam_opt, 1e-2, [AvgStatsCallback(), *cbs])
    learn.logger = lambda row: None
    return learn


class SeeLayouts(Callback):
    """Record whether the batch the model saw and the first conv's weights were channels-last."""

    def before_fit(self):
        self.seen = []

    def after_pred(self):
        cl = torch.channels_last
        self.seen.append((self.xb.is_contiguous(memory_format=cl), self.model[0].weight.is_contiguous(memory_format=cl)))


def test_channels_last_trains_in_nhwc_to_the_same_weights():
    plain = tiny_cnn_learner()
    plain.fit(2)
    learn = tiny_cnn_learner([ChannelsLast(), SeeLayouts()])
    learn.fit(2)
    assert learn.see_layouts.seen and all(x and w for x, w in learn.see_layouts.seen)
    for a, b in zip(plain.model.parameters(), learn.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_compile_where_unsupported_says_why_and_trains_the_plain_model(monkeypatch, capsys):
    monkeypatch.setattr("teachkit.gpu.compile_unsupported", lambda device: "no compiler here")
    learn = tiny_cnn_learner([Compile("cpu")])
    model = learn.model
    learn.fit(1)
    assert "--compile: no compiler here; training without torch.compile." in capsys.readouterr().out
    assert learn.model is model and learn.avg_stats.valid_stats.count == 16


class ModelType(Callback):
    order = 5

    def before_fit(self):
        self.types = set()

    def after_pred(self):
        self.types.add(type(self.model).__name__)


def test_compile_trains_through_torch_compile_and_gives_the_model_back():
    plain = tiny_cnn_learner()
    plain.fit(1)
    learn = tiny_cnn_learner([Compile("cpu", backend="eager"), ModelType()])  # dynamo's tracing, no C++ build
    model = learn.model
    learn.fit(1)
    assert learn.model_type.types == {"OptimizedModule"} and learn.model is model
    for a, b in zip(plain.model.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_the_flags_reach_the_learner(smoke_path):
    args = parse_args(["--channels-last", "--compile", "--gpu-decode"])
    assert args.channels_last and args.compile_model and args.gpu_decode
    dls = imagenette_dls(smoke_path, 32, 16, workers=0)
    learn = build_learner(dls, "adam", lsuv=False, progress=False, device="cpu", channels_last=True, compile_model=True)
    assert {"ChannelsLast", "Compile"} <= {type(cb).__name__ for cb in learn.cbs}


def test_the_cli_trains_with_the_gpu_flags_on_a_cpu(monkeypatch, capsys):
    from teachkit.train import main
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    res = main(["--channels-last", "--gpu-decode", "--epochs", "1"])
    out = capsys.readouterr().out
    assert "--gpu-decode: no CUDA GPU" in out and out.count("Final: valid accuracy") == 1
    assert res["world_size"] == 1 and 0 <= res["valid_accuracy"] <= 1
