"""Training panel: watch a `learn.fit` live, losses, schedules and what every layer's activations do.

A thin ipywidgets view over `teachkit.panels.monitor.TrainingMonitor`, which records and draws (and is tested on its
own): the monitor hands each new picture to the panel's image, a PNG, so the panel works in JupyterLab, Notebook,
VS Code and Colab alike. Widget updates reach the browser while the cell still runs, so the picture moves
during `fit`:

    panel = training_panel()
    display(panel)
    learn.fit(2, cbs=panel.monitor)
"""
from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
from torch import nn

from ..panels.monitor import TrainingMonitor

__all__ = ["TrainingPanel", "training_panel"]


class TrainingPanel(widgets.VBox):
    """The monitor's latest picture and one line of where the run is; the monitor is `panel.monitor`."""

    def __init__(self, monitor: TrainingMonitor):
        self.monitor = monitor
        self.image = widgets.Image(format="png", layout={"align_self": "flex-start"})  # natural size
        self.status = widgets.HTML()
        monitor.on_png = self.show
        super().__init__([self.status, self.image])
        self.add_class("tk-training-panel")  # a CSS hook, for styling and for the real-browser test
        self.image.add_class("tk-training-image")
        self.show(monitor.png or monitor.render())

    def show(self, png: bytes) -> None:
        """Put a new picture up, and say how far training got."""
        m = self.monitor
        self.image.value = png
        if not m.train_losses:
            self.status.value = "Pass <code>panel.monitor</code> to <code>learn.fit(..., cbs=...)</code> to watch it train."
            return
        valid = f", valid loss {m.valid_losses[-1][1]:.4g}" if m.valid_losses else ""
        self.status.value = (f"{len(m.train_losses)} training batches, train loss {m.train_losses[-1]:.4g}{valid}; "
                             f"lr {m.lrs[-1]:.3g}; picture {m.draws} (drawn in {m.draw_time * 1e3:.0f} ms)")


def training_panel(modules: Sequence[nn.Module] | None = None, every: float = 0.5, **kwargs) -> TrainingPanel:
    """A panel to display, then pass `panel.monitor` to `learn.fit`: it redraws at most every `every` seconds.

    `modules`: the layers whose activations are watched (default: every conv and linear layer); kwargs go to
    `TrainingMonitor` (max_share, stats_every, sample, n_hists, bins, hist_range).
    """
    return TrainingPanel(TrainingMonitor(modules, every=every, **kwargs))
