"""Turn matplotlib figures into PNG bytes for `ipywidgets.Image`: works in every Jupyter front end, no ipympl."""
from __future__ import annotations

import io

from matplotlib.figure import Figure


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 80) -> Figure:
    """A figure outside pyplot, so notebooks never display it on their own and nothing leaks."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def fig_to_png(fig: Figure) -> bytes:
    """Render `fig` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
