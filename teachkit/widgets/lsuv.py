"""LSUV panel: step layer-sequential unit variance one iteration at a time and watch every layer's statistics move.

A thin ipywidgets view over `teachkit.init.stepper.LSUVStepper`, which does all the work (and is tested on its own): the
buttons call its methods, then the table and the plots are redrawn from its `history` and `stats`.
"""
from __future__ import annotations

import html
import warnings
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn

from ..init import LSUVStep, LSUVStepper, LSUVWarning
from ..render import Blit, canvas_png, fixed_figure

__all__ = ["LSUVPanel", "LSUVPlot", "lsuv_panel", "lsuv_table", "lsuv_plot"]

_ACTIONS = {"scale": "divided the weights by the std", "shift": "moved the mean to 0",
            "converged": "converged: mean 0, std 1 within tol", "stopped": "stopped: max_iter spent"}


def _iterations(s: LSUVStepper, i: int) -> str:
    """Updates made to layer `i` so far: final for finished layers, running for the current one."""
    if i < len(s.results):
        return str(s.results[i].iterations)
    return str(s.iterations) if i == s.current else "0"


def _state(s: LSUVStepper, i: int) -> str:
    if i < len(s.results):
        return "converged" if s.results[i].converged else "NOT converged"
    return "tuning" if i == s.current else "waiting"


def lsuv_table(s: LSUVStepper) -> str:
    """HTML table of every layer's mean/std before LSUV and now, its iteration count, the current layer highlighted."""
    head = "".join(f"<th style='padding:2px 8px'>{h}</th>" for h in
                   ("layer", "name", "mean before", "std before", "mean now", "std now", "iterations", "state"))
    rows = []
    for i, name in enumerate(s.names):
        style = " style='background:#ffe9a8;font-weight:bold'" if i == s.current else ""
        st = s.stats[i]
        cells = (i, html.escape(name), f"{st.means[0]:.4f}", f"{st.stds[0]:.4f}", f"{st.means[-1]:.4f}",
                 f"{st.stds[-1]:.4f}", _iterations(s, i), _state(s, i))
        rows.append(f"<tr class='lsuv-row'{style}>" + "".join(f"<td style='padding:2px 8px'>{c}</td>" for c in cells) + "</tr>")
    return (f"<table class='lsuv-table' style='border-collapse:collapse;font-family:monospace'>"
            f"<tr>{head}</tr>{''.join(rows)}</table>")


def _shown_layer(s: LSUVStepper) -> int:
    """The layer the plots show: the current one, or the last once every layer is done."""
    return len(s.modules) - 1 if s.done else s.current


