"""teachkit.widgets.augment_panel, driven through its widgets as a browser would: set values, click, check the output."""
import ipywidgets as widgets
import numpy as np
import pytest
import torch
from PIL import Image

from teachkit.augment import PilRandomFlip, RandomResizedCrop
from teachkit.augment import BatchZoom
from teachkit.show import to_hwc
from teachkit.widgets import augment_panel
from teachkit.widgets.augment import AugmentPanel, param_control
from teachkit.widgets.common import QuietMixin


@pytest.fixture
def panel() -> AugmentPanel:
    return augment_panel(n=4, max_size=96)


def same(a, b) -> bool:
    return all(np.array_equal(np.asarray(to_hwc(x)), np.asarray(to_hwc(y))) for x, y in zip(a, b))


def test_panel_is_a_widget_with_named_controls(panel):
    assert isinstance(panel, widgets.VBox)
    assert panel.resample_button.description == "Resample"
    assert isinstance(panel.seed_box, widgets.IntText) and isinstance(panel.mode_toggle, widgets.ToggleButtons)
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert panel.transform_picker.value == "RandomResizedCrop" and panel.mode_toggle.value == "pil"
    assert panel.image_picker.options == (("grace_hopper.jpg", 0),)
    c = panel.controls  # built from RandomResizedCrop's signature
    assert list(c) == ["size", "scale", "ratio", "resample", "p"]
    assert (type(c["size"]), type(c["scale"]), type(c["resample"]), type(c["p"])) == \
        (widgets.IntSlider, widgets.FloatRangeSlider, widgets.Dropdown, widgets.FloatSlider)
    assert list(panel.param_box.children) == list(c.values())


def test_resample_changes_images_and_same_seed_restores_them(panel):
    png, samples = panel.image.value, panel.sampler.sample()
    panel.resample_button.click()
    assert panel.sampler.seed == panel.seed_box.value == 1
    assert panel.image.value != png and not same(samples, panel.sampler.sample())
    panel.seed_box.value = 0
    assert panel.sampler.seed == 0 and panel.image.value == png and same(samples, panel.sampler.sample())


def test_slider_sets_the_parameter(panel):
    png = panel.image.value
    panel.controls["size"].value = 64
    assert panel.sampler.values["size"] == 64 and panel.sampler.sample()[0].size == (64, 64)
    assert panel.image.value != png
    panel.controls["scale"].value = (0.1, 0.2)
    assert panel.sampler.values["scale"] == (0.1, 0.2)
    panel.n_slider.value = 2
    assert len(panel.sampler.sample()) == 2


def test_mode_toggle_switches_implementation_and_controls(panel):
    png = panel.image.value
    panel.mode_toggle.value = "batched"
    m = panel.sampler
    assert m.mode == "batched" and m.tfm is BatchZoom and panel.transform_picker.value == "BatchZoom"
    assert set(panel.transform_picker.options) == {"BatchZoom", "BatchWarp", "BatchFlip", "BatchRotate"}
    assert list(panel.controls) == ["min_zoom", "max_zoom", "p"] and panel.image.value != png
    assert all(isinstance(o, torch.Tensor) for o in m.sample())
    panel.mode_toggle.value = "pil"
    assert m.tfm is RandomResizedCrop and list(panel.controls)[0] == "size"


def test_transform_picker_rebuilds_controls(panel):
    panel.transform_picker.value = "PilTiltRandomCrop"
    assert panel.sampler.tfm.__name__ == "PilTiltRandomCrop"
    assert list(panel.controls) == ["size", "magnitude", "resample", "p"]
    before = panel.sampler.sample()
    panel.controls["magnitude"].value = 0.2
    assert panel.sampler.values["magnitude"] == 0.2 and not same(before, panel.sampler.sample())


def test_refused_value_is_explained_and_undone():
    panel = augment_panel(tfms=[BatchZoom, PilRandomFlip], n=2, max_size=64)
    png = panel.image.value
    panel.controls["min_zoom"].value = 2.0  # above max_zoom 1.4: BatchZoom refuses it
    assert "min &lt;= max" in panel.status.value
    assert panel.sampler.values["min_zoom"] == 1.0 and panel.controls["min_zoom"].value == 1.0
    assert panel.image.value == png
    panel.seed_box.value = -1
    assert "seed must be" in panel.status.value and panel.seed_box.value == 0
    panel.controls["max_zoom"].value = 2.5  # a good value clears the message
    assert panel.status.value == "" and panel.sampler.values["max_zoom"] == 2.5


def test_pick_an_image_from_a_folder(tmp_path):
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (40, 30), colour).save(tmp_path / name)
    panel = augment_panel(tmp_path, tfms=[PilRandomFlip], n=2)
    assert [label for label, _ in panel.image_picker.options] == ["blue.png", "red.png"]
    png = panel.image.value
    panel.image_picker.value = 1
    assert panel.sampler.index == 1 and panel.sampler.image.getpixel((0, 0)) == (255, 0, 0)
    assert panel.image.value != png


def test_an_image_that_wont_open_is_reported(tmp_path):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    panel = augment_panel(tmp_path, tfms=[PilRandomFlip], n=2)
    png = panel.image.value
    panel.image_picker.value = 1
    assert "Could not read image" in panel.status.value and panel.image.value == png


def test_mode_label_sits_beside_its_buttons_and_the_panel_is_quiet(panel):
    row = next(c for c in panel.children if isinstance(c, widgets.HBox) and panel.mode_toggle in c.children)
    assert [type(w) for w in row.children] == [widgets.HTML, widgets.ToggleButtons] and ">mode<" in row.children[0].value
    assert isinstance(panel, QuietMixin) and panel.sampler.n == 4
    with panel.quietly():  # the panel's own way to set a control: the sampler doesn't hear it
        panel.seed_box.value = 7
    assert panel.sampler.seed == 0


def test_param_controls_come_from_ipywidgets_abbreviations():
    from teachkit.panels.sampler import transform_params
    ps = {p.name: p for p in transform_params(RandomResizedCrop)}
    ref = widgets.interactive.widget_from_abbrev((ps["p"].low, ps["p"].high, ps["p"].step), 0.5)
    ours = param_control(ps["p"], 0.5)
    assert (type(ours), ours.min, ours.max, ours.step, ours.value) == (type(ref), ref.min, ref.max, ref.step, ref.value)
    assert param_control(ps["size"], 1000).max == 1000  # a value beyond the usual range widens it
    assert isinstance(param_control(ps["scale"], (0.2, 0.9)), widgets.FloatRangeSlider)  # what abbreviations lack
