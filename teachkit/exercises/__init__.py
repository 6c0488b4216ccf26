"""Exercises that end each lesson: a checker runs your code against teachkit's reference and says what is wrong.

Every checker works the same way, so a lesson module only states *what* to compare:

1. `cases`: a few named, seeded input makers, so your function and the reference see the same random inputs;
2. `observe(fn, inputs)`: runs a function on fresh inputs and returns what to compare, a dict from a noun
   phrase ("the change of the bias") to a number, a tensor or any plain value;
3. the first observation that differs from the reference's is said in words ("the change of the bias has
   norm 0.31, expected 0.12");
4. `mistakes`: small wrong versions of the solution, each with a hint; when your observations equal one of
   theirs, the checker adds its hint ("is the trust ratio computed per tensor?").

A stub that still raises `NotImplementedError` is "not written yet". In smoke mode (`TEACHKIT_SMOKE=1`, how CI
runs the lessons) the checker then checks the reference solution instead, and a failing check raises, so a broken
reference cannot pass unnoticed. Solutions live beside their checkers as `solution_<name>`: `show_source` one
only when you are stuck.
"""
from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Verdict", "Case", "Mistake", "Exercise", "describe_difference", "fmt"]

Observation = dict[str, Any]


@dataclass
class Verdict:
    """What a checker found: `ok`, and a message in plain words (shown as the cell's result)."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✓ " if self.ok else "✗ ") + self.message


@dataclass(frozen=True)
class Case:
    """Named inputs for one check: `make()` returns a fresh tuple of arguments every time it is called."""

    name: str
    make: Callable[[], tuple]


@dataclass(frozen=True)
class Mistake:
    """A typical wrong solution and the hint to give when the learner's results equal its results."""

    fn: Callable
    hint: str


def fmt(v: Any) -> str:
    """A value as a checker message shows it: 3 significant digits for numbers, the norm for a tensor."""
    if isinstance(v, torch.Tensor):
        return f"norm {v.float().norm().item():.3g}" if v.numel() > 1 else f"{v.item():.3g}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return repr(v)


def _same(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Equal within tolerance: numbers and tensors (NaN equals NaN: a mistake may produce it), else `==`."""
    if isinstance(expected, torch.Tensor) or isinstance(got, torch.Tensor):
        if not (isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor)) or got.shape != expected.shape:
            return False
        return torch.allclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)
    if isinstance(expected, float) or isinstance(got, float):
        if isinstance(got, bool) or isinstance(expected, bool):
            return got == expected
        try:
            g, e = float(got), float(expected)
        except (TypeError, ValueError):
            return False
        return (math.isnan(g) and math.isnan(e)) or math.isclose(g, e, rel_tol=rtol, abs_tol=atol)
    return got == expected


def describe_difference(got: Observation, expected: Observation, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """None when every observation matches, else the first difference in words."""
    for key, e in expected.items():
        if key not in got:
            return f"{key} is missing"
        g = got[key]
        if _same(g, e, rtol, atol):
            continue
        if isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor):
            if g.shape != e.shape:
                return f"{key} has shape {tuple(g.shape)}, expected {tuple(e.shape)}"
            if not torch.isfinite(g).all():
                return f"{key} holds NaN or inf, expected finite values ({fmt(e)})"
            if e.numel() == 1:
                return f"{key} is {fmt(g)}, expected {fmt(e)}"
            gn, en = g.double().norm().item(), e.double().norm().item()
            if not math.isclose(gn, en, rel_tol=max(rtol, 1e-3), abs_tol=atol):
                return f"{key} has {fmt(g)}, expected {fmt(e)}"
            d = (g.double() - e.double()).abs()
            return (f"{key} has the expected size ({fmt(e)}) but not the expected values "
                    f"(largest difference {d.max().item():.3g})")
        return f"{key} is {fmt(g)}, expected {fmt(e)}"
    return None


def _error_words(e: BaseException) -> str:
    """An exception as one line, with the line of the learner's code that raised it when we can find it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "teachkit" not in f.filename.replace("\\", "/")]
    where = f" (at `{frames[-1].line}`)" if frames and frames[-1].line else ""
    return f"{type(e).__name__}: {e}{where}"


@dataclass
class Exercise:
    """One exercise: the reference, the inputs, what to compare, and the typical mistakes with their hints."""

    name: str
    reference: Callable
    cases: Sequence[Case]
    observe: Callable[[Callable, tuple], Observation]
    mistakes: Sequence[Mistake] = field(default_factory=tuple)
    rtol: float = 1e-4
    atol: float = 1e-6
    signature_hint: str = ""

    def check(self, fn: Callable, smoke: bool | None = None) -> Verdict:
        """Compare `fn` with the reference on every case; in smoke mode a stub is replaced by the reference."""
        if smoke is None:
            from ..datasets import smoke_mode
            smoke = smoke_mode()
        verdict = self._check(fn)
        if smoke and verdict.message.startswith(f"{self.name} is not written yet"):
            verdict = self._check(self.reference)
            verdict.message = f"(smoke run: {self.name} is not written yet, so the reference was checked) " + verdict.message
        if smoke and not verdict.ok:
            raise AssertionError(verdict.message)
        return verdict

    def _check(self, fn: Callable) -> Verdict:
        for case in self.cases:
            expected = self.observe(self.reference, case.make())
            try:
                got = self.observe(fn, case.make())
            except NotImplementedError:
                return Verdict(False, f"{self.name} is not written yet: replace `raise NotImplementedError` with your code.")
            except Exception as e:  # the learner's code failed: say how, in their terms
                hint = f" {self.signature_hint}" if self.signature_hint and isinstance(e, TypeError) else ""
                return Verdict(False, f"{case.name}: your {self.name} raised {_error_words(e)}.{hint}")
            diff = describe_difference(got, expected, self.rtol, self.atol)
            if diff is not None:
                return Verdict(False, f"{case.name}: with your {self.name}, {diff}." + self._hint(got, case))
        checks = f"all {len(self.cases)} checks" if len(self.cases) > 1 else "the check"
        return Verdict(True, f"{self.name} passes {checks}: it agrees with teachkit's reference.")

    def _hint(self, got: Observation, case: Case) -> str:
        """The hint of the first typical mistake whose observations equal the learner's, or a generic nudge."""
        for m in self.mistakes:
            try:
                theirs = self.observe(m.fn, case.make())
            except Exception:
                continue
            if describe_difference(got, theirs, self.rtol, self.atol) is None:
                return f" Hint: {m.hint}"
        return " Compare your code with the lesson's formula line by line."
