"""Data parallel on CPU: 2 gloo processes (spawned, or started by torchrun) against one process doing the same work."""
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from teachkit.callbacks import AvgStatsCallback, accuracy
from teachkit.data import CategoryProcessor, ItemList, SplitData, label_by_func
from teachkit.data.databunch import DataBunch
from teachkit.distributed import (DataMismatchError, DistributedCallback, ShardSampler, data_mismatch, distributed_dls,
                                  init_on_main, main_process_first, process_group, setup, world_size)
from teachkit.learner import Callback, Learner
from teachkit.optim import adam_opt, sgd_opt

OPTS = {"sgd": (sgd_opt, 0.1), "adam": (adam_opt, 1e-2)}
N_TRAIN, N_VALID, EPOCHS = 128, 51, 2  # 51: the two ranks' validation shares differ (26 and 25 items)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toy_learner(opt: str, bs: int, cbs=()) -> tuple[Learner, list]:
    """A small MLP (no BatchNorm: its batch statistics depend on the batch size) on fixed random data, no shuffling."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N_TRAIN + N_VALID, 3, 8, 8, generator=g), torch.randint(0, 4, (N_TRAIN + N_VALID,), generator=g)
    train, valid = TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])
    dls = DataBunch(DataLoader(train, bs, shuffle=False), DataLoader(valid, bs * 2), c_in=3, c_out=4)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 4))
    opt_func, lr = OPTS[opt]
    learn = Learner(model, dls, F.cross_entropy, opt_func, lr, [AvgStatsCallback(accuracy), *cbs])
    rows: list = []
    learn.logger = rows.append
    return learn, rows


class SeeSampler(Callback):
    """Record, each epoch, the training sampler's epoch and whether it shuffles."""

    def before_fit(self):
        self.seen = []

    def before_train(self):
        self.seen.append((self.dls.train_dl.sampler.epoch, self.dls.train_dl.sampler.shuffle))


def replica(rank: int, world: int, port: int, out: str) -> None:
    """One rank: what torchrun would set in the environment, then the same code paths as `python -m teachkit.train`."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    res = {}
    with process_group(timeout_s=60) as device:
        res["device"], res["world"] = str(device), world_size()
        for opt in OPTS:
            learn, rows = toy_learner(opt, bs=16, cbs=[DistributedCallback()])
            learn.fit(EPOCHS)
            res[opt] = dict(state=learn.model.state_dict(), rows=rows, plain=type(learn.model).__name__,
                            valid=learn.avg_stats.valid_stats.avg_stats, count=learn.avg_stats.valid_stats.count)
        learn, _ = toy_learner("sgd", bs=16, cbs=[DistributedCallback(), SeeSampler()])
        learn.dls.train_dl = DataLoader(learn.dls.train_ds, 16, shuffle=True)
        learn.fit(EPOCHS)
        res["shuffled"] = dict(seen=learn.see_sampler.seen, state=learn.model.state_dict())
        torch.manual_seed(rank)  # different weights on every rank ...
        lin = nn.Linear(3, 2)
        init_on_main(lin, lambda m: nn.init.constant_(m.weight, 3.0))  # ... until rank 0's are broadcast
        res["init_on_main"] = lin.state_dict()
        flag = Path(out) / "written-by-rank-0"
        with main_process_first():
            if rank == 0:
                time.sleep(0.5)  # rank 1 would see no file if it did not wait
                flag.write_text("done")
            res["saw_rank0_file"] = flag.exists()
    torch.save(res, Path(out) / f"rank{rank}.pt")


def labelled_dls(classes: list[str]) -> DataBunch:
    """12 train and 4 valid items labelled with `classes` in turn, through a CategoryProcessor (its vocab)."""
    sd = SplitData(ItemList(list(range(12))), ItemList(list(range(12, 16))))
    ll = label_by_func(sd, lambda i: classes[i % len(classes)], proc_y=CategoryProcessor())
    return DataBunch(DataLoader(ll.train, 4), DataLoader(ll.valid, 4), c_out=len(classes))


def mismatched_replica(rank: int, world: int, port: int, out: str) -> None:
    """One of 2 ranks where rank 1 holds different data: what each try raised, then identical data going through."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    res = {}
    with process_group(timeout_s=30):
        for case, keep in (("train", 96), ("valid", N_VALID - 1)):  # 96: 3 steps a rank instead of 4
            learn, _ = toy_learner("sgd", bs=16, cbs=[DistributedCallback()])
            if rank == 1:
                dl = getattr(learn.dls, f"{case}_dl")
                setattr(learn.dls, f"{case}_dl", DataLoader(Subset(dl.dataset, range(keep)), dl.batch_size))
            try:
                learn.fit(1)
                res[case] = ("no error", "")
            except Exception as e:
                res[case] = (type(e).__name__, str(e))
            res[case + "_model"] = type(learn.model).__name__
        classes = ["cat", "dog", "fish", "owl"] if rank == 0 else ["cat", "dog", "eel", "owl"]
        try:
            distributed_dls(labelled_dls(classes))  # where train.py shards, before LSUV's weights are broadcast
            res["vocab"] = ("no error", "")
        except Exception as e:
            res["vocab"] = (type(e).__name__, str(e))
        res["same"] = len(distributed_dls(labelled_dls(["cat", "dog", "eel"])).train_dl)  # 6 of the 12 in batches of 4
    torch.save(res, Path(out) / f"rank{rank}.pt")


