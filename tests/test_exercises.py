"""The lesson checkers: each reference passes, typical mistakes are caught with the right hint, stubs are named."""
import pytest
import torch

from teachkit.exercises import Case, Exercise, Mistake, describe_difference, unwritten
from teachkit.exercises import l09
from teachkit.learner import CancelFitException, Callback

from checking import assert_caught, lesson_exercises, not_smoke, stub  # noqa: F401 (not_smoke: an autouse fixture)


# ---------------------------------------------------------------- the shared machinery

def double(x):
    return 2 * x


def twice_plus_one(x):
    return 2 * x + 1


EX = Exercise("double", double, [Case("three", lambda: (torch.tensor([3.0]),))],
              lambda f, args: {"the result": f(*args)}, [Mistake(twice_plus_one, "drop the +1")])


def test_engine_passes_reference_and_hints_a_known_mistake():
    assert EX.check(double).ok
    assert_caught(EX.check(twice_plus_one), "the result is 7, expected 6", "Hint: drop the +1")
    assert_caught(EX.check(lambda x: 3 * x), "the result is 9, expected 6", "line by line")


def test_engine_names_a_stub_and_an_error():
    assert_caught(EX.check(stub), "your `stub` is not written yet")
    assert_caught(EX.check(lambda x: x.nope), "your `double` raised AttributeError")


def pass_stub(x):
    "A docstring and `pass`: what a learner leaves before writing anything."
    pass


def ellipsis_stub(x): ...


class ClassStub:
    """A class whose methods are all still placeholders, like lesson 08's processor stub."""

    def __init__(self):
        raise NotImplementedError("your code here")

    def __call__(self, items): ...


def returns_none_on_purpose(x):
    x.mul_(2)  # works in place: a body that returns nothing is not a stub


def test_stubs_are_told_apart_from_code_that_returns_nothing():
    assert all(unwritten(f) for f in (stub, pass_stub, ellipsis_stub, ClassStub))
    assert not any(unwritten(f) for f in (double, returns_none_on_purpose, twice_plus_one, lambda x: None))
    for f in (pass_stub, ellipsis_stub, ClassStub):  # `pass` used to be run and compared, or pass in smoke mode
        assert_caught(EX.check(f), f"your `{f.__name__}` is not written yet")


def test_a_stub_whose_source_cant_be_read_is_still_not_written_yet():
    scope = {}
    exec("def typed_in_a_console(x):\n    raise NotImplementedError", scope)  # no file: inspect can't read it
    assert not unwritten(scope["typed_in_a_console"])
    assert_caught(EX.check(scope["typed_in_a_console"]), "your `typed_in_a_console` is not written yet")


def test_messages_name_the_learners_function():
    def my_double(x):
        return 2 * x

    def my_wrong_double(x):
        return 2 * x + 1
    assert "your `my_double` passes" in EX.check(my_double).message
    assert_caught(EX.check(my_wrong_double), "with your `my_wrong_double`, the result is 7")


def test_smoke_mode_gives_the_learner_words_and_raises_only_when_teachkits_solution_fails(monkeypatch):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    assert_caught(EX.check(stub), "not written yet")  # a learner's stub: no tick, no traceback
    assert_caught(EX.check(twice_plus_one), "expected 6", "drop the +1")  # a wrong answer: words, no traceback
    broken = Exercise("double", double, EX.cases, EX.observe, solution=twice_plus_one)
    with pytest.raises(AssertionError, match="teachkit's solution to double fails its own checker"):
        broken.check(stub)
    monkeypatch.delenv("TEACHKIT_SMOKE")
    assert_caught(broken.check(stub), "not written yet")  # a learner never pays for teachkit's bug


@pytest.mark.parametrize("lesson,exercise", lesson_exercises(), ids=lambda v: getattr(v, "name", v))
def test_every_lessons_solution_passes_and_its_stub_gets_words_in_smoke_mode(monkeypatch, lesson, exercise):
    solution = exercise.solution or exercise.reference
    assert exercise.check(solution).ok
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    assert_caught(exercise.check(stub), "your `stub` is not written yet")


def test_describe_difference_says_shape_nan_and_direction():
    e = {"x": torch.ones(3)}
    assert "shape (2,)" in describe_difference({"x": torch.ones(2)}, e)
    assert "NaN" in describe_difference({"x": torch.tensor([1.0, float("nan"), 1.0])}, e)
    assert "expected size" in describe_difference({"x": -torch.ones(3)}, e)
    assert describe_difference({"x": torch.ones(3) + 1e-9}, e) is None


