"""JPEGs decoded on the GPU (nvJPEG): DataLoader workers only read the files' bytes, the GPU decodes, crops and flips.

Worth it when the CPU can't decode as fast as the GPU trains (`python -m teachkit.train --gpu-decode`);
`teachkit.data.imagenette.imagenette_gpu_dls` builds the DataBunch, with the same crops and flips as the CPU path.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from ..augment import GeneralCrop
from .block import LabeledData

__all__ = ["JpegBytes", "collate_bytes", "decode_jpegs", "decode_one", "GpuJpegLoader"]


class JpegBytes(Dataset):
    """(the file's bytes as a uint8 tensor, label) per item: DataLoader workers only read, the GPU decodes."""

    def __init__(self, ld: LabeledData):
        self.files, self.ys, self.proc_y = list(ld.x.items), list(ld.y.items), ld.proc_y  # proc_y: the class names

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return read_file(str(self.files[i])), self.ys[i]


def collate_bytes(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Files differ in length, so a batch is a list of byte tensors and a tensor of labels."""
    return [b for b, _ in batch], torch.tensor([y for _, y in batch])


def decode_jpegs(raw: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """RGB uint8 (3, H, W) images on `device` from JPEG bytes, the whole batch in one call (nvJPEG on a GPU).

    A file the batch decoder refuses (a CMYK JPEG, a PNG named .JPEG) is decoded alone, on the CPU if need be.
    """
    try:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return [decode_one(r, device) for r in raw]


def decode_one(raw: torch.Tensor, device: torch.device) -> torch.Tensor:
    try:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return decode_image(raw, mode=ImageReadMode.RGB).to(device)


class GpuJpegLoader:
    """Wrap a DataLoader of `JpegBytes`: decode each batch on `device`, crop and resize it there, flip: uint8 batches.

    The crops are the CPU pipeline's own transforms (`RandomResizedCrop`, `CenterCrop`) asked only for their box,
    so both paths cut the same kind of crop; resizing is bilinear with antialiasing, rounded back to uint8 as the CPU
    path's batches are (`norm_imagenette` then makes them floats).
    """

    def __init__(self, dl: DataLoader, crop: GeneralCrop, p_flip: float, device: torch.device, seed: int | None = None):
        self.dl, self.crop, self.p_flip, self.device = dl, crop, p_flip, torch.device(device)
        self.rng = random.Random(seed)

    dataset = property(lambda self: self.dl.dataset)
    sampler = property(lambda self: self.dl.sampler)
    batch_size = property(lambda self: self.dl.batch_size)

    def __len__(self) -> int:
        return len(self.dl)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for raw, yb in self.dl:
            yield self.decode(raw), yb.to(self.device, non_blocking=True)

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.crop_one(img) for img in decode_jpegs(raw, self.device)])

    def crop_one(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        left, top, right, bottom = self.crop.get_corners(w, h, *self.crop.crop_dims(w, h))
        tw, th = self.crop.size
        out = TF.resized_crop(img.float(), round(top), round(left), max(1, round(bottom - top)),
                              max(1, round(right - left)), [th, tw], antialias=True)
        out = out.flip(-1) if self.rng.random() < self.p_flip else out
        return out.clamp_(0, 255).round_().to(torch.uint8)
