"""Interactive panels: thin ipywidgets 8 views over pure-Python models that do the work."""
from .lsuv import lsuv_panel  # noqa: F401
from .optimizer import optimizer_panel  # noqa: F401
from .augment import augment_panel  # noqa: F401
