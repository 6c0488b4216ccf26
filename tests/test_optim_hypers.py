"""Hyper-parameters are checked where they are set: construction, a scheduler's write, load_state_dict."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from test_optim import X, Y, small_net, train

from teachkit.callbacks import LRFinder, ParamScheduler, Recorder
from teachkit.learner import Learner
from teachkit.optim import adam_opt, sgd_mom_opt, sgd_opt
from teachkit.optim.hypers import HYPER_RULES
from teachkit.schedule import sched_lin
from teachkit.toy import toy_databunch


@pytest.mark.parametrize("torch_name, ours", [("beta1", "mom"), ("betas", "mom and sqr_mom"), ("weight_decay", "wd"),
                                              ("momentum", "mom"), ("beta2", "sqr_mom")])
def test_torch_names_are_refused_with_ours(torch_name, ours):
    with pytest.raises(ValueError, match=rf"'{torch_name}'.*did you mean '{ours}'"):
        adam_opt([{"params": small_net().parameters(), torch_name: 0.5}], lr=1e-3)  # torch's dict form
    with pytest.raises(ValueError, match=rf"'{torch_name}'.*did you mean '{ours}'"):
        adam_opt(small_net().parameters(), lr=1e-3).hypers[0][torch_name] = 0.5


def test_every_way_of_writing_a_group_is_checked_and_a_bad_write_changes_nothing():
    h = adam_opt(small_net().parameters(), lr=1e-3).hypers[0]
    before = dict(h)
    for write in [lambda: h.update(lr=0.1, eps=0.0), lambda: h.update({"mom": 1.0}), lambda: h.setdefault("beta1", 0.5),
                  lambda: h.__ior__({"wd": -1.0}), lambda: h.__setitem__("sqr_mom", float("nan"))]:
        with pytest.raises(ValueError, match="param group 0"):
            write()
    assert h == before  # update checks every value before it changes any
    for remove in [lambda: h.pop("lr"), lambda: h.clear(), lambda: h.__delitem__("eps"), lambda: h.popitem()]:
        with pytest.raises(ValueError, match="changed, not removed"):
            remove()
    h.update(lr=0.5)
    h |= {"mom": 0.8}
    assert (h["lr"], h["mom"], h.setdefault("eps", 1.0)) == (0.5, 0.8, 1e-5)


def test_copies_and_pickles_keep_the_checks():
    opt = adam_opt(small_net().parameters(), lr=1e-3)
    for h in [copy.deepcopy(opt.hypers[0]), copy.copy(opt.hypers[0]), pickle.loads(pickle.dumps(opt.hypers[0]))]:
        assert h == opt.hypers[0]
        with pytest.raises(ValueError, match="lr in param group 0"):
            h["lr"] = -1.0


def test_lr_zero_is_valid_and_freezes_the_group():
    """A warm-up from 0, an annealed end or a frozen group: torch.optim accepts lr = 0, and so does teachkit."""
    model = small_net()
    w = model[0].weight.detach().clone()
    opt = sgd_mom_opt([{"params": model[0].parameters(), "lr": 0.0}, {"params": model[2].parameters()}], lr=0.1)
    train(model, opt, steps=5)
    assert torch.equal(model[0].weight, w) and not torch.equal(model[2].weight, small_net()[2].weight)
    assert HYPER_RULES["lr"][0](0.0) and not HYPER_RULES["lr"][0](-1e-9)


def test_a_bad_scheduled_value_stops_fit_at_the_write():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    learn = Learner(model, toy_databunch("blobs"), opt_func=sgd_mom_opt, lr=0.1,
                    cbs=[Recorder(), ParamScheduler("mom", sched_lin(0.5, 1.5))])  # mom reaches 1 halfway
    with pytest.raises(ValueError, match=r"mom in param group 0 must be in \[0, 1\), got 1\.0"):
        learn.fit(2)
    assert learn.opt.hypers[0]["mom"] < 1


def test_lr_finder_writes_pass_the_checks():
    learn = Learner(torch.nn.Sequential(torch.nn.Linear(8, 4)), toy_databunch("blobs"), opt_func=adam_opt,
                    cbs=[Recorder(), LRFinder(max_iter=10, min_lr=1e-4, max_lr=1.0)])
    learn.fit(1)
    assert learn.recorder.lrs[0][0] == pytest.approx(1e-4)


def test_load_state_dict_checks_the_saved_hypers_and_changes_nothing_when_they_are_bad():
    model = small_net()
    opt = adam_opt(model.parameters(), lr=1e-2)
    train(model, opt, steps=2)
    good = opt.state_dict()
    assert all(type(h) is dict for h in good["hypers"])  # plain dicts: torch.load(weights_only=True) reads them
    other = adam_opt(small_net().parameters(), lr=1e-3)
    for bad, message in [({**good, "hypers": [{**good["hypers"][0], "eps": 0.0}]}, "eps in param group 0 of the loaded"),
                         ({**good, "hypers": [{**good["hypers"][0], "betas": 0.5}]}, "'betas'"),
                         ({**good, "hypers": [{"mom": 0.9}]}, "no learning rate")]:
        with pytest.raises(ValueError, match=message):
            other.load_state_dict(bad)
        assert other.hypers[0]["lr"] == 1e-3 and other.state == {}
    other.load_state_dict(good)
    assert other.hypers[0]["lr"] == 1e-2 and other.state[next(iter(other.state))]["step"] == 2
    with pytest.raises(ValueError, match="lr in param group 0"):
        other.hypers[0]["lr"] = -1.0  # still checked after loading


def test_playground_settings_follow_the_shared_rules():
    from teachkit.panels.playground import HYPERS, RULES
    for names in HYPERS.values():
        for hyper, setting in names.items():
            assert RULES[setting] is HYPER_RULES[hyper]


def test_step_does_not_check_again():
    """Values are checked when set, so a step only steps (a scheduler's valid write is used as is)."""
    model = small_net()
    opt = sgd_opt(model.parameters(), lr=0.1)
    opt.hypers[0]["lr"] = 0.0
    F.cross_entropy(model(X[:8]), Y[:8]).backward()
    w = model[0].weight.detach().clone()
    opt.step()
    assert torch.equal(model[0].weight, w)
