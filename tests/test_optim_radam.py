"""RAdam against torch.optim.RAdam, Lookahead against the paper's algorithm, Ranger's defaults, state_dict, the Learner."""
import io
from functools import partial

import pytest
import torch
from test_optim import LR2, assert_matches_after_100_steps, assert_same_params, groups, small_net, train

from teachkit.callbacks import ParamScheduler, Recorder
from teachkit.learner import Learner
from teachkit.optim import (Optimizer, adam_stats, adam_step, l2_reg, lookahead, radam_opt, radam_step, ranger_opt,
                            weight_decay)
from teachkit.schedule import sched_cos
from teachkit.toy import toy_databunch

RADAM_CASES = {  # name -> (teachkit, torch), the same hyper-parameters; torch's weight_decay is L2 unless decoupled
    "torch's defaults": (lambda ps: radam_opt(ps, lr=1e-3, sqr_mom=0.999, eps=1e-8),
                         lambda ps: torch.optim.RAdam(ps, lr=1e-3)),
    "course's betas, eps 1e-5": (lambda ps: radam_opt(ps, lr=1e-2),
                                 lambda ps: torch.optim.RAdam(ps, lr=1e-2, betas=(0.9, 0.99), eps=1e-5)),
    "decoupled wd": (lambda ps: radam_opt(ps, lr=1e-2, mom=0.95, eps=1e-6, wd=0.1),
                     lambda ps: torch.optim.RAdam(ps, lr=1e-2, betas=(0.95, 0.99), eps=1e-6, weight_decay=0.1,
                                                  decoupled_weight_decay=True)),
    "L2 (torch's default weight_decay)": (
        lambda ps: Optimizer(ps, [l2_reg, *adam_stats(), radam_step], lr=1e-2, eps=1e-6, wd=0.1),
        lambda ps: torch.optim.RAdam(ps, lr=1e-2, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1)),
}


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("per_group", [None, LR2], ids=["one group", "two groups, lrs x1 and x0.1"])
@pytest.mark.parametrize("case", RADAM_CASES)
def test_radam_matches_torch_after_100_steps(case, per_group):
    assert_matches_after_100_steps(*RADAM_CASES[case], per_group)


def test_radam_takes_momentum_steps_until_the_variance_is_defined():
    """With sqr_mom 0.99, rho <= 5 for steps 1..5: those steps are debiased momentum SGD, whatever sqr_avg holds."""
    p = torch.zeros(3)
    avg, sqr = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([1e6, 1e-6, 1.0])
    for step in range(1, 6):
        q = p.clone()
        radam_step(q, lr=0.1, mom=0.9, sqr_mom=0.99, step=step, grad_avg=avg, sqr_avg=sqr, eps=1e-5)
        torch.testing.assert_close(q, -0.1 * avg / (1 - 0.9**step))
    q = p.clone()
    radam_step(q, lr=0.1, mom=0.9, sqr_mom=0.99, step=6, grad_avg=avg, sqr_avg=sqr, eps=1e-5)
    assert q[0].abs() < 1e-3 < q[1].abs()  # now divided by the root of sqr_avg


class PaperLookahead:
    """Lookahead as Algorithm 1 of Zhang et al. (2019) writes it, around any torch optimizer.

    phi = theta at the start; then repeat: k steps of the inner optimizer on theta;
    phi <- phi + alpha * (theta - phi); theta <- phi.
    """

    def __init__(self, inner: torch.optim.Optimizer, k: int, alpha: float):
        self.inner, self.k, self.alpha, self.t = inner, k, alpha, 0
        self.params = [p for g in inner.param_groups for p in g["params"]]
        self.slow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def step(self):
        self.inner.step()
        self.t += 1
        if self.t % self.k == 0:
            for theta, phi in zip(self.params, self.slow):
                phi.copy_(phi + self.alpha * (theta - phi))
                theta.copy_(phi)

    def zero_grad(self):
        self.inner.zero_grad()


