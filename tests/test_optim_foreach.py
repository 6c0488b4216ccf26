"""The list (foreach) path of teachkit.optim gives the readable path's numbers and state, group by group."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from test_optim import LR2, X, Y, assert_same_params, groups, small_net, train

from teachkit.optim import (Optimizer, adam_opt, make_optimizer, average_grad, l2_reg, lamb_opt, lamb_step, momentum_step, radam_opt,
                            radam_step, ranger_opt, sgd_mom_opt, sgd_opt, sgd_step, weight_decay)
from teachkit.optim.foreach import FOREACH_VERSIONS, list_version

CASES = {
    "sgd + wd": partial(sgd_opt, lr=0.1, wd=0.05),
    "sgd + l2": lambda ps, **kw: make_optimizer(ps, [l2_reg, sgd_step], lr=0.1, wd=0.05, **kw),
    "momentum + wd": partial(sgd_mom_opt, lr=0.1, wd=0.05),
    "momentum + l2": lambda ps, **kw: make_optimizer(ps, [l2_reg, average_grad, momentum_step], lr=0.1, wd=0.05, **kw),
    "momentum, dampened": lambda ps, **kw: make_optimizer(ps, [weight_decay, partial(average_grad, dampening=True),
                                                          momentum_step], lr=0.1, **kw),
    "adamw": partial(adam_opt, lr=1e-2, wd=0.1),
    "lamb (no list version: falls back to the loop)": partial(lamb_opt, lr=1e-2, wd=0.1),
    "radam (falls back)": partial(radam_opt, lr=1e-2, wd=0.1),
    "ranger (falls back)": partial(ranger_opt, lr=1e-2),
}

THREE_GROUPS = [dict(lr=1.0), dict(lr=0.1, wd=0.0), dict(lr=0.5)]


def three_groups(model, make, **kw):
    """Weights of layer 1, biases of both layers, weight of layer 2: three groups with their own lrs."""
    ps = [[model[0].weight], [model[0].bias, model[2].bias], [model[2].weight]]
    opt = make(ps, **kw)
    for h, g in zip(opt.hypers, THREE_GROUPS):
        h["lr"] *= g["lr"]
        if "wd" in g and "wd" in h:
            h["wd"] = g["wd"]
    return opt


@pytest.mark.parametrize("case", CASES)
def test_foreach_path_agrees_with_the_readable_one(case):
    a, b = small_net(), small_net()
    opt_a, opt_b = three_groups(a, CASES[case]), three_groups(b, CASES[case], foreach=True)
    train(a, opt_a, steps=100)
    train(b, opt_b, steps=100)
    assert_same_params(a, b, atol=0)  # on the CPU the list ops run the very same kernels
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["hypers"] == sb["hypers"] and sa["state"].keys() == sb["state"].keys()
    for i, s in sa["state"].items():
        assert s.keys() == sb["state"][i].keys()
        for k, v in s.items():
            assert torch.equal(v, sb["state"][i][k]) if torch.is_tensor(v) else v == sb["state"][i][k]


def test_two_groups_and_a_parameter_that_joins_late():
    """A parameter without a gradient is skipped; when it gets one, its state starts then, as on the readable path."""
    a, b = small_net(), small_net()
    opt_a, opt_b = adam_opt(groups(a, LR2), lr=1e-2), adam_opt(groups(b, LR2), lr=1e-2, foreach=True)
    for m in (a, b):
        m[2].bias.requires_grad_(False)
    train(a, opt_a, steps=5)
    train(b, opt_b, steps=5)
    assert b[2].bias not in opt_b.state
    for m in (a, b):
        m[2].bias.requires_grad_(True)
    train(a, opt_a, steps=20, start=5)
    train(b, opt_b, steps=20, start=5)
    assert_same_params(a, b, atol=0)
    assert opt_b.state[b[2].bias]["step"] == 20 and opt_b.state[b[2].weight]["step"] == 25


def test_every_list_version_is_used_and_partials_keep_their_keywords():
    fast = list_version(partial(average_grad, dampening=True))
    assert fast.func is FOREACH_VERSIONS[average_grad] and fast.keywords == dict(dampening=True)
    assert list_version(lamb_step) is None and list_version(radam_step) is None  # these run one tensor at a time
    model = small_net()
    F.cross_entropy(model(X[:8]), Y[:8]).backward()
    used = {f.func if isinstance(f, partial) else f for f in adam_opt(model.parameters(), lr=0.1).steppers}
    assert used <= set(FOREACH_VERSIONS)  # Adam runs entirely on list ops
