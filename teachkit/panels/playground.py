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

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from ..optim import Optimizer, adam_opt, lamb_opt, sgd_mom_opt, sgd_opt
from ..optim.hypers import HYPER_RULES
from ..render import Blit, canvas_png, fixed_figure
from .surfaces import Surface, get_surface
from ..utils import listify

__all__ = ["RACERS", "HYPERS", "COLORS", "Trajectory", "run_optimizers", "OptimizerPlayground", "PlaygroundPlot"]

RACERS: dict[str, Callable[..., Optimizer]] = {"sgd": sgd_opt, "momentum": sgd_mom_opt, "adam": adam_opt, "lamb": lamb_opt}
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
"""The valid range of each numeric setting: that of the hyper-parameter it feeds (one table, in teachkit.optim.hypers)."""


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
    opts = [RACERS[name]([p], **h) for p, (name, h) in zip(ps, hypers.items())]
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
        if n not in RACERS:
            raise ValueError(f"Unknown optimizer {n!r}; choose from {list(RACERS)}.")
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
    _plots: dict = field(default_factory=dict, init=False, repr=False)  # {surface: its PlaygroundPlot}

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

    def plot_for(self, surface: Surface) -> PlaygroundPlot:
        """The picture of `surface`, made the first time it is needed and kept: its contours are drawn only once."""
        if surface not in self._plots:
            self._plots[surface] = PlaygroundPlot(surface)
        return self._plots[surface]

    plot = property(lambda self: self.plot_for(self.surface), doc="The picture of the current surface.")

    def prepare(self, surfaces: Sequence[Surface | str]) -> None:
        """Draw the backgrounds of `surfaces` now (for the current optimizers and steps), so that switching to one
        later costs a run and a blit, not a full redraw."""
        for s in surfaces:
            self.plot_for(get_surface(s)).prepare(self.optimizers, self.steps)

    def render(self) -> bytes:
        """PNG of the contour plot with every trajectory, and of loss against step."""
        return self.plot.render(self.start, self.trajectories, self.steps)


# ---------------------------------------------------------------- drawing

