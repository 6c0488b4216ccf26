"""Two-parameter toy loss surfaces: differentiable torch functions to watch optimizers move on."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Surface:
    """A loss `fn(x, y)` (works on scalars and on grids), where to draw it and where to start."""

    name: str
    fn: Fn
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    minimum: tuple[float, float] | None = None
    noise: float = 0.0  # std of the gradient noise added at every step, as in minibatch training
    log_levels: bool = False  # contour levels on a log scale, for surfaces with steep walls

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        """Loss at the point(s) `xy[..., 0], xy[..., 1]`."""
        return self.fn(xy[..., 0], xy[..., 1])

    def grid(self, n: int = 120) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """X, Y and loss on an n x n grid over the plot limits, for contour plots."""
        xs, ys = torch.linspace(*self.xlim, n), torch.linspace(*self.ylim, n)
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            return X, Y, self.fn(X, Y)

    def contains(self, xy: torch.Tensor) -> bool:
        """Is the point finite and inside the plot (with a margin)? Outside counts as diverged."""
        return bool(self.inside(xy))

    def inside(self, xy: torch.Tensor) -> torch.Tensor:
        """`contains` for many points `xy[..., 0], xy[..., 1]` at once: a bool tensor (NaN counts as outside)."""
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        mx, my = (x1 - x0), (y1 - y0)
        x, y = xy[..., 0], xy[..., 1]
        return (x >= x0 - mx) & (x <= x1 + mx) & (y >= y0 - my) & (y <= y1 + my)


def ill_conditioned(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A long narrow valley: curvature 20x larger along y than along x (condition number 20)."""
    return 0.5 * (x**2 + 20 * y**2)


def rosenbrock(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A curved banana valley with its minimum at (1, 1): easy to find, slow to follow."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flat plateaus and sharp ridges; minimum at (3, 0.5)."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x^2 - y^2: a saddle point at the origin; plain SGD started near y=0 lingers there."""
    return x**2 - y**2


def bowl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A round bowl, minimum at the origin."""
    return 0.5 * (x**2 + y**2)


SURFACES: dict[str, Surface] = {s.name: s for s in [
    Surface("ill-conditioned", ill_conditioned, (-3.0, 3.0), (-1.5, 1.5), (-2.5, 1.0), (0.0, 0.0)),
    Surface("rosenbrock", rosenbrock, (-2.0, 2.0), (-1.0, 3.0), (-1.5, 2.5), (1.0, 1.0), log_levels=True),
    Surface("beale", beale, (-4.5, 4.5), (-4.5, 4.5), (1.0, 1.5), (3.0, 0.5), log_levels=True),
    Surface("saddle", saddle, (-2.0, 2.0), (-2.0, 2.0), (-1.8, 0.05)),
    Surface("noisy bowl", bowl, (-3.0, 3.0), (-3.0, 3.0), (-2.5, 2.0), (0.0, 0.0), noise=1.0),
]}


def get_surface(name: str | Surface) -> Surface:
    """Look a surface up by name, with a clear error listing the choices."""
    if isinstance(name, Surface):
        return name
    if name not in SURFACES:
        raise ValueError(f"Unknown surface {name!r}; choose one of {list(SURFACES)}.")
    return SURFACES[name]
