"""Kernel -> Interrupt during lsuv_init, a stepper step or a panel click: nothing left behind, everything usable.

A `KeyboardInterrupt` is raised from inside the forward pass (a forward hook of the test's own) at a chosen call.
"""
import copy

import pytest
import torch
from torch import nn

from teachkit.init import fast as lsuv_fast, lsuv
from teachkit.init import lsuv_init
from teachkit.init import LSUVStepper
from teachkit.models import get_cnn_model, init_cnn
from teachkit.widgets import lsuv_panel


def cnn(bn: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    return init_cnn(get_cnn_model(3, 10, [8, 16], bn=bn, leak=0.1, sub=0.4, maxv=6.0))


def batch() -> torch.Tensor:
    return torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))


class Interrupt:
    """A forward hook on `module` that raises KeyboardInterrupt at its `at`-th call (counting from 1)."""

    def __init__(self, module: nn.Module, at: int):
        self.calls, self.at = 0, at
        self.handle = module.register_forward_hook(self)

    def __call__(self, mod, inp, out):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt

    def remove(self):
        self.handle.remove()


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def leftovers(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if "forward" in vars(m)]


class FakeBar:
    """Stands in for teachkit.progress.progress_bar and records how it ended."""

    made: list = []

    def __init__(self, gen, total=None, leave=True, comment=""):
        self.total, self.last, self.interrupted = total, None, False
        FakeBar.made.append(self)

    def update(self, v):
        self.last = v

    def on_interrupt(self):
        self.interrupted = True

    @property
    def closed(self):
        return self.interrupted or self.last == self.total


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("at", [1, 2, 3])
def test_lsuv_init_interrupted_leaves_nothing_behind(at, fast, monkeypatch):
    monkeypatch.setattr(lsuv, "progress_bar", FakeBar)
    if not fast:
        monkeypatch.setattr(lsuv_fast, "lsuv_in_one_pass", lambda *a: None)
    model, xb = cnn(), batch()
    model.eval()
    model[1].train()  # a mix of modes, to be given back exactly
    modes = [m.training for m in model.modules()]
    before = state(model)
    trap = Interrupt(model[2].relu, at)
    FakeBar.made = []
    with pytest.raises(KeyboardInterrupt):
        lsuv_init(model, xb)
    trap.remove()
    assert hooks(model) == 0 and leftovers(model) == []
    assert [m.training for m in model.modules()] == modes
    buffers = [k for k in before if "running" in k or "num_batches" in k]
    assert buffers and all(torch.equal(model.state_dict()[k], before[k]) for k in buffers)
    assert len(FakeBar.made) == 1 and FakeBar.made[0].interrupted and FakeBar.made[0].closed
    lsuv_init(model, xb)  # and it runs again, to the end
    assert FakeBar.made[-1].closed and not FakeBar.made[-1].interrupted


@pytest.mark.parametrize("where", ["the layer stepped", "a later layer", "the last layer"])
def test_interrupted_step_is_undone(where):
    model, xb = cnn(bn=False), batch()
    ref = copy.deepcopy(model)
    report = lsuv_init(ref, xb, progress=False)
    s = LSUVStepper(model, xb)
    s.step()
    s.next_layer()
    s.step()  # layer 1, with layer 0 frozen from now on
    weights, history, n = state(model), list(s.history), len(s.stats[0].means)
    trap = Interrupt({"the layer stepped": model[1].relu, "a later layer": model[3].relu, "the last layer": model[-1]}[where], 1)
    with pytest.raises(KeyboardInterrupt):
        s.step()
    trap.remove()
    assert hooks(model) == 0 and leftovers(model) == []
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert s.history == history and all(len(st.means) == n for st in s.stats)
    assert s.run_all() == report  # the stepper carries on as if nothing happened
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in model.state_dict().items())


def test_panel_is_usable_after_an_interrupted_click():
    model, xb = cnn(bn=False), batch()
    panel = lsuv_panel(model, xb)
    panel.step_button.click()
    image, table = panel.image.value, panel.table.value
    trap = Interrupt(model[1].relu, 1)
    panel.step_button.click()  # Kernel -> Interrupt while the click runs
    trap.remove()
    assert "Interrupted" in panel.status.value and len(panel.stepper.history) == 1
    assert panel.image.value == image and panel.table.value == table  # the picture of the model as it still is
    assert hooks(model) == 0 and leftovers(model) == []
    panel.step_button.click()
    assert len(panel.stepper.history) == 2 and panel.image.value != image


def test_panel_and_stepper_are_usable_after_an_interrupted_reset():
    model, xb = cnn(bn=False), batch()
    panel = lsuv_panel(model, xb)
    panel.next_button.click()
    start = lsuv_panel(cnn(bn=False), xb)  # what a finished Reset shows
    trap = Interrupt(model[-1], 1)
    panel.reset_button.click()  # Kernel -> Interrupt while Reset takes its first snapshot
    trap.remove()
    s = panel.stepper
    assert "Interrupted" in panel.status.value and s.history == [] and s.current == 0
    assert panel.image.value == start.image.value and panel.table.value == start.table.value
    assert hooks(model) == 0 and leftovers(model) == []
    trap = Interrupt(model[-1], 1)
    with pytest.raises(KeyboardInterrupt):
        s.reset()  # the same, on the stepper alone
    trap.remove()
    assert s.step().action == "scale" and all(len(st.means) == 2 for st in s.stats)