# ---------------------------------------------------------------- 09: LARS

def test_lars_reference_passes():
    assert l09.check_lars_step(l09.solution_lars_step).ok


def test_lars_per_element_ratio_is_caught():
    def lars_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        r = trust_coeff * p.abs() / (p.grad.abs() + wd * p.abs() + eps)
        r = torch.where((p == 0) | (p.grad == 0), torch.ones_like(r), r)
        p.add_(-lr * r * (p.grad + wd * p))
    assert_caught(l09.check_lars_step(lars_step), "change of the weight", "computed per tensor")


def test_lars_zero_bias_that_never_moves_is_caught():
    def lars_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        ratio = trust_coeff * p.norm() / (p.grad.norm() + wd * p.norm() + eps)
        p -= lr * ratio * (p.grad + wd * p)
    assert_caught(l09.check_lars_step(lars_step), "change of the bias has norm 0,", "ratio must be 1")


def test_lars_missing_kwargs_and_rebinding_are_caught():
    def no_kwargs(p, lr, wd, trust_coeff, eps):
        p.sub_(lr * (p.grad + wd * p))
    assert_caught(l09.check_lars_step(no_kwargs), "unexpected keyword", "**kwargs")

    def rebinds(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        ratio = trust_coeff * p.norm() / (p.grad.norm() + wd * p.norm() + eps)
        p = p - lr * ratio * (p.grad + wd * p)
    assert_caught(l09.check_lars_step(rebinds), "norm 0,", "in place")


def test_lars_stub_is_not_written_yet():
    def lars_step(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
        "One LARS step on the tensor p, in place."
        raise NotImplementedError  # your code here
    assert_caught(l09.check_lars_step(lars_step), "your `lars_step` is not written yet")


def test_lars_reference_moves_a_zero_gradient_weight_by_plain_weight_decay():
    w, _ = l09.CASES[2].make()
    before = w.detach().clone()
    with torch.no_grad():
        l09.solution_lars_step(w, **l09.HYPERS)
    assert torch.equal(w.grad, torch.zeros_like(w))  # ratio 1, as fastai's LAMB takes it when a norm is 0
    assert torch.allclose(before - w.detach(), l09.HYPERS["lr"] * l09.HYPERS["wd"] * before)


# ---------------------------------------------------------------- 07a: LSUV

from teachkit.exercises import l07a, l08, l09b, l09c, l10  # noqa: E402


def test_lsuv_reference_and_solution_pass():
    assert l07a.check_lsuv_module(l07a.solution_lsuv_module).ok


def test_lsuv_hook_left_behind_is_caught():
    def lsuv_module(model, layer, xb, tol=1e-3, max_iter=10):
        stats = []
        layer.register_forward_hook(lambda m, i, o: stats.append((o.mean().item(), o.std().item())))
        for _ in range(max_iter):
            with torch.no_grad():
                model(xb)
            mean, std = stats[-1]
            if abs(std - 1) > tol:
                layer.weight.data /= std
            elif abs(mean) > tol:
                layer.bias.data -= mean
    assert_caught(l07a.check_lsuv_module(lsuv_module), "hooks left on the model is 1", "remove your hook")


def test_lsuv_missing_mean_shift_is_caught():
    def lsuv_module(model, layer, xb, tol=1e-3, max_iter=10):
        for _ in range(max_iter):
            out = []
            h = layer.register_forward_hook(lambda m, i, o: out.append(o.std().item()))
            with torch.no_grad():
                model(xb)
            h.remove()
            layer.weight.data /= out[0]
    assert_caught(l07a.check_lsuv_module(lsuv_module), "mean of the layer's output", "subtract it from the layer's bias")


def test_lsuv_every_layer_is_caught():
    def lsuv_module(model, layer, xb, tol=1e-3, max_iter=10):
        for m in model:
            if isinstance(m, torch.nn.Linear):
                l07a.solution_lsuv_module(model, m, xb)
    assert_caught(l07a.check_lsuv_module(lsuv_module), "other parameters it changed", "only the layer it is given")


# ---------------------------------------------------------------- 08: a labeler and a processor

def test_labeler_reference_passes_and_mistakes_are_caught():
    assert l08.check_label_from_name(l08.solution_label_from_name).ok
    assert_caught(l08.check_label_from_name(lambda fn: str(fn).split("/")[-1].split("_")[0]),
                  "'great', expected 'great_pyrenees'", "can contain '_'")
    assert_caught(l08.check_label_from_name(lambda fn: fn.stem.rsplit("_", 1)[0]), "fails on a str", "Path(fn)")
    assert_caught(l08.check_label_from_name(lambda fn: __import__("pathlib").Path(fn).stem),
                  "'great_pyrenees_173'", "trailing '_<number>'")


def test_processor_reference_passes_and_mistakes_are_caught():
    assert l08.check_unk_category_processor(l08.SolutionUnkCategoryProcessor).ok

    class RebuildsVocab:
        def __call__(self, items):
            self.vocab = ["#unk#"] + sorted(set(items))
            return [self.vocab.index(o) for o in items]

        def deproc1(self, i):
            return self.vocab[i]
    assert_caught(l08.check_unk_category_processor(RebuildsVocab), "the vocab is", "only the FIRST time")

    class Unsorted:
        vocab = None

        def __call__(self, items):
            if self.vocab is None:
                self.vocab = ["#unk#"]
                for o in items:
                    if o not in self.vocab:
                        self.vocab.append(o)
            return [self.vocab.index(o) if o in self.vocab else 0 for o in items]

        def deproc1(self, i):
            return self.vocab[i]
    assert_caught(l08.check_unk_category_processor(Unsorted), "training labels as ints", "sort the vocab")


# ---------------------------------------------------------------- 09b: stop on a NaN loss

def test_stop_on_nan_reference_passes_and_mistakes_are_caught():
    from teachkit.learner import CancelBatchException, CancelFitException, Callback
    assert l09b.check_stop_on_nan(l09b.SolutionStopOnNaN).ok

    class TooLate(Callback):
        def after_batch(self):
            if self.in_train and self.loss.isnan():
                raise CancelFitException
    assert_caught(l09b.check_stop_on_nan(TooLate), "optimizer steps is 4, expected 3", "check in after_loss")

    class EqualsNaN(Callback):
        def after_loss(self):
            if self.loss.item() == float("nan"):
                raise CancelFitException
    assert_caught(l09b.check_stop_on_nan(EqualsNaN), "training batches started is 16, expected 4", "not equal to anything")

    class SkipsBatch(Callback):
        def after_loss(self):
            if torch.isnan(self.loss):
                raise CancelBatchException
    assert_caught(l09b.check_stop_on_nan(SkipsBatch), "training batches started is 16", "CancelBatchException only skips")


# ---------------------------------------------------------------- 09c: format_time

def test_format_time_reference_passes_and_mistakes_are_caught():
    assert l09c.check_format_time(l09c.solution_format_time).ok
    assert_caught(l09c.check_format_time(lambda t: f"{int(t) // 60}:{int(t) % 60}"), "'0:0', expected '00:00'", "two digits")
    assert_caught(l09c.check_format_time(lambda t: f"{round(t) // 60:02d}:{round(t) % 60:02d}"),
                  "format_time(59.9) is '01:00'", "rather than rounding")
    assert_caught(l09c.check_format_time(lambda t: f"{int(t) // 60:02d}:{int(t) % 60:02d}"), "'60:00'", "show hours")


# ---------------------------------------------------------------- 10: the rotation matrix

def test_rotation_matrix_solution_passes_and_mistakes_are_caught():
    import math
    assert l10.check_rotation_matrix(l10.solution_rotation_matrix).ok

    def make(c, s, aspect):
        m = torch.eye(3).repeat(len(c), 1, 1)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, s, -s, c
        return m

    assert_caught(l10.check_rotation_matrix(lambda t, aspect=1.0: make((t * math.pi / 180).cos(), (t * math.pi / 180).sin(), 1)),
                  "3:2 image", "aspect")

    def forward(thetas, aspect=1.0):
        r = -thetas * math.pi / 180
        m = make(r.cos(), r.sin(), aspect)
        m[:, 0, 1] /= aspect
        m[:, 1, 0] *= aspect
        return m
    assert_caught(l10.check_rotation_matrix(forward), "matrix for 30°", "inverse map")
    assert_caught(l10.check_rotation_matrix(lambda t, aspect=1.0: make(t.cos(), t.sin(), 1)), "matrix for 30°", "degrees")


# ---------------------------------------------------------------- wrong solutions a learner plausibly writes
# Each passed the checkers of issue 21's day; each must be refused, with the hint for its mistake.

def lsuv_course_while_loops(model, layer, xb, tol=1e-3, max_iter=10):
    """The course's two `while` loops: they ignore max_iter, so a layer that can't reach std 1 never returns."""
    stats = {}

    def hook(m, i, o):
        stats["mean"], stats["std"] = o.mean().item(), o.std().item()
    h = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            while model(xb) is not None and abs(stats["std"] - 1) > tol:
                layer.weight /= stats["std"]
            while model(xb) is not None and abs(stats["mean"]) > tol:
                layer.bias -= stats["mean"]
    finally:
        h.remove()
    return stats["mean"], stats["std"]


def _layer_stats(model, layer, xb):
    out = []
    h = layer.register_forward_hook(lambda m, i, o: out.append(o))
    try:
        with torch.no_grad():
            model(xb)
    finally:
        h.remove()
    return out[0].mean().item(), out[0].std().item()


def lsuv_while_not_converged(model, layer, xb, tol=1e-3, max_iter=10):
    mean, std = _layer_stats(model, layer, xb)
    while abs(std - 1) > tol or abs(mean) > tol:
        with torch.no_grad():
            if abs(std - 1) > tol:
                layer.weight.div_(std)
            else:
                layer.bias.sub_(mean)
        mean, std = _layer_stats(model, layer, xb)


def lsuv_own_tolerance(model, layer, xb, tol=1e-3, max_iter=10):
    for _ in range(max_iter):
        mean, std = _layer_stats(model, layer, xb)
        with torch.no_grad():
            if abs(std - 1) > 1e-3:
                layer.weight.div_(std)
            elif abs(mean) > 1e-3:
                layer.bias.sub_(mean)
            else:
                break


def lsuv_ten_iterations(model, layer, xb, tol=1e-3, max_iter=10):
    for _ in range(10):
        mean, std = _layer_stats(model, layer, xb)
        with torch.no_grad():
            if abs(std - 1) > tol:
                layer.weight.div_(std)
            elif abs(mean) > tol:
                layer.bias.sub_(mean)
            else:
                break


def lars_one_only_for_zero_weights(p, lr, wd=0.0, trust_coeff=0.02, eps=1e-8, **kwargs):
    w_norm, g_norm = p.norm(), p.grad.norm()
    if w_norm == 0:
        ratio = 1.0
    else:
        ratio = trust_coeff * w_norm / (g_norm + wd * w_norm + eps)
    p.sub_(lr * ratio * (p.grad + wd * p))


class StopOnNaNAfterBackward(Callback):
    """Stops before the step, but after backward: the NaN gradients stay in p.grad for the next fit."""

    def after_backward(self):
        if not torch.isfinite(self.loss):
            raise CancelFitException()


WRONG_SOLUTIONS = [
    (l07a.check_lsuv_module, lsuv_course_while_loops, ["returned (within 200 forward passes of the model) is False",
                                                       "bound your loop by max_iter"]),
    (l07a.check_lsuv_module, lsuv_while_not_converged, ["is False, expected True", "bound your loop by max_iter"]),
    (l07a.check_lsuv_module, lsuv_own_tolerance, ["tol=0.2", "use the `tol` you are given"]),
    (l07a.check_lsuv_module, lsuv_ten_iterations, ["max_iter=2", "stop after `max_iter` updates"]),
    (l09.check_lars_step, lars_one_only_for_zero_weights, ["gradient is all zeros", "when ||g|| is 0 too"]),
    (l09b.check_stop_on_nan, StopOnNaNAfterBackward, ["gradients left in the parameters are finite after fit is False",
                                                      "by after_backward"]),
]


@pytest.mark.parametrize("check,wrong,words", WRONG_SOLUTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_plausible_wrong_solution_is_refused_with_its_hint(check, wrong, words):
    assert_caught(check(wrong), f"your `{wrong.__name__}`", *words)


def test_the_layer_that_cant_converge_really_cant():
    from teachkit.init import LSUVWarning, lsuv_module
    model, layer, xb, kwargs = l07a.CASES[2].make()
    with pytest.warns(LSUVWarning, match="did not converge"):
        step = lsuv_module(model, layer, xb, **kwargs)
    assert step.std > 1.4  # the biases alone: no rescaling of the weight brings it to 1


def test_a_nan_gradient_left_after_fit_makes_the_next_fit_nan():
    seen = l09b._observe(StopOnNaNAfterBackward, l09b.CASES[0].make())
    assert seen["whether the weights are finite after fit"]  # what the checker saw before: all looked fine
    assert not seen["whether the weights are finite after a second fit, on a finite loss"]
