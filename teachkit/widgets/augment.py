"""Augmentation panel: pick an image, a transform and its parameters, and see N random samples beside the original.

A thin ipywidgets view over `teachkit.panels.sampler.AugmentSampler` (`panel.sampler`), which does all the work and is
tested on its own. The parameter controls are built from the transform's constructor signature, by ipywidgets' own
`interactive` abbreviations, so a new transform needs no new view. Every change goes to the sampler first; when it
refuses a value, the status line says why and the controls snap back to what the sampler holds, so the panel always
shows the sampler's state.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from ..data.files import ImageLoadError
from ..panels.sampler import AugmentSampler, Param
from .common import QuietMixin

__all__ = ["AugmentPanel", "augment_panel", "param_control"]

_STYLE = {"description_width": "72px"}  # one label width: the sliders line up
_MAX_DROPDOWN = 500  # more images than this get an index slider: a huge dropdown is slow to send and to use
# Range readouts ("0.35 - 1.00") are wider than ipywidgets' default readout box, which then spills over the slider.
_CSS = "<style>.tk-augment-panel .widget-readout { max-width: 7.5em; min-width: 7.5em; }</style>"


def param_control(p: Param, value: Any) -> widgets.ValueWidget:
    """A control for one transform parameter: ipywidgets' `interactive` abbreviations make a slider from
    (low, high, step), a checkbox from a bool and a dropdown from (name, value) pairs; a range pair, which they
    don't handle, gets a range slider here."""
    if p.kind == "tuple":
        w = widgets.FloatRangeSlider(value=value, min=min(p.low, *value), max=max(p.high, *value), step=p.step)
    elif p.kind == "bool":
        w = widgets.interactive.widget_from_abbrev(value)
    elif p.kind == "choice":
        w = widgets.interactive.widget_from_abbrev([(getattr(c, "name", str(c)), c) for c in p.choices], value)
    else:  # int or float: (low, high, step), widened to hold a value outside the usual range
        w = widgets.interactive.widget_from_abbrev((min(p.low, value), max(p.high, value), p.step), value)
    w.description, w.style.description_width = p.name, _STYLE["description_width"]
    if isinstance(w, widgets.Checkbox):
        w.indent = False
    if p.kind in ("int", "float", "tuple"):
        w.continuous_update = False  # redraw when the slider is let go, not at every pixel
    if p.kind in ("float", "tuple"):
        w.readout_format = ".3g"
    return w


def _error(msg: str) -> str:
    """A message in red, for the status line."""
    return f"<span style='color:#b00'>{html.escape(msg)}</span>"


def _image_picker(names: Sequence[str]) -> widgets.ValueWidget:
    """A dropdown of image names (value: the index), or an index slider when there are too many."""
    if len(names) <= _MAX_DROPDOWN:
        return widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image", style=_STYLE)
    return widgets.IntSlider(value=0, min=0, max=len(names) - 1, description="image #", continuous_update=False,
                             style=_STYLE)


