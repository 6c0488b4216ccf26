"""The optimizer playground: teachkit's real optimizers racing on two-parameter toy surfaces.

`OptimizerPlayground` is the model behind `teachkit.widgets.optimizer_panel`, and works on its own:

    pg = OptimizerPlayground("rosenbrock", lr=1e-3)
    pg.trajectories["adam"].points      # (steps+1, 2) array: where Adam went
    Image(pg.render())                  # contour plot with every path, and loss against step

Each optimizer is built by its factory in `teachkit.optim` (`sgd_opt`, `sgd_mom_opt`, `adam_opt`, `lamb_opt`)
over one 2-element tensor, the point (x, y), and stepped on the surface's loss. The playground has one
setting per control of the panel; `HYPERS` says which setting feeds which hyper-parameter of each optimizer:
`mom` is the momentum of SGD with momentum, `beta1` and `beta2` are Adam's and LAMB's `mom` and `sqr_mom`.

A run *diverges* at the first step whose point leaves the plot (with a margin, see `Surface.inside`) or
whose loss is not finite; its trajectory stops at the last good point, so nothing downstream sees a NaN.
"""
from __future__ import annotations

import io
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from PIL import Image

from .optim import Optimizer, adam_opt, lamb_opt, sgd_mom_opt, sgd_opt
from .optim_hypers import HYPER_RULES
from .surfaces import Surface, get_surface
from .utils import listify

__all__ = ["OPTIMIZERS", "HYPERS", "COLORS", "Trajectory", "run_optimizers", "OptimizerPlayground", "PlaygroundPlot"]

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": sgd_opt, "momentum": sgd_mom_opt, "adam": adam_opt, "lamb": lamb_opt}
"""The optimizers the playground can race, by name: teachkit's own factories."""

HYPERS: dict[str, dict[str, str]] = {
    "sgd": dict(lr="lr", wd="wd"),
    "momentum": dict(lr="lr", mom="mom", wd="wd"),
    "adam": dict(lr="lr", mom="beta1", sqr_mom="beta2", eps="eps", wd="wd"),
    "lamb": dict(lr="lr", mom="beta1", sqr_mom="beta2", eps="eps", wd="wd"),
}
"""For each optimizer, {its hyper-parameter: the playground setting that gives its value}."""

COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "adam": "tab:green", "lamb": "tab:red"}
"""One colour per optimizer, the same in both plots."""

RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    setting: HYPER_RULES[hyper] for names in HYPERS.values() for hyper, setting in names.items()}
"""The valid range of each numeric setting: that of the hyper-parameter it feeds (one table, in teachkit.optim_hypers)."""


# ---------------------------------------------------------------- running the optimizers

@dataclass(frozen=True, eq=False)
class Trajectory:
    """Where one optimizer went: `points` (n+1, 2) and their `losses` (n+1,), cut before the step it diverged at."""

    points: np.ndarray
    losses: np.ndarray
    diverged_at: int | None = None  # the first step whose point was out of the plot or whose loss was not finite

    @property
    def end(self) -> tuple[float, float]:
        """The last point reached (the last good one, for a diverged run)."""
        return tuple(self.points[-1].tolist())


def cut_at_divergence(surface: Surface, path: torch.Tensor) -> Trajectory:
    """The trajectory of a (steps+1, 2) path, stopped before its first point out of the plot or with a non-finite loss."""
    with torch.no_grad():
        losses = surface(path)
    bad = (~surface.inside(path) | ~torch.isfinite(losses)).nonzero()
    n = int(bad[0]) if len(bad) else len(path)
    return Trajectory(path[:n].numpy(), losses[:n].numpy(), n if n < len(path) else None)


