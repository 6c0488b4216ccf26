"""Hooks see activations, always come off, and the telemetry plots draw."""
import pytest
import torch
from torch import nn

from teachkit.hooks import Hook, Hooks, append_stat, find_modules, get_hist, get_min, is_lin_layer, plot_hists, plot_mins, plot_stats


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 4))


def n_hooks(m: nn.Module) -> int:
    return sum(len(o._forward_hooks) for o in m.modules())


def test_find_modules_walks_the_tree():
    m = cnn()
    found = find_modules(m, is_lin_layer)
    assert [type(o) for o in found] == [nn.Conv2d, nn.Conv2d, nn.Linear]
    assert find_modules(m, lambda o: isinstance(o, nn.Sequential)) == [m]


def test_hooks_record_stats_in_training_only():
    m, x = cnn(), torch.randn(16, 3, 8, 8)
    with Hooks(find_modules(m, is_lin_layer), append_stat) as hooks:
        m.train()
        m(x)
        m(x)
        m.eval()
        m(x)
    means, stds, hists = hooks[0].stats
    assert len(means) == len(stds) == len(hists) == 2
    assert means[0] == pytest.approx(m[0](x).mean().item(), abs=1e-5)
    assert hists[0].shape == (40,) and hists[0].sum() > 0


def test_hooks_are_removed_even_on_error():
    m = cnn()
    with pytest.raises(RuntimeError):
        with Hooks(find_modules(m, is_lin_layer), append_stat):
            assert n_hooks(m) == 3
            m(torch.randn(2, 5, 8, 8))  # wrong channel count
    assert n_hooks(m) == 0


def test_single_hook_context():
    m = cnn()
    seen = []
    with Hook(m[0], lambda h, mod, i, o: seen.append(o.shape)):
        m(torch.randn(2, 3, 8, 8))
    m(torch.randn(2, 3, 8, 8))
    assert seen == [torch.Size([2, 8, 8, 8])] and n_hooks(m) == 0


def test_telemetry_plots_and_near_zero_fraction():
    m, x = cnn(), torch.randn(16, 3, 8, 8)
    with Hooks([m[1], m[2][1]], append_stat) as hooks:
        for _ in range(5):
            m(x)
    assert get_hist(hooks[0]).shape == (40, 5)
    frac = get_min(hooks[0])
    relu_out = m[1](m[0](x))
    assert frac[0].item() == pytest.approx((relu_out < 0.5).float().mean().item(), abs=1e-6)  # bins 0-1 span [0, 0.5)
    for fig in (plot_stats(hooks), plot_hists(hooks), plot_mins(hooks)):
        assert fig.axes



def test_plot_mins_shows_a_dead_layer_inside_its_panel():
    """A layer whose every output is 0 has share 1 at each batch: its line, and the dotted line at 1, lie inside
    the axes (not on the top edge), and its title is red; a live layer's title is not."""
    dead, live = nn.ReLU(), nn.Identity()
    with Hooks([dead, live], append_stat) as hooks:
        for _ in range(3):
            dead(-torch.ones(64))
            live(torch.linspace(-5, 5, 64))
    fig = plot_mins(hooks)
    (ax_dead, ax_live) = fig.axes
    share = ax_dead.lines[0].get_ydata()
    bottom, top = ax_dead.get_ylim()
    assert list(share) == [1.0, 1.0, 1.0] and bottom < 0 and top > 1.05
    assert any(list(line.get_ydata()) == [1, 1] and line.get_linestyle() == ":" for line in ax_dead.lines[1:])
    assert ax_dead.title.get_color() == "red" and ax_live.title.get_color() != "red"

# ---------------------------------------------------------------- one statistics function, ActivationStats

from teachkit.hooks import ActivationStats, LayerStats, activation_stats  # noqa: E402
from teachkit.learner import Callback, Learner  # noqa: E402
from teachkit.toy import toy_databunch  # noqa: E402


def test_activation_stats_is_mean_std_and_shares():
    x = torch.tensor([[-1.0, 0.1, 0.2, 3.0], [0.3, 0.4, 9.0, 20.0]])
    s = activation_stats(x, bins=4, hist_range=(0.0, 10.0))
    assert s[0].item() == pytest.approx(x.mean().item()) and s[1].item() == pytest.approx(x.std().item())
    assert s[2:].tolist() == pytest.approx([4 / 8, 1 / 8, 0.0, 1 / 8])  # -1 and 20 fall outside every bin
    assert activation_stats(x, bins=0).shape == (2,)
    big = torch.randn(64, 1000, generator=torch.Generator().manual_seed(0))
    full, quick = activation_stats(big, 8, (-2, 2)), activation_stats(big, 8, (-2, 2), sample=4000)
    assert torch.equal(full[:2], quick[:2])  # mean and std always exact
    assert torch.allclose(full[2:], quick[2:], atol=0.02) and not torch.equal(full[2:], quick[2:])


