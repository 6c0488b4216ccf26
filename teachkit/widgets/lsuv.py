"""LSUV panel: step layer-sequential unit variance one iteration at a time and watch every layer's statistics move.

A thin ipywidgets view over `teachkit.init.LSUVStepper`, which does all the work (and is tested on its own): the
buttons call its methods, then the table and the plots are redrawn from its `history` and `stats`.
"""
from __future__ import annotations

import html
import warnings
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import torch
from matplotlib.axes import Axes
from torch import nn

from ..init import LSUVStep, LSUVWarning
from ..lsuv_stepper import LSUVStepper
from ..render import fig_to_png, new_figure

__all__ = ["LSUVPanel", "lsuv_panel", "lsuv_table", "lsuv_plot"]

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


def _plot_hist(ax: Axes, s: LSUVStepper, i: int) -> None:
    """Layer `i`'s activation histogram now, over the one before LSUV."""
    lo, hi = s.hist_range
    edges = torch.linspace(lo, hi, s.bins + 1)
    ax.stairs(s.stats[i].hists[-1], edges, fill=True, color="C0", alpha=0.7, label="now")
    ax.stairs(s.stats[i].hists[0], edges, color="C3", label="before LSUV")
    ax.set(title=f"Activations of {s.names[i]}", xlabel=f"activation (bins clipped to [{lo:g}, {hi:g}])",
           ylabel="share of activations")
    ax.legend(loc="upper right", fontsize="small")


def _plot_history(ax: Axes, s: LSUVStepper, i: int) -> None:
    """Layer `i`'s mean and std after every step, with the steps spent on layer `i` shaded and targets 0 and 1."""
    steps = range(len(s.stats[i].means))
    ax.plot(steps, s.stats[i].means, "o-", ms=3, label="mean")
    ax.plot(steps, s.stats[i].stds, "s-", ms=3, label="std")
    ax.axhline(0, color="C0", ls=":", lw=1)
    ax.axhline(1, color="C1", ls=":", lw=1)
    own = [k + 1 for k, h in enumerate(s.history) if h.layer == i]
    if own:
        ax.axvspan(own[0] - 0.5, own[-1] + 0.5, color="#ffe9a8", label=f"steps on layer {i}")
    ax.set(title=f"Mean and std of {s.names[i]} after each step", xlabel="LSUV step (0 = before)", ylabel="value")
    ax.set_xlim(-0.5, max(len(steps) - 1, 1) + 0.5)
    ax.legend(loc="best", fontsize="small")


def lsuv_plot(s: LSUVStepper, width: float = 10.0, height: float = 3.6, dpi: int = 80) -> bytes:
    """PNG of the shown layer's activation histogram and mean/std history."""
    fig = new_figure(width, height, dpi)
    ax_hist, ax_steps = fig.subplots(1, 2)
    i = _shown_layer(s)
    _plot_hist(ax_hist, s, i)
    _plot_history(ax_steps, s, i)
    return fig_to_png(fig)


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
        self.stepper = stepper
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
        """Run a stepper method, then redraw; a warning or a dead layer is shown in the status line, not lost in a log."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LSUVWarning)
            try:
                action()
                note = " ".join(str(w.message) for w in caught)
            except ValueError as e:
                note = str(e)
        self.refresh(html.escape(note))

    def refresh(self, note: str = "") -> None:
        """Redraw table, plot and status from the stepper; grey out the buttons that have nothing left to do."""
        s = self.stepper
        self.status.value = _status(s, s.history[-1] if s.history else None, note)
        self.table.value = lsuv_table(s)
        self.image.value = lsuv_plot(s)
        for b in (self.step_button, self.next_button, self.run_button):
            b.disabled = s.done


def lsuv_panel(model: nn.Module, xb: torch.Tensor, modules: Sequence[nn.Module] | None = None,
               **kwargs) -> LSUVPanel:
    """An LSUV panel over `model` on the batch `xb` (kwargs go to `LSUVStepper`: tol, max_iter, bins, hist_range).

    Display the returned panel; the model's weights are always those shown, so after Run all it is LSUV-initialised.
    """
    return LSUVPanel(LSUVStepper(model, xb, modules, **kwargs))
