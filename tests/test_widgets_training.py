"""teachkit.widgets.training_panel: a widget over a TrainingMonitor whose picture follows fit."""
import ipywidgets as widgets
import pytest

from teachkit.panels.monitor import TrainingMonitor
from teachkit.widgets import training_panel

from test_monitor import InterruptAt, fast_clock, hooks_left, small_learner  # noqa: F401 (fast_clock: a fixture)

PNG = b"\x89PNG\r\n\x1a\n"


def test_panel_is_a_widget_over_a_monitor():
    panel = training_panel()
    assert isinstance(panel, widgets.VBox) and isinstance(panel.monitor, TrainingMonitor)
    assert bytes(panel.image.value).startswith(PNG) and "panel.monitor" in panel.status.value
    assert "tk-training-panel" in panel._dom_classes


def test_picture_and_status_follow_fit(fast_clock):  # noqa: F811
    panel = training_panel(every=0.0, max_share=1.0)
    seen = []
    panel.image.observe(lambda c: seen.append(c["new"]), names="value")
    learn = small_learner()
    learn.fit(1, cbs=panel.monitor)
    assert len(seen) == panel.monitor.draws == 7 and panel.image.value == panel.monitor.png
    assert "6 training batches" in panel.status.value and "valid loss" in panel.status.value


def test_panel_survives_an_interrupt():
    panel = training_panel(every=1e9)
    learn = small_learner()
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=[panel.monitor, InterruptAt(2)])
    assert hooks_left(learn.model) == 0 and "2 training batches" in panel.status.value
    learn.fit(1, cbs=panel.monitor)
    assert "6 training batches" in panel.status.value
