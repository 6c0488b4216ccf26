"""The names the lesson-11 recipe offers, in a module that imports no torch.

`python -m teachkit.train` checks its flags against these before it imports torch (a few seconds), so a mistyped
flag is refused at once. `teachkit.data.imagenette` and `teachkit.recipe` map the same names to datasets, optimizers and
models; the tests check that both sides name the same things.
"""
from __future__ import annotations

__all__ = ["DATASET_NAMES", "ARCH_NAMES", "OPT_LRS", "SCHEDS"]

DATASET_NAMES = ("imagenette", "imagenette-160", "imagenette-320", "imagewoof", "imagewoof-160", "imagewoof-320")
"""The datasets of `teachkit.data.imagenette.DATASETS` (`get_data` also takes `generated` and a folder)."""

ARCH_NAMES = ("cnn", "xresnet18", "xresnet34", "xresnet50")
"""The models of `teachkit.recipe.ARCHS`: the lesson-08 CNN and the XResNets."""

OPT_LRS = {"sgd": 0.3, "momentum": 0.1, "adam": 3e-3, "lamb": 1e-2, "ranger": 1e-2}
"""Each optimizer of `teachkit.recipe.OPT_CHOICES` and the peak learning rate of its schedule."""

SCHEDS = ("one-cycle", "flat-cos")
"""one-cycle: lr warms up then anneals, momentum mirrors it (the course); flat-cos: fastai2's Imagenette record."""
