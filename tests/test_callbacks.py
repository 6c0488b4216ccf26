"""Schedules, scheduler, recorder, LR finder, device, batch transforms, mixed precision and progress output."""
import math
import subprocess
import sys
import textwrap
from functools import partial

import pytest
import torch
from torch import nn

from teachkit.callbacks import (AvgStatsCallback, BatchTransformXCallback, DeviceCallback, LRFinder, ParamScheduler,
                                ProgressCallback, Recorder, accuracy)
from teachkit.learner import Callback, Learner
from teachkit.precision import MixedPrecision
from teachkit.schedule import combine_scheds, cos_1cycle_anneal, sched_cos, sched_exp, sched_lin, sched_no
from teachkit.toy import toy_databunch

SGD = partial(torch.optim.SGD, momentum=0.9)


def make_learner(cbs=(), lr=0.05, opt_func=SGD, **data_kwargs) -> Learner:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    dls = toy_databunch("blobs", **({"n_train": 256, "n_valid": 128, "bs": 32} | data_kwargs))
    return Learner(model, dls, opt_func=opt_func, lr=lr, cbs=list(cbs))


@pytest.mark.parametrize("sched, expected", [
    (sched_lin(1.0, 3.0), (1.0, 2.0, 3.0)),
    (sched_cos(1.0, 3.0), (1.0, 2.0, 3.0)),
    (sched_no(1.0, 3.0), (1.0, 1.0, 1.0)),
    (sched_exp(1.0, 100.0), (1.0, 10.0, 100.0)),
])
def test_schedules_at_start_middle_end(sched, expected):
    assert [sched(p) for p in (0.0, 0.5, 1.0)] == pytest.approx(expected)


def test_cos_schedule_is_flat_at_the_ends():
    s = sched_cos(0.0, 1.0)
    assert s(0.01) < 0.001 and s(0.99) > 0.999 and s(0.25) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)


def test_combine_scheds_joins_pieces():
    sched = combine_scheds([0.3, 0.7], cos_1cycle_anneal(0.3, 0.6, 0.2))
    assert sched(0.0) == pytest.approx(0.3)
    assert sched(0.3) == pytest.approx(0.6)
    assert sched(0.15) == pytest.approx(0.45)
    assert sched(0.65) == pytest.approx(0.4)
    assert sched(1.0) == pytest.approx(0.2)


@pytest.mark.parametrize("pcts", [[0.3, 0.6], [0.5, 0.6], [-0.5, 1.5]])
def test_combine_scheds_rejects_bad_percentages(pcts):
    with pytest.raises(ValueError, match="sum to 1"):
        combine_scheds(pcts, [sched_lin(0, 1), sched_lin(1, 0)])


def test_combine_scheds_needs_one_pct_per_schedule():
    with pytest.raises(ValueError, match="one percentage per schedule"):
        combine_scheds([1.0], [sched_lin(0, 1), sched_lin(1, 0)])


def test_param_scheduler_drives_lr_and_recorder_sees_it():
    sched = combine_scheds([0.5, 0.5], [sched_lin(0.01, 0.1), sched_lin(0.1, 0.0)])
    learn = make_learner([Recorder(), ParamScheduler("lr", sched)])
    learn.fit(2)
    lrs, n = learn.recorder.lrs[0], len(learn.dls.train_dl) * 2
    assert len(lrs) == n == len(learn.recorder.losses)
    assert lrs[0] == pytest.approx(0.01)
    assert max(lrs) == pytest.approx(0.1, rel=0.05)
    assert lrs[-1] == pytest.approx(sched((n - 1) / n))


def test_param_scheduler_per_group_and_bad_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    groups = lambda m: [{"params": m[0].parameters()}, {"params": m[2].parameters()}]
    learn = Learner(model, toy_databunch("blobs", n_train=64, n_valid=32, bs=32), opt_func=torch.optim.SGD,
                    splitter=groups, lr=0.1, cbs=[Recorder(), ParamScheduler("lr", [sched_no(0.1, 0), sched_no(0.2, 0)])])
    learn.fit(1)
    assert learn.recorder.lrs[0][-1] == 0.1 and learn.recorder.lrs[1][-1] == 0.2
    with pytest.raises(ValueError, match="no hyper-parameter 'learning_rate'"):
        learn.fit(1, cbs=[ParamScheduler("learning_rate", sched_no(0.1, 0))])
    with pytest.raises(ValueError, match="3 schedules for 2"):
        learn.fit(1, cbs=[ParamScheduler("lr", [sched_no(0.1, 0)] * 3)])


def test_lr_finder_stops_and_plots():
    learn = make_learner([Recorder()], n_train=2048, bs=16)
    learn.fit(5, cbs=[LRFinder(max_iter=60, min_lr=1e-4, max_lr=100)])
    lrs = learn.recorder.lrs[0]
    assert 1 < len(lrs) <= 61
    assert lrs[0] == pytest.approx(1e-4) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert learn.epoch == 0  # one pass over training batches, never validated
    ax = learn.recorder.plot()
    assert ax.get_xscale() == "log"


