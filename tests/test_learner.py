"""The training loop: it learns, its events fire in order, and the Cancel exceptions stop where they should."""
from functools import partial

import pytest
import torch
from torch import nn

from teachkit.callbacks import AvgStatsCallback, Recorder, accuracy
from teachkit.learner import (EVENTS, Callback, CancelBatchException, CancelEpochException, CancelFitException,
                              Learner)
from teachkit.toy import toy_databunch

SGD = partial(torch.optim.SGD, momentum=0.9)


def mlp(n_in: int = 8, n_out: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))


def make_learner(cbs=(), opt_func=SGD, **kwargs) -> Learner:
    torch.manual_seed(0)
    return Learner(mlp(), toy_databunch("blobs", n_train=256, n_valid=128, bs=32, spread=2.0), opt_func=opt_func, lr=0.05,
                   cbs=list(cbs), **kwargs)


class EventLog(Callback):
    """Record every event name as it fires."""

    def __init__(self):
        self.log = []

    def __call__(self, event):
        self.log.append(event)
        return super().__call__(event)


def test_learner_beats_chance_by_a_wide_margin():
    stats = AvgStatsCallback(accuracy)
    learn = make_learner([stats])
    learn.fit(3)
    # 4 balanced classes: chance is 25 %.
    assert stats.valid_stats.avg_stats[1] > 0.85


def test_teachkit_default_optimizer_trains_too():
    torch.manual_seed(0)
    learn = Learner(mlp(), toy_databunch("blobs", n_train=256, n_valid=128, bs=32), lr=0.1, cbs=[AvgStatsCallback()])
    learn.fit(2)
    assert learn.avg_stats.valid_stats.avg_stats[1] > 0.8


def test_events_fire_in_order():
    log = EventLog()
    learn = make_learner([log])
    learn.dls.train_dl = [next(iter(learn.dls.train_dl))]
    learn.dls.valid_dl = [next(iter(learn.dls.valid_dl))]
    learn.fit(1)
    assert log.log == ["before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
                       "after_backward", "after_step", "after_batch", "before_validate", "before_batch", "after_pred",
                       "after_loss", "after_batch", "after_epoch", "after_fit"]


def test_callbacks_are_attributes_and_sorted_by_order():
    calls = []

    class Late(Callback):
        order = 5

        def before_fit(self):
            calls.append("late")

    class Early(Callback):
        order = -5

        def before_fit(self):
            calls.append("early")

    learn = make_learner([Late(), Early(), Recorder()])
    learn.fit(1)
    assert calls == ["early", "late"]
    assert isinstance(learn.recorder, Recorder)
    assert isinstance(learn.late, Late)


def test_legacy_begin_names_still_run():
    seen = []

    class Old(Callback):
        def begin_fit(self):
            seen.append("fit")

        def begin_batch(self):
            seen.append("batch")

    learn = make_learner([Old()])
    learn.fit(1)
    assert seen[0] == "fit" and seen.count("batch") == len(learn.dls.train_dl) + len(learn.dls.valid_dl)


def test_a_handler_set_on_the_callback_itself_runs_and_wins_over_its_class():
    seen = []
    plain, legacy, rec = Callback(), Callback(), Recorder()
    plain.after_batch = lambda: seen.append("batch")  # before the Learner has it
    legacy.begin_fit = lambda: seen.append("begin_fit")
    learn = make_learner([plain, legacy, rec])
    rec.after_batch = lambda: seen.append("rec")  # after: read when fit starts
    learn.fit(1)
    n_batches = len(learn.dls.train_dl) + len(learn.dls.valid_dl)
    assert seen.count("batch") == seen.count("rec") == n_batches and seen.count("begin_fit") == 1
    assert rec.losses == []  # the instance's after_batch replaced Recorder.after_batch
    rec.after_batch = None  # and None switches a handler off
    learn.fit(1)
    assert seen.count("rec") == n_batches and rec.losses == []


