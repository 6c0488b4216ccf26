"""What every panel shares: one way to set its own controls without their observers calling back."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets


class QuietMixin:
    """A panel that sets its own controls inside `with self.quietly():`; observers made by `on_change` stay silent."""

    _quiet = False

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Set control values without each one calling back into the panel's model."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def on_change(self, w: widgets.ValueWidget, callback: Callable[[Any], Any]) -> None:
        """When `w`'s value changes (by a person or by code, not inside `quietly`), call `callback(new value)`."""
        def changed(change: dict) -> None:
            if not self._quiet:
                callback(change["new"])
        w.observe(changed, names="value")
