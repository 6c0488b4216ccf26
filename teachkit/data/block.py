"""The data block API of lesson 08: files -> items -> split -> label -> DataLoaders.

    tfms = [make_rgb, ResizeFixed(128), to_byte_tensor, to_float_tensor]
    il = ImageList.from_files(path, tfms=tfms)
    sd = SplitData.split_by_func(il, partial(grandparent_splitter, valid_name='val'))
    ll = label_by_func(sd, parent_labeler, proc_y=CategoryProcessor())
    data = ll.to_databunch(bs=64, num_workers=4)

Files are listed and opened by `teachkit.data.files`; the batches (DataLoaders, `DataBunch`) made by `teachkit.data.databunch`.
"""
from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .databunch import DataBunch, databunchify
from .files import PathLike, get_files, image_extensions, linked_folders, normalize_extensions, open_image
from ..utils import compose, listify

__all__ = ["ListContainer", "ItemList", "ImageList", "grandparent_splitter", "random_splitter", "split_by_func",
           "SplitData", "parent_labeler", "Processor", "CategoryProcessor", "LabeledData", "label_by_func",
           "normalize_chan", "normalize_bytes", "channel_stats", "imagenette_stats", "norm_imagenette"]

# ------------------------------------------------------------------------------------------- item lists

def _is_bool(o: Any) -> bool:
    return isinstance(o, (bool, np.bool_)) or (isinstance(o, torch.Tensor) and o.dtype == torch.bool)


class ListContainer:
    """A list you can index with an int, a slice, a list of ints or a boolean mask."""

    def __init__(self, items: Any):
        self.items = listify(items)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, (int, np.integer, slice)):
            return self.items[idx]
        if isinstance(idx, (torch.Tensor, np.ndarray)):
            if idx.ndim == 0:
                return self.items[int(idx)]
            idx = idx.tolist()
        idx = list(idx)
        if idx and _is_bool(idx[0]):
            if len(idx) != len(self):
                raise ValueError(f"A boolean mask must have one entry per item: got {len(idx)} for {len(self)} items.")
            return [o for m, o in zip(idx, self.items) if m]
        return [self.items[i] for i in idx]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __setitem__(self, i: int, o: Any) -> None:
        self.items[i] = o

    def __delitem__(self, i: int) -> None:
        del self.items[i]

    def __repr__(self) -> str:
        res = f"{type(self).__name__} ({len(self)} items)\n{self.items[:10]}"
        return res[:-1] + ", ...]" if len(self) > 10 else res


class ItemList(ListContainer):
    """Items plus the folder they came from and the transforms `_get` applies, in `_order`, to each."""

    def __init__(self, items: Any, path: PathLike = ".", tfms: Callable | Sequence[Callable] | None = None):
        super().__init__(items)
        self.path, self.tfms = Path(path), tfms

    def __repr__(self) -> str:
        return f"{super().__repr__()}\nPath: {self.path}"

    def new(self, items: Any, cls: type | None = None) -> ItemList:
        """A list of the same kind (or `cls`), path and transforms, holding other items: how splits are made."""
        return (cls or type(self))(items, self.path, tfms=self.tfms)

    def get(self, i: Any) -> Any:
        """Turn a stored item into the object transforms work on (an opened image for `ImageList`)."""
        return i

    def _get(self, i: Any) -> Any:
        return compose(self.get(i), self.tfms)

    def __getitem__(self, idx: Any) -> Any:
        res = super().__getitem__(idx)
        return [self._get(o) for o in res] if isinstance(res, list) else self._get(res)


class ImageList(ItemList):
    """File names that become images (decoded with Pillow, JPEG draft when resizing) when indexed."""

    @classmethod
    def from_files(cls, path: PathLike, extensions: str | Iterable[str] | None = None, recurse: bool = True,
                   include: Iterable[str] | None = None, followlinks: bool = False, **kwargs) -> ImageList:
        """All image files under `path` (every `image_extensions` by default); an empty result is an error."""
        exts = image_extensions if extensions is None else extensions
        files = get_files(path, exts, recurse=recurse, include=include, followlinks=followlinks)
        if not files:
            raise ValueError(_no_images_message(path, exts, recurse, include, followlinks))
        return cls(files, path, **kwargs)

    def get(self, fn: PathLike) -> Image.Image:
        return open_image(fn, self.tfms)


def _no_images_message(path: PathLike, exts: str | Iterable[str], recurse: bool, include: Iterable[str] | None,
                      followlinks: bool) -> str:
    """Why `ImageList.from_files` found nothing, and what to try."""
    shown = sorted(normalize_extensions(exts))
    links = [] if followlinks else linked_folders(path)
    hint = (f" {', '.join(links)} {'is a link' if len(links) == 1 else 'are links'} to folders, which are not walked "
            "into (as os.walk doesn't): pass followlinks=True to follow them." if links else "")
    return (f"No image files in {Path(path)} (recurse={recurse}, include={include}, extensions: "
            f"{', '.join(shown[:12])}{', ...' if len(shown) > 12 else ''}). Check the folder, "
            f"pass recurse=True for files in sub-folders, or pass `extensions`.{hint}")


