"""Listing files and loading images: lesson 08's data pipeline against the obvious alternatives, measured.

Run as `python -m benchmarks.bench_data` (about a minute). Two experiments, on trees generated in a
temporary folder:

- `get_files` on 13,394 empty files laid out like Imagenette (train/val, ten class folders), against
  the course's `os.walk` version building the same `Path` objects and against `Path.rglob`. One more row
  says where the time goes: walking the folders alone (strings, no `Path`).
- Images/s of decode + resize to 128x128 + uint8 CHW tensor through a DataLoader (batches of 64, same
  workers): `ImageList` with `[make_rgb, ResizeFixed(128), to_byte_tensor]` (JPEG draft mode) against
  `torchvision.datasets.ImageFolder` with `v2.Compose([v2.ToImage(), v2.Resize((128, 128))])` (the faster
  of the two v2 orders here; `Resize` first, on PIL, is also shown). Photos are crops of Grace Hopper's
  portrait (it ships with matplotlib) saved as JPEG at ImageNet's usual sizes (500x375, 500x333, ...), and
  again at Imagenette-160's (short side 160, where draft mode can't help: the image is already small).
- Images/s of the same to normalised float batches, Imagenette-160-size JPEGs: `imagenette_dls`'s
  tfms (centre crop 128, uint8 batches from the workers, `norm_imagenette` on each batch in the main
  process, the device here) against `ImageFolder` with `v2.Compose([ToImage(), Resize((128, 128)),
  ToDtype(float32, scale=True), Normalize])` in the workers, and against the pipeline as it was (per-item
  `to_float_tensor`, float batches from the workers, then `norm_imagenette`).

Each measurement is repeated in rounds interleaved with its rivals, so a busy machine slows all alike,
and the median round is kept.
"""
from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib import cbook
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from teachkit.data import (ImageList, LabeledData, get_files, image_extensions, imagenette_stats, norm_imagenette,
                           parent_labeler)
from teachkit.data.databunch import default_num_workers
from teachkit.data.imagenette import imagenette_dls
from teachkit.transforms import ResizeFixed, make_rgb, to_byte_tensor, to_float_tensor

N_FILES = 13_394
IMAGENET_SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (500, 500)]


