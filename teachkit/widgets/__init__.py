"""Interactive panels: thin ipywidgets 8 views over pure-Python models that do the work."""