# -------------------------------------------------------------------------------------------- splitting

def grandparent_splitter(fn: PathLike, valid_name: str = "valid", train_name: str = "train") -> bool | None:
    """True for `.../valid/<class>/file`, False for `.../train/<class>/file`, None (drop) otherwise.

    Imagenette names its validation folder `val`: pass `valid_name='val'`, or
    `teachkit.data.datasets.valid_folder_name(path)`.
    """
    gp = Path(fn).parent.parent.name
    return True if gp == valid_name else False if gp == train_name else None


def random_splitter(p_valid: float = 0.2, seed: int = 42) -> Callable[[Any], bool]:
    """A splitter sending a fraction `p_valid` of items to valid, chosen by a seeded hash of each file name.

    The hash (of the last two path parts of a path, given as `Path` or `str`, else of `str(item)`) makes the
    split the same on every run, machine and order of items, and keeps it when the data folder moves.
    """
    if not 0 <= p_valid <= 1:
        raise ValueError(f"random_splitter: p_valid is a fraction of items, between 0 and 1; got {p_valid}.")

    def splitter(o: Any) -> bool:
        key = "/".join(Path(o).parts[-2:]) if isinstance(o, (str, os.PathLike)) else str(o)
        return zlib.crc32(f"{seed}:{key}".encode()) / 2**32 < p_valid

    return splitter


def split_by_func(items: Sequence, f: Callable[[Any], bool | None]) -> tuple[list, list]:
    """(train, valid) items: `f` says True for valid, False for train, None for neither (dropped)."""
    mask = [f(o) for o in items]
    return [o for o, m in zip(items, mask) if m is not None and not m], [o for o, m in zip(items, mask) if m]


class SplitData:
    """A training and a validation set of the same kind; attributes not found here come from `train`."""

    def __init__(self, train: Any, valid: Any):
        self.train, self.valid = train, valid

    def __getattr__(self, k: str) -> Any:
        if k.startswith("__") or k in ("train", "valid"):  # not set yet (e.g. while unpickling)
            raise AttributeError(k)
        return getattr(self.train, k)

    @classmethod
    def split_by_func(cls, il: ItemList, f: Callable[[Any], bool | None]) -> SplitData:
        """Split with `f` (True: valid, False: train, None: drop), warning how many items were dropped."""
        train, valid = split_by_func(il.items, f)
        dropped = len(il) - len(train) - len(valid)
        if not train or not valid:
            examples = [str(o) for o in il.items[:3]]
            raise ValueError(f"The splitter put {len(train)} items in train and {len(valid)} in valid "
                             f"(dropped {dropped} of {len(il)}), e.g. {examples}. Check it: Imagenette's "
                             "validation folder is 'val', so use partial(grandparent_splitter, valid_name='val').")
        if dropped:
            warnings.warn(f"SplitData.split_by_func dropped {dropped} of {len(il)} items that the splitter put "
                          "in neither train nor valid.", stacklevel=2)
        return cls(il.new(train), il.new(valid))

    def to_databunch(self, bs: int = 64, c_in: int | None = None, c_out: int | None = None,
                     num_workers: int | None = None, **kwargs) -> DataBunch:
        """DataLoaders over the (labelled) train and valid sets: see `teachkit.data.databunch.databunchify`."""
        return databunchify(self, bs, c_in, c_out, num_workers, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}\nTrain: {self.train}\nValid: {self.valid}\n"


# -------------------------------------------------------------------------------------------- labelling

def parent_labeler(fn: PathLike) -> str:
    """The label is the name of the folder the file is in (Imagenette's synset ids)."""
    return Path(fn).parent.name


class Processor:
    """Changes a whole list of items the same way on every split, from state learned on the training set."""

    def __call__(self, items: list) -> list:
        return items

    def deprocess(self, items: list) -> list:
        return items

    def deproc1(self, item: Any) -> Any:
        return item


def _unique(items: Iterable) -> list:
    """Distinct items, sorted when they can be (so the vocab doesn't depend on file order)."""
    uniq = list(dict.fromkeys(items))
    try:
        return sorted(uniq)
    except TypeError:
        return uniq


class CategoryProcessor(Processor):
    """Labels -> ints with a vocab made from the first (training) list it sees; `deprocess` goes back."""

    def __init__(self):
        self.vocab: list | None = None

    def __call__(self, items: list) -> list[int]:
        if self.vocab is None:
            self.vocab = _unique(items)
            self.otoi = {v: k for k, v in enumerate(self.vocab)}
        return [self.proc1(o) for o in items]

    def proc1(self, item: Any) -> int:
        try:
            return self.otoi[item]
        except KeyError:
            shown = ", ".join(map(repr, self.vocab[:10])) + (", ..." if len(self.vocab) > 10 else "")
            raise ValueError(f"Label {item!r} is not in the vocab made from the training set ({len(self.vocab)} classes: "
                             f"{shown}). Every class needs training examples: check the split, or relabel it.") from None

    def deprocess(self, idxs: Iterable[int]) -> list:
        if self.vocab is None:
            raise ValueError("This CategoryProcessor has no vocab yet: process the training labels first.")
        return [self.deproc1(i) for i in idxs]

    def deproc1(self, idx: int) -> Any:
        return self.vocab[int(idx)]


