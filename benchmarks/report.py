"""Run every benchmarks/bench_*.py and write one table of figures against their baselines to build/bench.md.

`python -m benchmarks.report` runs them all (`make bench`); `python -m benchmarks.report widgets lsuv` runs only those.
A benchmark is a module with `run() -> list[dict]`, one dict per row with the keys in `ROW_KEYS`; a new
bench_*.py file is picked up with no change here. One that returns no rows (bench_gpu without CUDA) is noted.
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
OUT = HERE.parent / "build" / "bench.md"
ROW_KEYS = ("figure", "value", "unit", "baseline", "baseline_value", "ratio")


def machine_info() -> list[str]:
    """The facts a reader needs to compare these numbers with theirs."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [l.split(":", 1)[1].strip() for l in cpuinfo.read_text().splitlines() if l.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [f"- date: {datetime.date.today().isoformat()}", f"- CPU: {cpu}, {os.cpu_count()} cores",
            f"- Python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}",
            f"- CUDA device: {gpu}", f"- load average at the start: {os.getloadavg()[0]:.1f} (other work slows every figure)"]


def fmt(v: float) -> str:
    """Three significant figures, without scientific notation for everyday sizes."""
    return f"{v:,.3g}" if abs(v) < 1e4 else f"{v:,.0f}"


def table(rows: list[dict]) -> list[str]:
    """Markdown rows: figure, value, baseline, baseline value, ratio."""
    lines = ["| benchmark | figure | value | baseline | baseline value | ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['bench']} | {r['figure']} | {fmt(r['value'])} {r['unit']} | {r['baseline']} | "
                     f"{fmt(r['baseline_value'])} {r['unit']} | {r['ratio']:.2f}x |")
    return lines


def run_bench(name: str) -> tuple[list[dict], float]:
    """The rows of benchmarks/`name`.py (its `run()`), each tagged with the benchmark, and the seconds it took."""
    start = time.perf_counter()
    rows = importlib.import_module(f"benchmarks.{name}").run()
    missing = [k for r in rows for k in ROW_KEYS if k not in r]
    if missing:
        raise ValueError(f"{name}.run() gave rows without {sorted(set(missing))}; each row needs {ROW_KEYS}.")
    return [{"bench": name.removeprefix("bench_"), **r} for r in rows], time.perf_counter() - start


def main(only: list[str]) -> int:
    """Run every benchmarks/bench_*.py (or those named in `only`, e.g. `widgets`), write build/bench.md."""
    rows, failed, info, took = [], [], machine_info(), []  # info before the benchmarks change torch's thread count
    threads, start = torch.get_num_threads(), time.perf_counter()
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if only and name.removeprefix("bench_") not in only:
            continue
        print(f"running {name} ...", flush=True)
        torch.set_num_threads(threads)  # each benchmark starts from the default, whatever the last one set
        try:
            bench_rows, seconds = run_bench(name)
        except Exception as e:  # one broken benchmark should not hide the others' numbers
            print(f"{name} failed: {e!r}", file=sys.stderr)
            failed.append(name)
            continue
        rows += bench_rows
        took.append(f"{name.removeprefix('bench_')} {seconds:.0f} s" + ("" if bench_rows else " (no rows: skipped)"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = ["# teachkit benchmarks", "", *info, f"- run time: {time.perf_counter() - start:.0f} s ({', '.join(took)})", "",
            "Ratios are value / baseline, both measured in the same process. For times, lower is better;",
            "for throughputs (images/s), higher is better.", "", *table(rows)]
    if failed:
        text += ["", f"Failed: {', '.join(failed)}"]
    OUT.write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwritten to {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
