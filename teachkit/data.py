"""The data block API of lesson 08: files -> items -> split -> label -> DataLoaders."""
from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader


class DataBunch:
    """A training and a validation DataLoader, plus the number of input channels and classes."""

    def __init__(self, train_dl: DataLoader, valid_dl: DataLoader, c_in: int | None = None, c_out: int | None = None):
        self.train_dl, self.valid_dl, self.c_in, self.c_out = train_dl, valid_dl, c_in, c_out

    @property
    def train_ds(self) -> Any:
        return self.train_dl.dataset

    @property
    def valid_ds(self) -> Any:
        return self.valid_dl.dataset

    def __repr__(self) -> str:
        return (f"DataBunch(train: {len(self.train_ds)} items, valid: {len(self.valid_ds)} items, "
                f"c_in={self.c_in}, c_out={self.c_out})")
