"""Optimizer panel: scrub lr, momentum, Adam's betas... and watch SGD, momentum, Adam and LAMB race on a toy surface.

A thin ipywidgets view over `teachkit.panels.playground.OptimizerPlayground`, which runs teachkit's real optimizers and
draws the plot (and is tested on its own): every control change is passed to the playground, which reruns and
redraws; the picture is a PNG in an `ipywidgets.Image`, so the panel works in every Jupyter front end.

Sliders use `continuous_update=False`: the kernel hears a slider when it is released (or typed into), not at
every pixel of a drag. A rerun and redraw takes tens of milliseconds, so updates sent while dragging would queue
up behind each other; waiting for the release needs no timer thread and behaves the same in tests.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

import ipywidgets as widgets
from ipywidgets import interactive
from matplotlib.colors import to_hex

from ..panels.playground import COLORS, RACERS, OptimizerPlayground, Trajectory
from ..panels.surfaces import SURFACES, Surface
from .common import QuietMixin

__all__ = ["OptimizerPanel", "optimizer_panel"]

STYLE = {"description_width": "90px"}
LAYOUT = widgets.Layout(width="295px")


def slider(cls: type, description: str, tooltip: str, value: float, lo: float, hi: float, step: float,
           readout_format: str = ".3g", **kwargs) -> widgets.Widget:
    """A slider that reports its value on release, with a tooltip saying what it feeds.

    Linear sliders come from ipywidgets' own abbreviation, `(lo, hi, step)`; a log slider has none. By hand: the
    range widens to take `value` in, so the slider never shows a clipped value the model doesn't use.
    """
    if cls is widgets.FloatLogSlider:  # its min and max are exponents
        e = math.log(value, kwargs.get("base", 10))
        w = cls(min=min(lo, math.floor(e)), max=max(hi, math.ceil(e)), step=step, value=value, **kwargs)
    else:
        w = interactive.widget_from_abbrev((min(lo, value), max(hi, value), step), value)
    w.description, w.tooltip, w.readout_format, w.continuous_update = description, tooltip, readout_format, False
    w.style, w.layout = STYLE, LAYOUT
    return w


def set_range(s: widgets.FloatSlider, lo: float, hi: float, value: float) -> None:
    """Give slider `s` new bounds and value, in an order that never puts min above max."""
    if lo > s.max:
        s.max, s.min = hi, lo
    else:
        s.min, s.max = lo, hi
    s.step = (hi - lo) / 200
    s.value = value


def summary(trajs: dict[str, Trajectory], steps: int) -> str:
    """One line per optimizer: final loss and point, or the step where it diverged."""
    rows = []
    for n, t in trajs.items():
        (x, y), loss = t.end, t.losses[-1]
        fate = (f"<b>diverged at step {t.diverged_at}</b>" if t.diverged_at is not None
                else f"loss {loss:.3g} at ({x:.3g}, {y:.3g}) after {steps} steps")
        rows.append(f"<span style='color:{to_hex(COLORS[n])}'>&#9632; {html.escape(n)}</span>: {fate}")
    return "<br>".join(rows) or "Tick an optimizer to race it."


class OptimizerPanel(QuietMixin, widgets.VBox):
    """Controls over an `OptimizerPlayground`, and its contour and loss plot.

    Drive it from code as from the browser, e.g. `panel.lr.value = 0.1` or `panel.checkboxes["adam"].value = False`;
    the playground is `panel.playground`, the plot `panel.image` (PNG bytes in `panel.image.value`). Every surface
    of the dropdown is drawn once when the panel is made, so that picking one later only reruns and blits.
    """

    def __init__(self, playground: OptimizerPlayground):
        self.playground = pg = playground
        s = pg.surface
        self.choices = {**SURFACES, s.name: s}  # teachkit's surfaces, and the playground's own if it is another
        self.surface = interactive.widget_from_abbrev(list(self.choices), s.name)  # a Dropdown
        self.surface.description, self.surface.style, self.surface.layout = "surface", STYLE, LAYOUT
        self.surface.tooltip = "The loss surface; picking one moves the start to its own"
        self.x0 = slider(widgets.FloatSlider, "start x", "x of the start point", pg.start[0], *s.xlim, 0.01)
        self.y0 = slider(widgets.FloatSlider, "start y", "y of the start point", pg.start[1], *s.ylim, 0.01)
        set_range(self.x0, *s.xlim, pg.start[0])  # step: 1/200 of the range
        set_range(self.y0, *s.ylim, pg.start[1])
        self.steps = slider(widgets.IntSlider, "steps", "Optimizer steps per run", pg.steps, 1, 1000, 1,
                            readout_format="d")
        self.lr = slider(widgets.FloatLogSlider, "lr", "Learning rate of every optimizer (log scale)", pg.lr, -4, 1,
                         0.05, base=10)
        self.mom = slider(widgets.FloatSlider, "momentum", "mom of SGD with momentum (sgd_mom_opt): the share of the "
                          "previous step kept in the next", pg.mom, 0.0, 0.999, 0.001)
        self.beta1 = slider(widgets.FloatSlider, "beta1", "Adam's and LAMB's mom: how slowly their average of the "
                            "gradients forgets", pg.beta1, 0.0, 0.999, 0.001)
        self.beta2 = slider(widgets.FloatSlider, "beta2", "Adam's and LAMB's sqr_mom: how slowly their average of the "
                            "squared gradients forgets", pg.beta2, 0.0, 0.9999, 0.0001, readout_format=".4g")
        self.eps = slider(widgets.FloatLogSlider, "eps", "Adam's and LAMB's eps, added to the root of the squared-"
                          "gradient average", pg.eps, -10, 0, 0.1, base=10, readout_format=".1e")
        self.wd = slider(widgets.FloatSlider, "weight decay", "wd of every optimizer: each step multiplies the point "
                         "by 1 - lr * wd (LAMB adds wd * point to its update instead)", pg.wd, 0.0, 1.0, 0.005)
        self.checkboxes = {n: checkbox(n, n in pg.optimizers) for n in RACERS}
        self.image = widgets.Image(format="png", layout={"align_self": "flex-start"})  # natural size
        self.info = widgets.HTML()
        self.on_change(self.surface, self.new_surface)
        for w in (self.x0, self.y0, self.steps, self.lr, self.mom, self.beta1, self.beta2, self.eps, self.wd,
                  *self.checkboxes.values()):
            self.on_change(w, lambda _: self.apply())
        columns = widgets.HBox([
            widgets.VBox([self.surface, self.x0, self.y0, self.steps, widgets.HBox(list(self.checkboxes.values()))]),
            widgets.VBox([self.lr, self.mom, self.wd]),
            widgets.VBox([self.beta1, self.beta2, self.eps]),
        ])
        super().__init__([columns, self.image, self.info])
        self.add_css_classes()
        self.refresh()
        pg.prepare(self.choices.values())

    def add_css_classes(self) -> None:
        """CSS hooks, for styling and for the real-browser test: `tk-optimizer-panel`, and `tk-opt-<attribute>` on
        each control (`tk-opt-lr`, ..., `tk-opt-adam` for a checkbox), `tk-opt-image` and `tk-opt-info`."""
        self.add_class("tk-optimizer-panel")
        for name in ("surface", "x0", "y0", "steps", "lr", "mom", "beta1", "beta2", "eps", "wd", "image", "info"):
            getattr(self, name).add_class(f"tk-opt-{name}")
        for name, box in self.checkboxes.items():
            box.add_class(f"tk-opt-{name}")

    def settings(self) -> dict:
        """What the controls say, as `OptimizerPlayground.update` takes it."""
        return dict(lr=self.lr.value, mom=self.mom.value, beta1=self.beta1.value, beta2=self.beta2.value,
                    eps=self.eps.value, wd=self.wd.value, steps=self.steps.value, start=(self.x0.value, self.y0.value),
                    optimizers=tuple(n for n, c in self.checkboxes.items() if c.value))

    def apply(self, **changes) -> None:
        """Pass every control's value (and `changes`) to the playground, then redraw."""
        self.playground.update(**self.settings(), **changes)
        self.refresh()

    def new_surface(self, name: str) -> None:
        """A new surface: start sliders get its limits and its start, then one rerun (not one per slider moved)."""
        s = self.choices[name]
        with self.quietly():
            set_range(self.x0, *s.xlim, s.start[0])
            set_range(self.y0, *s.ylim, s.start[1])
        self.apply(surface=s)

    def refresh(self) -> None:
        """Redraw the plot and the summary from the playground."""
        self.image.value = self.playground.render()
        self.info.value = summary(self.playground.trajectories, self.playground.steps)


def checkbox(name: str, value: bool) -> widgets.Checkbox:
    """A tick box racing optimizer `name` (ipywidgets' abbreviation of a bool), labelled on its right."""
    box = interactive.widget_from_abbrev(value)
    box.description, box.indent, box.tooltip = name, False, f"Race {name} ({RACERS[name].__name__})"
    box.layout = widgets.Layout(width="auto", margin="0 12px 0 0")
    return box


def optimizer_panel(surface: str | Surface = "ill-conditioned",
                    optimizers: Sequence[str] = ("sgd", "momentum", "adam", "lamb"), **settings) -> OptimizerPanel:
    """A panel racing `optimizers` on `surface` (a name in `SURFACES`, or your own `Surface`); `settings` (lr, mom,
    beta1, beta2, eps, wd, steps, start, seed) set the starting values of the controls. Display the returned panel."""
    return OptimizerPanel(OptimizerPlayground(surface, optimizers, **settings))