def torch_ranger(ps, lr, k=6, alpha=0.5):
    return PaperLookahead(torch.optim.RAdam(ps, lr=lr, betas=(0.95, 0.99), eps=1e-6, weight_decay=0.01,
                                            decoupled_weight_decay=True), k=k, alpha=alpha)


@pytest.mark.parametrize("steps", [96, 100], ids=["just after a sync", "4 fast steps after a sync"])
def test_ranger_is_lookahead_over_radam(steps):
    a, b, plain = small_net(), small_net(), small_net()
    train(a, ranger_opt(groups(a, [dict(lr=1e-2), dict(lr=3e-3)]), lr=1e-2), steps=steps)
    train(b, torch_ranger(groups(b, [dict(lr=1e-2), dict(lr=3e-3)]), lr=1e-2), steps=steps)
    assert_same_params(a, b)
    train(plain, radam_opt(groups(plain, [dict(lr=1e-2), dict(lr=3e-3)]), lr=1e-2, mom=0.95, eps=1e-6, wd=0.01),
          steps=steps)
    assert (a[0].weight - plain[0].weight).abs().max() > 1e-3  # Lookahead did change the path


def test_lookahead_wraps_any_steppers():
    a, b = small_net(), small_net()
    ours = Optimizer(a.parameters(), lookahead([weight_decay, *adam_stats(), adam_step]), lr=1e-2, wd=0.05, k=5, alpha=0.8)
    train(a, ours, steps=53)
    inner = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.05)
    train(b, PaperLookahead(inner, k=5, alpha=0.8), steps=53)
    assert_same_params(a, b)


def test_ranger_state_dict_resumes_bit_identically_across_a_sync():
    straight = small_net()
    opt = ranger_opt(groups(straight, LR2), lr=1e-2)
    train(straight, opt, steps=7)
    buf = io.BytesIO()
    torch.save({"model": straight.state_dict(), "opt": opt.state_dict()}, buf)
    train(straight, opt, steps=8, start=7)  # through the sync at step 12
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert set(saved["opt"]["state"][0]) == {"slow_p", "grad_avg", "sqr_avg", "step"}
    resumed = small_net()
    resumed.load_state_dict(saved["model"])
    opt2 = ranger_opt(groups(resumed, LR2), lr=1e-2)
    opt2.load_state_dict(saved["opt"])
    train(resumed, opt2, steps=8, start=7)
    assert_same_params(straight, resumed, atol=0)


def test_defaults_are_fastai2s_imagenette_record():
    ps = small_net().parameters
    assert ranger_opt(ps(), lr=1e-2).hypers == [dict(lr=1e-2, mom=0.95, sqr_mom=0.99, eps=1e-6, wd=0.01, k=6, alpha=0.5)]
    assert radam_opt(ps(), lr=1e-2).hypers == [dict(lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.0)]
    assert "slow_weights, weight_decay" in repr(ranger_opt(ps(), lr=1e-2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k in param group 0 must be a whole number >= 1"), (dict(k=2.5), "k in param group 0"),
    (dict(alpha=0.0), r"alpha in param group 0 must be in \(0, 1\]"), (dict(alpha=1.5), "alpha in param group 0"),
])
def test_bad_lookahead_hypers_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ranger_opt(small_net().parameters(), lr=1e-2, **kwargs)


def test_ranger_trains_with_the_learner_and_a_momentum_schedule():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    learn = Learner(model, toy_databunch("blobs"), opt_func=partial(ranger_opt, wd=0.0), lr=3e-2,
                    cbs=[Recorder(), ParamScheduler("mom", sched_cos(0.95, 0.85))])
    learn.fit(3)
    assert learn.opt.hypers[0]["mom"] < 0.95
    assert sum(learn.recorder.losses[-4:]) / 4 < 0.5 * learn.recorder.losses[0]
