"""Watch a training run live: `TrainingMonitor`, the model behind `teachkit.widgets.training_panel`.

A Callback that keeps what a teacher wants to see while `learn.fit` runs, and draws it as one PNG:

- the loss of every training batch, and the validation loss of every epoch;
- the learning rate and the momentum the optimizer used at every batch (read from its hyper-parameters, so any
  schedule shows, whoever set it);
- each hooked layer's activation mean and std, its "colorful dimension" (histogram over batches) and the share
  of its activations near zero, from `teachkit.hooks.ActivationStats`.

It redraws at most every `every` seconds, and never spends more than `max_share` of the time drawing: a slow
machine gets fewer pictures, not a slower training. Each picture goes to `on_png` (the panel's image). The hooks
come off after `fit`, whatever ended it (Kernel -> Interrupt included), and the last picture is drawn then.

    monitor = TrainingMonitor()
    learn.fit(2, cbs=monitor)
    Image(monitor.png)
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..learner import Callback, Learner, hypers_of
from ..hooks import ActivationStats, get_hist, get_min
from ..render import canvas_png, fixed_figure

__all__ = ["TrainingMonitor", "momentum_of"]


def momentum_of(hypers: dict) -> float:
    """The momentum in one group of hyper-parameters: teachkit's `mom`, torch's `momentum` or Adam's beta1 (NaN
    when the optimizer has none)."""
    if "mom" in hypers:
        return float(hypers["mom"])
    if "momentum" in hypers:
        return float(hypers["momentum"])
    return float(hypers["betas"][0]) if "betas" in hypers else math.nan


class TrainingMonitor(Callback):
    """Losses, lr and momentum of every batch, and activation statistics, drawn live during `fit` (see module doc).

    `modules`, `stats_every`, `sample`, `bins`, `hist_range` go to `ActivationStats` (which layers, one training
    batch in `stats_every`, histograms of about `sample` activations per layer: on a CPU a full histogram costs
    about as much as the layer, so neither every batch nor every activation by default);
    `n_hists` is how many layers get a "colorful dimension" plot (spread over the hooked layers).
    """

    order = 10  # after the callbacks that set the hyper-parameters and count the batches

    def __init__(self, modules: Sequence | None = None, every: float = 0.5, max_share: float = 0.02,
                 stats_every: int = 10, sample: int | None = 1 << 16, n_hists: int = 2,
                 on_png: Callable[[bytes], Any] | None = None, **stats_kwargs):
        if every < 0 or not 0 < max_share <= 1:
            raise ValueError(f"TrainingMonitor needs every >= 0 seconds and 0 < max_share <= 1, got {every}, {max_share}.")
        self.act = ActivationStats(modules, every=stats_every, sample=sample, **stats_kwargs)
        self.every, self.max_share, self.n_hists, self.on_png = every, max_share, n_hists, on_png
        self.train_losses, self.valid_losses, self.lrs, self.moms = [], [], [], []
        self.png, self.plot, self.drawn_at, self.draw_time, self.draws = None, None, -math.inf, 0.0, 0

    # ------------------------------------------------------------ recording

    def set_learner(self, learn: Learner) -> None:
        super().set_learner(learn)
        self.act.set_learner(learn)

    def __call__(self, event: str) -> Any:
        """Every event goes to the `ActivationStats` inside first (it hooks the layers), then to this monitor."""
        self.act(event)
        return super().__call__(event)

    def before_fit(self) -> None:
        self.train_losses, self.valid_losses, self.lrs, self.moms = [], [], [], []
        self.drawn_at, self.draws = -math.inf, 0

    def before_validate(self) -> None:
        self.valid_sum, self.valid_count = 0.0, 0

    def after_loss(self) -> None:
        """Record the batch once its loss is known (a batch interrupted before that is not recorded)."""
        if not self.in_train:
            n = len(self.xb)
            self.valid_sum, self.valid_count = self.valid_sum + self.loss.item() * n, self.valid_count + n
            return
        h = hypers_of(self.opt)[-1]
        self.train_losses.append(self.loss.item())
        self.lrs.append(float(h["lr"]))
        self.moms.append(momentum_of(h))

    def after_batch(self) -> None:
        if self.in_train and self.due():
            self.draw()

    def after_epoch(self) -> None:
        if getattr(self, "valid_count", 0):
            self.valid_losses.append((len(self.train_losses), self.valid_sum / self.valid_count))
            self.valid_count = 0

    def after_fit(self) -> None:
        self.draw()  # the last picture, however fit ended (ActivationStats has removed its hooks already)

    # ------------------------------------------------------------ drawing

    def due(self) -> bool:
        """Time for a new picture? At most one every `every` s, and drawing at most `max_share` of the time."""
        return time.perf_counter() - self.drawn_at >= max(self.every, self.draw_time / self.max_share)

    def draw(self) -> bytes:
        """Draw the picture now, keep it in `png` and hand it to `on_png`."""
        start = time.perf_counter()
        self.png = self.render()
        self.drawn_at = time.perf_counter()
        self.draw_time, self.draws = self.drawn_at - start, self.draws + 1
        if self.on_png is not None:
            self.on_png(self.png)
        return self.png

    def render(self) -> bytes:
        """PNG of losses, lr, momentum and the hooked layers' mean, std, histograms and near-zero share, now."""
        names = self.act.names
        if self.plot is None or self.plot.names != names:
            self.plot = MonitorPlot(names, spread(len(names), self.n_hists))
        return self.plot.update(self)


