"""The small helpers every module leans on."""
import torch

from teachkit.utils import camel2snake, compose, default_device, derive_seed, keep_modes, listify, to_model_device


def test_listify():
    assert listify(None) == [] and listify("ab") == ["ab"] and listify((1, 2)) == [1, 2] and listify(3) == [3]


def test_compose_sorts_by_order():
    def double(x):
        return x * 2

    def add_one(x):
        return x + 1

    add_one._order = -1  # runs first, though listed last
    assert compose(5, [double, add_one]) == 12


def test_camel2snake_names_callbacks():
    assert camel2snake("AvgStatsCallback") == "avg_stats_callback" and camel2snake("LRFinder") == "lr_finder"


def test_derived_seeds_are_distinct_streams():
    seeds = {derive_seed(s, i) for s in range(20) for i in range(20)}
    assert len(seeds) == 400  # seed + i would give only 39 distinct values
    assert derive_seed(3, 1) == derive_seed(3, 1)


def test_default_device_follows_cuda():
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_keep_modes_restores_train_and_eval_per_module():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    model[1].eval()
    with keep_modes(model):
        model.train()
    assert model[0].training and not model[1].training


def test_to_model_device_follows_the_parameters():
    assert to_model_device(torch.nn.Linear(2, 2).to("meta"), torch.zeros(1, 2)).device.type == "meta"
    assert to_model_device(torch.nn.ReLU(), torch.zeros(1)).device.type == "cpu"


def test_each_public_name_of_the_core_modules_lives_in_its_own_module():
    """One name, one home: no module of the core lists in __all__ a function or class defined elsewhere."""
    import importlib
    import inspect

    for name in ["learner", "callbacks", "schedule", "utils", "progress", "recipe", "train"]:
        mod = importlib.import_module(f"teachkit.{name}")
        for public in mod.__all__:
            obj = getattr(mod, public)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == mod.__name__, f"{mod.__name__}.{public} is {obj.__module__}'s"