def test_a_callback_reads_the_learners_state_unless_it_has_its_own():
    class Look(Callback):
        def __init__(self):
            self.seen = []

        def after_loss(self):
            self.seen.append((self.loss is self.learn.loss, self.in_train, self.epoch, self.n_iter, self.lr))

    look = Look()
    learn = make_learner([look])
    learn.fit(1)
    n_train = len(learn.dls.train_dl)
    assert all(same and lr == 0.05 and epoch == 0 for same, _, epoch, _, lr in look.seen)  # lr: through __getattr__
    assert [t for _, t, _, _, _ in look.seen] == [True] * n_train + [False] * len(learn.dls.valid_dl)
    look.loss, look.epoch = "its own", 7  # a callback's own attributes win, as before
    assert (look.loss, look.epoch) == ("its own", 7) and isinstance(learn.loss, torch.Tensor) and learn.epoch == 0
    with pytest.raises(AttributeError):
        Look().model  # no Learner yet: an AttributeError, as for any missing attribute


class StopAt(Callback):
    """Raise `exc` at `event` once `n_iter` reaches `at` (training batches only)."""

    def __init__(self, exc, at):
        self.exc, self.at, self.cancelled = exc, at, []

    def after_loss(self):
        if self.in_train and self.n_iter == self.at:
            raise self.exc()

    def after_cancel_batch(self):
        self.cancelled.append(("batch", self.n_iter))

    def after_cancel_epoch(self):
        self.cancelled.append(("epoch", self.epoch))

    def after_cancel_fit(self):
        self.cancelled.append(("fit", self.epoch))


def test_cancel_batch_skips_only_that_step():
    stop = StopAt(CancelBatchException, at=3)
    learn = make_learner([stop])
    steps = []
    learn.add_cbs([type("CountSteps", (Callback,), {"after_step": lambda self: steps.append(self.n_iter)})()])
    learn.fit(1)
    n = len(learn.dls.train_dl)
    assert stop.cancelled == [("batch", 3)]
    assert 3 not in steps and len(steps) == n - 1
    assert learn.n_iter == n  # after_batch still ran for the cancelled batch


def test_cancel_epoch_skips_rest_of_training_but_validates():
    stop = StopAt(CancelEpochException, at=2)
    log = EventLog()
    learn = make_learner([stop, log])
    learn.fit(2)
    assert ("epoch", 0) in stop.cancelled
    assert log.log.count("after_step") == 2 + len(learn.dls.train_dl)  # epoch 0 stopped after 2 steps, epoch 1 ran all
    assert log.log.count("before_validate") == 2


def test_cancel_fit_stops_everything_and_runs_after_fit():
    stop = StopAt(CancelFitException, at=4)
    log = EventLog()
    learn = make_learner([stop, log])
    learn.fit(3)
    assert stop.cancelled == [("fit", 0)]
    assert log.log[-2:] == ["after_cancel_fit", "after_fit"]
    assert "after_epoch" not in log.log
    assert log.log.count("after_step") == 4  # batches 0-3 stepped; batch 4 stopped before its backward
    assert log.log[-3] == "after_batch"  # the interrupted batch still closes


def test_fit_callbacks_are_removed_after_fit_even_on_error():
    class Boom(Callback):
        def after_step(self):
            raise RuntimeError("boom")

    learn = make_learner()
    boom = Boom()
    with pytest.raises(RuntimeError):
        learn.fit(1, cbs=[boom])
    assert boom not in learn.cbs and not hasattr(learn, "boom")


def test_learner_without_data_is_a_clear_error():
    with pytest.raises(ValueError, match="Learner needs data"):
        Learner(mlp(), None)
    with pytest.raises(ValueError, match="train_dl"):
        Learner(mlp(), [1, 2, 3])


def test_unknown_event_and_misspelt_callback_method_are_clear_errors():
    learn = make_learner()
    with pytest.raises(ValueError, match="Did you mean 'before_fit'"):
        learn("befor_fit")

    class Typo(Callback):
        def after_epoc(self):
            pass

    with pytest.raises(ValueError, match=r"Typo.after_epoc is not a Learner event.*'after_epoch'"):
        make_learner([Typo()])
    learn = make_learner([Recorder()])
    learn.recorder.after_bacth = lambda: None  # a handler set on the callback itself, after it was attached
    with pytest.raises(ValueError, match=r"Recorder.after_bacth is not a Learner event.*'after_batch'"):
        learn.fit(1)


def test_callback_class_instead_of_instance_is_a_clear_error():
    with pytest.raises(ValueError, match="class instead of calling it"):
        make_learner([Recorder])


def test_fit_needs_a_positive_epoch_count():
    with pytest.raises(ValueError, match="n_epoch"):
        make_learner().fit(0)


def test_all_events_are_unique():
    assert len(set(EVENTS)) == len(EVENTS)


