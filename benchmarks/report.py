"""Run every benchmarks/bench_*.py and write one table of figures against their baselines to build/bench.md."""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
OUT = HERE.parent / "build" / "bench.md"


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
            f"- CUDA device: {gpu}"]


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


def main() -> int:
    rows, failed, info = [], [], machine_info()  # before the benchmarks change torch's thread count
    threads = torch.get_num_threads()
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        print(f"running {name} ...", flush=True)
        torch.set_num_threads(threads)  # each benchmark starts from the default, whatever the last one set
        try:
            for r in importlib.import_module(f"benchmarks.{name}").run():
                rows.append({"bench": name.removeprefix("bench_"), **r})
        except Exception as e:  # one broken benchmark should not hide the others' numbers
            print(f"{name} failed: {e!r}", file=sys.stderr)
            failed.append(name)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = ["# teachkit benchmarks", "", *info, "",
            "Ratios are value / baseline, both measured in the same process. For times, lower is better;",
            "for throughputs (images/s), higher is better.", "", *table(rows)]
    if failed:
        text += ["", f"Failed: {', '.join(failed)}"]
    OUT.write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwritten to {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
