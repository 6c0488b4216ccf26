"""The Learner's own cost per batch: `Learner.fit` against a hand-written PyTorch loop doing the same work.

Run as `python -m benchmarks.bench_loop`. Both loops train and validate lesson 09b's MLP on batches held in memory
(no DataLoader, so only the loop itself differs), with the same SGD optimizer, loss and accuracy averaging; the
Learner carries the callbacks `build_learner` gives (device, normalisation, metrics, recorder, throughput, lr and
momentum schedules) and the hand-written loop does the same work inline. The model is small on purpose: the ratio shows
what the loop adds to each batch, which a large model would hide. The two loops run in many pairs of rounds, back to
back (which goes first alternates); the row gives the median times and, as ratio, the median of the pairs' ratios, so
load that comes and goes on a shared machine hits both sides of a pair alike.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from teachkit.callbacks import (AvgStatsCallback, BatchTransformXCallback, DeviceCallback, ParamScheduler, Recorder,
                                Throughput, accuracy)
from teachkit.data import norm_imagenette
from teachkit.data.databunch import DataBunch
from teachkit.learner import Learner
from teachkit.optim import sgd_mom_opt
from teachkit.schedule import momentum_cycle, one_cycle

N_TRAIN, N_VALID, BS, SIZE = 80, 20, 64, 16


def batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`n` random batches of 3x16x16 images and 10-class labels."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(BS, 3, SIZE, SIZE, generator=g), torch.randint(0, 10, (BS,), generator=g)) for _ in range(n)]


def model() -> torch.nn.Module:
    """Lesson 09b's model: one hidden layer of 50 (course-v3 trains it on MNIST), here on flattened 3x16x16 images."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 50), nn.ReLU(), nn.Linear(50, 10))


def hand_loop(m: torch.nn.Module, train: list, valid: list, lr: float = 0.1) -> None:
    """One epoch as a person writes it, doing what the recipe's callbacks do: device, normalise, one-cycle lr and
    momentum, loss and accuracy averages, the lr and loss recorded, images counted."""
    opt, device = sgd_mom_opt(m.parameters(), lr=lr), torch.device("cpu")
    sched_lr, sched_mom = one_cycle(lr), momentum_cycle()
    lrs, losses, n_images, n_iter = [], [], 0, 0
    tot = {"train": [0.0, 0.0, 0], "valid": [0.0, 0.0, 0]}
    for phase, dl in (("train", train), ("valid", valid)):
        m.train(phase == "train")
        with torch.set_grad_enabled(phase == "train"):
            for xb, yb in dl:
                xb, yb = norm_imagenette(xb.to(device)), yb.to(device)
                if phase == "train":
                    for h in opt.hypers:
                        h["lr"], h["mom"] = sched_lr(n_iter / len(train)), sched_mom(n_iter / len(train))
                pred = m(xb)
                loss = F.cross_entropy(pred, yb)
                with torch.no_grad():
                    t = tot[phase]
                    t[0] += loss.item() * len(xb); t[1] += float(accuracy(pred, yb)) * len(xb); t[2] += len(xb)
                if phase == "train":
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                    lrs.append(opt.hypers[-1]["lr"]); losses.append(loss.item())
                    n_images, n_iter = n_images + len(xb), n_iter + 1


def learner_loop(m: torch.nn.Module, train: list, valid: list, lr: float = 0.1) -> None:
    """The same epoch through `Learner.fit` with the callbacks `teachkit.recipe.build_learner` gives (no bars)."""
    cbs = [DeviceCallback("cpu"), BatchTransformXCallback(norm_imagenette), AvgStatsCallback(accuracy), Recorder(),
           Throughput(), ParamScheduler("lr", one_cycle(lr)), ParamScheduler("mom", momentum_cycle())]
    learn = Learner(m, DataBunch(train, valid), opt_func=sgd_mom_opt, lr=lr, cbs=cbs)
    learn.logger = lambda row: None
    learn.fit(1)


LOOPS = {"learner": learner_loop, "hand": hand_loop}


def time_loop(loop: Callable, train: list, valid: list) -> float:
    """Seconds per batch of one epoch of `loop` on a fresh model."""
    m = model()
    start = time.perf_counter()
    loop(m, train, valid)
    return (time.perf_counter() - start) / (N_TRAIN + N_VALID)


def run(n_rounds: int = 41) -> list[dict]:
    """One row: milliseconds per batch of Learner.fit over the hand-written loop's (medians of paired rounds)."""
    torch.set_num_threads(1)  # a small model: threads would add noise, not speed
    train, valid = batches(N_TRAIN, 0), batches(N_VALID, 1)
    times = {"learner": [], "hand": []}
    for r in range(n_rounds):
        pair = ("learner", "hand") if r % 2 else ("hand", "learner")  # which goes first alternates
        for name in pair:
            times[name].append(time_loop(LOOPS[name], train, valid))
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["learner"], times["hand"]))
    return [dict(figure=f"Learner.fit per batch (MLP 768-50-10, bs {BS}, the recipe's 7 callbacks, 1 thread)",
                 value=ms["learner"], unit="ms", baseline="hand-written PyTorch loop, same work",
                 baseline_value=ms["hand"], ratio=ratio)]


if __name__ == "__main__":
    for row in run():
        print(f"{row['figure']}: {row['value']:.3f} {row['unit']} vs {row['baseline_value']:.3f} ({row['ratio']:.3f}x)")