class MonitorPlot:
    """The monitor's figure, made once per set of layers: each draw gives its lines and images new data, rescales
    the axes and redraws (no new figure or axes, which would cost most of the time).

    Top row: loss, learning rate, activation mean and std; bottom row: momentum, the "colorful dimension" of the
    layers `hist_layers`, the share of activations near 0. One legend above names the layers.
    """

    def __init__(self, names: Sequence[str], hist_layers: Sequence[int], width: float = 11.0, height: float = 5.8,
                 dpi: int = 72):
        self.names, self.hist_layers = list(names), list(hist_layers)
        self.fig = fig = fixed_figure(width, height, dpi, left=0.06, right=0.985, bottom=0.08, top=0.86, wspace=0.3,
                                      hspace=0.3)
        grid = fig.add_gridspec(2, max(4, len(hist_layers) + 2))
        self.loss = fig.add_subplot(grid[0, 0])
        self.lr, self.mean, self.std = (fig.add_subplot(grid[0, i], sharex=self.loss) for i in range(1, 4))
        self.mom, *hist_axes, self.zero = (fig.add_subplot(grid[1, i], sharex=self.loss)
                                           for i in range(len(hist_layers) + 2))  # one batch axis: labelled below
        self.train_line = self.loss.plot([], [], lw=1, label="train")[0]
        self.valid_line = self.loss.plot([], [], "o-", label="valid")[0]
        self.loss.legend(fontsize="small", loc="upper right")
        self.loss_note = self.loss.text(0.5, 0.04, "", ha="center", va="bottom", fontsize="small",
                                        transform=self.loss.transAxes)
        self.lr_line, self.mom_line = self.lr.plot([], [], lw=1.5)[0], self.mom.plot([], [], lw=1.5)[0]
        self.means, self.stds, self.zeros = ([ax.plot([], [], lw=1, label=n)[0] for n in names]
                                             for ax in (self.mean, self.std, self.zero))
        self.images = [ax.imshow(np.zeros((1, 1)), origin="lower", aspect="auto", interpolation="nearest")
                       for ax in hist_axes]
        for ax in fig.axes:
            ax.locator_params(nbins=4)  # fewer tick labels: text is most of the cost of a picture
        self.loss.set_yscale("log")  # a loss falls by orders of magnitude; on a linear axis its end looks flat
        for ax, title in [(self.loss, "loss"), (self.lr, "learning rate"), (self.mean, "activation mean"),
                          (self.std, "activation std")]:
            ax.set_title(title)
            ax.tick_params(labelbottom=False)
        self.mom.set(title="momentum", xlabel="batch")
        self.zero.set(title="share of activations near 0", xlabel="batch", ylim=(0, 1.05))
        for ax, i in zip(hist_axes, hist_layers):
            ax.set(title=f"{names[i]}: histogram", xlabel="batch", ylabel="activation")
        if names:
            fig.legend(handles=self.means, loc="upper center", ncols=min(len(names), 6), fontsize=9, frameon=False)
        else:
            self.mean.text(0.5, 0.5, "each layer shows\nwhen fit starts", ha="center", transform=self.mean.transAxes)

    def update(self, m: TrainingMonitor) -> bytes:
        """PNG of the monitor's records now."""
        stats = m.act.stats
        train = drawable(np.arange(len(m.train_losses)), m.train_losses, log=True)
        valid = drawable(*(np.array(m.valid_losses).T if m.valid_losses else ([], [])), log=True)
        self.train_line.set_data(*train)
        self.valid_line.set_data(*valid)
        left_out = len(m.train_losses) + len(m.valid_losses) - len(train[0]) - len(valid[0])
        self.loss_note.set_text(f"{left_out} NaN or infinite\nlosses not drawn" if left_out else "")
        self.lr_line.set_data(*drawable(np.arange(len(m.lrs)), m.lrs))
        self.mom_line.set_data(*drawable(np.arange(len(m.moms)), m.moms))
        every = m.act.every  # ActivationStats records training batches 0, every, 2 * every...
        for s, mean, std, zero in zip(stats, self.means, self.stds, self.zeros):
            x = np.arange(len(s.means)) * every
            mean.set_data(*drawable(x, s.means))
            std.set_data(*drawable(x, s.stds))
            zero.set_data(*drawable(x, get_min(s).numpy() if s.hists else []))
        for image, i in zip(self.images, self.hist_layers):
            if stats[i].hists:
                lo, hi = stats[i].hist_range
                hist = get_hist(stats[i]).numpy()
                image.set_data(hist)
                image.set_extent((0, hist.shape[1] * every, lo, hi))
                image.autoscale()
        for ax in (self.loss, self.lr, self.mom, self.mean, self.std, self.zero):
            ax.relim()
            ax.autoscale_view(scalex=True, scaley=ax is not self.zero)
        if not (len(train[0]) or len(valid[0])):
            self.loss.set_ylim(0.1, 10, auto=None)  # a log axis needs positive limits, even with nothing on it
        self.fig.canvas.draw()
        return canvas_png(self.fig)


def drawable(x: Sequence[float], y: Sequence[float], log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The points of a line that matplotlib can place: finite, and positive on a log axis (a diverged run's NaN
    and inf losses would otherwise break the axis limits, and the picture with them)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log else True)
    return x[keep], y[keep]


def spread(n: int, k: int) -> list[int]:
    """`k` indices spread evenly over range(n), first and last included (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})
