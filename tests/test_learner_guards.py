"""What a Learner does under real use: workers stop after fit, divergence and a too-small model are named, and
every fit starts at `learn.lr` whatever a schedule or the LR finder left behind."""
import gc
import math
import multiprocessing as mp
import weakref
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from teachkit.callbacks import AvgStatsCallback, LRFinder, ParamScheduler, Recorder
from teachkit.data.databunch import DataBunch
from teachkit.show import show_batch
from teachkit.learner import Callback, DivergenceError, Learner
from teachkit.optim import adam_opt, sgd_mom_opt
from teachkit.precision import LossScaler, MixedPrecision
from teachkit.schedule import one_cycle, sched_lin
from teachkit.toy import toy_blobs, toy_databunch, toy_images


def mlp(n_out: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, n_out))


def blobs_learner(n_out: int = 4, **kwargs) -> Learner:
    torch.manual_seed(0)
    return Learner(mlp(n_out), toy_databunch("blobs", n_train=256, n_valid=128, bs=32), **kwargs)


def weights(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ DataLoader workers

def worker_dls(n_workers: int = 2) -> DataBunch:
    x, y = toy_blobs(192)
    kw = dict(num_workers=n_workers, persistent_workers=True)
    return DataBunch(DataLoader(TensorDataset(x[:128], y[:128]), 32, shuffle=True, **kw),
                     DataLoader(TensorDataset(x[128:], y[128:]), 64, **kw), c_in=8, c_out=4)


def children() -> set[int]:
    """The pids of this process's live child processes (DataLoader workers are children)."""
    return {p.pid for p in mp.active_children()}


class WorkerPids(Callback):
    """The pids of the training DataLoader's worker processes, seen in each epoch."""

    def __init__(self):
        self.seen = []

    def before_validate(self):
        self.seen.append(sorted(w.pid for w in self.dls.train_dl._iterator._workers))


def test_workers_stay_for_the_whole_fit_and_stop_when_it_ends():
    pids, before = WorkerPids(), children()
    learn = Learner(mlp(), worker_dls(), lr=0.1, cbs=[pids])
    learn.fit(3)
    assert len(pids.seen) == 3 and len(pids.seen[0]) == 2 and pids.seen[0] == pids.seen[1] == pids.seen[2]
    assert set(pids.seen[0]) & before == set()
    assert children() == before  # the train and valid workers are gone, without waiting for a GC
    assert learn.dls.train_dl._iterator is None and learn.dls.valid_dl._iterator is None
    learn.fit(1)  # and the data works again: new workers for the new fit
    assert children() == before


def test_workers_stop_after_an_interrupted_fit_too():
    class CtrlC(Callback):
        def after_batch(self):
            if self.in_train and self.n_iter == 2:
                raise KeyboardInterrupt

    before = children()
    learn = Learner(mlp(), worker_dls(), lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=CtrlC())
    assert children() == before


def test_databunch_close_and_context_manager_stop_the_workers():
    before, dls = children(), worker_dls()
    next(iter(dls.train_dl))
    assert len(children() - before) == 2
    dls.close()
    assert children() == before
    with worker_dls() as dls:
        next(iter(dls.valid_dl))
        assert len(children() - before) == 2
    assert children() == before


def test_a_dropped_learner_stops_the_workers_a_peek_started():
    """After fit, a look at a batch starts persistent workers again. Dropping the Learner (a reference cycle with
    its callbacks) must stop them while the loader can still tell them to: left to the garbage collector, each
    takes 5 s to be killed (benchmarks/bench_learner.py times it)."""
    learn = Learner(mlp(), worker_dls(), lr=0.1, cbs=[AvgStatsCallback()])
    learn.fit(1)
    valid_dl = learn.dls.valid_dl  # kept, so that only the DataBunch's going can stop its workers
    next(iter(valid_dl))
    workers = list(valid_dl._iterator._workers)
    assert all(w.is_alive() for w in workers)
    del learn
    gc.collect()
    assert valid_dl._iterator is None and not any(w.is_alive() for w in workers)
    assert len(next(iter(valid_dl))[0]) == 64  # the loader still works: new workers


def test_a_databunch_in_a_reference_cycle_is_still_freed():
    """The finalizer that stops the workers holds the loaders, not the DataBunch's attributes: a cycle through
    them (a DataBunch that a Learner, a note or a callback points back to) must not keep it alive for good."""
    dls = worker_dls()
    dls.note = SimpleNamespace(dls=dls)
    freed = weakref.ref(dls)
    del dls
    gc.collect()
    assert freed() is None


def test_a_batch_taken_outside_fit_leaves_no_worker_behind():
    from teachkit.recipe import build_learner

    x, y = toy_images(96, size=16)
    kw = dict(num_workers=2, persistent_workers=True)
    dls = DataBunch(DataLoader(TensorDataset(x[:64], y[:64]), 16, shuffle=True, **kw),
                    DataLoader(TensorDataset(x[64:], y[64:]), 32, **kw), c_in=3, c_out=4)
    before = children()
    show_batch(dls, n=4)
    assert children() == before
    build_learner(dls, "adam", lsuv=True, progress=False, device="cpu")  # LSUV looks at one batch
    assert children() == before


# ------------------------------------------------------------------ divergence

def test_a_nan_loss_stops_fit_naming_the_batch_and_the_lr():
    learn = blobs_learner(opt_func=sgd_mom_opt, lr=1e6, cbs=[AvgStatsCallback()])
    rows = []
    learn.logger = rows.append
    with pytest.raises(DivergenceError, match=r"the loss is (nan|inf) at epoch 0, training batch \d+, learning rate 1e\+06"):
        learn.fit(3)
    assert isinstance(DivergenceError("x"), ArithmeticError)
    assert len(rows) == 1  # the header only: no epoch row with an accuracy computed from NaN weights


def test_divergence_message_says_whether_the_weights_survived():
    learn = blobs_learner(lr=0.1)
    with torch.no_grad():
        learn.model[0].weight[0, 0] = math.nan
    with pytest.raises(DivergenceError, match="batch 0, .*NaN or infinite already"):
        learn.fit(1)

    class NanInput(Callback):
        def before_batch(self):
            if not self.in_train:
                self.learn.xb = self.xb * math.nan

    learn = blobs_learner(lr=0.1)
    with pytest.raises(DivergenceError, match="epoch 0, validation batch 0.*still finite"):
        learn.fit(1, cbs=NanInput())


def test_a_float16_step_skipped_for_an_overflowing_gradient_is_not_divergence():
    class InfGradOnce(Callback):
        order = 9  # before MixedPrecision unscales and checks

        def after_backward(self):
            if self.n_iter == 1:
                next(self.model.parameters()).grad.fill_(math.inf)

    scaler = LossScaler(init_scale=8.0)
    learn = blobs_learner(lr=0.1, cbs=[MixedPrecision(torch.float16, scaler), InfGradOnce(), AvgStatsCallback()])
    learn.fit(1)  # no DivergenceError: the step was skipped and the scale halved
    assert scaler.scale == 4.0 and all(torch.isfinite(p).all() for p in learn.model.parameters())


# ------------------------------------------------------------------ too few outputs

def test_too_few_outputs_for_the_classes_is_named_before_any_step():
    learn = blobs_learner(n_out=2, lr=0.1)
    before = weights(learn.model)
    with pytest.raises(ValueError, match=r"The model gives 2 outputs per item, but the data has 4 classes "
                                         r"\(the DataBunch says c_out=4\).*n_out=dls.c_out"):
        learn.fit(1)
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())  # BN statistics included