def blob_learner(cbs=()):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    return Learner(model, toy_databunch("blobs", n_train=128, n_valid=64, bs=16), lr=0.1, cbs=list(cbs))


def test_activation_stats_records_training_batches_and_comes_off():
    act = ActivationStats()
    learn = blob_learner([act])
    learn.fit(2)  # 8 training batches and 2 validation batches per epoch
    assert act.names == ["0 Linear", "2 Linear", "4 Linear"]
    assert all(len(s.means) == len(s.stds) == len(s.hists) == 16 for s in act.stats)
    assert all(h.shape == (40,) and 0 < h.sum() <= 1 for h in act.stats[0].hists)
    assert n_hooks(learn.model) == 0
    x = learn.dls.train_dl.dataset.tensors[0][:16]
    ms, ss, _ = act.stats[0]  # unpacks like the course's (means, stds, hists)
    assert isinstance(act.stats[0], LayerStats) and ms is act.stats[0].means and ss is act.stats[0].stds
    with torch.no_grad():
        learn.model(x)
    assert len(act.stats[0].means) == 16  # nothing recorded outside fit


def test_activation_stats_every_and_chosen_modules():
    learn = blob_learner()
    act = ActivationStats([learn.model[1], learn.model[3]], every=3, bins=10, hist_range=(0, 5))
    learn.fit(1, cbs=[act])
    assert act.names == ["1 ReLU", "3 ReLU"] and len(act.stats[1].means) == 3  # batches 0, 3, 6 of 8
    assert act.stats[1].hists[0].shape == (10,) and min(act.stats[1].means) >= 0
    for fig in (act.plot_stats(), act.plot_hists(), act.plot_mins()):
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert get_min(act.stats[0]).shape == (3,)
    with pytest.raises(ValueError, match="every >= 1"):
        ActivationStats(every=0)


def test_activation_stats_sample_bins_fewer_activations_but_keeps_mean_and_std_exact():
    learn = blob_learner()
    full, sampled = ActivationStats(bins=10, hist_range=(-3, 3)), ActivationStats(bins=10, hist_range=(-3, 3), sample=16)
    learn.fit(1, cbs=[full, sampled])
    f, s = full.stats[0], sampled.stats[0]
    assert f.means == s.means and f.stds == s.stds  # the same batches, the same exact moments
    assert not all(torch.equal(a, b) for a, b in zip(f.hists, s.hists))  # but histograms of a subsample
    assert all(abs(h.sum() - 1) < 0.2 for h in s.hists)


def InterruptAt(event: str) -> Callback:
    """A callback whose `event` method raises KeyboardInterrupt (Kernel -> Interrupt)."""
    def boom(self):
        raise KeyboardInterrupt
    return type("InterruptAt", (Callback,), {event: boom})()


@pytest.mark.parametrize("where", ["batch", "hook"])
def test_activation_stats_hooks_come_off_on_keyboard_interrupt(where):
    learn = blob_learner()
    act = ActivationStats()
    if where == "hook":  # Kernel -> Interrupt while a forward hook runs
        def interrupt(mod, inp, out):
            raise KeyboardInterrupt
        learn.model[2].register_forward_hook(interrupt)
        cbs = [act]
    else:
        cbs = [act, InterruptAt("after_loss")]
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=cbs)
    assert len(act.hooks) == 3 and all(len(s.means) == (1 if where == "batch" else 0) for s in act.stats)
    assert sum(len(o._forward_hooks) for o in learn.model.modules() if o is not learn.model[2]) == 0
    assert len(learn.model[2]._forward_hooks) == (1 if where == "hook" else 0)  # only the test's own hook is left


def test_a_hook_left_behind_takes_itself_off():
    learn = blob_learner()
    act = ActivationStats()
    act.set_learner(learn)
    act.before_fit()  # as if fit died before after_fit could run
    act._recording = False
    learn.model.train()
    learn.model(torch.randn(4, 8))
    assert n_hooks(learn.model) == 0 and all(len(s.means) == 0 for s in act.stats)
