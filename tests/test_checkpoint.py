"""Learner.save / Learner.load and the Checkpoint callback: a run stopped after k epochs and resumed ends where an
uninterrupted one does; a checkpoint that doesn't fit is refused by name; a failed save leaves the old file."""
import os
from functools import partial

import pytest
import torch
from torch import nn

import teachkit.checkpoint as checkpoint_module
from teachkit.callbacks import Checkpoint, ParamScheduler
from teachkit.checkpoint import CheckpointError, checkpoint_meta, plain_model
from teachkit.learner import Callback, Learner
from teachkit.optim import adam_opt, lamb_opt
from teachkit.schedule import momentum_cycle, one_cycle
from teachkit.toy import toy_databunch

N_EPOCH = 4


def model(n_out: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, n_out))


def one_cycle_learner(seed: int = 0, n_out: int = 4, opt_func=adam_opt) -> Learner:
    """A small one-cycle run: Adam's state, BatchNorm's statistics, Dropout's draws and a shuffled DataLoader."""
    torch.manual_seed(seed)
    dls = toy_databunch("blobs", n_train=192, n_valid=64, bs=32, spread=2.0)
    scheds = [ParamScheduler("lr", one_cycle(0.05)), ParamScheduler("mom", momentum_cycle())]
    return Learner(model(n_out), dls, opt_func=opt_func, lr=0.05, cbs=scheds)


class CtrlCAt(Callback):
    """Kernel -> Interrupt in the middle of epoch `epoch`."""

    def __init__(self, epoch: int):
        self.epoch_at = epoch

    def after_step(self):
        if self.epoch == self.epoch_at and self.iter == 2:
            raise KeyboardInterrupt


def state(learn: Learner) -> dict:
    return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}


@pytest.mark.parametrize("k", [1, 3])
def test_a_run_interrupted_after_k_epochs_and_resumed_ends_like_an_uninterrupted_one(tmp_path, k):
    full = one_cycle_learner()
    full.fit(N_EPOCH)

    path = tmp_path / "run.pt"
    stopped = one_cycle_learner()
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(N_EPOCH, cbs=[Checkpoint(path), CtrlCAt(k)])
    torch.manual_seed(123)  # whatever happened since: the checkpoint brings back the random states too

    resumed = one_cycle_learner(seed=1).load(path)  # other initial weights: all of them come from the checkpoint
    assert (resumed.epochs_done, resumed.n_epoch) == (k, N_EPOCH)
    resumed.fit(N_EPOCH, start_epoch=resumed.epochs_done)
    a, b = state(full), state(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-7, msg=name)
    assert resumed.opt.hypers[0]["lr"] == pytest.approx(full.opt.hypers[0]["lr"])


def test_save_and_load_keep_the_optimizer_state_and_the_epoch_count(tmp_path):
    learn = one_cycle_learner()
    learn.fit(2)
    path = learn.save(tmp_path / "sub" / "done.pt")
    other = one_cycle_learner(seed=5).load(path)
    assert other.epochs_done == 2 and other.n_epoch == 2
    saved, loaded = learn.opt.state_dict(), other.opt.state_dict()
    assert loaded["hypers"] == saved["hypers"]
    assert saved["state"][0]["step"] == loaded["state"][0]["step"] == 2 * 6
    assert torch.equal(saved["state"][0]["sqr_avg"], loaded["state"][0]["sqr_avg"])
    assert all(torch.equal(v, state(other)[k]) for k, v in state(learn).items())
    with pytest.raises(ValueError, match="no epoch left"):
        other.fit(2, start_epoch=other.epochs_done)


