"""OptimizerPlayground: trajectories are those of teachkit's optimizers run by hand, divergence is caught at the right step."""
import math

import numpy as np
import pytest
import torch

from teachkit.panels.playground import HYPERS, RACERS, OptimizerPlayground, PlaygroundPlot, run_optimizers
from teachkit.panels.surfaces import SURFACES, Surface, get_surface

PNG = b"\x89PNG\r\n\x1a\n"


def run_by_hand(surface: Surface, name: str, hypers: dict, start, steps: int, seed: int = 0) -> np.ndarray:
    """The textbook loop: one optimizer, one 2-element parameter, loss, backward, (noise), step."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = RACERS[name]([p], **hypers)
    gen = torch.Generator().manual_seed(seed)
    points = [p.detach().clone()]
    for _ in range(steps):
        surface(p).backward()
        noise = surface.noise * torch.randn(2, generator=gen, dtype=torch.float64)
        if surface.noise:
            p.grad += noise
        opt.step()
        opt.zero_grad()
        points.append(p.detach().clone())
    return torch.stack(points).numpy()


SETTINGS = dict(lr=2e-3, mom=0.8, beta1=0.85, beta2=0.95, eps=1e-4, wd=0.05)


@pytest.mark.parametrize("surface, lr", [("rosenbrock", 5e-4), ("beale", 2e-3), ("noisy bowl", 0.05)])
def test_trajectories_are_the_optimizers_own(surface, lr):
    pg = OptimizerPlayground(surface, steps=60, seed=3, **{**SETTINGS, "lr": lr})
    for name, t in pg.trajectories.items():
        expected = run_by_hand(pg.surface, name, pg.hypers(name), pg.start, 60, seed=3)
        assert t.diverged_at is None
        np.testing.assert_allclose(t.points, expected, rtol=1e-9, atol=1e-12, err_msg=name)  # hand vs autograd grads
        np.testing.assert_allclose(t.losses, pg.surface(torch.from_numpy(expected)).numpy(), rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", list(SURFACES))
def test_hand_derived_gradients_are_autograds(name):
    s = SURFACES[name]
    xy = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xy = torch.stack([s.xlim[0] + xy[:, 0] * (s.xlim[1] - s.xlim[0]), s.ylim[0] + xy[:, 1] * (s.ylim[1] - s.ylim[0])], 1)
    by_autograd = Surface(s.name, s.fn, s.xlim, s.ylim, s.start).gradient(xy)
    torch.testing.assert_close(s.gradient(xy), by_autograd, rtol=1e-12, atol=1e-12)


def test_each_setting_feeds_the_named_hyper_parameter():
    pg = OptimizerPlayground(**SETTINGS)
    assert pg.hypers("sgd") == dict(lr=2e-3, wd=0.05)
    assert pg.hypers("momentum") == dict(lr=2e-3, mom=0.8, wd=0.05)
    assert pg.hypers("adam") == pg.hypers("lamb") == dict(lr=2e-3, mom=0.85, sqr_mom=0.95, eps=1e-4, wd=0.05)
    assert set(HYPERS) == set(RACERS)


def test_one_optimizer_alone_goes_where_it_goes_in_company():
    together = run_optimizers("ill-conditioned", {n: dict(lr=0.03) for n in RACERS}, (-2.0, 1.0), 50)
    alone = run_optimizers("ill-conditioned", {"adam": dict(lr=0.03)}, (-2.0, 1.0), 50)
    np.testing.assert_array_equal(together["adam"].points, alone["adam"].points)


@pytest.mark.parametrize("lr", [0.11, 0.15, 0.3, 0.5])
def test_sgd_divergence_is_caught_at_the_predicted_step(lr):
    """On 0.5 (x^2 + 20 y^2), SGD multiplies y by (1 - 20 lr) each step: |y| passes the plot's limit plus margin
    (1.5 + 3) at the first n with |1 - 20 lr|^n > 4.5, while x shrinks towards 0."""
    s = get_surface("ill-conditioned")
    factor = abs(1 - 20 * lr)
    limit = s.ylim[1] + (s.ylim[1] - s.ylim[0])
    predicted = math.floor(math.log(limit / 1.0) / math.log(factor)) + 1
    t = OptimizerPlayground(s, ["sgd"], lr=lr, start=(-2.5, 1.0)).trajectories["sgd"]
    assert t.diverged_at == predicted
    assert t.points.shape == (predicted, 2) and t.losses.shape == (predicted,)
    assert np.isfinite(t.points).all() and np.isfinite(t.losses).all()
    assert abs(t.points[-1, 1]) <= limit < abs(t.points[-1, 1]) * factor


def test_stable_run_keeps_every_step():
    t = OptimizerPlayground("ill-conditioned", ["sgd"], lr=0.09, steps=150).trajectories["sgd"]
    assert t.diverged_at is None and t.points.shape == (151, 2)


def test_a_non_finite_loss_is_divergence():
    """sqrt(y) + x^2: a big step takes y below 0, inside the plot, where the loss is NaN."""
    s = Surface("root", lambda x, y: torch.sqrt(y) + x**2, (-1.0, 1.0), (-1.0, 2.0), (0.0, 1.0))
    t = run_optimizers(s, {"sgd": dict(lr=1.0)}, s.start, 10)["sgd"]
    assert t.diverged_at == 2  # y: 1 -> 0.5 -> 0.5 - 1/(2 sqrt(0.5)) < 0
    assert np.isfinite(t.losses).all() and len(t.points) == 2


def test_every_surface_runs_and_renders_without_nan():
    pg = OptimizerPlayground(lr=0.05, steps=40)
    for name in SURFACES:
        pg.update(surface=name)
        for t in pg.trajectories.values():
            assert np.isfinite(t.points).all() and np.isfinite(t.losses).all()
        assert pg.render().startswith(PNG)


def test_noisy_bowl_is_reproducible_with_its_seed():
    runs = [OptimizerPlayground("noisy bowl", ["sgd"], steps=30, seed=s).trajectories["sgd"].points for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_trajectories_are_cached_until_a_setting_changes():
    pg = OptimizerPlayground(steps=20)
    first = pg.trajectories
    assert pg.trajectories is first
    pg.update(lr=0.05)
    assert pg.trajectories is not first
    assert pg.trajectories["sgd"].end != first["sgd"].end


def test_new_surface_brings_its_own_start():
    pg = OptimizerPlayground(start=(1.0, 1.0))
    pg.update(surface="beale")
    assert pg.start == SURFACES["beale"].start
    pg.update(surface="saddle", start=(0.5, 0.5))
    assert pg.start == (0.5, 0.5)


@pytest.mark.parametrize("kwargs, word", [
    (dict(lr=-1e-3), "lr"), (dict(lr=float("nan")), "lr"), (dict(mom=1.0), "mom"),
    (dict(beta1=-0.1), "beta1"), (dict(beta2=1.0), "beta2"), (dict(eps=0.0), "eps"), (dict(wd=-0.1), "wd"),
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(seed="a"), "seed"), (dict(start=(9.0, 0.0)), "start"),
    (dict(start=5), "start"), (dict(surface="bowl"), "rosenbrock"), (dict(optimizers=["adamw"]), "lamb"),
    (dict(optimizers=["sgd", "sgd"]), "twice"),
])
def test_bad_settings_raise_naming_what_is_wrong(kwargs, word):
    with pytest.raises(ValueError, match=word):
        OptimizerPlayground(**kwargs)


def test_lr_0_is_valid_as_in_optim_and_stays_put():
    """One table of rules for the playground and teachkit.optim (optim.hypers.HYPER_RULES): lr = 0 is a frozen run."""
    pg = OptimizerPlayground(lr=0.0, steps=10)
    assert all((t.points == t.points[0]).all() for t in pg.trajectories.values())


def test_a_bad_update_changes_nothing():
    pg = OptimizerPlayground()
    before = pg.settings()
    with pytest.raises(ValueError, match="steps"):
        pg.update(lr=0.5, steps=-1)
    with pytest.raises(ValueError, match="Unknown setting.*'momentum'"):
        pg.update(momentum=0.5)
    assert pg.settings() == before


def test_render_follows_the_settings():
    pg = OptimizerPlayground(steps=50)
    png = pg.render()
    assert png.startswith(PNG) and pg.render() == png
    pg.update(lr=0.05)
    assert pg.render() != png
    pg.update(optimizers=())
    assert pg.trajectories == {} and pg.render().startswith(PNG)


def test_render_marks_divergence():
    """The 'diverged at step N' note is drawn on the contour: the text artist holds it after a render."""
    pg = OptimizerPlayground(optimizers=["sgd", "adam"], lr=0.15)
    pg.render()
    notes = {n: a.get_text() for n, a in pg.plot.notes.items()}
    assert notes == {"sgd": "sgd: diverged at step 3", "adam": ""}


def test_run_optimizers_names_an_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'"):
        run_optimizers("ill-conditioned", {"adamw": {"lr": 0.1}}, (1.0, 1.0), 5)


def test_a_prepared_or_revisited_surface_shows_the_picture_drawn_from_scratch():
    """Kept backgrounds are never stale: after other surfaces, step counts and optimizers, the picture is the one a
    new plot draws for the same settings."""
    pg = OptimizerPlayground(steps=30)
    pg.prepare(SURFACES)
    for changes in [dict(surface="rosenbrock"), dict(steps=40), dict(surface="ill-conditioned"),
                    dict(optimizers=("adam", "sgd")), dict(surface="rosenbrock", lr=0.05)]:
        pg.update(**changes)
        fresh = PlaygroundPlot(pg.surface).render(pg.start, pg.trajectories, pg.steps)
        assert pg.render() == fresh, changes


def test_each_surface_has_its_own_kept_picture():
    pg = OptimizerPlayground()
    first = pg.plot
    pg.update(surface="beale")
    assert pg.plot is not first and pg.plot.surface is SURFACES["beale"]
    pg.update(surface="ill-conditioned")
    assert pg.plot is first