class LSUVPlot:
    """The panel's picture, kept between clicks: the shown layer's activation histogram (now, over before LSUV) and
    its mean and std after each step. Axes, labels and targets are drawn once per scene (the axis limits, bucketed)
    and kept as pixels; titles, histograms, lines and the shaded steps are drawn over them at every click."""

    def __init__(self, s: LSUVStepper, width: float = 10.0, height: float = 3.6, dpi: int = 80):
        self.fig = fixed_figure(width, height, dpi, left=0.07, right=0.985, bottom=0.15, top=0.9, wspace=0.22)
        self.blit = Blit(self.fig)
        self.ax_hist, self.ax_steps = self.fig.subplots(1, 2)
        lo, hi = s.hist_range
        edges, zeros = np.linspace(lo, hi, s.bins + 1), np.zeros(s.bins)
        self.span = Rectangle((0, 0), 0, 1, transform=self.ax_steps.get_xaxis_transform(), color="#ffe9a8",
                              label="steps on this layer", animated=True)
        self.ax_steps.add_patch(self.span)
        self.now = self.ax_hist.stairs(zeros, edges, fill=True, color="C0", alpha=0.7, label="now", animated=True)
        self.before = self.ax_hist.stairs(zeros, edges, color="C3", label="before LSUV", animated=True)
        self.mean, = self.ax_steps.plot([], [], "o-", ms=3, label="mean", animated=True)
        self.std, = self.ax_steps.plot([], [], "s-", ms=3, label="std", animated=True)
        self.ax_steps.axhline(0, color="C0", ls=":", lw=1)
        self.ax_steps.axhline(1, color="C1", ls=":", lw=1)
        self.ax_hist.set(xlim=(lo, hi), xlabel=f"activation (bins clipped to [{lo:g}, {hi:g}])",
                         ylabel="share of activations", title="Activations of the highlighted layer")
        self.ax_steps.set(xlabel="LSUV step (0 = before)", ylabel="value")
        self.ax_hist.legend(loc="upper right", fontsize="small")
        self.ax_steps.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize="small", frameon=False)

    def render(self, s: LSUVStepper) -> bytes:
        """PNG of the shown layer, as the stepper is now."""
        i = _shown_layer(s)
        st = s.stats[i]
        now, before = st.hists[-1].numpy(), st.hists[0].numpy()
        self.now.set_data(now)
        self.before.set_data(before)
        steps = np.arange(len(st.means))
        self.mean.set_data(steps, st.means)
        self.std.set_data(steps, st.stds)
        own = [k + 1 for k, h in enumerate(s.history) if h.layer == i]
        self.span.set_bounds(own[0] - 0.5 if own else 0, 0, len(own), 1)
        values = np.asarray(st.means + st.stds)
        tallest = max(float(max(t.hists[0].max(), t.hists[-1].max())) for t in s.stats)  # all layers: one scale
        key = (_ladder(tallest * 1.05, HIST_TOPS), -(-len(steps) // 30) * 30,
               _ladder(max(np.nanmax(values) / 1.25, -np.nanmin(values) * 4), VALUE_SPANS))
        self.blit.draw(key, lambda: self._set_scene(*key), [self.span, self.mean, self.std, self.now, self.before])
        return canvas_png(self.fig)

    def _set_scene(self, hist_top: float, n_steps: int, span: float) -> None:
        self.ax_hist.set_ylim(0, hist_top)
        self.ax_steps.set_xlim(-0.5, n_steps + 0.5)
        self.ax_steps.set_ylim(-span / 4, span * 1.25)


HIST_TOPS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
VALUE_SPANS = (1.0, 2.0, 5.0, 10.0, 100.0, 1e4, 1e8)  # the history shows [-span / 4, 1.25 span]
"""Coarse axis limits, so the axes (and their cached pixels) rarely change: a new scene only when values outgrow them."""


def _ladder(v: float, rungs: Sequence[float]) -> float:
    """The first rung at or above `v` (the last if none is)."""
    return next((r for r in rungs if v <= r), rungs[-1])


def lsuv_plot(s: LSUVStepper, width: float = 10.0, height: float = 3.6, dpi: int = 80) -> bytes:
    """PNG of the shown layer's activation histogram and mean/std history (a one-off `LSUVPlot`)."""
    return LSUVPlot(s, width, height, dpi).render(s)


def _status(s: LSUVStepper, last: LSUVStep | None, note: str = "") -> str:
    """One line saying what the last step did and what comes next."""
    if last is None:
        msg = "Click Step to run one LSUV iteration on the highlighted layer."
    else:
        msg = (f"Step {len(s.history)}: layer {last.layer} ({html.escape(last.name)}) after {last.iterations} "
               f"update(s) had mean {last.mean:.4f}, std {last.std:.4f} &rarr; {_ACTIONS[last.action]}.")
    if s.done:
        msg += f" All {len(s.modules)} layers done: the model is initialised as shown. Reset to start over."
    return msg + (f" <span style='color:#b00'>{note}</span>" if note else "")


class LSUVPanel(widgets.VBox):
    """Buttons over an `LSUVStepper`, a table of every layer's stats and a plot of the current layer.

    Drive it from code as from the browser: `panel.step_button.click()`; the stepper is `panel.stepper`.
    """

    def __init__(self, stepper: LSUVStepper):
        self.stepper, self.plot = stepper, LSUVPlot(stepper)
        self.step_button = widgets.Button(description="Step", tooltip="One LSUV iteration on the current layer")
        self.next_button = widgets.Button(description="Next layer", tooltip="Finish the current layer")
        self.run_button = widgets.Button(description="Run all", tooltip="Finish every layer", button_style="primary")
        self.reset_button = widgets.Button(description="Reset", tooltip="Put the starting weights back",
                                           button_style="warning")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.image = widgets.Image(format="png", layout={"align_self": "flex-start"})  # natural size
        for b, f in ((self.step_button, stepper.step), (self.next_button, stepper.next_layer),
                     (self.run_button, stepper.run_all), (self.reset_button, stepper.reset)):
            b.on_click(lambda _, f=f: self._do(f))
        buttons = widgets.HBox([self.step_button, self.next_button, self.run_button, self.reset_button])
        super().__init__([buttons, self.status, self.table, self.image])
        self.add_class("tk-lsuv-panel")  # CSS hooks, for styling and for the real-browser test
        self.table.add_class("tk-lsuv-table")
        self.refresh()

    def _do(self, action: Callable[[], object]) -> None:
        """Run a stepper method, then redraw; a warning, a dead layer or an interrupt is shown in the status line."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LSUVWarning)
            try:
                action()
                note = " ".join(str(w.message) for w in caught)
            except ValueError as e:
                note = str(e)
            except KeyboardInterrupt:  # Kernel -> Interrupt: the stepper undid the unfinished step
                note = "Interrupted: the unfinished step was undone; the model is as shown."
        if not self.stepper.stats[0].means:  # a Reset cut short before its first snapshot: finish it
            self.stepper.snapshot()
        self.refresh(html.escape(note))

    def refresh(self, note: str = "") -> None:
        """Redraw table, plot and status from the stepper; grey out the buttons that have nothing left to do."""
        s = self.stepper
        self.status.value = _status(s, s.history[-1] if s.history else None, note)
        self.table.value = lsuv_table(s)
        self.image.value = self.plot.render(s)
        for b in (self.step_button, self.next_button, self.run_button):
            b.disabled = s.done


def lsuv_panel(model: nn.Module, xb: torch.Tensor, modules: Sequence[nn.Module] | None = None,
               **kwargs) -> LSUVPanel:
    """An LSUV panel over `model` on the batch `xb` (kwargs go to `LSUVStepper`: tol, max_iter, bins, hist_range).

    Display the returned panel; the model's weights are always those shown, so after Run all it is LSUV-initialised.
    """
    return LSUVPanel(LSUVStepper(model, xb, modules, **kwargs))