class PlaygroundPlot:
    """The picture of one surface: its contours with every path (left), loss against step (right).

    Each half is a persistent figure whose still part is kept as pixels (`teachkit.render.Blit`): the contours
    are drawn once, since this plot's surface never changes; the loss axes and legend once per (steps,
    optimizers). At each render only the paths, start, notes and loss curves are drawn, over a copy.
    """

    def __init__(self, surface: Surface, width: float = 10.0, height: float = 4.2, dpi: int = 90):
        self.surface, left = surface, width * 1.15 / 2.15  # the contours get 1.15 parts of the width, the losses 1
        self.contour = Blit(fixed_figure(left, height, dpi, left=0.12, right=0.97, bottom=0.13, top=0.8))
        self.loss = Blit(fixed_figure(width - left, height, dpi, left=0.18, right=0.97, bottom=0.13, top=0.8))
        self.ax, self.loss_ax = self.contour.fig.subplots(), self.loss.fig.subplots()
        grid = [t.numpy() for t in surface.grid(150)]
        self.minimum = draw_contours(self.ax, surface, *grid)
        draw_loss_axes(self.loss_ax, grid[2], steps=1)  # its x limit is set per scene
        self.start_dot = self.ax.plot([], [], "o", color="white", mec="black", ms=9, animated=True)[0]
        self.names, self.moving = None, []

    def make_moving_artists(self, names: tuple[str, ...]) -> None:
        """A note, path, end, cross and loss curve per optimizer of `names` (replacing the last ones): drawn at
        each render over the background, never by a full redraw (`animated`)."""
        for artist in self.moving:
            artist.remove()
        ax, lax, moving, c = self.ax, self.loss_ax, dict(animated=True), COLORS
        self.notes = {n: ax.text(0.02, 0.03 + 0.075 * i, "", transform=ax.transAxes, color=c[n], fontsize=10,
                                 fontweight="bold", bbox=dict(fc="white", ec="none", alpha=0.7, pad=1.5), **moving)
                      for i, n in enumerate(names)}
        self.paths = {n: ax.plot([], [], "-o", color=c[n], lw=1.5, ms=2.5, **moving)[0] for n in names}
        self.ends = {n: ax.plot([], [], "o", color=c[n], ms=7, mec="white", **moving)[0] for n in names}
        self.crosses = {n: ax.plot([], [], "X", color=c[n], ms=11, mec="black", clip_on=False, **moving)[0]
                        for n in names}
        self.losses = {n: lax.plot([], [], color=c[n], lw=1.5, **moving)[0] for n in names}
        self.loss_ends = {n: lax.plot([], [], "X", color=c[n], ms=9, mec="black", **moving)[0] for n in names}
        self.moving = [a for d in (self.notes, self.paths, self.ends, self.crosses, self.losses, self.loss_ends)
                       for a in d.values()]
        self.names = names

    def set_loss_scene(self, names: Sequence[str], steps: int) -> None:
        """The loss axes for `steps` steps, and the legend of the optimizers `names`, the start and the minimum."""
        self.loss_ax.set_xlim(0, steps)
        for legend in self.loss.fig.legends:
            legend.remove()
        handles = [Line2D([], [], marker="o", ms=4, color=COLORS[n], label=n) for n in names]
        handles.append(Line2D([], [], ls="", marker="o", color="white", mec="black", ms=9, label="start"))
        handles += [Line2D([], [], ls="", marker="*", color="gold", mec="black", ms=15, label="minimum")] * bool(self.minimum)
        self.loss.fig.legend(handles=handles, loc="upper center", ncols=3, frameon=False, fontsize=10,
                             borderaxespad=0.2)

    def prepare(self, names: Sequence[str], steps: int) -> None:
        """Draw and keep both backgrounds now, so that the first render of this surface is as fast as the next."""
        self.contour.draw(None, lambda: None, [])
        self.loss.draw((tuple(names), steps), lambda: self.set_loss_scene(names, steps), [])

    def render(self, start: Sequence[float], trajs: dict[str, Trajectory], steps: int) -> bytes:
        """PNG bytes of the trajectories over the (kept) contours, beside their losses against step."""
        names = tuple(trajs)
        if names != self.names:
            self.make_moving_artists(names)
        for n, t in trajs.items():
            self.set_path(n, t)
            self.notes[n].set_text(f"{n}: diverged at step {t.diverged_at}" if t.diverged_at is not None else "")
        self.start_dot.set_data([start[0]], [start[1]])
        on_contours = [*(self.notes[n] for n in names), *(a[n] for a in (self.paths, self.ends, self.crosses)
                                                          for n in names), self.start_dot]  # notes under paths
        self.contour.draw(None, lambda: None, on_contours)
        self.loss.draw((names, steps), lambda: self.set_loss_scene(names, steps),
                       [a[n] for a in (self.losses, self.loss_ends) for n in names])
        return canvas_png(self.contour.fig, self.loss.fig)

    def set_path(self, name: str, t: Trajectory) -> None:
        """One optimizer's path, end point and loss curve; for a diverged run, crosses where it left the plot (at
        its edge) and at its last loss."""
        s, diverged = self.surface, t.diverged_at is not None
        self.paths[name].set_data(t.points[:, 0], t.points[:, 1])
        self.ends[name].set_data(t.points[-1:, 0], t.points[-1:, 1])
        end = np.clip(t.points[-1], [s.xlim[0], s.ylim[0]], [s.xlim[1], s.ylim[1]])
        self.crosses[name].set_data(*(([end[0]], [end[1]]) if diverged else ([], [])))
        self.losses[name].set_data(np.arange(len(t.losses)), t.losses)
        self.loss_ends[name].set_data(*(([len(t.losses) - 1], [t.losses[-1]]) if diverged else ([], [])))


def draw_contours(ax, surface: Surface, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> list:
    """Filled contours of the loss (log-spaced levels for steep surfaces), the axes' labels; returns [minimum marker]."""
    if surface.log_levels:
        levels, norm = np.geomspace(max(Z.min(), Z.max() * 1e-6), Z.max(), 16), LogNorm()
    else:
        levels, norm = np.linspace(Z.min(), Z.max(), 16), None
    ax.contourf(X, Y, Z, levels=levels, norm=norm, cmap="Greys", alpha=0.6)
    ax.contour(X, Y, Z, levels=levels, norm=norm, colors="0.5", linewidths=0.5)
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y")
    ax.set_title(f"{surface.name} surface", pad=12)  # above the crosses of runs that left through the top
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
    ax.set(xlim=(0, steps), xlabel="step", ylabel="loss")
    ax.grid(True, alpha=0.3)