def run_optimizers(surface: Surface | str, hypers: dict[str, dict], start: Sequence[float], steps: int,
                   seed: int = 0) -> dict[str, Trajectory]:
    """Step each optimizer `hypers` names (with those hypers) `steps` times from `start`, side by side.

    The optimizers are teachkit's own, each over one 2-element tensor, the point (x, y). Their gradients are
    found together, by `surface.gradient` on the stacked points: the points do not interact, so this is the
    same as running them one after the other (with `loss.backward()`'s gradients, to rounding), only faster. On a surface
    with `noise`, the same seeded noise is added to every optimizer's gradient at each step.
    """
    surface = get_surface(surface)
    check_optimizers(list(hypers))
    if not hypers:
        return {}
    ps = [torch.tensor(start, dtype=torch.float64) for _ in hypers]
    opts = [OPTIMIZERS[name]([p], **h) for p, (name, h) in zip(ps, hypers.items())]
    gen = torch.Generator().manual_seed(seed)
    path = []
    for _ in range(steps):
        xy = torch.stack(ps)
        path.append(xy)
        grads = surface.gradient(xy)
        if surface.noise:
            grads += surface.noise * torch.randn(2, generator=gen, dtype=torch.float64)
        for p, g, opt in zip(ps, grads, opts):
            p.grad = g
            opt.step()
    path = torch.stack([*path, torch.stack(ps)], dim=1)
    return {name: cut_at_divergence(surface, path[i]) for i, name in enumerate(hypers)}


# ---------------------------------------------------------------- the model

def check_number(name: str, v: object) -> None:
    """Raise a ValueError unless setting `name` is a finite number in its valid range."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}.")
    ok, rule = RULES[name]
    if not ok(v):
        raise ValueError(f"{name} must be {rule}, got {v!r}.")


def check_optimizers(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple, or a ValueError naming the unknown one and the choices."""
    names = tuple(listify(names))
    for n in names:
        if n not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {n!r}; choose from {list(OPTIMIZERS)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"optimizers lists a name twice: {names}; give each optimizer once.")
    return names


def check_start(surface: Surface, start: Sequence[float]) -> tuple[float, float]:
    """The start as a pair of floats, or a ValueError unless it is a point inside the plot."""
    try:
        x, y = (float(v) for v in start)
    except (TypeError, ValueError):
        raise ValueError(f"start must be a point (x, y), got {start!r}.") from None
    (x0, x1), (y0, y1) = surface.xlim, surface.ylim
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        raise ValueError(f"start {(x, y)} is outside the {surface.name!r} plot: pick x in {surface.xlim}, y in {surface.ylim}.")
    return x, y


@dataclass(eq=False)
class OptimizerPlayground:
    """Race teachkit's optimizers on a toy surface: every setting of the panel, the trajectories, and their plot.

    `start=None` means the surface's own start. Change settings with `update(...)`: it checks them, and a new
    surface brings its own start. `trajectories` are recomputed only when a setting changed.
    """

    surface: Surface | str = "ill-conditioned"
    optimizers: Sequence[str] = ("sgd", "momentum", "adam", "lamb")
    lr: float = 0.02
    mom: float = 0.9  # momentum of SGD with momentum
    beta1: float = 0.9  # Adam's and LAMB's `mom`
    beta2: float = 0.99  # Adam's and LAMB's `sqr_mom`
    eps: float = 1e-5
    wd: float = 0.0
    steps: int = 200
    start: tuple[float, float] | None = None
    seed: int = 0
    _cache: tuple = field(default=(None, None), init=False, repr=False)
    plot: PlaygroundPlot | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Validate every setting (raising a ValueError that names it) and put each in its canonical form."""
        self.surface = get_surface(self.surface)
        self.optimizers = check_optimizers(self.optimizers)
        for name in RULES:
            check_number(name, getattr(self, name))
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {self.steps!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}.")
        self.start = check_start(self.surface, self.surface.start if self.start is None else self.start)

    def update(self, **changes) -> None:
        """Change some settings, all or none: a bad value raises and leaves the playground as it was."""
        unknown = set(changes) - set(self.settings_names())
        if unknown:
            raise ValueError(f"Unknown setting(s) {sorted(unknown)}; the settings are {self.settings_names()}.")
        if "surface" in changes and "start" not in changes:
            changes["start"] = None
        new = replace(self, **changes)  # runs check() on the copy
        for k in changes:
            setattr(self, k, getattr(new, k))

    def settings_names(self) -> list[str]:
        """The names `update` and the constructor take."""
        return [f.name for f in fields(self) if f.init]

    def settings(self) -> tuple:
        """Every setting, as a key: equal keys give equal trajectories."""
        return tuple(getattr(self, n) for n in self.settings_names())

    def hypers(self, name: str) -> dict[str, float]:
        """The hyper-parameters the playground gives optimizer `name`, under that optimizer's own names."""
        return {k: getattr(self, setting) for k, setting in HYPERS[name].items()}

    def run(self) -> dict[str, Trajectory]:
        """Run every chosen optimizer from the start: {name: Trajectory}."""
        self.check()
        trajs = run_optimizers(self.surface, {n: self.hypers(n) for n in self.optimizers}, self.start, self.steps, self.seed)
        self._cache = (self.settings(), trajs)
        return trajs

    @property
    def trajectories(self) -> dict[str, Trajectory]:
        """The trajectories for the current settings, recomputed only when a setting changed."""
        key, trajs = self._cache
        return trajs if key == self.settings() else self.run()

    def render(self) -> bytes:
        """PNG of the contour plot with every trajectory, and of loss against step."""
        if self.plot is None:
            self.plot = PlaygroundPlot()
        return self.plot.render(self.surface, self.start, self.trajectories, self.steps)


