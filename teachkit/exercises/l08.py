"""Lesson 08's exercises: a labeler that reads the class from a file name, and a processor with an unknown class.

1. `label_from_name(fn)`: Oxford-IIIT Pets style names, `great_pyrenees_173.jpg` -> `'great_pyrenees'`: the
   class is the name without its trailing `_<number>` and extension (class names may contain `_`).
2. `UnkCategoryProcessor`: like `CategoryProcessor`, a vocab made from the first (training) list it sees and
   reused after, but with `'#unk#'` at index 0 for labels the training set never had (fastai's text vocab does
   the same), so a validation label unseen in training does not crash the pipeline.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from . import Case, Exercise, Mistake, Verdict, learner_name

UNK = "#unk#"

# ---------------------------------------------------------------- 1. a labeler

def solution_label_from_name(fn: str | Path) -> str:
    """`.../great_pyrenees_173.jpg` -> `'great_pyrenees'`: the file's stem without its last `_<number>`."""
    return re.sub(r"_\d+$", "", Path(fn).stem)


NAMES = ["images/great_pyrenees_173.jpg", "images/Abyssinian_1.jpg", "pets/american_pit_bull_terrier_20.png",
         "train/Bengal/Bengal_105.jpg", "yorkshire_terrier_9.JPG"]


def _names(as_str: bool) -> tuple:
    return ([n if as_str else Path(n) for n in NAMES],)


LABEL_CASES = [Case("File names as Paths", lambda: _names(False)), Case("File names as strings", lambda: _names(True))]


def _observe_labels(fn: Any, args: tuple) -> dict[str, Any]:
    return {f"the label of {Path(n).as_posix()!r}": fn(n) for n in args[0]}


def _first_part(fn):
    return Path(fn).name.split("_")[0]


def _with_number(fn):
    return Path(fn).stem


def _parent(fn):
    return Path(fn).parent.name


def _path_only(fn):
    return re.sub(r"_\d+$", "", fn.stem)  # fails on a str: AttributeError


LABEL_MISTAKES = [
    Mistake(_first_part, "a class name can contain '_' itself (great_pyrenees): remove only the last '_<number>', "
                         "e.g. re.sub(r'_\\d+$', '', Path(fn).stem) or stem.rsplit('_', 1)[0]."),
    Mistake(_with_number, "drop the trailing '_<number>' as well as the extension: it numbers the picture, not the class."),
    Mistake(_parent, "here the class is in the file name, not in the folder: these files are not sorted into folders."),
]

LABEL_EXERCISE = Exercise("label_from_name", solution_label_from_name, LABEL_CASES, _observe_labels, LABEL_MISTAKES,
                          signature_hint="It is called with one file name, a Path or a str: wrap it in Path(fn) first.")


def check_label_from_name(fn: Any) -> Verdict:
    """Check a learner's `label_from_name(fn)` on Paths and on strings."""
    verdict = LABEL_EXERCISE.check(fn)
    if not verdict.ok and _raises_on_str(fn):
        return Verdict(False, f"your `{learner_name(fn, 'label_from_name')}` fails on a str file name: start with "
                              "Path(fn), so a str works as well as a Path.")
    return verdict


def _raises_on_str(fn: Any) -> bool:
    try:
        fn(Path(NAMES[0]))
    except Exception:
        return False
    try:
        fn(NAMES[0])
    except NotImplementedError:
        return False
    except Exception:
        return True
    return False


# ---------------------------------------------------------------- 2. a processor

class SolutionUnkCategoryProcessor:
    """Labels -> ints with `'#unk#'` at 0; the vocab (sorted) comes from the first list and is reused after."""

    def __init__(self):
        self.vocab = None

    def __call__(self, items: list) -> list[int]:
        if self.vocab is None:
            self.vocab = [UNK] + sorted(set(items))
            self.otoi = {v: i for i, v in enumerate(self.vocab)}
        return [self.otoi.get(o, 0) for o in items]

    def deproc1(self, idx: int) -> Any:
        return self.vocab[idx]


def _label_lists(seed: int) -> tuple:
    """A training list of labels, then a validation list with one label the training list never had."""
    rng = random.Random(seed)
    classes = ["tench", "church", "golf ball", "parachute", "chain saw"]
    train = [rng.choice(classes[:4]) for _ in range(12)] + classes[:4]
    rng.shuffle(train)
    valid = [rng.choice(classes[1:4]) for _ in range(5)] + ["chain saw"]
    return train, valid


PROC_CASES = [Case("Training labels, then validation labels with one class training never saw", lambda: _label_lists(0)),
              Case("The same, shuffled otherwise", lambda: _label_lists(1))]


def _observe_proc(cls: Any, args: tuple) -> dict[str, Any]:
    train, valid = args
    proc = cls()
    t, v = proc(train), proc(valid)
    return {"the training labels as ints": list(t), "the vocab": list(proc.vocab),
            "the validation labels as ints": list(v), "deproc1 of each validation int": [proc.deproc1(i) for i in v]}


class _NewVocabEachCall(SolutionUnkCategoryProcessor):
    def __call__(self, items):
        self.vocab = None
        return super().__call__(items)


class _Unsorted(SolutionUnkCategoryProcessor):
    def __call__(self, items):
        if self.vocab is None:
            self.vocab = [UNK] + list(dict.fromkeys(items))
            self.otoi = {v: i for i, v in enumerate(self.vocab)}
        return [self.otoi.get(o, 0) for o in items]


class _UnkLast(SolutionUnkCategoryProcessor):
    def __call__(self, items):
        if self.vocab is None:
            self.vocab = sorted(set(items)) + [UNK]
            self.otoi = {v: i for i, v in enumerate(self.vocab)}
        return [self.otoi.get(o, len(self.vocab) - 1) for o in items]


PROC_MISTAKES = [
    Mistake(_NewVocabEachCall, "build the vocab only the FIRST time (when self.vocab is None) and reuse it after: a vocab "
                               "made again from the validation labels gives the same class another number."),
    Mistake(_Unsorted, "sort the vocab (after '#unk#'), so the numbers do not depend on the order the files came in."),
    Mistake(_UnkLast, "'#unk#' goes first, at index 0, and unknown labels map to 0."),
]

PROC_EXERCISE = Exercise("UnkCategoryProcessor", SolutionUnkCategoryProcessor, PROC_CASES, _observe_proc, PROC_MISTAKES,
                         signature_hint="The checker calls UnkCategoryProcessor() with no arguments, then proc(labels), "
                                        "proc.vocab and proc.deproc1(i).")


def check_unk_category_processor(cls: Any) -> Verdict:
    """Check a learner's `UnkCategoryProcessor` class: vocab, training and validation ints, deproc1."""
    return PROC_EXERCISE.check(cls)
