"""What the checker tests share: checkers run as a learner's would, and a verdict is read for its hint."""
import pytest


@pytest.fixture(autouse=True)
def not_smoke(monkeypatch):
    """Checkers run as a learner's would: no smoke-mode fallback to the reference."""
    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)


def stub(*args, **kwargs):
    """A learner's function not written yet."""
    raise NotImplementedError


def assert_caught(verdict, *words):
    """The checker refused the code and its message says each of `words`."""
    assert not verdict.ok, verdict
    for w in words:
        assert w in verdict.message, (w, verdict.message)