class AugmentPanel(QuietMixin, widgets.VBox):
    """Controls over an `AugmentSampler` and a montage of the original and `n` samples.

    Drive it from code as from the browser: set `panel.controls['p'].value`, `panel.seed_box.value`, or call
    `panel.resample_button.click()`; the sampler is `panel.sampler`.
    """

    def __init__(self, sampler: AugmentSampler):
        self.sampler, self._built_for = sampler, None
        self.image_picker = _image_picker(sampler.names)
        self.mode_toggle = widgets.ToggleButtons(options=[("PIL, per image", "pil"), ("tensor, batched", "batched")],
                                                 value=sampler.mode)
        self.transform_picker = widgets.Dropdown(description="transform", style=_STYLE)
        self.controls: dict[str, widgets.ValueWidget] = {}
        self.param_box = widgets.VBox()
        self.n_slider = widgets.IntSlider(value=sampler.n, min=1, max=max(24, sampler.n), description="samples",
                                          continuous_update=False, style=_STYLE)
        self.seed_box = widgets.IntText(value=sampler.seed, description="seed", style={"description_width": "initial"},
                                        layout=widgets.Layout(width="140px"))
        self.resample_button = widgets.Button(description="Resample", tooltip="Draw new samples: the next seed",
                                              button_style="primary")
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                       align_self="flex-start"))
        mode_label = widgets.HTML("<div style='text-align:right; padding-right:4px'>mode</div>",  # like the
                                  layout=widgets.Layout(width=_STYLE["description_width"]))  # controls' own labels
        mode_row = widgets.HBox([mode_label, self.mode_toggle])  # beside its buttons: ToggleButtons puts it above
        self._wire()
        super().__init__([widgets.HTML(_CSS), widgets.HBox([self.image_picker, self.transform_picker]), mode_row,
                          self.param_box, widgets.HBox([self.n_slider, self.seed_box, self.resample_button]),
                          self.status, self.image])
        self.add_class("tk-augment-panel")  # a CSS hook, for styling and for the real-browser test
        self._sync()
        self.refresh()

    def _wire(self) -> None:
        """Each control sets one thing on the sampler, then the panel redraws."""
        s = self.sampler
        self._on(self.image_picker, lambda v: setattr(s, "index", v))
        self._on(self.mode_toggle, lambda v: setattr(s, "mode", v))
        self._on(self.transform_picker, s.set_transform)
        self._on(self.n_slider, lambda v: setattr(s, "n", v))
        self._on(self.seed_box, lambda v: setattr(s, "seed", v))
        self.resample_button.on_click(lambda _: self._apply(s.resample))

    def _on(self, w: widgets.ValueWidget, setter: Callable[[Any], Any]) -> None:
        """When a person changes `w`, pass its new value to `setter` on the sampler, then redraw."""
        self.on_change(w, lambda v: self._apply(lambda: setter(v)))

    def _apply(self, action: Callable[[], Any]) -> None:
        """Run a change on the sampler and redraw; if it refuses, say why (the montage stays); then sync every control."""
        try:
            action()
        except (ValueError, ImageLoadError) as e:  # a refused value, an image file that won't open
            self._sync()
            self.status.value = _error(str(e))
            return
        self._sync()
        self.refresh()

    def _sync(self) -> None:
        """Make the controls show the sampler: its image, mode, transform choices, parameters, n and seed."""
        s = self.sampler
        with self.quietly():
            self.image_picker.value = s.index
            self.mode_toggle.value = s.mode
            self.transform_picker.options = s.choices()
            self.transform_picker.value = s.tfm.__name__
            if self._built_for is not s.tfm:
                self._build_controls()
            for name, w in self.controls.items():
                w.value = s.values[name]
            self.n_slider.value, self.seed_box.value = s.n, s.seed

    def _build_controls(self) -> None:
        """One control per parameter of the current transform, read from its signature."""
        s = self.sampler
        self.controls = {p.name: param_control(p, s.values[p.name]) for p in s.params()}
        for name, w in self.controls.items():
            self._on(w, lambda v, name=name: s.set_param(name, v))
        self.param_box.children = list(self.controls.values())
        self._built_for = s.tfm

    def refresh(self) -> None:
        """Redraw the montage and clear the status line."""
        try:
            self.image.value = self.sampler.render()
            self.status.value = ""
        except (ValueError, ImageLoadError) as e:  # a value the transform refuses only when it runs, a bad file
            self.status.value = _error(str(e))


def augment_panel(items: Any = None, tfms: Sequence | None = None, **kwargs: Any) -> AugmentPanel:
    """A panel sampling augmentations of `items` (None: a sample photo; a folder, ImageList, images or paths).

    `tfms`: transform classes or instances to choose from (default: every PIL and batched one teachkit has);
    kwargs go to `AugmentSampler`: tfm (the first one shown), n, seed, max_size.
    """
    return AugmentPanel(AugmentSampler(items, tfms, **kwargs))
