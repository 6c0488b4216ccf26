"""The lesson checkers: each reference passes, typical mistakes are caught with the right hint, stubs are named."""
import pytest
import torch

from teachkit.exercises import Case, Exercise, Mistake, describe_difference
from teachkit.exercises import l09


@pytest.fixture(autouse=True)
def not_smoke(monkeypatch):
    """Checkers run as a learner's would: no smoke-mode fallback to the reference."""
    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)


def stub(*args, **kwargs):
    raise NotImplementedError


def assert_caught(verdict, *words):
    assert not verdict.ok, verdict
    for w in words:
        assert w in verdict.message, (w, verdict.message)


# ---------------------------------------------------------------- the shared machinery

def double(x):
    return 2 * x


def twice_plus_one(x):
    return 2 * x + 1


EX = Exercise("double", double, [Case("three", lambda: (torch.tensor([3.0]),))],
              lambda f, args: {"the result": f(*args)}, [Mistake(twice_plus_one, "drop the +1")])


def test_engine_passes_reference_and_hints_a_known_mistake():
    assert EX.check(double).ok
    assert_caught(EX.check(twice_plus_one), "the result is 7, expected 6", "Hint: drop the +1")
    assert_caught(EX.check(lambda x: 3 * x), "the result is 9, expected 6", "line by line")


def test_engine_names_a_stub_and_an_error():
    assert_caught(EX.check(stub), "not written yet")
    assert_caught(EX.check(lambda x: x.nope), "raised AttributeError")


def test_smoke_mode_checks_the_reference_for_a_stub_and_raises_on_a_wrong_answer(monkeypatch):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    v = EX.check(stub)
    assert v.ok and "smoke run" in v.message
    with pytest.raises(AssertionError, match="expected 6"):
        EX.check(twice_plus_one)


def test_describe_difference_says_shape_nan_and_direction():
    e = {"x": torch.ones(3)}
    assert "shape (2,)" in describe_difference({"x": torch.ones(2)}, e)
    assert "NaN" in describe_difference({"x": torch.tensor([1.0, float("nan"), 1.0])}, e)
    assert "expected size" in describe_difference({"x": -torch.ones(3)}, e)
    assert describe_difference({"x": torch.ones(3) + 1e-9}, e) is None


# ---------------------------------------------------------------- 09: LARS

def test_lars_reference_passes():
    assert l09.check_lars_step(l09.solution_lars_step).ok


def test_lars_per_element_ratio_is_caught():
    def lars_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        r = trust_coeff * p.abs() / (p.grad.abs() + wd * p.abs() + eps)
        r = torch.where((p == 0) | (p.grad == 0), torch.ones_like(r), r)
        p.add_(-lr * r * (p.grad + wd * p))
    assert_caught(l09.check_lars_step(lars_step), "change of the weight", "computed per tensor")


def test_lars_zero_bias_that_never_moves_is_caught():
    def lars_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        ratio = trust_coeff * p.norm() / (p.grad.norm() + wd * p.norm() + eps)
        p -= lr * ratio * (p.grad + wd * p)
    assert_caught(l09.check_lars_step(lars_step), "change of the bias has norm 0,", "ratio must be 1")


def test_lars_missing_kwargs_and_rebinding_are_caught():
    def no_kwargs(p, lr, wd, trust_coeff, eps):
        pass
    assert_caught(l09.check_lars_step(no_kwargs), "unexpected keyword", "**kwargs")

    def rebinds(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        ratio = trust_coeff * p.norm() / (p.grad.norm() + wd * p.norm() + eps)
        p = p - lr * ratio * (p.grad + wd * p)
    assert_caught(l09.check_lars_step(rebinds), "norm 0,", "in place")


def test_lars_stub_is_not_written_yet():
    assert_caught(l09.check_lars_step(stub), "lars_step is not written yet")
