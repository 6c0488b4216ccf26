"""Interactive panels: thin ipywidgets 8 views over pure-Python models that do the work."""
from .augment import augment_panel
from .lsuv import lsuv_panel
from .optimizer import optimizer_panel
from .training import training_panel

__all__ = ["augment_panel", "lsuv_panel", "optimizer_panel", "training_panel"]
