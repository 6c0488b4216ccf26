"""LSUV at the cost of a few forward passes: the cached-input and one-pass paths give today's weights exactly.

`reference_lsuv_init` is the algorithm as it stood before the cache (every measurement a forward pass of the whole
model, cut short after the measured layer), kept here as the yardstick, not in the package.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from teachkit.init import fast as lsuv_fast
from teachkit.init import lsuv_init, lsuv_module, lsuv_modules
from teachkit.init import LSUVStepper
from teachkit.models import ConvLayer, GeneralRelu, get_cnn_model, init_cnn
from teachkit.xresnet import xresnet18


# ---------------------------------------------------------------- today's algorithm, the yardstick

class Stop(Exception):
    pass


def reference_measure(model, module, xb):
    """Mean and std at the measured point, from a forward pass of the whole model in LSUV's mode."""
    point = module.relu if isinstance(module, ConvLayer) else module
    seen = {}

    def hook(mod, inp, out):
        seen["ms"] = out.detach().float().mean().item(), out.detach().float().std().item()
        raise Stop
    saved = {m: [b.clone() for b in m.buffers(recurse=False)] for m in model.modules()
             if getattr(m, "track_running_stats", False)}
    modes = {m: m.training for m in model.modules()}
    h = point.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model.train()
            for m in model.modules():
                if isinstance(m, nn.Dropout):
                    m.eval()
            try:
                model(xb)
            except Stop:
                pass
    finally:
        h.remove()
        for m, t in modes.items():
            m.train(t)
        for m, bufs in saved.items():
            for b, s in zip(m.buffers(recurse=False), bufs):
                b.copy_(s)
    return seen["ms"]


def reference_lsuv_init(model, xb, modules=None, tol=1e-3, max_iter=10):
    """Each layer in turn: scale until std 1, then shift (relu.sub or bias) until mean 0; a full pass per measure."""
    for m in modules or lsuv_modules(model):
        for it in range(max_iter + 1):
            mean, std = reference_measure(model, m, xb)
            shift = ("relu.sub" if m.relu.sub is not None else None) if isinstance(m, ConvLayer) else \
                ("bias" if getattr(m, "bias", None) is not None else None)
            if abs(std - 1) > tol:
                action = "scale"
            elif shift is not None and abs(mean) > tol:
                action = "shift"
            else:
                break
            if it == max_iter:
                break
            with torch.no_grad():
                if action == "scale":
                    (m.conv.weight if isinstance(m, ConvLayer) else m.weight).div_(std)
                elif shift == "relu.sub":
                    m.relu.sub.add_(mean)
                else:
                    m.bias.sub_(mean)
    return model


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- models

def lesson_cnn(nfs=(16, 32, 32), bn=False, seed=0):
    """The lesson CNN of 07a/11 (GeneralRelu(leak=0.1, sub=0.4, maxv=6)), narrower so tests stay quick."""
    torch.manual_seed(seed)
    return init_cnn(get_cnn_model(3, 10, list(nfs), bn=bn, leak=0.1, sub=0.4, maxv=6.0))


