"""What the checker tests share: checkers run as a learner's would, and a verdict is read for its hint."""
import importlib
import pkgutil

import pytest

import teachkit.exercises
from teachkit.exercises import Exercise


@pytest.fixture(autouse=True)
def not_smoke(monkeypatch):
    """Checkers run as a learner's would: no smoke-mode check of teachkit's solution."""
    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)


def stub(*args, **kwargs):
    """A learner's function not written yet."""
    raise NotImplementedError


def assert_caught(verdict, *words):
    """The checker refused the code and its message says each of `words`."""
    assert not verdict.ok, verdict
    for w in words:
        assert w in verdict.message, (w, verdict.message)


def lesson_exercises():
    """Every `Exercise` of every lesson module in teachkit.exercises, as (module name, exercise)."""
    found = []
    for info in pkgutil.iter_modules(teachkit.exercises.__path__):
        mod = importlib.import_module(f"teachkit.exercises.{info.name}")
        found += [(info.name, v) for v in vars(mod).values() if isinstance(v, Exercise)]
    return found
