"""The model side of keeping a GPU busy (`--channels-last`, `--compile`): callbacks that change the layout or
compile the model, each falling back with a message where it can't help."""
from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import torch

from .learner import Callback
from .utils import default_device

__all__ = ["ChannelsLast", "compile_unsupported", "Compile"]


class ChannelsLast(Callback):
    """Weights and batches in the (N, H, W, C) layout ("channels last") that GPU tensor cores convolve fastest.

    Runs before `DistributedCallback` so DDP wraps the converted weights; on a CPU it works, rarely faster.
    """

    order = -3

    def before_fit(self):
        self.model.to(memory_format=torch.channels_last)

    def before_batch(self):
        if self.xb.ndim == 4:
            self.learn.xb = self.xb.contiguous(memory_format=torch.channels_last)


def compile_unsupported(device: torch.device) -> str | None:
    """Why `torch.compile` can't run here (None when it can): Python version, no Triton for the GPU, no C++ compiler."""
    from torch._dynamo.eval_frame import is_dynamo_supported
    from torch.utils._triton import has_triton
    if not is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} with torch {torch.__version__}"
    if device.type == "cuda" and not has_triton():
        return "torch.compile needs Triton for GPU kernels and it is not installed"
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        return "torch.compile needs a C++ compiler (g++ or clang++) for CPU kernels and none was found"
    return None


class Compile(Callback):
    """Train and validate through `torch.compile(model)`: the first batches are slow (compiling), the rest faster.

    Where it can't run (`compile_unsupported`) it says why and trains the plain model; an error while compiling
    falls back to eager PyTorch for that piece (dynamo's `suppress_errors`), with a warning.
    """

    order = -1  # after DistributedCallback (-2) has picked the model of this pass: DDP to train, the module to validate

    def __init__(self, device: torch.device | str | None = None, **kwargs: Any):
        self.device = torch.device(device) if device is not None else default_device()
        self.kwargs, self.compiled, self.original = kwargs, {}, {}

    def before_fit(self):
        self.reason = compile_unsupported(self.device) if "backend" not in self.kwargs else None
        if self.reason:
            print(f"--compile: {self.reason}; training without torch.compile.")
        self.suppress = torch._dynamo.config.suppress_errors
        torch._dynamo.config.suppress_errors = True
        self.use_compiled()

    def before_train(self):
        self.use_compiled()

    def before_validate(self):
        self.use_compiled()

    def use_compiled(self) -> None:
        m = self.model
        if self.reason or m in self.original:
            return
        if m not in self.compiled:
            self.compiled[m] = torch.compile(m, **self.kwargs)
            self.original[self.compiled[m]] = m
        self.learn.model = self.compiled[m]

    def after_fit(self):
        self.learn.model = self.original.get(self.model, self.model)
        self.compiled, self.original = {}, {}
        torch._dynamo.config.suppress_errors = self.suppress
