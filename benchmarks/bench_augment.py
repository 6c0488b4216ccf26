"""Images per second of three ways to augment 64 images of 3x128x128: lesson 10's point, measured.

Run as `python -m benchmarks.bench_augment`. Every path starts from the same 64 crops of a real photo and
ends with 64 augmented float images of 3x128x128, each by an (as far as the libraries allow) equivalent recipe:

- per-image PIL (teachkit): random flip, then a random tilted crop (zoom 1.2, tilt 0.2), on bytes, then to float;
- torchvision.transforms.v2, per sample, on float tensors: random flip, RandomAffine (rotate +-30 deg, zoom 1-1.4),
  RandomPerspective (p 0.75), bilinear, as a DataLoader worker would run it;
- teachkit batched: BatchAugment (flip, rotate +-30 deg, zoom 1-1.4, tilt 0.2) on the whole batch, one grid_sample.

Each path is timed in rounds, interleaved with the others so a busy machine slows all alike, and the median
round is kept. On CUDA the batch already lives on the GPU (as after DeviceCallback) and timings synchronise.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from matplotlib import cbook
from PIL import Image
from torchvision.transforms import v2

from teachkit.augment import PilRandomFlip, PilTiltRandomCrop
from teachkit.augment import BatchAugment
from teachkit.transforms import to_byte_tensor, to_float_tensor
from teachkit.utils import compose

N, SIZE = 64, 128
V2_NAME = "torchvision.transforms.v2 per sample"


def sample_images() -> list[Image.Image]:
    """64 different 128x128 crops of Grace Hopper's photo (it ships with matplotlib)."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        photo = im.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    return [photo.crop((x, y, x + SIZE, y + SIZE)) for y in range(0, 128, 16) for x in range(0, 128, 16)]


def pil_path(images: list[Image.Image]) -> Callable[[], object]:
    tfms = [PilRandomFlip(seed=0), PilTiltRandomCrop(SIZE, crop_size=int(SIZE / 1.2), magnitude=0.2, seed=0),
            to_byte_tensor, to_float_tensor]
    return lambda: [compose(im, tfms) for im in images]


def v2_path(batch: torch.Tensor) -> Callable[[], object]:
    bil = v2.InterpolationMode.BILINEAR
    tfm = v2.Compose([v2.RandomHorizontalFlip(0.5),
                      v2.RandomAffine(degrees=30, scale=(1.0, 1.4), interpolation=bil),
                      v2.RandomPerspective(distortion_scale=0.4, p=0.75, interpolation=bil)])
    return lambda: [tfm(x) for x in batch]


def batched_path(batch: torch.Tensor) -> Callable[[], object]:
    aug = BatchAugment(seed=0)
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)

    def go():
        out = aug(batch)
        sync()
        return out
    return go


def images_per_s(paths: dict[str, Callable], rounds: int = 9, budget_s: float = 30.0) -> dict[str, float]:
    """Median over interleaved rounds of N / seconds for one pass; fewer rounds (3 at least) on a slow machine."""
    for f in paths.values():  # warm up: allocate, fault in memory, start CUDA
        f()
    times = {name: [] for name in paths}
    start_all = time.perf_counter()
    for i in range(rounds):
        if i >= 3 and time.perf_counter() - start_all > budget_s:
            break
        for name, f in paths.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: N / statistics.median(ts) for name, ts in times.items()}


def row(figure: str, value: float, baseline: str, baseline_value: float) -> dict:
    return {"figure": figure, "value": value, "unit": "images/s", "baseline": baseline,
            "baseline_value": baseline_value, "ratio": value / baseline_value}


def run() -> list[dict]:
    """Rows: PIL per image, then teachkit batched on CPU (and CUDA), each against v2 per sample on the CPU."""
    torch.manual_seed(0)
    images = sample_images()
    batch = torch.stack([to_float_tensor(to_byte_tensor(im)) for im in images])
    paths = {"pil": pil_path(images), "v2": v2_path(batch), "cpu": batched_path(batch)}
    if torch.cuda.is_available():
        paths["cuda"] = batched_path(batch.cuda())
    ips = images_per_s(paths)
    shape = f"{N}x3x{SIZE}x{SIZE}"
    rows = [row("per-image PIL pipeline (flip, tilt crop, to float)", ips["pil"], V2_NAME, ips["v2"]),
            row(f"batched tensor augment (CPU, {shape})", ips["cpu"], V2_NAME, ips["v2"])]
    if "cuda" in ips:
        rows += [row(f"batched tensor augment (CUDA, {shape})", ips["cuda"], V2_NAME, ips["v2"]),
                 row(f"batched tensor augment (CUDA, {shape})", ips["cuda"], "teachkit batched on CPU", ips["cpu"])]
    return rows


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"{'figure':<50} {'images/s':>10}   {'baseline':<36} {'images/s':>10} {'ratio':>7}")
    for r in run():
        print(f"{r['figure']:<50} {r['value']:>10,.0f}   {r['baseline']:<36} {r['baseline_value']:>10,.0f} {r['ratio']:>6.2f}x")


if __name__ == "__main__":
    main()
