"""How long the interactive panels take to answer a control, on the CPU, against in-process baselines.

Run as `python -m benchmarks.bench_widgets`. Issue 15 asks every panel interaction (optimizer lr and surface
changes, LSUV Step and Next layer, augment Resample) to answer within 100 ms on this 2-core machine, and the
training panel to cost at most 10 % of the time of the `fit` it watches. Each click timing is the median of
interleaved rounds (so a load change hits value and baseline alike), wall-clock, with torch on one thread as the
panels' 2-element tensors want; the training row is the best of interleaved fits with and without the panel.
To add a panel: write a `<panel>_rows() -> list[dict]` below and list it in `PANELS`.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from teachkit.init import lsuv_modules, lsuv_step
from teachkit.models import get_cnn_model, init_cnn
from teachkit.panels.playground import COLORS, OptimizerPlayground, PlaygroundPlot, draw_contours, draw_loss_axes
from teachkit.panels.surfaces import get_surface
from teachkit.widgets import augment_panel, lsuv_panel, optimizer_panel
from teachkit.render import fig_to_png, new_figure
from teachkit.show import show_samples

STEPS, ROUNDS = 200, 9


def time_ms(fns: dict[str, Callable[[], object]], rounds: int = ROUNDS) -> dict[str, float]:
    """Median milliseconds of each function, over rounds that run them all in turn, after one warm-up call each."""
    for f in fns.values():
        f()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            start = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def row(figure: str, value: float, baseline: str, baseline_value: float) -> dict:
    """One line of the report, in milliseconds; ratio < 1 means faster than the baseline."""
    return {"figure": figure, "value": round(value, 1), "unit": "ms", "baseline": baseline,
            "baseline_value": round(baseline_value, 1), "ratio": round(value / baseline_value, 2)}


# ---------------------------------------------------------------- optimizer panel

def torch_optim_run(surface: str = "ill-conditioned", lr: float = 0.02) -> None:
    """The playground's side-by-side loop with torch.optim's SGD, SGD(momentum), Adam, Adam (torch has no LAMB)."""
    s = get_surface(surface)
    ps = [torch.tensor(s.start, dtype=torch.float64) for _ in range(4)]
    opts = [torch.optim.SGD([ps[0]], lr=lr), torch.optim.SGD([ps[1]], lr=lr, momentum=0.9),
            torch.optim.Adam([ps[2]], lr=lr, betas=(0.9, 0.99), eps=1e-5), torch.optim.Adam([ps[3]], lr=lr, betas=(0.9, 0.99))]
    path = []
    for _ in range(STEPS):
        xy = torch.stack(ps)
        path.append(xy)
        for p, g, opt in zip(ps, s.gradient(xy), opts):
            p.grad = g
            opt.step()


def full_redraw_png(pg: OptimizerPlayground) -> bytes:
    """The plain way to draw the same picture: a new figure with contours, paths and losses, saved with savefig."""
    fig = new_figure(10.0, 4.2, 90)
    ax, loss_ax = fig.subplots(1, 2, width_ratios=[1.15, 1])
    grid = [t.numpy() for t in pg.surface.grid(150)]
    draw_contours(ax, pg.surface, *grid)
    draw_loss_axes(loss_ax, grid[2], pg.steps)
    for n, t in pg.trajectories.items():
        ax.plot(t.points[:, 0], t.points[:, 1], "-o", color=COLORS[n], ms=2.5, label=n)
        loss_ax.plot(np.arange(len(t.losses)), t.losses, color=COLORS[n])
    fig.legend(loc="outside upper center", ncols=4)
    return fig_to_png(fig)


def optimizer_panel_rows() -> list[dict]:
    """Rerun + redraw after an lr change and after a surface change, and their parts, against the plain ways."""
    panel = optimizer_panel(steps=STEPS)
    pg = panel.playground
    lrs, panel_lrs = iter(np.tile([0.02, 0.021], 1000)), iter(np.tile([0.02, 0.021], 1000))  # the panel's own: a change each time
    surfaces = iter(["rosenbrock", "ill-conditioned"] * 1000)

    def lr_change():
        panel.lr.value = float(next(panel_lrs))

    def rerun_full_redraw():
        pg.update(lr=float(next(lrs)))
        full_redraw_png(pg)

    def rerun():
        pg.update(lr=float(next(lrs)))
        return pg.trajectories

    def first_picture_of_a_surface():
        """What a surface change cost before the backgrounds were prepared: a new picture, drawn from scratch."""
        pg.update(lr=float(next(lrs)))
        PlaygroundPlot(pg.surface).render(pg.start, pg.trajectories, pg.steps)

    t = time_ms({"panel": lr_change, "full": rerun_full_redraw, "run": rerun, "torch": torch_optim_run,
                 "render": pg.render, "savefig": lambda: full_redraw_png(pg),
                 "surface": lambda: setattr(panel.surface, "value", next(surfaces)),
                 "cold": first_picture_of_a_surface})
    n = f"4 opt x {STEPS} steps"
    return [row(f"optimizer panel: lr slider -> recompute+render ({n})", t["panel"],
                "recompute + plain redraw (new figure, savefig)", t["full"]),
            row(f"optimizer panel: recompute only, teachkit optimizers ({n})", t["run"],
                "same loop with torch.optim SGD, SGD mom, Adam x2", t["torch"]),
            row("optimizer panel: render only (blit on cached contours, PNG)", t["render"],
                "plain redraw (new figure, savefig)", t["savefig"]),
            row(f"optimizer panel: surface change -> recompute+render, backgrounds prepared ({n})", t["surface"],
                "recompute + first picture of a surface (contours drawn)", t["cold"])]


# ---------------------------------------------------------------- training panel

def training_overhead_rows(batches: int = 200, rounds: int = 5, size: int = 64) -> list[dict]:
    """`fit` with the training panel (losses, lr, momentum, every conv's activation statistics, live pictures) against
    the same `fit` without it: the lesson CNN on generated `size` px images, CPU, `rounds` pairs of runs back to back
    (which goes first alternates, so a drift in the machine's load does not favour one); the ratio is the median of
    the pairs' ratios, the times are the medians (a shared VM's jitter moves single runs by 10-30 %).
    Times are this process's CPU time (torch on one thread), so other work on a shared machine does not count."""
    from teachkit.learner import Learner
    from teachkit.optim import adam_opt
    from teachkit.toy import toy_databunch
    from teachkit.widgets import training_panel

    bs = 32

    def fit(panel: bool, n: int = batches) -> tuple[float, int]:
        """CPU seconds for one epoch of `n` batches, and how many pictures the panel drew."""
        dls = toy_databunch("images", n_train=n * bs, n_valid=4 * bs, bs=bs, size=size, n_classes=10)
        torch.manual_seed(0)
        model = init_cnn(get_cnn_model(3, 10, [32, 64, 128, 256], leak=0.1, sub=0.4, maxv=6.0))
        learn = Learner(model, dls, lr=1e-3, opt_func=adam_opt)
        monitor = training_panel().monitor if panel else None
        start = time.process_time()
        learn.fit(1, cbs=[monitor] if panel else [])
        return time.process_time() - start, monitor.draws if panel else 0

    fit(True, n=10)  # warm-up: first matplotlib draw, allocator
    times, draws = {True: [], False: []}, 0
    for r in range(rounds):
        for panel in (False, True) if r % 2 == 0 else (True, False):
            elapsed, n = fit(panel)
            times[panel].append(elapsed)
            draws = max(draws, n)
    with_panel, without = statistics.median(times[True]), statistics.median(times[False])
    ratio = statistics.median(w / wo for w, wo in zip(times[True], times[False]))
    return [{"figure": f"fit with the training panel (lesson CNN [32,64,128,256], {batches} batches of {bs}x3x{size}x{size}; "
                       f"{draws} pictures)", "value": round(with_panel, 2), "unit": "s (CPU)",
             "baseline": "the same fit without it", "baseline_value": round(without, 2),
             "ratio": round(ratio, 3)}]


# ---------------------------------------------------------------- LSUV and augmentation panels

def lsuv_panel_rows() -> list[dict]:
    """Step and Next layer clicks (LSUV update, every layer's stats, table and picture redrawn), on the 6-layer toy
    model against the bare iteration, and on the lesson CNN of 07a ([32, 64, 128, 256], batch 32x3x64x64) against
    one forward pass of that batch. Each timing walks through the layers in turn (Reset when done): a median over
    the whole run, and one over the widest layer's steps alone."""
    torch.manual_seed(0)
    xb = torch.randn(16, 3, 32, 32)
    panel = lsuv_panel(init_cnn(get_cnn_model(3, 10, [16, 32], leak=0.1, sub=0.4, maxv=6.0)), xb)
    model = init_cnn(get_cnn_model(3, 10, [16, 32], leak=0.1, sub=0.4, maxv=6.0))
    first = lsuv_modules(model)[0]

    def clicker(panel, button, reset_when=lambda s: s.done):
        def click():
            if reset_when(panel.stepper):
                panel.reset_button.click()
            button(panel).click()
        return click

    t = time_ms({"panel": clicker(panel, lambda p: p.step_button), "step": lambda: lsuv_step(model, first, xb)})
    rows = [row("LSUV panel: Step click -> step+render (6 layers, batch 16x3x32x32)", t["panel"],
                "lsuv_step alone (no stats of every layer, no drawing)", t["step"])]
    torch.manual_seed(0)
    cnn = init_cnn(get_cnn_model(3, 10, [32, 64, 128, 256], bn=False, leak=0.1, sub=0.4, maxv=6.0))
    xb = torch.randn(32, 3, 64, 64)
    panels = [lsuv_panel(cnn, xb) for _ in range(3)]  # one model: each panel puts back its start on Reset
    with torch.no_grad():
        forward = lambda: cnn(xb)  # noqa: E731
        t = time_ms({"step": clicker(panels[0], lambda p: p.step_button),
                     "next": clicker(panels[1], lambda p: p.next_button),
                     "first": clicker(panels[2], lambda p: p.step_button, lambda s: s.done or s.current > 0),
                     "forward": forward}, rounds=27)  # ~ the steps of one whole LSUV run
    where, base = "lesson CNN [32,64,128,256], batch 32x3x64x64", "one forward pass of the batch (model alone)"
    return rows + [row(f"LSUV panel: Step click, median over a whole run ({where})", t["step"], base, t["forward"]),
                   row(f"LSUV panel: Next layer click, median over the layers ({where})", t["next"], base, t["forward"]),
                   row(f"LSUV panel: Step click on the first, widest layer ({where})", t["first"], base, t["forward"])]


def pyplot_samples_png(tfm: object, img: object) -> bytes:
    """The plain way: teachkit.show.show_samples (pyplot), saved to PNG and closed."""
    fig = show_samples(tfm, img, n=8, ncols=3, size=2.0)
    png = fig_to_png(fig)
    plt.close(fig)
    return png


def augment_panel_rows() -> list[dict]:
    """A Resample click (8 new RandomResizedCrop samples, grid redrawn) against show_samples with pyplot."""
    panel = augment_panel(n=8)
    s = panel.sampler
    t = time_ms({"panel": panel.resample_button.click,
                 "pyplot": lambda: pyplot_samples_png(s.transform(), s.image)})
    return [row(f"augment panel: Resample click -> resample+render (8 x {s.tfm.__name__}, PIL)", t["panel"],
                "show.show_samples (pyplot) + savefig", t["pyplot"])]


PANELS: list[Callable[[], list[dict]]] = [optimizer_panel_rows, lsuv_panel_rows, augment_panel_rows,
                                           training_overhead_rows]


def run() -> list[dict]:
    """Every panel's rows, timed with torch on one thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [r for rows in PANELS for r in rows()]
    finally:
        torch.set_num_threads(threads)


def show(rows: list[dict]) -> None:
    """Print the rows as a table."""
    print(f"{'figure':<72} {'ms':>7}   {'baseline':<48} {'ms':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['figure']:<72} {r['value']:>7.1f}   {r['baseline']:<48} {r['baseline_value']:>7.1f} {r['ratio']:>6.2f}")
    load = os.getloadavg()[0]
    print(f"(torch {torch.__version__}, 1 thread, load average {load:.1f} on {os.cpu_count()} cores; "
          "issue 15's budget: 100 ms a click, 1.10x for the training panel)")


if __name__ == "__main__":
    show(run())
