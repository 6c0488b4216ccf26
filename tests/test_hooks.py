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
