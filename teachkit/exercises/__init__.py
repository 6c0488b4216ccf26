"""Exercises that end each lesson: a checker runs your code against teachkit's reference and says what is wrong.

Every checker works the same way, so a lesson module only states *what* to compare:

1. `cases`: a few named, seeded input makers, so your function and the reference see the same random inputs;
2. `observe(fn, inputs)`: runs a function on fresh inputs and returns what to compare, a dict from a noun
   phrase ("the change of the bias") to a number, a tensor or any plain value;
3. the first observation that differs from the reference's is said in words ("the change of the bias has
   norm 0.31, expected 0.12");
4. `mistakes`: small wrong versions of the solution, each with a hint; when your observations equal one of
   theirs, the checker adds its hint ("is the trust ratio computed per tensor?").

The verdict is always words, never a traceback: a stub whose body is still a placeholder (`raise
NotImplementedError`, `pass`, `...`) is "not written yet", a wrong answer says what differs, and the messages name
your function. In smoke mode (`TEACHKIT_SMOKE=1`, how CI runs the lessons with their stubs) the checker also checks
teachkit's own solution, and only that raises when it fails, so a broken solution cannot pass CI unnoticed.
Solutions live beside their checkers as `solution_<name>`: `show_source` one only when you are stuck.
"""
from __future__ import annotations

import ast
import inspect
import math
import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.datasets import smoke_mode

__all__ = ["Verdict", "Case", "Mistake", "Exercise", "describe_difference", "fmt", "unwritten", "learner_name"]

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


def _is_placeholder(stmt: ast.stmt) -> bool:
    """`pass`, `...`, a docstring, or `raise NotImplementedError`: what a stub holds instead of code."""
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return stmt.value.value is Ellipsis or isinstance(stmt.value.value, str)
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def unwritten(fn: Any) -> bool:
    """True when `fn` is a stub: a function whose body holds only placeholders, or a class whose own methods all do.
    Code whose source can't be read counts as written (running it still finds `raise NotImplementedError`)."""
    if inspect.isclass(fn):
        return all(unwritten(v) for v in vars(fn).values() if inspect.isfunction(v))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    node = tree.body[0] if tree.body else None
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and all(_is_placeholder(s) for s in node.body)


def learner_name(fn: Any, default: str) -> str:
    """The name the learner gave their function or class (`default` for a lambda), for messages."""
    name = getattr(fn, "__name__", "")
    return name if name.isidentifier() else default


@dataclass
class Exercise:
    """One exercise: the reference, the inputs, what to compare, and the typical mistakes with their hints.

    `solution`: the model answer a lesson shows (default: the reference itself); smoke runs prove it passes."""

    name: str
    reference: Callable
    cases: Sequence[Case]
    observe: Callable[[Callable, tuple], Observation]
    mistakes: Sequence[Mistake] = field(default_factory=tuple)
    rtol: float = 1e-4
    atol: float = 1e-6
    signature_hint: str = ""
    solution: Callable | None = None

    def check(self, fn: Callable, smoke: bool | None = None) -> Verdict:
        """The learner's verdict, in words whatever `fn` does; in smoke mode (CI) teachkit's solution is checked too,
        and raises `AssertionError` if it fails."""
        verdict = self.verdict(fn)
        if smoke_mode() if smoke is None else smoke:
            self.assert_solution_passes()
        return verdict

    def assert_solution_passes(self) -> None:
        """Raise if teachkit's own solution fails this checker: a bug in teachkit, never the learner's."""
        solution = self.reference if self.solution is None else self.solution
        verdict = self.verdict(solution)
        if not verdict.ok:
            raise AssertionError(f"teachkit's solution to {self.name} fails its own checker: {verdict.message}")

    def verdict(self, fn: Callable) -> Verdict:
        """Compare `fn` with the reference on every case: the first difference in words, with a hint when we can."""
        name = f"`{learner_name(fn, self.name)}`"
        not_written = Verdict(False, f"your {name} is not written yet: replace the placeholder in its body (`raise "
                                     "NotImplementedError`, `pass` or `...`) with your code, then run this cell again.")
        if unwritten(fn):
            return not_written
        for case in self.cases:
            expected = self.observe(self.reference, case.make())
            try:
                got = self.observe(fn, case.make())
            except NotImplementedError:
                return not_written
            except Exception as e:  # the learner's code failed: say how, in their terms
                hint = f" {self.signature_hint}" if self.signature_hint and isinstance(e, TypeError) else ""
                return Verdict(False, f"{case.name}: your {name} raised {_error_words(e)}.{hint}")
            diff = describe_difference(got, expected, self.rtol, self.atol)
            if diff is not None:
                return Verdict(False, f"{case.name}: with your {name}, {diff}." + self._hint(got, case))
        checks = f"all {len(self.cases)} checks" if len(self.cases) > 1 else "the check"
        return Verdict(True, f"your {name} passes {checks}: it agrees with teachkit's reference.")

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
