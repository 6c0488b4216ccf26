"""TrainingMonitor: records what fit did, batch by batch, draws on its own schedule, and survives an interrupt."""
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import teachkit.panels.monitor as monitor_module
from teachkit.callbacks import AvgStatsCallback, ParamScheduler
from teachkit.learner import Callback, Learner
from teachkit.panels.monitor import TrainingMonitor, momentum_of, spread
from teachkit.optim import sgd_mom_opt
from teachkit.schedule import sched_lin
from teachkit.toy import toy_databunch

PNG = b"\x89PNG\r\n\x1a\n"
N_TRAIN, BS = 96, 16  # 6 training batches an epoch


def small_learner(**kwargs) -> Learner:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    dls = toy_databunch("images", n_train=N_TRAIN, n_valid=32, bs=BS, size=8)
    return Learner(model, dls, lr=0.1, opt_func=lambda ps, lr: sgd_mom_opt(ps, lr=lr, mom=0.9), **kwargs)


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture
def fast_clock(monkeypatch):
    """A clock that moves 1 s at every reading: each batch is 'due' when max_share=1, whatever the machine."""
    ticks = itertools.count()
    monkeypatch.setattr(monitor_module.time, "perf_counter", lambda: float(next(ticks)))


def test_records_every_training_batch_and_each_epochs_valid_loss():
    learn = small_learner()
    mon, avg = TrainingMonitor(), AvgStatsCallback()
    learn.fit(2, cbs=[mon, avg])
    assert len(mon.train_losses) == len(mon.lrs) == len(mon.moms) == 2 * N_TRAIN // BS
    assert [i for i, _ in mon.valid_losses] == [6, 12]
    assert mon.valid_losses[-1][1] == pytest.approx(avg.valid_stats.avg_stats[0], rel=1e-6)
    assert mon.moms == [0.9] * 12 and mon.lrs == [0.1] * 12


def test_lr_follows_the_schedule_whoever_sets_it():
    learn = small_learner()
    mon = TrainingMonitor()
    learn.fit(1, cbs=[mon, ParamScheduler("lr", sched_lin(0.5, 0.0))])
    np.testing.assert_allclose(mon.lrs, [0.5 * (1 - i / 6) for i in range(6)], rtol=1e-6)


def test_activation_stats_of_every_conv_and_linear_layer():
    learn = small_learner()
    mon = TrainingMonitor(stats_every=2)
    learn.fit(1, cbs=mon)
    assert mon.act.names == ["0 Conv2d", "2 Conv2d", "6 Linear"]
    assert all(len(s.means) == len(s.stds) == len(s.hists) == 3 for s in mon.act.stats)  # batches 0, 2 and 4 of 6


@pytest.mark.parametrize("hypers, mom", [({"mom": 0.8}, 0.8), ({"momentum": 0.7}, 0.7), ({"betas": (0.95, 0.99)}, 0.95)])
def test_momentum_is_read_from_teachkit_and_torch_names(hypers, mom):
    assert momentum_of({"lr": 0.1, **hypers}) == mom


def test_no_momentum_is_nan():
    assert np.isnan(momentum_of({"lr": 0.1}))


def test_draws_at_most_every_interval_and_within_its_share_of_time():
    mon = TrainingMonitor(every=0.5, max_share=0.05)
    now = monitor_module.time.perf_counter()
    mon.drawn_at, mon.draw_time = now - 0.4, 0.0
    assert not mon.due()  # 0.4 s since the last picture: too soon
    mon.drawn_at = now - 0.6
    assert mon.due()
    mon.draw_time = 0.1  # a 100 ms picture may come only every 2 s, to keep drawing at 5 % of the time
    assert not mon.due()
    mon.drawn_at = now - 2.1
    assert mon.due()


def test_every_due_batch_is_drawn_and_sent(fast_clock):
    pngs = []
    learn = small_learner()
    mon = TrainingMonitor(every=0.0, max_share=1.0, on_png=pngs.append)
    learn.fit(1, cbs=mon)
    assert mon.draws == len(pngs) == 6 + 1  # each training batch, and once more after fit
    assert all(p.startswith(PNG) for p in pngs) and pngs[-1] is mon.png
    assert len(set(pngs)) == len(pngs)  # every picture shows something new