def test_fit_callbacks_are_removed_when_the_optimizer_fails():
    def broken_opt(params, lr):
        raise RuntimeError("no optimizer today")

    learn = make_learner(opt_func=broken_opt)
    extra = EventLog()
    with pytest.raises(RuntimeError):
        learn.fit(1, cbs=[extra])
    assert extra not in learn.cbs and not hasattr(learn, "event_log")


def test_pct_train_runs_from_zero_to_one_over_all_epochs():
    seen = []
    spy = type("Spy", (Callback,), {"before_batch": lambda self: self.in_train and seen.append(self.pct_train)})()
    learn = make_learner([spy])
    learn.fit(2)
    n = len(learn.dls.train_dl)
    assert seen[0] == 0.0 and seen[n] == pytest.approx(0.5) and seen[-1] == pytest.approx((2 * n - 1) / (2 * n))
    assert learn.pct_train == pytest.approx(1.0) and not hasattr(learn, "n_epochs")


def test_course_v3_cancel_train_exception_names_its_replacements():
    with pytest.raises(ImportError, match="raise CancelFitException.*CancelEpochException"):
        from teachkit.learner import CancelTrainException  # noqa: F401


class HookAll(Callback):
    """Attach a forward hook to every Linear layer for the fit and remove them in after_fit (as ActivationStats does)."""

    def before_fit(self):
        self.handles = [m.register_forward_hook(lambda *a: None) for m in self.model if isinstance(m, nn.Linear)]

    def after_fit(self):
        for h in self.handles:
            h.remove()


class CtrlC(Callback):
    """Raise KeyboardInterrupt, as Kernel -> Interrupt does, in the middle of training batch `at` (gradients computed)."""

    def __init__(self, at=3):
        self.at = at

    def after_backward(self):
        if self.in_train and self.n_iter == self.at:
            raise KeyboardInterrupt


def n_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_ctrl_c_inside_a_batch_leaves_the_learner_clean_and_usable():
    from teachkit.callbacks import ProgressCallback

    stats, progress = AvgStatsCallback(accuracy), ProgressCallback()
    learn = make_learner([stats, progress])
    learn.model[2].eval()  # a mixed train/eval state, to be given back as it was
    modes = [m.training for m in learn.model.modules()]
    user_logger = learn.logger
    hook, ctrl_c = HookAll(), CtrlC(at=3)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=[hook, ctrl_c])
    assert n_hooks(learn.model) == 0 and len(hook.handles) == 2  # the hooks were attached, then removed
    assert [m.training for m in learn.model.modules()] == modes
    assert progress.pb is None and "mbar" not in vars(progress) and learn.logger is user_logger  # bars closed
    assert ctrl_c not in learn.cbs and hook not in learn.cbs and not hasattr(learn, "ctrl_c")
    assert all(p.grad is None or not p.grad.any() for p in learn.model.parameters())  # no half-done step waiting
    learn.model.train()
    learn.fit(2)  # usable again
    assert stats.valid_stats.avg_stats[1] > 0.85


def test_ctrl_c_inside_a_forward_hook_is_cleaned_up_too():
    class HookThatInterrupts(Callback):
        def before_fit(self):
            def hook(mod, inp, out):
                if self.in_train and self.n_iter == 2:
                    raise KeyboardInterrupt
            self.handle = self.model[0].register_forward_hook(hook)

        def after_fit(self):
            self.handle.remove()

    log = EventLog()
    learn = make_learner([log])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=[HookThatInterrupts()])
    assert n_hooks(learn.model) == 0 and log.log[-2:] == ["after_batch", "after_fit"]
    assert not learn.in_train


def test_every_after_fit_runs_even_when_one_fails():
    class BrokenCleanup(Callback):
        order = -10

        def after_fit(self):
            raise RuntimeError("cleanup failed")

    hook = HookAll()
    learn = make_learner([BrokenCleanup(), hook])
    with pytest.raises(RuntimeError, match="cleanup failed"):
        learn.fit(1)
    assert n_hooks(learn.model) == 0  # HookAll (later in order) still removed its hooks


def test_after_fit_sees_the_interrupt_as_context_not_a_new_error():
    ran = []
    learn = make_learner([type("Ran", (Callback,), {"after_fit": lambda self: ran.append(True)})()])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=[CtrlC(at=0)])
    assert ran == [True]
