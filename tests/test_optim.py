"""teachkit.optim against torch.optim, LAMB against the paper, state_dict resumes, bad hypers, the Learner."""
import io
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from teachkit.callbacks import ParamScheduler, Recorder
from teachkit.learner import Callback, Learner
from teachkit.optim import (Optimizer, adam_opt, average_grad, average_sqr_grad, debias, get_defaults, l2_reg, lamb_opt,
                            lamb_step, momentum_step, sgd_mom_opt, sgd_opt, sgd_step, step_stat, trust_ratio, weight_decay)
from teachkit.schedule import sched_cos, sched_lin
from teachkit.toy import toy_databunch


X = torch.randn(256, 10, generator=torch.Generator().manual_seed(1))
Y = torch.randint(0, 4, (256,), generator=torch.Generator().manual_seed(2))


def small_net(dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The same initial weights every call."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4)).to(dtype)


def groups(model: nn.Sequential, per_group: list[dict] | None) -> list:
    """All parameters, or one group per Linear with its own hypers (torch's dict form)."""
    if per_group is None:
        return list(model.parameters())
    return [{"params": list(m.parameters()), **h} for m, h in zip([model[0], model[2]], per_group)]


def train(model: nn.Module, opt, steps: int = 100, start: int = 0, x: torch.Tensor = X) -> nn.Module:
    """`steps` minibatches of 32, the same sequence for every optimizer."""
    for i in range(start, start + steps):
        j = (i * 32) % len(x)
        F.cross_entropy(model(x[j:j + 32].to(next(model.parameters()).dtype)), Y[j:j + 32]).backward()
        opt.step()
        opt.zero_grad()
    return model


def assert_same_params(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")


LR2 = [dict(lr=1.0), dict(lr=0.1)]  # a multiplier of each case's lr, per group

CASES = {  # name -> (teachkit optimizer, torch optimizer), with the same hyper-parameters
    "sgd": (lambda ps: sgd_opt(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd + decoupled wd": (lambda ps: sgd_opt(ps, lr=0.1, wd=0.05),
                           lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05)),
    "sgd + l2": (lambda ps: Optimizer(ps, [l2_reg, sgd_step], lr=0.1, wd=0.05),
                 lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05)),
    "sgd + momentum": (lambda ps: sgd_mom_opt(ps, lr=0.1, wd=0.0), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "sgd + momentum + l2": (lambda ps: Optimizer(ps, [l2_reg, average_grad, momentum_step], lr=0.1, mom=0.8, wd=0.05),
                            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, weight_decay=0.05)),
    "adam": (lambda ps: adam_opt(ps, lr=1e-2),
             lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.0)),
    "adamw": (lambda ps: adam_opt(ps, lr=1e-2, mom=0.8, sqr_mom=0.95, eps=1e-6, wd=0.1),
              lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
}


def scaled(per_group: list[dict] | None, make):
    """Build the optimizer, then scale each group's lr: per-group lrs in both libraries' own ways."""
    def _inner(ps):
        opt = make(ps)
        for h, g in zip(getattr(opt, "hypers", opt.param_groups), per_group or []):
            h["lr"] *= g["lr"]
        return opt
    return _inner


@pytest.mark.filterwarnings("error")  # no deprecated torch call anywhere on the way
@pytest.mark.parametrize("per_group", [None, LR2], ids=["one group", "two groups, lrs x1 and x0.1"])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_after_100_steps(case, per_group):
    assert_matches_after_100_steps(*CASES[case], per_group)


def assert_matches_after_100_steps(ours, theirs, per_group: list[dict] | None) -> None:
    """From the same start, the same weights (to 1e-6) after 100 steps of each optimizer."""
    a, b = small_net(), small_net()
    train(a, scaled(per_group, ours)(groups(a, [{}, {}] if per_group else None)))
    train(b, scaled(per_group, theirs)(groups(b, [{}, {}] if per_group else None)))
    assert_same_params(a, b)
    assert not torch.equal(a[0].weight, small_net()[0].weight)  # it did train


def test_per_group_hypers_from_dicts_match_torch():
    a, b = small_net(), small_net()
    train(a, adam_opt(groups(a, [dict(lr=1e-2, wd=0.1), dict(lr=1e-3, mom=0.5)]), lr=5e-3))
    torch_groups = groups(b, [dict(lr=1e-2, weight_decay=0.1), dict(lr=1e-3, betas=(0.5, 0.99))])
    train(b, torch.optim.AdamW(torch_groups, lr=5e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.0))
    assert_same_params(a, b)


# ---------------------------------------------------------------- LAMB

class PaperLamb:
    """LAMB as Algorithm 2 of You et al. (2019) writes it, one layer (tensor) l at a time, with the course's clamp at 10.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m^ = m / (1-b1^t);  v^ = v / (1-b2^t)
    r = m^ / (sqrt(v^) + eps);  s = r + wd w;  w <- w - lr * phi(||w||) / ||s|| * s, with phi(z) = z.
    The ratio is 1 when ||w|| or ||s|| is 0; `seen` records which branches ran.
    """

    def __init__(self, param_groups: list[dict], b1: float, b2: float, eps: float):
        self.groups, self.b1, self.b2, self.eps, self.t, self.seen = param_groups, b1, b2, eps, 0, set()
        self.m = {p: torch.zeros_like(p) for g in param_groups for p in g["params"]}
        self.v = {p: torch.zeros_like(p) for g in param_groups for p in g["params"]}

    @torch.no_grad()
    def step(self):
        self.t += 1
        for g in self.groups:
            for w in g["params"]:
                grad, m, v = w.grad, self.m[w], self.v[w]
                m.copy_(self.b1 * m + (1 - self.b1) * grad)
                v.copy_(self.b2 * v + (1 - self.b2) * grad * grad)
                m_hat, v_hat = m / (1 - self.b1 ** self.t), v / (1 - self.b2 ** self.t)
                s = m_hat / (torch.sqrt(v_hat) + self.eps) + g["wd"] * w
                w_norm, s_norm = math.sqrt(float((w * w).sum())), math.sqrt(float((s * s).sum()))
                if w_norm == 0 or s_norm == 0:
                    ratio = 1.0
                    self.seen.add("zero ||w||" if w_norm == 0 else "zero ||s||")
                else:
                    ratio = min(w_norm / s_norm, 10.0)
                    self.seen.add("clamped" if w_norm / s_norm > 10 else "ratio")
                w.copy_(w - g["lr"] * ratio * s)

    def zero_grad(self):
        for g in self.groups:
            for w in g["params"]:
                w.grad = None


class LambNet(nn.Module):
    """A net that meets every LAMB branch: huge weights (clamp), a zero bias (||w|| = 0), an unused tensor (||s|| = 0)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin1, self.lin2 = nn.Linear(10, 32), nn.Linear(32, 4)
        self.unused = nn.Parameter(torch.ones(3))
        with torch.no_grad():
            self.lin1.weight.mul_(100)
            self.lin2.bias.zero_()
        self.double()

    def forward(self, x):
        return self.lin2(F.relu(self.lin1(x / 100))) + 0 * self.unused.sum()

    def param_groups(self, lr: float, wd: float) -> list[dict]:
        """Decay the weights; no decay for biases and the unused tensor."""
        return [{"params": [self.lin1.weight, self.lin2.weight], "lr": lr, "wd": wd},
                {"params": [self.lin1.bias, self.lin2.bias, self.unused], "lr": lr, "wd": 0.0}]


def test_lamb_matches_the_paper():
    a, b = LambNet(), LambNet()
    train(a, lamb_opt(a.param_groups(lr=1e-2, wd=0.05), lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-6))
    ref = PaperLamb(b.param_groups(lr=1e-2, wd=0.05), b1=0.9, b2=0.99, eps=1e-6)
    train(b, ref)
    assert ref.seen == {"clamped", "ratio", "zero ||w||", "zero ||s||"}
    assert_same_params(a, b, atol=1e-9)  # float64: only rounding differs
    assert torch.isfinite(a.unused).all()


def test_trust_ratio_and_debias():
    one, zero = torch.tensor(1.0), torch.tensor(0.0)
    assert trust_ratio(torch.tensor(3.0), torch.tensor(2.0)) == 1.5
    assert trust_ratio(torch.tensor(300.0), one) == 10.0
    assert trust_ratio(zero, one) == 1.0 and trust_ratio(one, zero) == 1.0 and trust_ratio(zero, zero) == 1.0
    assert debias(0.9, 0.1, 1) == pytest.approx(0.1)  # a dampened average's weights sum to 1 - mom**step
    assert debias(0.9, 0.1, 500) == pytest.approx(1.0)
    assert debias(0.9, 1.0, 3) == pytest.approx(1 + 0.9 + 0.81)  # undampened: a geometric sum
    assert lamb_step._defaults == dict(eps=1e-6, wd=0.0)


# ---------------------------------------------------------------- state_dict

RESUMABLE = {
    "sgd": partial(sgd_opt, lr=0.1, wd=0.01),
    "sgd_mom": partial(sgd_mom_opt, lr=0.1),
    "adam": partial(adam_opt, lr=1e-2, wd=0.01),
    "adam foreach": partial(adam_opt, lr=1e-2, wd=0.01, foreach=True),
    "lamb": partial(lamb_opt, lr=1e-2, wd=0.01),
}


@pytest.mark.parametrize("case", RESUMABLE)
def test_state_dict_round_trip_resumes_bit_identically(case):
    make = RESUMABLE[case]
    straight = small_net()
    opt = make(groups(straight, LR2))
    train(straight, opt, steps=7)
    opt.hypers[1]["lr"] = 0.03  # as a scheduler would: the saved hypers must come back
    buf = io.BytesIO()
    torch.save({"model": straight.state_dict(), "opt": opt.state_dict()}, buf)
    train(straight, opt, steps=8, start=7)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = small_net()
    resumed.load_state_dict(saved["model"])
    opt2 = make(groups(resumed, LR2))
    opt2.load_state_dict(saved["opt"])
    assert opt2.hypers[1]["lr"] == 0.03
    train(resumed, opt2, steps=8, start=7)
    assert_same_params(straight, resumed, atol=0)


def test_state_dict_is_a_copy_and_keyed_by_position():
    model = small_net()
    opt = adam_opt(model.parameters(), lr=1e-2)
    train(model, opt, steps=2)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3] and sd["state"][0]["step"] == 2
    train(model, opt, steps=1, start=2)
    assert sd["state"][0]["step"] == 2 and not torch.equal(sd["state"][0]["grad_avg"], opt.state[model[0].weight]["grad_avg"])


def test_load_state_dict_refuses_another_layout():
    model = small_net()
    opt = adam_opt(model.parameters(), lr=1e-2)
    train(model, opt, steps=1)
    with pytest.raises(ValueError, match="groups"):
        adam_opt(groups(small_net(), LR2), lr=1e-2).load_state_dict(opt.state_dict())
    other = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 5))
    with pytest.raises(ValueError, match="shape"):
        adam_opt(other.parameters(), lr=1e-2).load_state_dict(opt.state_dict())


# ---------------------------------------------------------------- hyper-parameters

@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr=float("inf")), "lr"), (dict(lr="0.1"), "lr"),
    (dict(mom=1.0), "mom"), (dict(mom=-0.1), "mom"), (dict(sqr_mom=1.5), "sqr_mom"), (dict(sqr_mom=float("nan")), "sqr_mom"),
    (dict(eps=0.0), "eps"), (dict(eps=float("nan")), "eps"), (dict(wd=-1e-4), "wd"), (dict(wd=float("nan")), "wd"),
])
def test_bad_hypers_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name} in param group 0\b"):
        adam_opt(small_net().parameters(), **{"lr": 1e-3, **kwargs})


def test_bad_hyper_in_one_group_names_the_group():
    with pytest.raises(ValueError, match=r"lr in param group 1 must be >= 0"):
        sgd_mom_opt(groups(small_net(), [dict(), dict(lr=-1.0)]), lr=0.1)


def test_unknown_hyper_names_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"'beta1'.*did you mean 'mom'"):
        adam_opt(groups(small_net(), [dict(), dict(beta1=0.5)]), lr=1e-3)
    with pytest.raises(ValueError, match=r"'wdd'.*did you mean 'wd'"):
        Optimizer(small_net().parameters(), [weight_decay, sgd_step], lr=0.1, wdd=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        Optimizer(small_net().parameters(), sgd_step)


def test_a_scheduler_setting_a_bad_value_is_refused_where_it_is_set():
    model = small_net()
    opt = adam_opt(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="mom in param group 0"):
        opt.hypers[0]["mom"] = float("nan")
    assert opt.hypers[0]["mom"] == 0.9  # the bad value never got in
    F.cross_entropy(model(X[:8]), Y[:8]).backward()
    opt.step()


def test_defaults_merge_user_values_win():
    model = small_net()
    opt = Optimizer(model.parameters(), [weight_decay, average_grad, average_sqr_grad, step_stat, momentum_step],
                    lr=0.1, mom=0.5)
    assert opt.hypers == [dict(lr=0.1, mom=0.5, sqr_mom=0.99, wd=0.0)]
    assert get_defaults(sgd_step) == {} and get_defaults(average_grad) == dict(mom=0.9)
    assert get_defaults(partial(average_grad, dampening=True)) == dict(mom=0.9)  # through a partial
    opt = Optimizer(model.parameters(), [weight_decay, l2_reg, lamb_step], lr=0.1, wd=0.3)
    assert opt.hypers == [dict(lr=0.1, wd=0.3, eps=1e-6)]


def test_factory_defaults_are_the_courses():
    ps = small_net().parameters
    assert sgd_opt(ps(), lr=0.1).hypers == [dict(lr=0.1, wd=0.0)]
    assert sgd_mom_opt(ps(), lr=0.1).hypers == [dict(lr=0.1, mom=0.9, wd=0.01)]
    assert adam_opt(ps(), lr=0.1).hypers == [dict(lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.0)]
    assert lamb_opt(ps(), lr=0.1).hypers == [dict(lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-6, wd=0.0)]


# ---------------------------------------------------------------- params, zero_grad, step

def test_params_forms():
    model = small_net()
    ws = [model[0].weight, model[2].weight]
    assert len(sgd_opt(model.parameters(), lr=0.1).param_groups) == 1
    assert sgd_opt(ws, lr=0.1).param_groups == [ws]
    opt = sgd_opt([ws, [model[0].bias]], lr=0.1)
    assert [len(g) for g in opt.param_groups] == [2, 1] and len(opt.hypers) == 2
    opt = sgd_opt([{"params": ws, "lr": 0.5}, {"params": model[0].bias}], lr=0.1, wd=0.01)
    assert opt.hypers == [dict(lr=0.5, wd=0.01), dict(lr=0.1, wd=0.01)]
    assert opt.hypers[0] is not opt.hypers[1]
    for bad, msg in [(model[0].weight, "single tensor"), ([], "no parameters"), ([ws, ws[:1]], "twice"),
                     ([{"params": []}], "non-empty")]:
        with pytest.raises(ValueError, match=msg):
            sgd_opt(bad, lr=0.1)


def test_step_skips_params_without_grad_and_records_no_graph():
    model = small_net()
    opt = adam_opt(model.parameters(), lr=0.1)
    frozen = model[0].weight.clone()
    model[0].weight.requires_grad_(False)
    F.cross_entropy(model(X[:8]), Y[:8]).backward()
    opt.step()
    assert torch.equal(model[0].weight, frozen) and model[0].weight not in opt.state
    assert model[2].weight.grad_fn is None and model[2].weight.requires_grad
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(X[:8]), Y[:8]).backward()
    opt.zero_grad(set_to_none=False)
    assert (model[2].weight.grad == 0).all()


# ---------------------------------------------------------------- with the Learner

class RecordHypers(Callback):
    """Keep every group's hypers as the optimizer saw them at each training step."""

    def before_fit(self):
        self.seen = []

    def after_step(self):
        self.seen.append([dict(h) for h in self.opt.hypers])


def blobs_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.mark.parametrize("opt_func, pname, sched", [
    (sgd_mom_opt, "mom", sched_cos(0.95, 0.85)),
    (partial(adam_opt, wd=0.01), "mom", sched_lin(0.95, 0.85)),  # mom is Adam's beta1
    (partial(lamb_opt, wd=0.01), "wd", sched_lin(0.0, 0.1)),
])
def test_learner_with_param_schedulers(opt_func, pname, sched):
    lr_sched = sched_cos(0.05, 0.005)
    hypers = RecordHypers()
    learn = Learner(blobs_model(), toy_databunch("blobs"), opt_func=opt_func, lr=0.05,
                    cbs=[Recorder(), hypers, ParamScheduler("lr", lr_sched), ParamScheduler(pname, sched)])
    learn.fit(2)
    n = len(learn.recorder.losses)
    assert n == 16
    positions = [i / n for i in range(n)]
    assert learn.recorder.lrs[0] == pytest.approx([lr_sched(t) for t in positions])
    assert [s[0][pname] for s in hypers.seen] == pytest.approx([sched(t) for t in positions])
    assert sum(learn.recorder.losses[-4:]) / 4 < 0.5 * learn.recorder.losses[0]


def test_learner_per_group_schedules_and_default_opt_func():
    def splitter(m):
        return [list(m[0].parameters()), list(m[2].parameters())]
    scheds = [sched_lin(0.01, 0.0), sched_lin(0.1, 0.05)]
    learn = Learner(blobs_model(), toy_databunch("blobs"), opt_func=adam_opt, lr=0.01, splitter=splitter,
                    cbs=[Recorder(), ParamScheduler("lr", scheds)])
    learn.fit(1)
    assert learn.recorder.lrs[0][0] == 0.01 and learn.recorder.lrs[1][0] == 0.1
    assert learn.recorder.lrs[0][-1] < 0.01 and learn.recorder.lrs[1][-1] < 0.1

    learn = Learner(blobs_model(), toy_databunch("blobs"), lr=0.1, cbs=[Recorder()])  # sgd_opt by default
    learn.fit(2)
    assert learn.opt.hypers == [dict(lr=0.1, wd=0.0)]
    assert learn.recorder.losses[-1] < learn.recorder.losses[0]


def test_repr_names_stats_and_steppers():
    text = repr(adam_opt(small_net().parameters(), lr=1e-3))
    assert "average_grad(dampening=True)" in text and "adam_step" in text and "'sqr_mom': 0.99" in text