def test_first_batch_and_end_of_fit_are_drawn_even_when_nothing_else_is_due():
    learn = small_learner()
    mon = TrainingMonitor(every=1e9)
    learn.fit(1, cbs=mon)
    assert mon.draws == 2 and mon.png.startswith(PNG)


def test_renders_before_any_fit():
    assert TrainingMonitor().render().startswith(PNG)


class InterruptAt(Callback):
    """Raise KeyboardInterrupt (Kernel -> Interrupt) in the middle of training batch `n`, after the forward pass."""

    def __init__(self, n: int):
        self.n = n

    def after_pred(self):
        if self.in_train and self.iter == self.n:
            raise KeyboardInterrupt


def test_interrupt_inside_a_batch_leaves_no_hooks_and_a_usable_monitor():
    learn = small_learner()
    mon = TrainingMonitor(every=1e9)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=[mon, InterruptAt(3)])
    assert hooks_left(learn.model) == 0
    assert len(mon.train_losses) == 3 and mon.draws == 2  # the interrupted batch is not recorded; last picture drawn
    learn.fit(1, cbs=mon)  # and it works again
    assert len(mon.train_losses) == 6 and hooks_left(learn.model) == 0 and mon.draws == 2


def test_layers_with_a_colorful_dimension_are_spread_over_the_model():
    assert spread(7, 2) == [0, 6] and spread(7, 3) == [0, 3, 6] and spread(2, 3) == [0, 1]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_share"):
        TrainingMonitor(max_share=0)
    with pytest.raises(ValueError, match="every"):
        TrainingMonitor(stats_every=0)


def monitor_with(losses, valid=()) -> TrainingMonitor:
    mon = TrainingMonitor()
    mon.train_losses, mon.valid_losses = list(losses), list(valid)
    mon.lrs, mon.moms = [0.1] * len(losses), [0.9] * len(losses)
    return mon


@pytest.mark.parametrize("losses, valid", [
    ([float("nan")] * 6, [(6, float("nan"))]),
    ([2.0, float("nan"), float("inf"), 0.5, -float("inf"), 0.0], [(3, float("inf")), (6, 0.7)]),
])
def test_nan_and_inf_losses_are_left_out_of_the_picture_and_counted(losses, valid):
    mon = monitor_with(losses, valid)
    assert mon.render().startswith(PNG)
    drawn = mon.plot.train_line.get_ydata()
    assert all(np.isfinite(drawn)) and all(d > 0 for d in drawn)
    n_bad = sum(not (np.isfinite(v) and v > 0) for v in [*losses, *(v for _, v in valid)])
    assert mon.plot.loss_note.get_text() == f"{n_bad} NaN or infinite\nlosses not drawn"
    mon.train_losses, mon.valid_losses, mon.lrs, mon.moms = [1.0, 0.5], [], [0.1] * 2, [0.9] * 2
    assert mon.render().startswith(PNG) and mon.plot.loss_note.get_text() == ""  # a finite run: no note

def nan_learner() -> Learner:
    learn = small_learner()
    with torch.no_grad():
        learn.model[0].weight.fill_(float("nan"))  # every activation and every loss is NaN
    return learn


def test_a_fit_whose_losses_are_all_nan_is_drawn():
    learn = nan_learner()
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "DivergenceCheck"])  # let it go on with NaN
    mon = TrainingMonitor(every=0.0, max_share=1.0)
    learn.fit(1, cbs=mon)
    assert mon.png.startswith(PNG) and len(mon.train_losses) == 6 and all(np.isnan(mon.train_losses))


def test_a_diverged_fit_still_draws_its_last_picture():
    from teachkit.learner import DivergenceError

    learn = nan_learner()
    mon = TrainingMonitor(every=0.0, max_share=1.0)
    with pytest.raises(DivergenceError):
        learn.fit(1, cbs=mon)
    assert mon.png.startswith(PNG) and hooks_left(learn.model) == 0
