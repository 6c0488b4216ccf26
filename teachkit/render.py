"""Every PNG a panel shows is drawn here: matplotlib figures to PNG bytes for `ipywidgets.Image` (every Jupyter
front end shows those, no ipympl needed).

Two ways to draw, by how often the picture changes:

- a one-off picture: `new_figure`, draw on it, `fig_to_png`;
- a picture redrawn at every slider move: a `fixed_figure` kept alive, its still part drawn once per scene and
  kept as pixels by a `Blit`, the moving artists drawn over a copy of it, `canvas_png` to encode it quickly.
  Several such figures can be put side by side into one PNG, each with its own cached background.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Hashable, Iterable

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["new_figure", "fig_to_png", "fixed_figure", "canvas_png", "Blit"]


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 80) -> Figure:
    """A figure outside pyplot, so notebooks never display it on their own and nothing leaks."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def fig_to_png(fig: Figure) -> bytes:
    """Render `fig` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def fixed_figure(width: float, height: float, dpi: int, **margins: float) -> Figure:
    """A figure to keep and redraw: its own Agg canvas and fixed margins (`left=`, `top=`... as `subplots_adjust`
    takes them), because a layout that moves between redraws would break blitting."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**margins)
    return fig


def canvas_png(*figs: Figure) -> bytes:
    """PNG bytes of what the figures' canvases hold now, side by side (no redraw, unlike `savefig`), quickly
    compressed: the figures must have the same height in pixels."""
    pixels = np.concatenate([np.asarray(f.canvas.buffer_rgba()) for f in figs], axis=1)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buf, format="png", compress_level=1)
    return buf.getvalue()


class Blit:
    """A persistent figure drawn in two layers: a still background, drawn once per scene (`key`) and kept as
    pixels, and moving artists (made with `animated=True`, so a full draw leaves them out) drawn over a copy of it.

    `draw(key, set_scene, moving)`: when `key` differs from the last one, `set_scene()` draws the still part
    (contours, axes, legend...) and the canvas is fully redrawn; otherwise the kept pixels are restored, which
    costs a few milliseconds. Put in `key` everything the still part depends on: then it is never stale.
    """

    def __init__(self, fig: Figure):
        self.fig, self.key, self.background = fig, None, None

    def draw(self, key: Hashable, set_scene: Callable[[], None], moving: Iterable[Artist]) -> None:
        """Restore (or first draw) the background for `key`, then draw the `moving` artists over it."""
        canvas = self.fig.canvas
        if self.background is None or key != self.key:
            self.background = None  # a failed set_scene must not leave the old scene marked as current
            set_scene()
            canvas.draw()
            self.background, self.key = canvas.copy_from_bbox(self.fig.bbox), key
        else:
            canvas.restore_region(self.background)
        for artist in moving:
            self.fig.draw_artist(artist)
