"""teachkit.widgets.optimizer_panel, driven through its widgets as a browser would: set a control, check model and plot."""
import ipywidgets as widgets
import pytest

from teachkit.panels.playground import OptimizerPlayground
from teachkit.panels.surfaces import SURFACES, Surface
from teachkit.widgets import optimizer_panel
from teachkit.widgets.optimizer import OptimizerPanel

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def panel() -> OptimizerPanel:
    return optimizer_panel(steps=60)


def test_panel_is_a_widget_over_a_playground(panel):
    assert isinstance(panel, widgets.VBox) and isinstance(panel.playground, OptimizerPlayground)
    assert isinstance(panel.lr, widgets.FloatLogSlider) and isinstance(panel.image, widgets.Image)
    assert bytes(panel.image.value).startswith(PNG)
    assert panel.lr.value == panel.playground.lr and panel.steps.value == panel.playground.steps == 60
    assert list(panel.checkboxes) == ["sgd", "momentum", "adam", "lamb"]


def test_controls_carry_css_hooks_for_the_browser(panel):
    assert "tk-optimizer-panel" in panel._dom_classes
    assert "tk-opt-lr" in panel.lr._dom_classes and "tk-opt-adam" in panel.checkboxes["adam"]._dom_classes


def test_every_slider_waits_for_release(panel):
    sliders = [panel.lr, panel.mom, panel.beta1, panel.beta2, panel.eps, panel.wd, panel.steps, panel.x0, panel.y0]
    assert all(s.continuous_update is False for s in sliders)


def test_lr_slider_moves_the_endpoints_and_the_picture(panel):
    ends, png = {n: t.end for n, t in panel.playground.trajectories.items()}, panel.image.value
    panel.lr.value = 0.05
    assert panel.playground.lr == 0.05
    assert all(panel.playground.trajectories[n].end != ends[n] for n in ends)
    assert panel.image.value != png


def test_momentum_feeds_sgd_momentum_and_beta1_feeds_adam(panel):
    before = {n: t.end for n, t in panel.playground.trajectories.items()}
    panel.mom.value = 0.5
    after = {n: t.end for n, t in panel.playground.trajectories.items()}
    assert after["momentum"] != before["momentum"] and after["adam"] == before["adam"]
    panel.beta1.value = 0.5
    final = {n: t.end for n, t in panel.playground.trajectories.items()}
    assert final["adam"] != after["adam"] and final["lamb"] != after["lamb"] and final["momentum"] == after["momentum"]
    assert panel.playground.hypers("adam")["mom"] == 0.5


@pytest.mark.parametrize("control, value, setting", [
    ("beta2", 0.9, "beta2"), ("eps", 1e-3, "eps"), ("wd", 0.2, "wd"), ("steps", 30, "steps")])
def test_each_control_sets_its_setting_and_redraws(panel, control, value, setting):
    png = panel.image.value
    getattr(panel, control).value = value
    assert getattr(panel.playground, setting) == pytest.approx(value)
    assert panel.image.value != png


def test_steps_slider_sets_the_trajectory_length(panel):
    panel.steps.value = 25
    assert all(len(t.points) == 26 for t in panel.playground.trajectories.values())


def test_start_sliders_move_the_start(panel):
    panel.x0.value, panel.y0.value = 2.0, -1.0
    assert panel.playground.start == (2.0, -1.0)
    assert all(tuple(t.points[0]) == (2.0, -1.0) for t in panel.playground.trajectories.values())


def test_unticking_an_optimizer_removes_its_trajectory(panel):
    png = panel.image.value
    panel.checkboxes["adam"].value = False
    assert list(panel.playground.trajectories) == ["sgd", "momentum", "lamb"]
    assert panel.image.value != png and "adam" not in panel.info.value
    panel.checkboxes["adam"].value = True
    assert "adam" in panel.playground.trajectories


def test_new_surface_resets_the_start_sliders(panel):
    panel.x0.value = 2.0
    png = panel.image.value
    panel.surface.value = "rosenbrock"
    s = SURFACES["rosenbrock"]
    assert (panel.x0.min, panel.x0.max, panel.y0.min, panel.y0.max) == (*s.xlim, *s.ylim)
    assert (panel.x0.value, panel.y0.value) == s.start == panel.playground.start
    assert panel.playground.surface is s and panel.image.value != png
    assert all(tuple(t.points[0]) == s.start for t in panel.playground.trajectories.values())


def test_divergence_is_reported_not_crashed(panel):
    panel.lr.value = 0.15
    assert panel.playground.trajectories["sgd"].diverged_at == 3
    assert "sgd</span>: <b>diverged at step 3</b>" in panel.info.value
    assert bytes(panel.image.value).startswith(PNG)


def test_panel_options_are_checked():
    assert list(optimizer_panel("saddle", ["adam"]).playground.trajectories) == ["adam"]
    with pytest.raises(ValueError, match="Unknown surface 'bowl'.*rosenbrock"):
        optimizer_panel("bowl")
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'.*lamb"):
        optimizer_panel(optimizers=["sgd", "rmsprop"])


def test_own_surface_joins_the_dropdown():
    mine = Surface("tilted bowl", lambda x, y: (x - 1) ** 2 + 3 * y**2, (-2.0, 2.0), (-2.0, 2.0), (-1.5, 1.5), (1.0, 0.0))
    panel = optimizer_panel(mine, ["adam"], steps=20)
    assert panel.surface.value == "tilted bowl" and "rosenbrock" in panel.surface.options
    panel.surface.value = "saddle"
    panel.surface.value = "tilted bowl"
    assert panel.playground.surface is mine and panel.playground.start == mine.start


def test_sliders_show_starting_values_outside_their_usual_range():
    panel = optimizer_panel(lr=50.0, steps=1500)
    assert panel.lr.value == 50.0 and panel.steps.value == 1500
    panel.wd.value = 0.1  # touching another control must not clip the model's lr or steps
    assert panel.playground.lr == 50.0 and panel.playground.steps == 1500
