"""The training recipes' schedules: one-cycle for lr and momentum, and fastai2's flat-then-cosine."""
import pytest

from teachkit.schedule import flat_cos, momentum_cycle, one_cycle


def test_one_cycle_warms_up_to_the_peak_then_anneals():
    s = one_cycle(1.0)
    assert s(0.0) == pytest.approx(0.1) and s(0.3) == pytest.approx(1.0) and s(1.0) == pytest.approx(1e-5)
    assert s(0.15) < s(0.3) and s(0.65) < s(0.3)


def test_momentum_cycle_is_lowest_where_the_learning_rate_peaks():
    s = momentum_cycle()
    assert s(0.0) == pytest.approx(0.95) and s(0.3) == pytest.approx(0.85) and s(1.0) == pytest.approx(0.95)


def test_flat_cos_holds_the_peak_then_falls_by_a_half_cosine():
    s = flat_cos(2.0)
    assert [s(p) for p in (0.0, 0.5, 0.75)] == pytest.approx([2.0, 2.0, 2.0])
    assert s(0.875) == pytest.approx(1.0, rel=1e-4)  # half-way down the cosine: half the peak
    assert s(1.0) == pytest.approx(2e-5)