def test_avg_stats_table_rows():
    rows = []
    learn = make_learner([AvgStatsCallback(accuracy)])
    learn.logger = rows.append
    learn.fit(2)
    assert rows[0] == ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "time"]
    assert [r[0] for r in rows[1:]] == ["0", "1"] and float(rows[2][3]) < float(rows[1][3])


def test_device_callback_moves_model_and_batches():
    seen = []
    spy = type("Spy", (Callback,), {"order": 5, "after_pred": lambda self: seen.append(self.xb.device.type)})()
    learn = make_learner([DeviceCallback("cpu"), spy])
    learn.fit(1)
    assert set(seen) == {"cpu"} and next(learn.model.parameters()).device.type == "cpu"
    assert DeviceCallback().device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_batch_transform_applies_to_inputs():
    seen = []
    spy = type("Spy", (Callback,), {"order": 5, "before_batch": lambda self: seen.append(self.xb.abs().max().item())})()
    learn = make_learner([BatchTransformXCallback(lambda x: x.clamp(-1, 1)), spy])
    learn.fit(1)
    assert max(seen) <= 1.0


def test_mixed_precision_runs_forward_in_bfloat16():
    dtypes = []
    spy = type("Spy", (Callback,), {"order": 20, "after_pred": lambda self: dtypes.append(self.pred.dtype)})()
    stats = AvgStatsCallback(accuracy)
    learn = make_learner([MixedPrecision(), spy, stats])
    learn.fit(2)
    assert set(dtypes) == {torch.bfloat16}
    assert next(learn.model.parameters()).dtype == torch.float32
    assert stats.valid_stats.avg_stats[1] > 0.8


def test_progress_table_appears_in_a_terminal_run():
    script = textwrap.dedent("""
        import torch
        from torch import nn
        from teachkit.callbacks import AvgStatsCallback, ProgressCallback
        from teachkit.learner import Learner
        from teachkit.toy import toy_databunch
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        Learner(model, toy_databunch('blobs', n_train=128, n_valid=64), lr=0.1,
                cbs=[AvgStatsCallback(), ProgressCallback()]).fit(2)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(l for l in lines if l.startswith("epoch"))
    assert header.split() == ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "time"]
    rows = [l.split() for l in lines if l[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"] and all(len(r) == 6 for r in rows)


def test_mixed_precision_leaves_autocast_when_a_batch_is_cancelled():
    from teachkit.learner import CancelBatchException

    class SkipFirst(Callback):
        order = 15

        def before_batch(self):
            if self.in_train and self.n_iter == 0:
                raise CancelBatchException()

    learn = make_learner([MixedPrecision(), SkipFirst()])
    learn.fit(1)
    assert not torch.is_autocast_enabled("cpu")


def test_param_scheduler_can_be_reused_across_fits():
    sched = ParamScheduler("lr", sched_lin(0.01, 0.1))
    learn = make_learner([Recorder()])
    learn.fit(1, cbs=[sched])
    learn.fit(1, cbs=[sched])
    assert learn.recorder.lrs[0][0] == pytest.approx(0.01)


def test_batch_transform_train_only_leaves_validation_alone():
    seen = {True: [], False: []}
    spy = type("Spy", (Callback,), {"order": 5, "before_batch": lambda self: seen[self.in_train].append(self.xb.abs().max().item())})()
    learn = make_learner([BatchTransformXCallback(lambda x: x.clamp(-1, 1), train_only=True), spy])
    learn.fit(1)
    assert max(seen[True]) <= 1.0 and max(seen[False]) > 1.0


def test_progress_callback_gives_back_the_users_logger():
    rows = []
    learn = make_learner([AvgStatsCallback()])
    learn.logger = rows.append
    learn.fit(1, cbs=[ProgressCallback()])
    assert rows == []  # during that fit the table went under the progress bar
    learn.fit(1)
    assert len(rows) == 2  # afterwards the user's logger gets it again: header and one epoch


def test_throughput_counts_training_images_only():
    from teachkit.callbacks import Throughput

    learn = make_learner([Throughput()])
    learn.fit(2)
    assert learn.throughput.n_images == 2 * 256 and learn.throughput.images_per_s > 0
    assert learn.throughput.total >= learn.throughput.train_time > 0


def test_callbacks_does_not_re_export_the_schedules():
    import teachkit.callbacks as cbs

    assert not {"sched_lin", "sched_cos", "sched_no", "combine_scheds", "cos_1cycle_anneal"} & set(cbs.__all__)
    assert not hasattr(cbs, "combine_scheds")  # one name, one home: teachkit.schedule
