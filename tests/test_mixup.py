"""Label smoothing equals PyTorch's; MixUp blends the batch and the loss with the same lambda, and only in training."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from teachkit.learner import Callback, CancelFitException, Learner
from teachkit.mixup import LabelSmoothingCrossEntropy, MixUp, lin_comb, mixup_batch, mixup_loss
from teachkit.toy import toy_databunch


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_equals_pytorch(eps, reduction):
    torch.manual_seed(0)
    out, y = torch.randn(16, 7) * 3, torch.randint(0, 7, (16,))
    ours = LabelSmoothingCrossEntropy(eps, reduction)(out, y)
    theirs = nn.CrossEntropyLoss(label_smoothing=eps, reduction=reduction)(out, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_label_smoothing_is_cross_entropy_against_the_smoothed_target():
    torch.manual_seed(1)
    out, y, eps = torch.randn(8, 5), torch.randint(0, 5, (8,)), 0.2
    target = F.one_hot(y, 5) * (1 - eps) + eps / 5
    expected = -(target * F.log_softmax(out, -1)).sum(-1).mean()
    assert torch.allclose(LabelSmoothingCrossEntropy(eps)(out, y), expected, atol=1e-6)


def test_label_smoothing_rejects_eps_outside_0_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        LabelSmoothingCrossEntropy(1.5)


def test_mixup_batch_and_loss_pieces():
    x, y = torch.arange(12.0).view(3, 4), torch.tensor([0, 1, 2])
    shuffle = torch.tensor([2, 0, 1])
    xm, y1 = mixup_batch(x, y, 0.7, shuffle)
    assert torch.allclose(xm[0], 0.7 * x[0] + 0.3 * x[2]) and torch.equal(y1, torch.tensor([2, 0, 1]))
    pred = torch.randn(3, 3)
    loss = mixup_loss(F.cross_entropy, pred, y, y1, 0.7)
    assert torch.allclose(loss, 0.7 * F.cross_entropy(pred, y) + 0.3 * F.cross_entropy(pred, y1))
    assert lin_comb(2.0, 10.0, 0.25) == 8.0


class Spy(Callback):
    """Record, for every batch, the input the model got and the loss, after MixUp (order 90) has run."""

    order = 100

    def before_fit(self):
        self.seen = []

    def after_loss(self):
        mix = self.learn.mix_up
        self.seen.append(dict(train=self.in_train, xb=self.xb.clone(), yb=self.yb.clone(), pred=self.pred.detach(),
                              loss=self.loss.item(), lam=getattr(mix, "lam", None),
                              shuffle=getattr(mix, "shuffle", None)))


class KeepRaw(Callback):
    """Keep each batch as the DataLoader gave it (order -10: before MixUp)."""

    order = -10

    def before_batch(self):
        self.raw = self.xb.clone()
        self.learn.spy.seen_raw = getattr(self.learn.spy, "seen_raw", []) + [self.raw]


def make_learner(cbs):
    torch.manual_seed(0)
    dls = toy_databunch("blobs", n_train=64, n_valid=32, bs=16)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    return Learner(model, dls, F.cross_entropy, opt_func=torch.optim.SGD, lr=0.1, cbs=cbs)


def test_mixup_blends_inputs_and_weights_the_loss_with_the_same_lambda():
    spy, mix = Spy(), MixUp(0.4)
    learn = make_learner([mix, spy, KeepRaw()])
    learn.fit(1)
    train = [(s, raw) for s, raw in zip(spy.seen, spy.seen_raw) if s["train"]]
    assert len(train) == 4
    lams = [s["lam"] for s, _ in train]
    assert all(0.5 <= lam <= 1 for lam in lams) and len(set(lams)) == 4  # a new lambda per batch
    for s, raw in train:
        lam, sh = s["lam"], s["shuffle"]
        assert torch.allclose(s["xb"], lam * raw + (1 - lam) * raw[sh], atol=1e-6)
        expected = lam * F.cross_entropy(s["pred"], s["yb"]) + (1 - lam) * F.cross_entropy(s["pred"], s["yb"][sh])
        assert s["loss"] == pytest.approx(expected.item(), rel=1e-5)
        assert not torch.equal(sh, torch.arange(len(sh))) or lam == 1


def test_mixup_is_off_at_validation_and_the_loss_function_comes_back():
    spy = Spy()
    learn = make_learner([MixUp(0.4), spy, KeepRaw()])
    learn.fit(1)
    valid = [(s, raw) for s, raw in zip(spy.seen, spy.seen_raw) if not s["train"]]
    assert len(valid) > 0
    for s, raw in valid:
        assert torch.equal(s["xb"], raw)
        assert s["loss"] == pytest.approx(F.cross_entropy(s["pred"], s["yb"]).item(), rel=1e-6)
    assert learn.loss_func is F.cross_entropy


def test_loss_function_is_restored_when_fit_fails():
    class Boom(Callback):
        order = 100

        def after_loss(self):
            raise RuntimeError("boom")

    learn = make_learner([])
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=[MixUp(0.4), Boom()])
    assert learn.loss_func is F.cross_entropy


def test_loss_function_is_kept_when_fit_fails_before_mixup_starts():
    class Early(Callback):
        order = -5

        def before_fit(self):
            raise CancelFitException()

    learn = make_learner([])
    learn.fit(1, cbs=[Early(), MixUp(0.4)])
    assert learn.loss_func is F.cross_entropy


def test_mixup_trains_with_label_smoothing_too():
    learn = make_learner([MixUp(0.2)])
    learn.loss_func = nn.CrossEntropyLoss(label_smoothing=0.1)
    before = [p.clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert isinstance(learn.loss_func, nn.CrossEntropyLoss)
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


@pytest.mark.parametrize("alpha", [0, -1])
def test_mixup_rejects_alpha_not_positive(alpha):
    with pytest.raises(ValueError, match="alpha > 0"):
        MixUp(alpha)