# ---------------------------------------------------------------- drawing

class PlaygroundPlot:
    """A persistent figure that redraws fast: the static part is drawn once per scene and blitted.

    The scene (surface, which optimizers, how many steps) changes rarely: its contours, legend and loss axes are
    drawn once and kept as a background. At each render only the paths, start and loss curves are drawn over a
    copy of it. The loss axes keep fixed limits for the scene, so they stay put while a slider moves.
    """

    def __init__(self, width: float = 10.0, height: float = 4.2, dpi: int = 90):
        self.fig = Figure(figsize=(width, height), dpi=dpi)  # fixed margins: blitting needs a fixed layout
        FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.065, right=0.985, bottom=0.13, top=0.84, wspace=0.2)
        self.ax, self.loss_ax = self.fig.subplots(1, 2, width_ratios=[1.15, 1])
        self.scene = None

    def set_scene(self, surface: Surface, names: Sequence[str], steps: int) -> None:
        """Draw the static part (contours, loss axes, legend), make the moving artists, and keep the background."""
        ax, lax = self.ax, self.loss_ax
        ax.clear()
        lax.clear()
        for legend in self.fig.legends:
            legend.remove()
        grid = [t.numpy() for t in surface.grid(150)]
        minimum = draw_contours(ax, surface, *grid)
        draw_loss_axes(lax, grid[2], steps)
        moving = dict(animated=True)  # left out of canvas.draw(): drawn by `render` over the background
        self.notes = {n: ax.text(0.02, 0.03 + 0.075 * i, "", transform=ax.transAxes, color=COLORS[n], fontsize=10,
                                 fontweight="bold", bbox=dict(fc="white", ec="none", alpha=0.7, pad=1.5), **moving)
                      for i, n in enumerate(names)}
        self.paths = {n: ax.plot([], [], "-o", color=COLORS[n], lw=1.5, ms=2.5, label=n, **moving)[0] for n in names}
        self.ends = {n: ax.plot([], [], "o", color=COLORS[n], ms=7, mec="white", **moving)[0] for n in names}
        self.crosses = {n: ax.plot([], [], "X", color=COLORS[n], ms=11, mec="black", clip_on=False, **moving)[0]
                        for n in names}
        self.start_dot = ax.plot([], [], "o", color="white", mec="black", ms=9, label="start", **moving)[0]
        self.losses = {n: lax.plot([], [], color=COLORS[n], lw=1.5, **moving)[0] for n in names}
        self.loss_ends = {n: lax.plot([], [], "X", color=COLORS[n], ms=9, mec="black", **moving)[0] for n in names}
        handles = [*self.paths.values(), self.start_dot, *minimum]
        self.fig.legend(handles=handles, loc="upper center", ncols=len(handles), frameon=False, fontsize=11)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self.scene = (surface, tuple(names), steps)

    def render(self, surface: Surface, start: Sequence[float], trajs: dict[str, Trajectory], steps: int) -> bytes:
        """PNG bytes of the trajectories over the (cached) contours, and of their losses against step."""
        if self.scene != (surface, tuple(trajs), steps):
            self.set_scene(surface, list(trajs), steps)
        self.fig.canvas.restore_region(self.background)
        for n, t in trajs.items():  # notes first: paths are drawn over them, never hidden
            self.notes[n].set_text(f"{n}: diverged at step {t.diverged_at}" if t.diverged_at is not None else "")
            self.ax.draw_artist(self.notes[n])
        for n, t in trajs.items():
            self.draw_path(n, t, surface)
            self.draw_loss(n, t)
        self.start_dot.set_data([start[0]], [start[1]])
        self.ax.draw_artist(self.start_dot)
        return canvas_png(self.fig.canvas)

    def draw_path(self, name: str, t: Trajectory, surface: Surface) -> None:
        """One optimizer's path and end point, and for a diverged run a cross where it left (at the plot's edge)."""
        self.paths[name].set_data(t.points[:, 0], t.points[:, 1])
        self.ends[name].set_data(t.points[-1:, 0], t.points[-1:, 1])
        end = np.clip(t.points[-1], [surface.xlim[0], surface.ylim[0]], [surface.xlim[1], surface.ylim[1]])
        self.crosses[name].set_data(*(([end[0]], [end[1]]) if t.diverged_at is not None else ([], [])))
        for artist in (self.paths[name], self.ends[name], self.crosses[name]):
            self.ax.draw_artist(artist)

    def draw_loss(self, name: str, t: Trajectory) -> None:
        """One optimizer's loss against step, with a cross at the last step of a diverged run."""
        self.losses[name].set_data(np.arange(len(t.losses)), t.losses)
        self.loss_ends[name].set_data(*(([len(t.losses) - 1], [t.losses[-1]]) if t.diverged_at is not None else ([], [])))
        self.loss_ax.draw_artist(self.losses[name])
        self.loss_ax.draw_artist(self.loss_ends[name])