def test_a_torch_optimizer_round_trips_too(tmp_path):
    learn = one_cycle_learner(opt_func=torch.optim.Adam)
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ParamScheduler) and cb.pname == "mom"])
    learn.fit(1)
    other = one_cycle_learner(seed=3, opt_func=torch.optim.Adam).load(learn.save(tmp_path / "adam.pt"))
    a, b = learn.opt.state_dict()["state"], other.opt.state_dict()["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)


def test_a_checkpoint_for_another_model_is_refused_by_name_and_changes_nothing(tmp_path):
    learn = one_cycle_learner()
    learn.fit(1)
    path = learn.save(tmp_path / "four.pt")
    other = one_cycle_learner(seed=1, n_out=10)
    before = state(other)
    with pytest.raises(ValueError, match=r"does not fit this model: of another shape: 4\.weight \(saved \(4, 32\), "
                                         r"here \(10, 32\)\), 4\.bias \(saved \(4,\), here \(10,\)\)"):
        other.load(path)
    assert all(torch.equal(v, state(other)[k]) for k, v in before.items())

    smaller = Learner(nn.Sequential(nn.Linear(8, 4)), learn.dls, opt_func=adam_opt)
    with pytest.raises(CheckpointError, match=r"in the checkpoint but not here: 1\.weight, 1\.bias, 1\.running_mean, "
                                              r"1\.running_var, 1\.num_batches_tracked and 2 more; of another shape: "
                                              r"0\.weight \(saved \(32, 8\), here \(4, 8\)\)"):
        smaller.load(path)


def test_a_checkpoint_for_another_optimizer_is_refused(tmp_path):
    learn = one_cycle_learner()
    learn.fit(1)
    path = learn.save(tmp_path / "adam.pt")
    other = one_cycle_learner(opt_func=torch.optim.SGD)
    with pytest.raises(CheckpointError, match=r"saved by another optimizer: saved \[weight_decay, .*adam_step\], "
                                              r"now \[SGD\]"):  # named before their states are compared
        other.load(path)


def test_a_checkpoint_of_adam_is_refused_by_lamb_whose_state_has_the_same_names(tmp_path):
    learn = one_cycle_learner()
    learn.fit(1)
    path = learn.save(tmp_path / "adam.pt")
    other = one_cycle_learner(seed=1, opt_func=lamb_opt)
    other.create_opt()
    before = state(other)
    with pytest.raises(CheckpointError, match=r"saved by another optimizer: saved \[weight_decay, "
                                              r"average_grad\(dampening=True\), average_sqr_grad, step_stat, "
                                              r"adam_step\], now \[average_grad\(dampening=True\), average_sqr_grad, "
                                              r"step_stat, lamb_step\]\. Build the Learner with the optimizer"):
        other.load(path)
    assert all(torch.equal(v, state(other)[k]) for k, v in before.items()) and other.opt.state == {}


def test_the_list_path_of_the_same_optimizer_loads_it(tmp_path):
    learn = one_cycle_learner()
    learn.fit(1)
    other = one_cycle_learner(opt_func=partial(adam_opt, foreach=True)).load(learn.save(tmp_path / "adam.pt"))
    assert other.epochs_done == 1 and len(other.opt.state) == len(learn.opt.state)


def test_the_checkpoint_callback_keeps_its_meta(tmp_path):
    learn = one_cycle_learner()
    learn.fit(1, cbs=Checkpoint(tmp_path / "run.pt", meta={"flags": {"opt": "adam", "wd": 0.01}}))
    assert checkpoint_meta(tmp_path / "run.pt") == {"flags": {"opt": "adam", "wd": 0.01}}
    assert checkpoint_meta(learn.save(tmp_path / "plain.pt")) == {}


def test_a_file_that_is_no_teachkit_checkpoint_is_refused(tmp_path):
    learn = one_cycle_learner()
    torch.save(learn.model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a teachkit checkpoint.*model.load_state_dict"):
        learn.load(tmp_path / "weights.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not a checkpoint torch can read"):
        learn.load(tmp_path / "junk.pt")


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    learn = one_cycle_learner()
    learn.fit(1)
    path = learn.save(tmp_path / "run.pt")
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        learn.save(path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["run.pt"]  # no temporary file left behind


def test_checkpoint_every_epoch_or_only_the_last(tmp_path):
    saves = []

    class Spy(Checkpoint):
        def after_epoch(self):
            super().after_epoch()
            saves.append(self.path.exists() and self.learn.epochs_done)

    one_cycle_learner().fit(3, cbs=Spy(tmp_path / "each.pt"))
    assert saves == [1, 2, 3]
    saves.clear()
    one_cycle_learner().fit(3, cbs=Spy(tmp_path / "last.pt", every_epoch=False))
    assert saves == [False, False, 3]


def test_plain_model_sees_through_the_compile_wrapper():
    m = model()
    assert plain_model(torch.compile(m)) is m and plain_model(m) is m


def test_a_checkpoint_is_written_with_the_umasks_permissions(tmp_path):
    """Like the data cache: a checkpoint shared with a class is readable by it (umask 022 -> 0644, not mkstemp's 0600)."""
    learn = Learner(nn.Sequential(nn.Linear(8, 4)), toy_databunch("blobs", n_train=32, n_valid=16, bs=16), lr=0.1)
    old = os.umask(0o022)
    try:
        path = learn.save(tmp_path / "run.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_resume_epoch_refuses_another_epoch_count_and_a_finished_run(tmp_path):
    from teachkit.recipe import resume_epoch

    learn = one_cycle_learner()
    learn.fit(2)
    path = learn.save(tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match="from a run of 2 epochs: resuming it for 3 would change its schedules"):
        resume_epoch(one_cycle_learner(), path, 3)
    with pytest.raises(CheckpointError, match="finished all 2 epochs"):
        resume_epoch(one_cycle_learner(), path, 2)