class LabeledData:
    """Inputs `x` and targets `y`, each processed once by their processors; indexing gives `(x, y)`."""

    def __init__(self, x: ItemList, y: ItemList, proc_x: Processor | Sequence[Processor] | None = None,
                 proc_y: Processor | Sequence[Processor] | None = None):
        self.x, self.y = self.process(x, proc_x), self.process(y, proc_y)
        self.proc_x, self.proc_y = proc_x, proc_y

    @staticmethod
    def process(il: ItemList, proc: Processor | Sequence[Processor] | None) -> ItemList:
        return il.new(compose(il.items, proc))

    def __repr__(self) -> str:
        return f"{type(self).__name__}\nx: {self.x}\ny: {self.y}\n"

    def __getitem__(self, idx: Any) -> tuple[Any, Any]:
        return self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return len(self.x)

    def x_obj(self, idx: Any) -> Any:
        """Input `idx` turned back into what it was before processing."""
        return self.obj(self.x, idx, self.proc_x)

    def y_obj(self, idx: Any) -> Any:
        """Target `idx` turned back into its label, e.g. the class name."""
        return self.obj(self.y, idx, self.proc_y)

    @staticmethod
    def obj(items: ItemList, idx: Any, procs: Any) -> Any:
        isint = isinstance(idx, (int, np.integer)) or (isinstance(idx, torch.Tensor) and idx.ndim == 0)
        item = items[idx]
        for proc in reversed(listify(procs)):
            item = proc.deproc1(item) if isint else proc.deprocess(item)
        return item

    @classmethod
    def label_by_func(cls, il: ItemList, f: Callable[[Any], Any], proc_x: Any = None, proc_y: Any = None) -> LabeledData:
        """Label each item of `il` with `f(item)`."""
        return cls(il, ItemList([f(o) for o in il.items], path=il.path), proc_x=proc_x, proc_y=proc_y)


def label_by_func(sd: SplitData, f: Callable[[Any], Any], proc_x: Any = None, proc_y: Any = None) -> SplitData:
    """Label train then valid with `f`; the same processors go over both, so valid uses train's vocab."""
    train = LabeledData.label_by_func(sd.train, f, proc_x=proc_x, proc_y=proc_y)
    valid = LabeledData.label_by_func(sd.valid, f, proc_x=proc_x, proc_y=proc_y)
    return SplitData(train, valid)


# ------------------------------------------------------------------------------------------ normalising

def normalize_chan(x: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """Normalise each channel of a (B, C, H, W) or (C, H, W) batch; stats follow `x` to its device.

    Float images are in [0, 1]; uint8 ones (0-255, as `imagenette_dls` batches travel) give float32 (`normalize_bytes`).
    """
    if x.dtype == torch.uint8:
        return normalize_bytes(x, mean, std)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return (x - mean[..., None, None]) / std[..., None, None]


def normalize_bytes(x: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """`(x / 255 - mean) / std` for uint8 `x`, as float32: the /255 folded into the stats, `x * 1/(255 std) - mean/std`.

    Bytes are a quarter of floats to copy from the DataLoader workers and to the GPU. In place on the float copy:
    on a CPU that is ~2x faster than one mixed-dtype `torch.addcmul(shift, x, scale)`; on a GPU both take microseconds.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x.device)[..., None, None]
    std = torch.as_tensor(std, dtype=torch.float32, device=x.device)[..., None, None]
    return x.float().mul_(1 / (255 * std)).add_(-mean / std)


def channel_stats(ds: Any, n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the inputs of `n` random items of `ds` (uint8 counted as /255)."""
    if len(ds) == 0:
        raise ValueError("channel_stats needs a non-empty dataset.")
    g = torch.Generator().manual_seed(seed)
    idxs = torch.randperm(len(ds), generator=g)[:n].tolist()
    xs = []
    for i in idxs:
        x = ds[i]
        x = x[0] if isinstance(x, tuple) else x
        xs.append(x.float() / 255 if x.dtype == torch.uint8 else x.float())
    pix = torch.cat([x.flatten(1) for x in xs], dim=1)
    return pix.mean(1), pix.std(1)


imagenette_stats = (torch.tensor([0.47, 0.48, 0.45]), torch.tensor([0.29, 0.28, 0.30]))
"""Channel mean and std of Imagenette, the figures lesson 08 normalises with."""


def norm_imagenette(x: torch.Tensor) -> torch.Tensor:
    """Normalise a batch (float in [0, 1] or uint8) with Imagenette's channel stats (for `BatchTransformXCallback`)."""
    return normalize_chan(x, *imagenette_stats)
