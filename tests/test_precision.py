"""Mixed precision: the bf16 autocast path on CPU, the float16 loss-scaling path (on CPU too), the scaler's rule."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from teachkit.learner import Callback, Learner
from teachkit.optim import adam_opt
from teachkit.precision import LossScaler, MixedPrecision, grads_finite, pick_dtype
from teachkit.toy import toy_databunch


def make_learner(cbs, opt_func=adam_opt, lr=1e-2):
    torch.manual_seed(0)
    dls = toy_databunch("blobs", n_train=64, n_valid=32, bs=16)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    return Learner(model, dls, F.cross_entropy, opt_func=opt_func, lr=lr, cbs=cbs)


class Spy(Callback):
    """Dtypes of the prediction and loss, and the loss value backward will use, for every training batch."""

    order = 20

    def before_fit(self):
        self.rows = []

    def after_loss(self):
        if self.in_train:
            self.rows.append(dict(pred=self.pred.dtype, loss=self.loss.dtype, loss_value=self.loss.item()))

    def after_backward(self):
        self.rows[-1]["grad_dtypes"] = {p.grad.dtype for p in self.model.parameters()}
        self.rows[-1]["recorded_loss"] = self.loss.item()


def test_pick_dtype_is_bf16_on_cpu():
    assert pick_dtype("cpu") == torch.bfloat16


def test_bf16_autocast_path_on_cpu_trains_with_fp32_weights_and_says_so(capsys):
    spy = Spy()
    learn = make_learner([MixedPrecision(), spy])
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert "bfloat16 autocast on cpu (no loss scaling needed)" in capsys.readouterr().out
    assert learn.mixed_precision.scaler is None
    assert all(r["pred"] == torch.bfloat16 for r in spy.rows)  # linear layers ran in bf16
    assert all(r["loss"] == torch.float32 for r in spy.rows)  # cross-entropy is on autocast's fp32 list
    assert all(r["grad_dtypes"] == {torch.float32} for r in spy.rows)
    after = list(learn.model.parameters())
    assert all(p.dtype == torch.float32 for p in after)  # the weights are the fp32 master copy
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_autocast_is_left_after_every_batch():
    learn = make_learner([MixedPrecision()])
    learn.fit(1)
    assert not torch.is_autocast_enabled("cpu")
    assert learn.model(torch.randn(2, 8)).dtype == torch.float32


def test_fp16_path_scales_the_loss_for_backward_but_records_the_true_loss():
    spy = Spy()
    learn = make_learner([MixedPrecision(torch.float16, LossScaler(init_scale=1024.0)), spy])
    learn.fit(1)
    row = spy.rows[0]
    assert row["pred"] == torch.float16
    assert row["loss_value"] == pytest.approx(row["recorded_loss"] * 1024, rel=1e-6)  # scaled, then given back


def test_fp16_gradients_after_unscaling_match_the_unscaled_computation():
    torch.manual_seed(0)
    model = nn.Linear(8, 4)
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(model(x), y)
    (loss * 512).backward()
    scaler = LossScaler(init_scale=512.0)
    assert scaler.unscale_(model.parameters())
    scaled = model.weight.grad.clone()
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.allclose(scaled, model.weight.grad, atol=1e-3)


class InfGrad(Callback):
    """Put an inf in one gradient of the first training batch (before MixedPrecision's after_backward)."""

    order = 5

    def after_backward(self):
        if self.n_iter == 0 and self.in_train:
            next(self.model.parameters()).grad[0, 0] = float("inf")


class Steps(Callback):
    order = 20

    def before_fit(self):
        self.steps = 0

    def after_step(self):
        self.steps += 1


def test_fp16_overflow_skips_the_step_halves_the_scale_and_clears_the_gradients():
    steps = Steps()
    scaler = LossScaler(init_scale=1024.0, growth_interval=1000)
    learn = make_learner([MixedPrecision(torch.float16, scaler), InfGrad(), steps])
    learn.fit(1)  # 4 training batches, the first overflows
    assert steps.steps == 3
    assert scaler.scale == 512.0 and scaler.good_steps == 3
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


def test_skipped_step_leaves_the_weights_alone():
    class StopAfterFirst(Callback):
        order = 30

        def after_batch(self):
            from teachkit.learner import CancelFitException
            raise CancelFitException()

    learn = make_learner([MixedPrecision(torch.float16, LossScaler(init_scale=8.0)), InfGrad(), StopAfterFirst()])
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in learn.model.parameters())


def test_loss_scaler_follows_torch_grad_scaler():
    """The same sequence of overflows gives the same scales as torch.amp.GradScaler (with a torch.optim optimizer)."""
    pattern = [False, False, True, False, False, False, True, True, False, False, False, False]
    ours = LossScaler(init_scale=64.0, growth_interval=3)
    p = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    theirs = torch.amp.GradScaler("cpu", init_scale=64.0, growth_interval=3)
    for inf in pattern:
        theirs.scale(p.sum()).backward()
        if inf:
            p.grad[0] = float("inf")
        ours.update(found_inf=inf)
        theirs.step(opt)
        theirs.update()
        opt.zero_grad()
        assert ours.scale == theirs.get_scale()


def test_grads_finite_sees_nan_and_inf():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    assert grads_finite([a, b])
    b.grad[1] = float("nan")
    assert not grads_finite([a, b])
    b.grad[1] = -float("inf")
    assert not grads_finite([a, b])


def test_bad_arguments():
    with pytest.raises(ValueError, match="bfloat16 or torch.float16"):
        MixedPrecision(torch.float64)
    with pytest.raises(ValueError, match="growth_factor > 1"):
        LossScaler(growth_factor=0.5)


def test_mixup_under_float16_mixed_precision_trains():
    from teachkit.mixup import MixUp
    learn = make_learner([MixedPrecision(torch.float16, LossScaler(init_scale=256.0)), MixUp(0.4)])
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert learn.loss_func is F.cross_entropy
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