def test_too_few_outputs_is_found_from_the_labels_when_the_data_has_no_c_out():
    learn = blobs_learner(n_out=3, lr=0.1)
    learn.dls.c_out = None
    with pytest.raises(ValueError, match=r"gives 3 outputs per item, but the data has 4 classes \(this batch has label 3\)"):
        learn.fit(1)


def test_more_outputs_than_classes_and_float_targets_are_left_alone():
    blobs_learner(n_out=6, lr=0.1).fit(1)
    x = torch.randn(64, 8)
    dls = DataBunch(DataLoader(TensorDataset(x, x[:, :1]), 16), DataLoader(TensorDataset(x, x[:, :1]), 16))
    Learner(nn.Linear(8, 1), dls, loss_func=nn.functional.mse_loss, lr=0.01).fit(1)


# ------------------------------------------------------------------ where each fit starts

def first_lrs(learn: Learner, **fit_kwargs) -> list[float]:
    rec = Recorder()
    learn.fit(1, cbs=rec, **fit_kwargs)
    return [lrs[0] for lrs in rec.lrs]


def test_every_fit_starts_at_learn_lr_whatever_a_schedule_left():
    learn = blobs_learner(lr=0.05, opt_func=adam_opt)
    sched = sched_lin(0.5, 1e-4)
    learn.fit(1, cbs=ParamScheduler("lr", sched))
    assert learn.opt.hypers[0]["lr"] == pytest.approx(sched(7 / 8))  # the schedule's end is still in the optimizer...
    assert first_lrs(learn) == [0.05]  # ...but the next fit starts at learn.lr
    assert first_lrs(learn, lr=0.2) == [0.2]  # unless told otherwise
    assert first_lrs(learn) == [0.05]