def draw_contours(ax, surface: Surface, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> list:
    """Filled contours of the loss (log-spaced levels for steep surfaces), the axes' labels; returns [minimum marker]."""
    if surface.log_levels:
        levels, norm = np.geomspace(max(Z.min(), Z.max() * 1e-6), Z.max(), 16), LogNorm()
    else:
        levels, norm = np.linspace(Z.min(), Z.max(), 16), None
    ax.contourf(X, Y, Z, levels=levels, norm=norm, cmap="Greys", alpha=0.6)
    ax.contour(X, Y, Z, levels=levels, norm=norm, colors="0.5", linewidths=0.5)
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y", title=f"{surface.name} surface")
    ax.set_aspect("equal")
    if surface.minimum is None:
        return []
    return ax.plot(*surface.minimum, "*", color="gold", mec="black", ms=15, label="minimum")


def draw_loss_axes(ax, Z: np.ndarray, steps: int) -> None:
    """Axes for loss against step, fixed from the losses `Z` over the plot: log scale down to 1e-12 of the highest
    loss, or symlog when losses go negative (the saddle). Diverging runs leave through the edge."""
    lo, hi = float(Z.min()), float(Z.max())
    if lo < 0:
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylim(10 * lo, 10 * hi)
    else:
        ax.set_yscale("log")
        ax.set_ylim(hi * 1e-12, hi * 10)
    ax.set(xlim=(0, steps), xlabel="step", title="loss")
    ax.grid(True, alpha=0.3)


def canvas_png(canvas: FigureCanvasAgg) -> bytes:
    """PNG bytes of what the canvas holds now, quickly compressed (no redraw, unlike `savefig`)."""
    buf = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
        buf, format="png", compress_level=1)
    return buf.getvalue()
