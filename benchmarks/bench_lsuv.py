"""What LSUV costs: `lsuv_init` on the lesson CNN against plain forward passes of the same batch.

Run as `python -m benchmarks.bench_lsuv`. The model is the lesson-08 CNN (nfs [64, 64, 128, 256], 10 classes)
with lesson 07a's GeneralRelu(leak=0.1, sub=0.4, maxv=6) and no BatchNorm, kaiming-initialised; the batch is
64x3x128x128 noise. `lsuv_init` tunes each layer when one forward pass reaches it, re-running only that layer per
iteration (issue 15's goal: at most 5 forward passes); the readable path (`lsuv_module` layer by layer) runs a
forward pass, cut short at the layer, per measurement, as `lsuv_init` did before (28 passes here).
Times are the fastest of `repeats` runs (forward passes: `repeats + 1`), all in this process.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch

from teachkit.init import lsuv_init, lsuv_module, lsuv_modules
from teachkit.init import LSUVStepper
from teachkit.models import get_cnn_model, init_cnn
from teachkit.utils import default_device


def lesson_cnn(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_cnn_model(3, 10, [64, 64, 128, 256], bn=False, leak=0.1, sub=0.4, maxv=6.0)
    return init_cnn(model).to(device)


def best_time(f: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, object]:
    """Fastest wall time of `repeats` calls of `f` (synchronising the GPU), and the last result."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        res = f()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), res


def run(repeats: int = 3, device: torch.device | None = None) -> list[dict]:
    """Rows: lsuv_init time vs one forward pass, iterations used, and the LSUVStepper's extra cost."""
    device = device or default_device()
    model = lesson_cnn(device)
    xb = torch.randn(64, 3, 128, 128, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        model(xb)  # warm up
        t_fwd, _ = best_time(lambda: model(xb), device, repeats + 1)
    t_lsuv, report = best_time(lambda: lsuv_init(copy.deepcopy(model), xb, progress=False), device, repeats)

    def layer_by_layer():
        m = copy.deepcopy(model)
        return [lsuv_module(m, layer, xb) for layer in lsuv_modules(m)]
    t_readable, _ = best_time(layer_by_layer, device, repeats)
    t_step, _ = best_time(lambda: LSUVStepper(copy.deepcopy(model), xb).run_all(), device, 1)
    iters, n = sum(r.iterations for r in report), len(report)
    where = f"lesson CNN, bs 64, 128px, {device.type}"
    fwd = "one forward pass of the same batch"
    return [
        {"figure": f"lsuv_init, one pass ({where})", "value": round(t_lsuv, 3), "unit": "s",
         "baseline": fwd, "baseline_value": round(t_fwd, 4), "ratio": round(t_lsuv / t_fwd, 1)},
        {"figure": f"lsuv_module layer by layer, a pass per measurement ({where})", "value": round(t_readable, 3), "unit": "s",
         "baseline": fwd, "baseline_value": round(t_fwd, 4), "ratio": round(t_readable / t_fwd, 1)},
        {"figure": f"lsuv_init iterations used, all {n} layers (tol 1e-3)", "value": iters, "unit": "iterations",
         "baseline": "layers tuned", "baseline_value": n, "ratio": round(iters / n, 2)},
        {"figure": f"LSUVStepper.run_all, a snapshot of every layer per step ({where})", "value": round(t_step, 3),
         "unit": "s", "baseline": "lsuv_init", "baseline_value": round(t_lsuv, 3), "ratio": round(t_step / t_lsuv, 2)},
    ]


def show(rows: list[dict]) -> None:
    """Print the rows as a table."""
    print(f"{'figure':<78} {'value':>12}   {'baseline':<36} {'baseline value':>16} {'ratio':>7}")
    for r in rows:
        print(f"{r['figure']:<78} {r['value']:>8} {r['unit']:<3}   {r['baseline']:<36} "
              f"{r['baseline_value']:>12} {r['unit']:<3} {r['ratio']:>7}")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    show(run())