def test_fit_takes_one_lr_per_group():
    torch.manual_seed(0)
    learn = Learner(mlp(), toy_databunch("blobs", n_train=64, n_valid=32, bs=32), opt_func=torch.optim.SGD, lr=0.1,
                    splitter=lambda m: [{"params": m[0].parameters()}, {"params": list(m[1:].parameters())}])
    assert first_lrs(learn, lr=[0.01, 0.2]) == [0.01, 0.2]
    with pytest.raises(ValueError, match="3 learning rates for 2 parameter groups"):
        learn.fit(1, lr=[0.1, 0.1, 0.1])


def test_lr_finder_gives_back_the_weights_and_the_optimizer():
    learn = blobs_learner(lr=0.05, opt_func=adam_opt)
    learn.fit(1)  # the optimizer has state (Adam's averages, step counts) and BatchNorm its statistics
    model_before, opt_before = weights(learn.model), learn.opt.state_dict()
    rec = Recorder()
    learn.fit(1, cbs=[rec, LRFinder(max_iter=8, min_lr=1e-3, max_lr=1e3)])
    assert len(rec.losses) > 3 and rec.lrs[0][-1] > 1  # it explored learning rates that ruin the weights
    assert all(torch.equal(model_before[k], v) for k, v in learn.model.state_dict().items())
    opt_after = learn.opt.state_dict()
    assert opt_after["hypers"] == opt_before["hypers"]
    for i, s in opt_before["state"].items():
        assert all(torch.equal(v, opt_after["state"][i][k]) if torch.is_tensor(v) else v == opt_after["state"][i][k]
                   for k, v in s.items())
    assert first_lrs(learn) == [0.05]


def test_lr_finder_gives_back_the_epoch_counts_a_checkpoint_records(tmp_path):
    learn = blobs_learner(lr=0.05, opt_func=adam_opt)
    learn.fit(2)
    learn.fit(1, cbs=LRFinder(max_iter=8, min_lr=1e-3, max_lr=1e3))
    assert (learn.epochs_done, learn.n_epoch) == (2, 2)  # not the search's (0, 1)
    assert torch.load(learn.save(tmp_path / "run.pt"), weights_only=True)["epochs_done"] == 2


def test_lr_finder_gives_them_back_after_ctrl_c_too():
    class CtrlC(Callback):
        order = 2

        def after_step(self):
            if self.n_iter == 5:
                raise KeyboardInterrupt

    learn = blobs_learner(lr=0.05, opt_func=torch.optim.SGD)
    before = weights(learn.model)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=[LRFinder(max_iter=50, min_lr=1e-2, max_lr=10), CtrlC()])
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    assert learn.opt.param_groups[0]["lr"] == 0.05


def test_start_epoch_must_leave_an_epoch_to_train():
    learn = blobs_learner(lr=0.1)
    with pytest.raises(ValueError, match="no epoch left"):
        learn.fit(3, start_epoch=3)
    with pytest.raises(ValueError, match="count from 0"):
        learn.fit(3, start_epoch=-1)


def test_one_cycle_resumed_at_an_epoch_sees_the_same_lrs():
    learn = blobs_learner(lr=0.1, opt_func=adam_opt)
    rec = Recorder()
    learn.fit(4, cbs=[rec, ParamScheduler("lr", one_cycle(0.1))])
    full = rec.lrs[0]
    learn.fit(4, cbs=[rec, ParamScheduler("lr", one_cycle(0.1))], start_epoch=2)
    assert rec.lrs[0] == full[len(full) // 2:]
