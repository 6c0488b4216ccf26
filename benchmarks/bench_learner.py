"""What a Learner costs around training: freeing a used one, and the command line refusing a bad flag.

Run as `python -m benchmarks.bench_learner` (about 30 s). Two experiments:

- Freeing a Learner (`del learn; gc.collect()`) after `fit` on DataLoaders with 2 persistent workers each, and
  after `fit` and a look at a batch of each loader (which starts their workers again), against the same Learner
  fitted with `num_workers=0` (nothing to stop), and against loaders held without a DataBunch, whose workers
  nothing stops, as teachkit left them before: a Learner and its callbacks form a reference cycle, and the
  garbage collector then waits 5 s for every live worker.
- `python -m teachkit.train --bs -1` (refused by argparse) against `python -c pass` (the interpreter alone) and
  `python -c "import torch"` (what every refusal cost when the parser imported torch first).

Each time is the median of a few runs, interleaved with its baselines.
"""
from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from teachkit.data.databunch import DataBunch
from teachkit.learner import Learner
from teachkit.toy import toy_blobs

ROOT = Path(__file__).resolve().parent.parent


def row(figure: str, value: float, unit: str, baseline: str, baseline_value: float) -> dict:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "baseline_value": baseline_value,
            "ratio": value / baseline_value}


def medians(funcs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of what each function returns (seconds it measured), over interleaved rounds."""
    got = {k: [] for k in funcs}
    for _ in range(rounds):
        for k, f in funcs.items():
            got[k].append(f())
    return {k: statistics.median(v) for k, v in got.items()}


# ------------------------------------------------------------------ freeing a used Learner

def used_learner(workers: int, peek: bool = False, bare: bool = False) -> Learner:
    """A Learner after a 2-epoch fit over 2 DataLoaders of `workers` persistent workers each, then (`peek`) a look
    at a batch of each; `bare`: the loaders in a plain namespace, not a DataBunch."""
    x, y = toy_blobs(512)
    kw = dict(num_workers=workers, persistent_workers=workers > 0)
    dls = (SimpleNamespace if bare else DataBunch)(
        train_dl=DataLoader(TensorDataset(x[:384], y[:384]), 32, shuffle=True, **kw),
        valid_dl=DataLoader(TensorDataset(x[384:], y[384:]), 64, **kw), c_in=8, c_out=4)
    learn = Learner(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), dls, lr=0.1)
    learn.fit(2)
    if peek:  # live workers inside the cycle again, as fit left them before it stopped them
        next(iter(dls.train_dl)), next(iter(dls.valid_dl))
    return learn


def free_time(workers: int, peek: bool = False, bare: bool = False) -> float:
    """Seconds for `del learn; gc.collect()` on a used Learner."""
    learn = used_learner(workers, peek, bare)
    gc.collect()  # only the Learner's own garbage is left to collect
    start = time.perf_counter()
    del learn
    gc.collect()
    return time.perf_counter() - start


# ------------------------------------------------------------------ the command line refusing a flag

def run_time(*args: str) -> float:
    """Wall-clock seconds of `python *args` (its exit status is not checked: a refusal exits with 2)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def run() -> list[dict]:
    """Rows: time to free a used Learner, time for the CLI to refuse a bad flag, each against its baselines."""
    torch.set_num_threads(1)
    free = medians({"workers": lambda: free_time(2), "peek": lambda: free_time(2, peek=True),
                    "none": lambda: free_time(0)}, rounds=5)
    alive = free_time(2, peek=True, bare=True)  # about 5 s a worker: measured once
    fig = "free a Learner fitted with 2+2 persistent DataLoader workers (del + gc.collect)"
    peeked = "free a Learner fitted with 2+2 persistent workers, then a batch of each loader taken (del + gc.collect)"
    rows = [row(fig, free["workers"], "s", "the same Learner fitted with num_workers=0", free["none"]),
            row(peeked, free["peek"], "s", "the same Learner fitted with num_workers=0", free["none"]),
            row(peeked, free["peek"], "s", "the same with the loaders outside a DataBunch (nothing stops their "
                "workers, as in teachkit before)", alive)]
    cli = medians({"refuse": lambda: run_time("-m", "teachkit.train", "--bs", "-1"),
                   "pass": lambda: run_time("-c", "pass"),
                   "torch": lambda: run_time("-c", "import torch")}, rounds=3)
    fig = "python -m teachkit.train --bs -1 (refused by argparse)"
    rows += [row(fig, cli["refuse"], "s", "python -c pass", cli["pass"]),
             row(fig, cli["refuse"], "s", "python -c 'import torch' (the refusal's cost when torch came first)",
                 cli["torch"])]
    return rows


def show(rows: list[dict]) -> None:
    """Print the rows as a table."""
    for r in rows:
        print(f"{r['figure']:<80} {r['value']:>8.3f} s   {r['baseline']:<72} {r['baseline_value']:>8.3f} s "
              f"{r['ratio']:>7.2f}x")


if __name__ == "__main__":
    show(run())