class Residual(nn.Module):
    """x + conv2(relu(conv1(x))): conv2's input is not what the layer before it outputs, and the block's output
    adds its own input, so a wrong cached input would show."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.act, self.conv2 = nn.Conv2d(c, c, 3, padding=1), GeneralRelu(leak=0.1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


def residual_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Residual(8), nn.ReLU(), Residual(8),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


class Twice(nn.Module):
    """One linear layer called twice per forward: its second input depends on itself."""

    def __init__(self):
        super().__init__()
        self.first, self.shared, self.head = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.shared(torch.tanh(self.shared(F.relu(self.first(x)))))))


class Tied(nn.Module):
    """`pre` uses `layer`'s weight before `layer` runs: `layer`'s input depends on its own weights."""

    def __init__(self):
        super().__init__()
        self.first, self.layer, self.head = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.pre = nn.Linear(8, 8, bias=False)
        self.pre.weight = self.layer.weight

    def forward(self, x):
        return self.head(F.relu(self.layer(torch.tanh(self.pre(F.relu(self.first(x)))))))


def batch(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


MODELS = {"lesson CNN": (lesson_cnn, (16, 3, 32, 32)), "lesson CNN with BatchNorm": (lambda: lesson_cnn(bn=True), (16, 3, 32, 32)),
          "residual": (residual_net, (16, 3, 16, 16)), "called twice": (Twice, (32, 6)), "tied weights": (Tied, (32, 6)),
          "XResNet-18": (lambda: torch.manual_seed(0) and xresnet18(n_out=10), (8, 3, 32, 32))}


@pytest.mark.parametrize("name", MODELS)
def test_lsuv_init_gives_the_reference_weights(name):
    make, shape = MODELS[name]
    model, xb = make(), batch(*shape)
    ref = reference_lsuv_init(copy.deepcopy(model), xb)
    report = lsuv_init(model, xb, progress=False)
    assert same_weights(model, ref)
    assert len(report) == len(lsuv_modules(model)) and report.converged


@pytest.mark.parametrize("name", MODELS)
def test_readable_path_and_stepper_give_the_reference_weights(name, monkeypatch):
    make, shape = MODELS[name]
    model, xb = make(), batch(*shape)
    ref = reference_lsuv_init(copy.deepcopy(model), xb)
    monkeypatch.setattr(lsuv_fast, "lsuv_in_one_pass", lambda *a: None)  # every layer through lsuv_module's path
    readable = copy.deepcopy(model)
    lsuv_init(readable, xb, progress=False)
    assert same_weights(readable, ref)
    stepper = LSUVStepper(copy.deepcopy(model), xb)
    stepper.run_all()
    assert same_weights(stepper.model, ref)


def forward_passes(model: nn.Module, f) -> int:
    """How many times `f()` runs `model` from the top."""
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        f()
    finally:
        handle.remove()
    return len(calls)


def test_one_forward_pass_tunes_every_layer_of_the_lesson_cnn():
    model, xb = lesson_cnn(), batch(16, 3, 32, 32)
    n = len(lsuv_modules(model))
    report = []
    assert forward_passes(model, lambda: report.extend(lsuv_init(model, xb, progress=False))) == 1
    fresh = lesson_cnn()
    passes = forward_passes(fresh, lambda: [lsuv_module(fresh, m, xb) for m in lsuv_modules(fresh)])
    assert passes == sum(r.iterations + 1 for r in report) > 2 * n  # the readable path: a pass per measurement


@pytest.mark.parametrize("name, fast", [("residual", True), ("called twice", True), ("tied weights", False)])
def test_which_models_take_the_one_pass(name, fast):
    make, shape = MODELS[name]
    model = make()
    passes = forward_passes(model, lambda: lsuv_init(model, batch(*shape), progress=False))
    assert (passes == 1) == fast  # tied weights: the layer's input depends on itself, so full passes from there


class InPlaceBlock(nn.Module):
    """ReLU(inplace=True) then a linear layer: running it changes its input; it states its weight and bias."""

    def __init__(self):
        super().__init__()
        self.act, self.lin = nn.ReLU(inplace=True), nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(self.act(x))

    weight = property(lambda self: self.lin.weight)
    bias = property(lambda self: self.lin.bias)


def test_a_layer_that_changes_its_input_in_place():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), InPlaceBlock(), nn.Linear(8, 2))
    xb = batch(32, 6)
    ref = copy.deepcopy(model)
    reference_lsuv_init(ref, xb, modules=[ref[0], ref[1], ref[2]])
    assert forward_passes(model, lambda: lsuv_init(model, xb, modules=[model[0], model[1], model[2]],
                                                   progress=False)) == 1
    assert same_weights(model, ref)


def test_several_batches_average_their_statistics():
    model = lesson_cnn()
    xbs = [batch(8, 3, 32, 32, seed=s) for s in (1, 2, 3)]
    step = lsuv_module(model, model[0], xbs)
    means_stds = [reference_measure(model, model[0], xb) for xb in xbs]
    assert step.converged
    assert step.mean == pytest.approx(sum(m for m, _ in means_stds) / 3, abs=1e-6)
    assert step.std == pytest.approx(sum(s for _, s in means_stds) / 3, abs=1e-6)
    assert not all(abs(s - 1) < 1e-3 for _, s in means_stds)  # no single batch is at std 1: the average is
    report = lsuv_init(lesson_cnn(), xbs, progress=False)
    stepper = LSUVStepper(lesson_cnn(), xbs)
    assert list(stepper.run_all()) == list(report) and report.converged
    with pytest.raises(ValueError, match="list of batches"):
        lsuv_init(model, [], progress=False)
