"""The lesson-11 pipeline from a terminal: data block + augmentation + LSUV + LAMB/Adam + one-cycle on Imagenette.

    python -m teachkit.train --data imagenette-160 --size 128 --epochs 5 --bs 64 --opt lamb

prints the same table as the notebooks (one row per epoch), then the final metrics, the epoch time and the
training throughput. This module only reads the flags: the pieces are library functions notebook 11 calls too,
`teachkit.data.imagenette` (`get_data`, `imagenette_dls`) and `teachkit.recipe` (`build_learner`, `run_training`,
`run_from_flags`).
With `TEACHKIT_SMOKE=1` it trains briefly on a small generated set (CI, or checking an install on a CPU).
`--save PATH` keeps a checkpoint after every epoch; `--resume PATH` goes on from one (same flags).
Run `python -m teachkit.train --help` for every flag.

The flags are read before torch is imported (that takes seconds): a mistyped flag is refused at once.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .choices import ARCH_NAMES, DATASET_NAMES, OPT_LRS, SCHEDS

__all__ = ["parse_args", "main"]


def _checked(convert: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """An argparse type: `convert` the text and refuse it, saying it "must be `what`", unless `ok(value)`."""
    def parse(s: str) -> Any:
        try:
            v = convert(s)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}")
        return v
    return parse


def _int_at_least(low: int) -> Callable[[str], int]:
    return _checked(int, lambda v: v >= low, f"a whole number >= {low}")


def _number(positive: bool) -> Callable[[str], float]:
    return _checked(float, lambda v: math.isfinite(v) and (v > 0 if positive else v >= 0),
                    f"a finite number {'> 0' if positive else '>= 0'}")


_fraction = _checked(float, lambda v: 0 <= v < 1, "a number >= 0 and < 1")


def _dataset(s: str) -> str:
    if s in DATASET_NAMES or s == "generated":
        return s
    p = Path(s).expanduser()
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{s!r} is neither a dataset ({', '.join([*DATASET_NAMES, 'generated'])}) "
                                         "nor an existing folder")
    if not (p / "train").is_dir() or not ((p / "val").is_dir() or (p / "valid").is_dir()):
        raise argparse.ArgumentTypeError(f"folder {s!r} needs train/ and val/ (or valid/) sub-folders, "
                                         "each with one folder of images per class")
    return s


def _checkpoint(s: str) -> str:
    if not Path(s).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no checkpoint file {s!r} (--save PATH writes one after every epoch)")
    return s


def _checkpoint_to_write(s: str) -> str:
    p = Path(s).expanduser()
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{s!r} is a folder: name the checkpoint file in it, e.g. {str(p / 'run.pt')!r}")
    folder = next(a for a in p.absolute().parents if a.exists())  # missing folders below it are created
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"can't write {s!r}: {str(folder)!r} is not a folder this user may write "
                                         "into; choose another path")
    return s


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m teachkit.train",
        description="Train the lesson-11 pipeline (data block, augmentation, LSUV, one-cycle, LAMB/Adam/SGD) on "
                    "Imagenette or a folder of images, and print the progress table and the final metrics; "
                    "or lesson 12's capstone (XResNet, label smoothing, MixUp, Ranger, flat-cos). "
                    "Uses the GPU when there is one. TEACHKIT_SMOKE=1 trains briefly on a small generated set, whatever "
                    "--data, at most 32 px, 2 epochs and batch size 32; "
                    "TEACHKIT_DATA sets the dataset cache (default ~/.teachkit/data).",
        epilog="References, 128 px, 5 epochs: the course's lesson-08 CNN with one-cycle reached about 73.6% valid "
               "accuracy (72.6% in the study-group slides) on Imagenette v1, whose validation set has only 500 "
               "images; teachkit downloads v2 (3,925 validation images), so compare with care. The Imagenette "
               "leaderboard (v2) read 85.77% from October 2020 to March 2021 (mean of 5 runs): fastai2's "
               "train_imagenette.py recipe (Ranger, flat-cos, label smoothing, bs 32, wd 1e-4, no MixUp) on a small "
               "\"mini net\" (SE-ResNeXt blocks, one per stage, Mish); since March 2021 it reads 87.43%. teachkit "
               "has the recipe, not that model: --arch xresnet50 --opt ranger --sched flat-cos --label-smoothing 0.1 "
               "--wd 1e-4 --bs 32 trains a bigger, different network. "
               "Data parallel on several GPUs (or CPU processes): python -m torch.distributed.run --standalone "
               "--nproc_per_node=N -m teachkit.train ...; rank 0 prints, every rank trains its share.")
    p.add_argument("--data", type=_dataset, default="imagenette-160", metavar="NAME|FOLDER",
                   help=f"one of {', '.join(DATASET_NAMES)} (downloaded once into the cache; Imagenette falls back to a "
                        "generated look-alike offline), 'generated' (that look-alike), or a folder with train/ and "
                        "val/ sub-folders holding one folder of images per class (default: %(default)s)")
    p.add_argument("--size", type=_int_at_least(16), default=128,
                   help="side of the square training images, in pixels, at least 16 (default: %(default)s)")
    p.add_argument("--epochs", type=_int_at_least(1), default=5, help="number of epochs (default: %(default)s)")
    p.add_argument("--bs", type=_int_at_least(2), default=64,
                   help="training batch size of each process: under torchrun with N processes one step sees N x bs "
                        "images; validation batches are twice as big (default: %(default)s)")
    p.add_argument("--arch", choices=list(ARCH_NAMES), default="cnn",
                   help="model: cnn (the lesson-08 CNN, LSUV-initialised) or an XResNet of teachkit.xresnet "
                        "(default: %(default)s)")
    p.add_argument("--opt", choices=list(OPT_LRS), default="lamb",
                   help="optimizer from teachkit.optim: sgd, momentum (SGD with momentum), adam, lamb or ranger "
                        "(RAdam + Lookahead) (default: %(default)s)")
    p.add_argument("--sched", choices=list(SCHEDS), default="one-cycle",
                   help="one-cycle: lr warms up for 30%% of training then anneals, momentum mirrors it; flat-cos: "
                        "lr flat for 75%%, then a cosine to zero (fastai2's Imagenette record) (default: %(default)s)")
    p.add_argument("--lr", type=_number(positive=True), default=None,
                   help="peak learning rate of the schedule; default per optimizer: "
                        + ", ".join(f"{k} {v:g}" for k, v in OPT_LRS.items()))
    p.add_argument("--wd", type=_number(positive=False), default=1e-2, help="weight decay, decoupled (inside the step for LAMB) (default: %(default)s)")
    p.add_argument("--workers", type=_int_at_least(0), default=None,
                   help="DataLoader worker processes; 0 loads in this process (default: one per CPU, at most 8)")
    p.add_argument("--label-smoothing", type=_fraction, default=0.0, metavar="EPS",
                   help="label smoothing, 0 <= EPS < 1: the target puts 1-EPS on the class and spreads EPS over all "
                        "(nn.CrossEntropyLoss(label_smoothing=EPS); 0.1 is usual) (default: %(default)s)")
    p.add_argument("--mixup", type=_number(positive=False), default=0.0, metavar="ALPHA",
                   help="MixUp: blend pairs of training images with lambda ~ Beta(ALPHA, ALPHA) (0.2-0.4 is usual; "
                        "helps only in long runs); 0 = off (default: %(default)s)")
    p.add_argument("--no-lsuv", dest="lsuv", action="store_false",
                   help="skip LSUV: Kaiming init only (XResNets never use LSUV: they keep their own init)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random crops or flips: training images are centre-cropped like validation ones")
    p.add_argument("--mixed-precision", action="store_true",
                   help="forward pass and loss under torch.autocast: bfloat16 on the CPU and recent GPUs, float16 "
                        "with loss scaling on older ones (teachkit.precision)")
    p.add_argument("--channels-last", action="store_true",
                   help="weights and batches in the channels-last (NHWC) layout tensor cores read fastest")
    p.add_argument("--compile", dest="compile_model", action="store_true",
                   help="train through torch.compile (slow first batches); where unsupported, says why and trains without")
    p.add_argument("--gpu-decode", action="store_true",
                   help="decode the JPEGs on the GPU (torchvision.io.decode_jpeg, nvJPEG): workers only read files; "
                        "without a GPU, says so and decodes on the CPU as usual")
    p.add_argument("--seed", type=int, default=42, help="random seed for weights, shuffling and augmentation (default: %(default)s)")
    p.add_argument("--save", type=_checkpoint_to_write, metavar="PATH", default=None,
                   help="write a checkpoint (weights, optimizer, epoch, random states, these flags) to the file PATH "
                        "after every epoch, atomically (missing folders are created): a run stopped by Ctrl-C or a "
                        "crash goes on with --resume PATH")
    p.add_argument("--resume", type=_checkpoint, metavar="PATH", default=None,
                   help="go on from the checkpoint at PATH, after its last finished epoch; pass the flags of the run "
                        "that saved it (the same --epochs: the schedules depend on it): one that changes what is "
                        "computed (data, size, bs, opt, lr, wd, schedule, ...) is refused, naming the saved value. "
                        "--workers, --channels-last, --compile and --gpu-decode may change. Add --save to keep saving")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the flags, train, print the final metrics; returns them too (for tests and scripts).

    teachkit's own errors (a diverged run, a checkpoint that doesn't fit, ...) end the program with their message
    (`error: ...`) and exit status 1.
    """
    args = parse_args(argv)
    from .recipe import run_from_flags  # torch comes with it: only now, so --help and a refused flag are instant
    return run_from_flags(vars(args), progress=sys.stdout.isatty())


if __name__ == "__main__":
    main()