def timed_rounds(funcs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, timed in interleaved rounds."""
    times = {k: [] for k in funcs}
    for _ in range(rounds):
        for k, f in funcs.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def row(figure: str, value: float, unit: str, baseline: str, baseline_value: float) -> dict:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "baseline_value": baseline_value,
            "ratio": value / baseline_value}


# ------------------------------------------------------------------------------------------------ files

def make_file_tree(root: Path, n: int = N_FILES) -> None:
    """`n` empty .JPEG files in Imagenette's layout and proportions (70 % train, 30 % val, ten classes)."""
    n_train = round(n * 0.707)
    for split, count in (("train", n_train), ("val", n - n_train)):
        for c in range(10):
            folder = root / split / f"n0{c:07d}"
            folder.mkdir(parents=True)
            for i in range(c, count, 10):
                (folder / f"n0{c:07d}_{i}.JPEG").touch()


def course_get_files(path: Path, extensions: set[str]) -> list[Path]:
    """Lesson 08's recursive `get_files`: `os.walk`, then `Path(dirpath) / name` for each kept file."""
    res = []
    for p, d, f in os.walk(path):
        d[:] = [o for o in d if not o.startswith(".")]
        p = Path(p)
        res += [p / o for o in f if not o.startswith(".") and f'.{o.split(".")[-1].lower()}' in extensions]
    return res


def rglob_files(path: Path, extensions: set[str]) -> list[Path]:
    """The pathlib one-liner."""
    return [p for p in path.rglob("*") if p.suffix.lower() in extensions and not p.name.startswith(".")]


def scandir_strings(path: Path) -> list[str]:
    """The walk alone: every file's path as a string, no `Path` objects."""
    res, todo = [], [str(path)]
    while todo:
        with os.scandir(todo.pop()) as it:
            for e in it:
                (todo if e.is_dir() else res).append(e.path)
    return res


def bench_files(rounds: int = 15) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_file_tree(root)
        files = get_files(root, image_extensions, recurse=True)
        assert len(files) == N_FILES and set(files) == set(course_get_files(root, image_extensions)) \
            == set(rglob_files(root, image_extensions))
        t = timed_rounds({"get_files": lambda: get_files(root, image_extensions, recurse=True),
                          "walk": lambda: course_get_files(root, image_extensions),
                          "rglob": lambda: rglob_files(root, image_extensions),
                          "strings": lambda: scandir_strings(root)}, rounds)
    fig = f"get_files, {N_FILES:,} files"
    return [row(fig, t["get_files"], "s", "os.walk listing building the same Path objects (lesson 08)", t["walk"]),
            row(fig, t["get_files"], "s", "Path.rglob('*') filtered by suffix", t["rglob"]),
            row(f"os.scandir walk alone, {N_FILES:,} str paths", t["strings"], "s", "get_files (walk + Path objects)",
                t["get_files"])]


# ---------------------------------------------------------------------------------------------- images

def make_photo_tree(root: Path, n: int, short_side: int | None, seed: int = 0) -> None:
    """`n` JPEGs (quality 90) in ten class folders: crops of a real photo at ImageNet sizes or a fixed short side."""
    rng = random.Random(seed)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        photo = im.convert("RGB")  # 512x600
    for i in range(n):
        x0, y0 = rng.randrange(60), rng.randrange(60)
        crop = photo.crop((x0, y0, x0 + 450, y0 + 540))
        if short_side is None:
            w, h = rng.choice(IMAGENET_SIZES)
        else:
            long = int(short_side * rng.choice([1.33, 1.5, 1.25]))
            w, h = (long, short_side) if rng.random() < 0.7 else (short_side, long)
        im = crop.resize((w, h), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i:05d}.JPEG", quality=90)


def one_pass(ds, workers: int, on_batch: Callable[[torch.Tensor], torch.Tensor] = lambda xb: xb) -> Callable[[], int]:
    """A full pass over `ds` in batches of 64 with `workers` DataLoader workers, `on_batch` applied in this process."""
    def go() -> int:
        return sum(len(on_batch(xb)) for xb, _ in DataLoader(ds, batch_size=64, num_workers=workers))
    return go


def bench_images(n: int, short_side: int | None, label: str, rounds: int, draft_row: bool) -> list[dict]:
    workers = default_num_workers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photo_tree(root, n, short_side)
        il = ImageList.from_files(root, tfms=[make_rgb, ResizeFixed(128), to_byte_tensor])
        ours = LabeledData.label_by_func(il, parent_labeler)
        no_draft = LabeledData.label_by_func(
            ImageList(il.items, root, tfms=[make_rgb, ResizeFixed(128, draft=False), to_byte_tensor]), parent_labeler)
        tv = ImageFolder(str(root), transform=v2.Compose([v2.ToImage(), v2.Resize((128, 128))]))
        tv_pil = ImageFolder(str(root), transform=v2.Compose([v2.Resize((128, 128)), v2.ToImage()]))
        assert ours[0][0].shape == tv[0][0].shape == (3, 128, 128) and ours[0][0].dtype == tv[0][0].dtype
        funcs = {"ours": one_pass(ours, workers), "tv": one_pass(tv, workers), "tv_pil": one_pass(tv_pil, workers)}
        if draft_row:
            funcs["no_draft"] = one_pass(no_draft, workers)
        t = {k: n / v for k, v in timed_rounds(funcs, rounds).items()}
    fig = f"ImageList decode+resize 128, {label}, {workers} workers"
    rows = [row(fig, t["ours"], "images/s", "ImageFolder + v2 [ToImage, Resize]", t["tv"]),
            row(fig, t["ours"], "images/s", "ImageFolder + v2 [Resize (PIL), ToImage]", t["tv_pil"])]
    if draft_row:
        rows.append(row(fig, t["ours"], "images/s", "the same ImageList with draft=False", t["no_draft"]))
    return rows


def bench_normalised(n: int, rounds: int) -> list[dict]:
    """imagenette_dls's tfms + norm_imagenette on the batch, against torchvision normalising in the workers."""
    workers = default_num_workers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photo_tree(root / "train", n, 160)
        make_photo_tree(root / "val", 10, 160)  # imagenette_dls wants a validation folder; not timed
        ours = imagenette_dls(root, 128, 64, workers=0, augment=False).train_ds  # centre crop 128, uint8
        tfms = ours.x.tfms
        as_was = LabeledData(ImageList(ours.x.items, root, tfms=[*tfms, to_float_tensor]), ours.y)
        mean, std = (s.tolist() for s in imagenette_stats)
        tv = ImageFolder(str(root / "train"), transform=v2.Compose([
            v2.ToImage(), v2.Resize((128, 128)), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]))
        assert ours[0][0].dtype == torch.uint8 and ours[0][0].shape == tv[0][0].shape == (3, 128, 128)
        assert norm_imagenette(ours[0][0][None]).dtype == tv[0][0].dtype == torch.float32
        t = {k: n / v for k, v in timed_rounds({"ours": one_pass(ours, workers, norm_imagenette),
                                                "tv": one_pass(tv, workers),
                                                "as_was": one_pass(as_was, workers, norm_imagenette)}, rounds).items()}
    fig = f"imagenette_dls-style pipeline to normalised float batches (decode, crop 128, normalise), {workers} workers"
    return [row(fig, t["ours"], "images/s", "ImageFolder + v2 [ToImage, Resize, ToDtype(float32, scale), Normalize]",
                t["tv"]),
            row(fig, t["ours"], "images/s", "the same with per-item to_float_tensor (float batches from the workers)",
                t["as_was"])]


def run() -> list[dict]:
    """Every figure of this benchmark, as rows for benchmarks/report.py."""
    torch.set_num_threads(1)  # DataLoader workers use one thread each anyway
    return (bench_files()
            + bench_images(600, None, "ImageNet-size JPEGs (~500x375)", rounds=3, draft_row=True)
            + bench_images(600, 160, "Imagenette-160-size JPEGs", rounds=3, draft_row=False)
            + bench_normalised(600, rounds=7))


def main() -> None:
    rows = run()
    w = max(len(r["figure"]) for r in rows)
    bw = max(len(r["baseline"]) for r in rows)
    print(f"{'figure':<{w}}  {'value':>12}  {'baseline':<{bw}}  {'baseline value':>14}  ratio")
    for r in rows:
        print(f"{r['figure']:<{w}}  {r['value']:>12.4g}  {r['baseline']:<{bw}}  {r['baseline_value']:>14.4g}  "
              f"{r['ratio']:.2f}x  ({r['unit']})")
    print("\nTimes (s): ratio < 1 is faster than the baseline. Throughputs (images/s): ratio > 1 is faster.")


if __name__ == "__main__":
    main()
