"""Imagenette's class table, checked against sources that don't come from teachkit."""
import json
import re
from pathlib import Path

import pytest
import torchvision
from torchvision.models import ResNet18_Weights

import teachkit
from teachkit.data import IMAGENETTE_CLASSES
from teachkit.data import is_synthetic, make_imagenette_like

# Published by fast.ai, who made Imagenette: `lbl_dict` in fastai's Imagenette tutorial,
# https://github.com/fastai/fastai/blob/master/nbs/22_tutorial.imagenette.ipynb
# (rendered at https://docs.fast.ai/tutorial.imagenette.html). Copied here by hand, not generated.
FASTAI_LBL_DICT = dict(
    n01440764='tench',
    n02102040='English springer',
    n02979186='cassette player',
    n03000684='chain saw',
    n03028079='church',
    n03394916='French horn',
    n03417042='garbage truck',
    n03425413='gas pump',
    n03445777='golf ball',
    n03888257='parachute',
)

# Each class's index among ImageNet-1k's 1000 classes (numbered in sorted WordNet-id order), e.g. in
# torchvision's category list `ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`.
IMAGENET_INDEX = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
                  "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701}


def test_the_table_is_fastais_published_one():
    assert list(IMAGENETTE_CLASSES.items()) == list(FASTAI_LBL_DICT.items())  # same ids, names and order
    assert "n03888605" not in IMAGENETTE_CLASSES  # ImageNet's "parallel bars", once given to parachute by mistake


def test_names_match_torchvisions_imagenet_categories():
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # a list shipped with torchvision: no download
    assert [categories[IMAGENET_INDEX[w]] for w in IMAGENETTE_CLASSES] == list(IMAGENETTE_CLASSES.values())
    assert categories[702] == "parallel bars"  # the class whose id, n03888605, sorts right after parachute's


def test_ids_match_torchvisions_imagenette_dataset():
    imagenette = getattr(torchvision.datasets, "Imagenette", None)  # torchvision >= 0.17
    if imagenette is None:
        pytest.skip("this torchvision has no Imagenette dataset")
    assert {w: names[0] for w, names in imagenette._WNID_TO_CLASS.items()} == IMAGENETTE_CLASSES


def test_the_look_alike_is_named_from_the_same_table(tmp_path):
    path = make_imagenette_like(tmp_path / "like", n_train=10, n_valid=10, short_side=16)
    for split in ("train", "val"):
        assert sorted(p.name for p in (path / split).iterdir()) == list(FASTAI_LBL_DICT)


def test_only_one_table_of_ids_in_the_package():
    """A second list of ids is how the look-alike came to share the real table's typo (and CI passed)."""
    wnid = re.compile(r"\bn\d{8}\b")
    holders = sorted(p.name for p in Path(teachkit.__file__).parent.rglob("*.py") if wnid.search(p.read_text()))
    assert holders == ["datasets.py"]


def test_a_look_alike_from_an_older_teachkit_is_made_again(tmp_path):
    """A cached set generated with the old, wrong parachute id would break lesson 08 (KeyError): it is regenerated."""
    path = make_imagenette_like(tmp_path / "like", n_train=10, n_valid=10, short_side=16)
    marker = path / ".teachkit-synthetic"
    old = json.loads(marker.read_text())
    del old["classes"]  # what teachkit wrote before it recorded the classes
    marker.write_text(json.dumps(old))
    (path / "train" / "n03888257").rename(path / "train" / "n03888605")
    assert make_imagenette_like(path, n_train=10, n_valid=10, short_side=16) == path and is_synthetic(path)
    assert sorted(p.name for p in (path / "train").iterdir()) == list(FASTAI_LBL_DICT)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing set aside is left
    with pytest.raises(ValueError, match="already exists"):  # a current set with other arguments is still refused
        make_imagenette_like(path, n_train=20, n_valid=10, short_side=16)
