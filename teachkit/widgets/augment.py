"""Augmentation panel: pick an image, a transform and its parameters, and see N random samples beside the original.

A thin ipywidgets view over `teachkit.sampler.AugmentSampler`, which does all the work (and is tested on its own).
The parameter controls are built from the transform's constructor signature, so a new transform needs no new view.
Every change goes to the sampler first; when it refuses a value, the status line says why and the controls snap back
to what the sampler holds, so the panel always shows the sampler's state.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets

from ..data import ImageLoadError
from ..sampler import AugmentSampler, Param

__all__ = ["AugmentPanel", "augment_panel", "param_control"]

_STYLE = {"description_width": "initial"}
_MAX_DROPDOWN = 500  # more images than this get an index slider: a huge dropdown is slow to send and to use


def param_control(p: Param, value: Any) -> widgets.ValueWidget:
    """A control for one transform parameter: slider, range slider, checkbox or dropdown, by its kind."""
    kw = dict(description=p.name, style=_STYLE)
    if p.kind == "bool":
        return widgets.Checkbox(value=value, indent=False, **kw)
    if p.kind == "choice":
        return widgets.Dropdown(options=[(getattr(c, "name", str(c)), c) for c in p.choices], value=value, **kw)
    kw |= dict(step=p.step, continuous_update=False)  # redraw when the slider is let go, not at every pixel
    if p.kind == "int":
        return widgets.IntSlider(value=value, min=min(p.low, value), max=max(p.high, value), **kw)
    if p.kind == "float":
        return widgets.FloatSlider(value=value, min=min(p.low, value), max=max(p.high, value), readout_format=".3g", **kw)
    return widgets.FloatRangeSlider(value=value, min=min(p.low, *value), max=max(p.high, *value), readout_format=".3g",
                                    **kw)


def _error(msg: str) -> str:
    """A message in red, for the status line."""
    return f"<span style='color:#b00'>{html.escape(msg)}</span>"


def _image_picker(names: Sequence[str]) -> widgets.ValueWidget:
    """A dropdown of image names (value: the index), or an index slider when there are too many."""
    if len(names) <= _MAX_DROPDOWN:
        return widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image", style=_STYLE)
    return widgets.IntSlider(value=0, min=0, max=len(names) - 1, description="image #", continuous_update=False,
                             style=_STYLE)


class AugmentPanel(widgets.VBox):
    """Controls over an `AugmentSampler` and a grid of the original and `n` samples.

    Drive it from code as from the browser: set `panel.controls['p'].value`, `panel.seed_box.value`, or call
    `panel.resample_button.click()`; the sampler is `panel.model`.
    """

    def __init__(self, sampler: AugmentSampler):
        self.model, self._quiet, self._built_for = sampler, False, None
        self.image_picker = _image_picker(sampler.names)
        self.mode_toggle = widgets.ToggleButtons(options=[("PIL, per image", "pil"), ("tensor, batched", "batched")],
                                                 value=sampler.mode, description="mode", style=_STYLE)
        self.transform_picker = widgets.Dropdown(description="transform", style=_STYLE)
        self.controls: dict[str, widgets.ValueWidget] = {}
        self.param_box = widgets.VBox()
        self.n_slider = widgets.IntSlider(value=sampler.n, min=1, max=max(24, sampler.n), description="samples",
                                          continuous_update=False, style=_STYLE)
        self.seed_box = widgets.IntText(value=sampler.seed, description="seed", style=_STYLE,
                                        layout=widgets.Layout(width="160px"))
        self.resample_button = widgets.Button(description="Resample", tooltip="Draw new samples: the next seed",
                                              button_style="primary")
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png", layout={"align_self": "flex-start"})  # natural size
        self._wire()
        super().__init__([widgets.HBox([self.image_picker, self.transform_picker]), self.mode_toggle, self.param_box,
                          widgets.HBox([self.n_slider, self.seed_box, self.resample_button]), self.status, self.image])
        self.add_class("tk-augment-panel")  # a CSS hook, for styling and for the real-browser test
        self._sync()
        self.refresh()

    def _wire(self) -> None:
        """Each control sets one thing on the sampler, then the panel redraws."""
        m = self.model
        self._on(self.image_picker, lambda v: setattr(m, "index", v))
        self._on(self.mode_toggle, lambda v: setattr(m, "mode", v))
        self._on(self.transform_picker, m.set_transform)
        self._on(self.n_slider, lambda v: setattr(m, "n", v))
        self._on(self.seed_box, lambda v: setattr(m, "seed", v))
        self.resample_button.on_click(lambda _: self._apply(m.resample))

    def _on(self, w: widgets.ValueWidget, setter: Callable[[Any], Any]) -> None:
        """When `w` changes (by a person, not by `_sync`), pass its new value to `setter`."""
        def changed(change: dict) -> None:
            if not self._quiet:
                self._apply(lambda: setter(change["new"]))
        w.observe(changed, names="value")

    def _apply(self, action: Callable[[], Any]) -> None:
        """Run a change on the sampler and redraw; if it refuses, say why (the grid stays); then sync every control."""
        try:
            action()
        except (ValueError, ImageLoadError) as e:  # a refused value, an image file that won't open
            self._sync()
            self.status.value = _error(str(e))
            return
        self._sync()
        self.refresh()

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Set control values without each one calling back into the sampler."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _sync(self) -> None:
        """Make the controls show the sampler: its image, mode, transform choices, parameters, n and seed."""
        m = self.model
        with self._quietly():
            self.image_picker.value = m.index
            self.mode_toggle.value = m.mode
            self.transform_picker.options = m.choices()
            self.transform_picker.value = m.tfm.__name__
            if self._built_for is not m.tfm:
                self._build_controls()
            for name, w in self.controls.items():
                w.value = m.values[name]
            self.n_slider.value, self.seed_box.value = m.n, m.seed

    def _build_controls(self) -> None:
        """One control per parameter of the current transform, read from its signature."""
        m = self.model
        self.controls = {p.name: param_control(p, m.values[p.name]) for p in m.params()}
        for name, w in self.controls.items():
            self._on(w, lambda v, name=name: m.set_param(name, v))
        self.param_box.children = list(self.controls.values())
        self._built_for = m.tfm

    def refresh(self) -> None:
        """Redraw the grid and clear the status line."""
        try:
            self.image.value = self.model.render()
            self.status.value = ""
        except (ValueError, ImageLoadError) as e:  # a value the transform refuses only when it runs, a bad file
            self.status.value = _error(str(e))


def augment_panel(items: Any = None, tfms: Sequence | None = None, **kwargs: Any) -> AugmentPanel:
    """A panel sampling augmentations of `items` (None: a sample photo; a folder, ImageList, images or paths).

    `tfms`: transform classes or instances to choose from (default: every PIL and batched one in teachkit.augment);
    kwargs go to `AugmentSampler`: tfm (the first one shown), n, seed, max_size.
    """
    return AugmentPanel(AugmentSampler(items, tfms, **kwargs))
