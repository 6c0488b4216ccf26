"""Checkers of lessons 10b, 10c and 11: each reference passes and agrees with teachkit, typical mistakes get their hint."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from teachkit.exercises import l10b, l10c, l11
from teachkit.mixup import LabelSmoothingCrossEntropy, mixup_loss
from teachkit.precision import LossScaler
from teachkit.xresnet import ResBlock, shortcut

from checking import assert_caught, not_smoke, stub  # noqa: F401 (not_smoke: an autouse fixture)


# ---------------------------------------------------------------- 10b

def test_mixup_loss_reference_passes_and_is_teachkits():
    assert l10b.check_mixup_loss(l10b.solution_mixup_loss).ok
    assert l10b.check_mixup_loss(lambda lf, p, y, y1, lam: mixup_loss(lf, p, y, y1, lam)).ok


def test_mixup_loss_swapped_lambda_is_caught():
    def mix(loss_func, pred, yb, yb1, lam):
        return (1 - lam) * loss_func(pred, yb) + lam * loss_func(pred, yb1)
    assert_caught(l10b.check_mixup_loss(mix), "against yb (the batch's own targets) is 0.3, expected 0.7",
                  "lam goes with the batch's own targets")


def test_mixup_loss_half_and_half_and_missing_term_are_caught():
    assert_caught(l10b.check_mixup_loss(lambda lf, p, y, y1, lam: 0.5 * lf(p, y) + 0.5 * lf(p, y1)),
                  "is 0.5, expected 0.7", "not half and half")
    assert_caught(l10b.check_mixup_loss(lambda lf, p, y, y1, lam: lam * lf(p, y)),
                  "shuffled targets) is 0, expected 0.3", "add (1 - lam)")


def test_mixup_loss_stub_and_wrong_signature():
    def mixup_loss(loss_func, pred, yb, yb1, lam):
        "The loss of a blended batch."
        raise NotImplementedError  # your code here
    assert_caught(l10b.check_mixup_loss(mixup_loss), "your `mixup_loss` is not written yet")
    assert_caught(l10b.check_mixup_loss(lambda pred, yb, lam: pred), "raised TypeError", "mixup_loss(loss_func, pred")


def test_label_smoothing_reference_passes_and_equals_pytorch_and_the_course_class():
    assert l10b.check_label_smoothing_ce(l10b.solution_label_smoothing_ce).ok
    torch.manual_seed(0)
    out, y = torch.randn(32, 6), torch.randint(0, 6, (32,))
    ref = l10b.solution_label_smoothing_ce(out, y, 0.2)
    assert torch.allclose(ref, nn.CrossEntropyLoss(label_smoothing=0.2)(out, y), atol=1e-6)
    assert torch.allclose(ref, LabelSmoothingCrossEntropy(0.2)(out, y), atol=1e-6)
    assert l10b.check_label_smoothing_ce(lambda o, t, eps: F.cross_entropy(o, t, label_smoothing=eps)).ok


def test_label_smoothing_sum_over_classes_is_caught():
    def ls(output, target, eps):
        lp = F.log_softmax(output, -1)
        return (1 - eps) * F.nll_loss(lp, target) + eps * (-lp.sum(-1)).mean()
    assert_caught(l10b.check_label_smoothing_ce(ls), "the loss is", "eps / c each")


def test_label_smoothing_swapped_eps_and_wrong_classes_only_are_caught():
    assert_caught(l10b.check_label_smoothing_ce(lambda o, t, eps: l10b.solution_label_smoothing_ce(o, t, 1 - eps)),
                  "(1 - eps) * nll")

    def wrong_only(output, target, eps):
        c = output.size(-1)
        q = torch.full_like(output, eps / (c - 1)).scatter_(1, target[:, None], 1 - eps)
        return -(q * F.log_softmax(output, -1)).sum(-1).mean()
    assert_caught(l10b.check_label_smoothing_ce(wrong_only), "the right one included")


# ---------------------------------------------------------------- 10c

def test_unscale_reference_passes_and_agrees_with_loss_scaler_and_torch_amp():
    assert l10c.check_unscale_grads(l10c.solution_unscale_grads).ok
    for make in l10c.UNSCALE_CASES:
        a, scale = make.make()
        b, _ = make.make()
        c, _ = make.make()
        found_inf = torch.zeros(1)  # what torch.amp.GradScaler runs: its verdict is independent of teachkit's
        torch._amp_foreach_non_finite_check_and_unscale_([p.grad for p in c], found_inf, torch.tensor([1 / scale]))
        ok = l10c.solution_unscale_grads(a, scale)
        assert ok == LossScaler(scale).unscale_(b) == (found_inf.item() == 0)
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(a, b) if p.grad.isfinite().all())
        assert all(torch.allclose(p.grad, q.grad, equal_nan=True) for p, q in zip(a, c))


def test_unscale_multiplying_and_missing_nan_are_caught():
    def times(params, scale):
        for p in params:
            p.grad *= scale
        return all(p.grad.isfinite().all() for p in params)
    assert_caught(l10c.check_unscale_grads(times), "gradients after unscaling", "divide them")

    def isinf_only(params, scale):
        for p in params:
            p.grad /= scale
        return not any(p.grad.isinf().any() for p in params)
    assert_caught(l10c.check_unscale_grads(isinf_only), "NaN", "is True, expected False", "isfinite()")


def test_unscale_not_in_place_is_caught():
    def copy(params, scale):
        return all((p.grad / scale).isfinite().all() for p in params)
    assert_caught(l10c.check_unscale_grads(copy), "in place")


@pytest.mark.parametrize("case", l10c.UPDATE_CASES, ids=lambda c: c.name)
def test_update_scale_reference_follows_loss_scaler_and_torch_amp(case):
    assert l10c.check_update_scale(l10c.solution_update_scale).ok
    scale, interval, events = case.make()
    s, good, ours = LossScaler(scale, growth_interval=interval), 0, scale
    amp_scale, amp_good = torch.tensor([scale]), torch.tensor([0], dtype=torch.int32)
    for inf in events:
        s.update(inf)
        ours, good = l10c.solution_update_scale(ours, good, inf, interval)
        torch._amp_update_scale_(amp_scale, amp_good, torch.tensor([float(inf)]), 2.0, 0.5, interval)  # GradScaler's
        assert ours == s.scale == amp_scale.item() and good == s.good_steps == amp_good.item()


def test_update_scale_doubling_on_overflow_is_caught():
    def upd(scale, good, inf, interval):
        if inf:
            return scale * 2, 0
        good += 1
        return (scale * 2, 0) if good == interval else (scale, good)
    assert_caught(l10c.check_update_scale(upd), "after step 3 (overflow) is 2048, expected 512", "halve it")


def test_update_scale_counters_not_reset_are_caught():
    def keep_count(scale, good, inf, interval):
        if inf:
            return scale / 2, good
        good += 1
        return (scale * 2, 0) if good == interval else (scale, good)
    assert_caught(l10c.check_update_scale(keep_count), "step 4", "*in a row*")

    def never_reset(scale, good, inf, interval):
        if inf:
            return scale / 2, 0
        good += 1
        return (scale * 2 if good >= interval else scale), good
    assert_caught(l10c.check_update_scale(never_reset), "step 7", "set good_steps back to 0")


# ---------------------------------------------------------------- 11

def test_shortcut_reference_passes_and_is_teachkits():
    assert l11.check_shortcut(l11.solution_shortcut).ok
    assert l11.check_shortcut(shortcut).ok


def test_shortcut_strided_conv_is_caught():
    def resnet_b(ni, nf, stride=1):
        if ni == nf and stride == 1:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(ni, nf, 1, stride=stride, bias=False), nn.BatchNorm2d(nf))
    assert_caught(l11.check_shortcut(resnet_b), "stride 2", "number of parameters is 80, expected 0",
                  "strided 1x1 conv")


def test_shortcut_missing_ceil_mode_and_max_pool_are_caught():
    def no_ceil(ni, nf, stride=1):
        return nn.Sequential(*([nn.AvgPool2d(2)] if stride == 2 else []),
                             *([nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf)] if ni != nf else []))
    assert_caught(l11.check_shortcut(no_ceil), "shape is (2, 8, 3, 3), expected (2, 8, 4, 4)", "ceil_mode=True")

    def max_pool(ni, nf, stride=1):
        return nn.Sequential(*([nn.MaxPool2d(2, ceil_mode=True)] if stride == 2 else []),
                             *([nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf)] if ni != nf else []))
    assert_caught(l11.check_shortcut(max_pool), "averages the pixels")


def test_a_1x1_conv_before_the_pool_is_hidden_in_eval_mode_and_shows_in_training():
    before = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.AvgPool2d(2, ceil_mode=True))
    after = shortcut(8, 16, 2)
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        after[1].conv.weight.copy_(before[0].weight)  # the same conv weights, and fresh BatchNorms, in both
        assert torch.allclose(before.eval()(x), after.eval()(x), atol=1e-5)  # pool and 1x1 conv commute
        assert not torch.allclose(before.train()(x), after.train()(x), atol=1e-3)  # batch statistics differ


def test_shortcut_returning_a_tensor_op_is_named():
    assert_caught(l11.check_shortcut(lambda ni, nf, stride=1: None), "what your function returns is 'NoneType'")


@pytest.mark.parametrize("args", l11.PARAM_ARGS)
def test_resblock_params_solution_counts_the_real_block(args):
    assert l11.solution_resblock_params(*args) == sum(p.numel() for p in ResBlock(*args).parameters())


def test_resblock_params_reference_passes_and_missing_batchnorm_is_caught():
    assert l11.check_resblock_params(l11.solution_resblock_params).ok

    def no_bn(e, ni, nh, stride=1):
        ni, nf = ni * e, nh * e
        convs = [ni * nh * 9, nh * nf * 9] if e == 1 else [ni * nh, nh * nh * 9, nh * nf]
        return sum(convs) + (ni * nf if ni != nf else 0)
    assert_caught(l11.check_resblock_params(no_bn), "is 73728, expected 73984", "2 * nf")


def test_resblock_params_missing_shortcut_and_unexpanded_ni_are_caught():
    def no_short(e, ni, nh, stride=1):
        ni, nf = ni * e, nh * e
        if e == 1:
            return ni * nh * 9 + 2 * nh + nh * nf * 9 + 2 * nf
        return ni * nh + 2 * nh + nh * nh * 9 + 2 * nh + nh * nf + 2 * nf
    assert_caught(l11.check_resblock_params(no_short), "ResBlock(1, 64, 128, stride=2)", "1x1 conv and its BatchNorm")

    def unexpanded(e, ni, nh, stride=1):
        nf = nh * e
        if e == 1:
            return l11.solution_resblock_params(e, ni, nh, stride)
        b = ni * nh + 2 * nh + nh * nh * 9 + 2 * nh + nh * nf + 2 * nf
        return b + (ni * nf + 2 * nf if ni != nf else 0)
    assert_caught(l11.check_resblock_params(unexpanded), "ResBlock(4, 16, 64, stride=1)", "ni * expansion")


def test_smoke_mode_gives_a_stub_words_not_a_tick(monkeypatch):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    for check in (l10b.check_mixup_loss, l10b.check_label_smoothing_ce, l10c.check_unscale_grads,
                  l10c.check_update_scale, l11.check_shortcut, l11.check_resblock_params):
        assert_caught(check(stub), "your `stub` is not written yet")


# ---------------------------------------------------------------- wrong solutions a learner plausibly writes
# Each passed the checkers of issue 21's day; each must be refused, with the hint for its mistake.

def mixup_loss_max_lam(loss_func, pred, yb, yb1, lam):
    lam = max(lam, 1 - lam)  # "the original image should dominate", as in the course's callback
    return lam * loss_func(pred, yb) + (1 - lam) * loss_func(pred, yb1)


def unscale_grads_last_decides(params, scale):
    for p in params:
        p.grad /= scale
        finite = p.grad.isfinite().all().item()
    return finite


def update_scale_count_never_reset(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale / 2, 0
    good_steps += 1
    if good_steps == growth_interval:
        scale *= 2
    return scale, good_steps


def update_scale_floor_division(scale, good_steps, found_inf, growth_interval):
    if found_inf:
        return scale // 2, 0
    good_steps += 1
    if good_steps == growth_interval:
        return scale * 2, 0
    return scale, good_steps


def shortcut_conv_before_pool(ni, nf, stride=1):
    layers = []
    if ni != nf:
        layers += [nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf)]
    if stride != 1:
        layers.append(nn.AvgPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


WRONG_SOLUTIONS = [
    (l10b.check_mixup_loss, mixup_loss_max_lam, ["lam = 0.3", "is 0.7, expected 0.3", "use lam as it is given"]),
    (l10c.check_unscale_grads, unscale_grads_last_decides, ["inf in the first of two gradients", "is True, expected False",
                                                            "not just the last one"]),
    (l10c.check_update_scale, update_scale_count_never_reset, ["8 good steps", "after step 6 (no overflow) is 2048, "
                                                               "expected 4096", "set good_steps back to 0"]),
    (l10c.check_update_scale, update_scale_floor_division, ["after step 3 (overflow) is 0, expected 0.5",
                                                            "halve with scale / 2"]),
    (l11.check_shortcut, shortcut_conv_before_pool, ["output in training mode", "pool first, then the 1x1 conv"]),
]


@pytest.mark.parametrize("check,wrong,words", WRONG_SOLUTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_plausible_wrong_solution_is_refused_with_its_hint(check, wrong, words):
    assert_caught(check(wrong), f"your `{wrong.__name__}`", *words)
