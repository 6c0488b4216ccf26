"""teachkit.widgets.lsuv_panel, driven through its widgets as a browser would: click, then check stepper and output."""
import copy
import re

import ipywidgets as widgets
import pytest
import torch

from teachkit.init import lsuv_init
from teachkit.models import get_cnn_model, init_cnn
from teachkit.widgets import lsuv_panel
from teachkit.widgets.lsuv import LSUVPanel


def small_cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return init_cnn(get_cnn_model(3, 10, [8, 16], leak=0.1, sub=0.4, maxv=6.0))


@pytest.fixture
def xb() -> torch.Tensor:
    return torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def panel(xb) -> LSUVPanel:
    return lsuv_panel(small_cnn(), xb)


def highlighted(table: str) -> list[int]:
    """Indices of the highlighted rows of the panel's table."""
    rows = re.findall(r"<tr class='lsuv-row'([^>]*)>", table)
    return [i for i, style in enumerate(rows) if "background" in style]


def cells(table: str, i: int) -> list[str]:
    """The text of row `i`'s cells."""
    return re.findall(r"<td[^>]*>(.*?)</td>", table.split("<tr class='lsuv-row'")[i + 1])


def test_panel_is_a_widget_with_named_controls(panel):
    assert isinstance(panel, widgets.VBox)
    assert [b.description for b in (panel.step_button, panel.next_button, panel.run_button, panel.reset_button)] == \
        ["Step", "Next layer", "Run all", "Reset"]
    assert isinstance(panel.table, widgets.HTML) and isinstance(panel.image, widgets.Image)
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert highlighted(panel.table.value) == [0]
    assert len(re.findall("class='lsuv-row'", panel.table.value)) == len(panel.stepper.modules) == 6


def test_step_grows_history_and_redraws(panel):
    table, image = panel.table.value, panel.image.value
    w0 = panel.stepper.modules[0].conv.weight.clone()
    panel.step_button.click()
    assert len(panel.stepper.history) == 1 and all(len(st.means) == 2 for st in panel.stepper.stats)
    assert panel.table.value != table and panel.image.value != image
    assert not torch.equal(w0, panel.stepper.modules[0].conv.weight)  # the model itself is what the panel shows
    assert cells(panel.table.value, 0)[6] == "1"  # iteration count of the current layer
    assert "Step 1" in panel.status.value
    panel.step_button.click()
    assert len(panel.stepper.history) == 2


def test_next_layer_moves_the_highlight(panel):
    panel.next_button.click()
    s = panel.stepper
    assert s.current == 1 and highlighted(panel.table.value) == [1]
    assert s.results[0].converged
    row = cells(panel.table.value, 0)
    assert row[-1] == "converged" and row[6] == str(s.results[0].iterations)
    assert abs(float(row[5]) - 1) < 2e-3 and abs(float(row[4])) < 2e-3  # std now, mean now


def test_run_all_gives_lsuv_init_weights(xb):
    panel, ref = lsuv_panel(small_cnn(), xb), small_cnn()
    report = lsuv_init(ref, xb, progress=False)
    panel.run_button.click()
    s = panel.stepper
    assert s.done and s.results.converged and len(s.results) == len(report)
    got, want = s.model.state_dict(), ref.state_dict()
    assert all(torch.allclose(got[k].float(), want[k].float(), atol=1e-6) for k in want)
    assert highlighted(panel.table.value) == []
    assert panel.table.value.count(">converged<") == 6
    assert all(b.disabled for b in (panel.step_button, panel.next_button, panel.run_button))
    assert not panel.reset_button.disabled and "All 6 layers done" in panel.status.value


def test_reset_restores_weights_and_view(panel):
    start = copy.deepcopy(panel.stepper.model.state_dict())
    table, image = panel.table.value, panel.image.value
    panel.next_button.click()
    panel.step_button.click()
    panel.reset_button.click()
    s = panel.stepper
    assert s.current == 0 and s.history == [] and all(len(st.means) == 1 for st in s.stats)
    assert all(torch.equal(v, s.model.state_dict()[k]) for k, v in start.items())
    assert panel.table.value == table and panel.image.value == image
    assert not panel.step_button.disabled


def test_modules_subset(xb):
    model = small_cnn()
    panel = lsuv_panel(model, xb, modules=[model[0], model[1]])
    panel.run_button.click()
    assert len(panel.stepper.results) == 2 and panel.stepper.done


def test_problems_show_in_the_status_line(xb):
    panel = lsuv_panel(small_cnn(), torch.zeros_like(xb))  # zero input: the first layer's output is constant
    panel.step_button.click()
    assert "constant" in panel.status.value and panel.stepper.history == []
    panel = lsuv_panel(small_cnn(), xb, max_iter=1)  # one update is not enough: a warning, shown, not lost
    panel.next_button.click()
    assert "did not converge" in panel.status.value and panel.table.value.count("NOT converged") == 1