def spawn_two(fn: Callable, tmp_path_factory) -> list[dict]:
    """Run `fn` in 2 spawned processes (gloo), at most 3 minutes; their results, by rank."""
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(fn, args=(2, free_port(), str(out)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 180
    try:
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail("the 2 spawned ranks did not finish within 3 minutes")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    return spawn_two(replica, tmp_path_factory)


@pytest.fixture(scope="module")
def mismatched_ranks(tmp_path_factory) -> list[dict]:
    return spawn_two(mismatched_replica, tmp_path_factory)


@pytest.mark.parametrize("opt", list(OPTS))
def test_two_ranks_of_16_take_the_steps_of_one_process_of_32(two_ranks, opt):
    learn, _ = toy_learner(opt, bs=32)
    learn.fit(EPOCHS)  # 8 steps of 32 images
    ref = learn.model.state_dict()
    for r, res in enumerate(two_ranks):
        assert res["world"] == 2 and res["device"] == "cpu"
        assert res[opt]["plain"] == "Sequential"  # after fit the Learner holds the plain model again, not the DDP wrapper
        for k, v in ref.items():
            assert torch.allclose(res[opt]["state"][k], v, atol=1e-5, rtol=0), f"rank {r}, {opt}, {k}"


@pytest.mark.parametrize("opt", list(OPTS))
def test_every_rank_sees_the_metrics_of_the_whole_validation_set(two_ranks, opt):
    learn, rows = toy_learner(opt, bs=32)
    learn.fit(EPOCHS)
    r0, r1 = two_ranks[0][opt], two_ranks[1][opt]
    assert r0["count"] == r1["count"] == N_VALID  # each validation image counted once: no padding
    assert r0["valid"] == r1["valid"]
    assert r0["valid"] == pytest.approx(learn.avg_stats.valid_stats.avg_stats, abs=1e-5)
    assert len(r0["rows"]) == len(rows) == EPOCHS + 1 and r1["rows"] == []  # the table: rank 0 only


def test_each_epoch_is_shuffled_anew_and_the_replicas_stay_identical(two_ranks):
    for res in two_ranks:
        assert res["shuffled"]["seen"] == [(0, True), (1, True)]  # set_epoch(epoch) before each training pass
    s0, s1 = two_ranks[0]["shuffled"]["state"], two_ranks[1]["shuffled"]["state"]
    assert all(torch.equal(s0[k], s1[k]) for k in s0)  # different batches, the same averaged steps


def test_weights_initialised_on_rank_0_reach_every_rank(two_ranks):
    w0, w1 = two_ranks[0]["init_on_main"], two_ranks[1]["init_on_main"]
    assert torch.equal(w0["weight"], torch.full((2, 3), 3.0))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # the bias too: rank 0's random one, not rank 1's


def test_other_ranks_wait_for_the_local_main_process(two_ranks):
    assert [res["saw_rank0_file"] for res in two_ranks] == [True, True]


@pytest.mark.parametrize("case, says", [("train", "rank 1 has 96 train items, rank 0 has 128"),
                                        ("valid", "rank 1 has 50 valid items, rank 0 has 51"),
                                        ("vocab", "rank 1's class names differ from rank 0's (both 4 classes)")])
def test_ranks_with_different_data_stop_together_saying_which_rank_differs(mismatched_ranks, case, says):
    (kind0, msg0), (kind1, msg1) = mismatched_ranks[0][case], mismatched_ranks[1][case]
    assert kind0 == kind1 == "DataMismatchError", (msg0, msg1)
    assert msg0 == msg1 and says in msg0 and "same data folder" in msg0
    assert all(res.get(case + "_model", "Sequential") == "Sequential" for res in mismatched_ranks)  # not left in DDP


def test_ranks_with_the_same_labelled_data_are_sharded(mismatched_ranks):
    assert [res["same"] for res in mismatched_ranks] == [2, 2]


def test_data_mismatch_names_every_rank_that_differs_from_rank_0():
    fp = dict(train=130, valid=50, classes=10, vocab="a")
    assert data_mismatch([fp, dict(fp), dict(fp)]) is None
    msg = data_mismatch([fp, dict(fp, train=120), dict(fp, classes=9, vocab="b")])
    assert "rank 1 has 120 train items, rank 0 has 130" in msg and "rank 2 has 9 classes, rank 0 has 10" in msg
    assert "rank 2 has" in msg.split(";")[-1] and "valid" not in msg.split("folder")[0]
    assert "rank 1 has no classes, rank 0 has 10" in data_mismatch([fp, dict(fp, classes=None, vocab=None)])
    assert issubclass(DataMismatchError, ValueError)


def test_shard_sampler_gives_every_item_once_without_padding():
    shards = [list(ShardSampler(range(11), num_replicas=3, rank_=r)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert [len(ShardSampler(range(11), num_replicas=3, rank_=r)) for r in range(3)] == [4, 4, 3]


def test_callback_without_a_process_group_says_how_to_launch():
    learn, _ = toy_learner("sgd", bs=32, cbs=[DistributedCallback()])
    model = learn.model
    with pytest.raises(ValueError, match="torchrun"):
        learn.fit(1)
    assert learn.model is model  # nothing half-wrapped left behind
    with pytest.raises(ValueError, match="torchrun"):
        setup()


def test_without_torchrun_one_process_trains_as_before(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    with process_group() as device:
        assert device.type in ("cpu", "cuda") and world_size() == 1
        lin = init_on_main(nn.Linear(3, 2), lambda m: nn.init.zeros_(m.weight))  # rank 0 is the only rank
    assert torch.equal(lin.weight, torch.zeros(2, 3))


def test_torchrun_smoke_run_prints_once_and_every_rank_agrees(tmp_path):
    """`python -m torch.distributed.run --nproc_per_node=2 -m teachkit.train`, output to a pipe, data generated fresh."""
    env = {**os.environ, "TEACHKIT_SMOKE": "1", "TEACHKIT_DATA": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "teachkit.train"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent.parent)
    out = res.stdout
    assert res.returncode == 0, res.stderr[-4000:]
    assert out.count("Data parallel: 2 processes (gloo), batch size 32 per process, 64 images per step.") == 1
    assert out.count("train_loss") == 1 and out.count("Final: valid accuracy") == 1  # the header and metrics once
    assert len([l for l in out.splitlines() if l.split()[:1] in (["0"], ["1"])]) == 2  # one table row per epoch
    assert "All 2 ranks agree on these metrics." in out
    assert "█" not in out and "\r" not in out  # a pipe gets plain lines, no bar redraws


def test_exercise_checker_passes_the_reference_and_names_each_typical_mistake():
    from teachkit.exercises import l11b
    model, loss_func, xb, yb, world = l11b.CASES[0].make()
    grads = l11b.solution_replica_grads(model, loss_func, xb, yb, world)
    model.zero_grad()
    loss_func(model(xb), yb).backward()  # equal shares: the average is the whole batch's gradient
    assert all(torch.allclose(g, p.grad, atol=1e-6) for g, p in zip(grads, model.parameters()))
    assert l11b.check_replica_grads(l11b.solution_replica_grads).ok
    for m in l11b.MISTAKES:
        verdict = l11b.EXERCISE.check(m.fn, smoke=False)  # in smoke mode a failing check raises
        assert not verdict.ok and m.hint in verdict.message


@pytest.mark.parametrize("stop", [None, RuntimeError, KeyboardInterrupt])
def test_the_process_group_is_left_on_success_error_and_ctrl_c(monkeypatch, stop):
    import torch.distributed as dist
    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("LOCAL_RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1"), monkeypatch.setenv("MASTER_PORT", str(free_port()))
    try:
        with process_group(timeout_s=30) as device:
            assert dist.is_initialized() and dist.get_backend() == "gloo" and device.type == "cpu"
            if stop is not None:
                raise stop()
    except (RuntimeError, KeyboardInterrupt):
        pass
    assert not dist.is_initialized()


def test_resharding_keeps_the_dataloaders_settings(monkeypatch):
    import teachkit.distributed as D
    monkeypatch.setattr(D, "world_size", lambda: 2), monkeypatch.setattr(D, "rank", lambda: 1)
    ds = TensorDataset(torch.arange(10))
    dl = DataLoader(ds, 3, shuffle=False, drop_last=True, collate_fn=lambda b: b)
    valid = D.distributed_dl(dl, train=False)
    assert isinstance(valid.sampler, ShardSampler) and list(valid.sampler) == [1, 3, 5, 7, 9]
    assert (valid.batch_size, valid.drop_last, valid.collate_fn) == (3, True, dl.collate_fn)
    assert D.distributed_dl(valid, train=False) is valid  # already a share: unchanged
    train = D.distributed_dl(DataLoader(ds, 2, shuffle=True), train=True, seed=3)
    assert (train.sampler.num_replicas, train.sampler.rank, train.sampler.shuffle, train.sampler.seed) == (2, 1, True, 3)
    assert len(train) == 3  # 5 of the 10 items for rank 1, in batches of 2


def test_leaving_the_group_frees_cyclic_garbage_while_the_group_is_still_up(monkeypatch):
    """A Learner and its callbacks form cycles; left to the interpreter's shutdown, what they hold was freed after
    gloo's threads and aborted the process (SIGABRT, "terminate called without an active exception") in about one
    torchrun run in three. `cleanup` frees it first, while the group still exists."""
    import gc
    import weakref
    import torch.distributed as dist
    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("LOCAL_RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1"), monkeypatch.setenv("MASTER_PORT", str(free_port()))

    class Node:
        pass

    freed_with_group_up = []
    gc.disable()  # only cleanup's own collection may free the cycle
    try:
        with process_group(timeout_s=30):
            a, b = Node(), Node()
            a.other, b.other = b, a
            weakref.finalize(a, lambda: freed_with_group_up.append(dist.is_initialized()))
            del a, b
        assert freed_with_group_up == [True]
    finally:
        gc.enable()
