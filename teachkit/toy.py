"""Generated, learnable toy datasets for tests and quick demos: no files, no network."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from .data.databunch import DataBunch


def toy_blobs(n: int, n_in: int = 8, n_classes: int = 4, seed: int = 0, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs, one per class around a random centre: separable, so a small MLP learns them fast."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, n_in, generator=g) * 3
    y = torch.randint(0, n_classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, n_in, generator=g) * spread
    return x, y


def toy_images(n: int, size: int = 16, n_classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 3-channel images whose class sets a colour and the orientation of stripes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    coords = torch.arange(size, dtype=torch.float32)
    angle = y.float()[:, None, None] * torch.pi / n_classes
    proj = coords[None, :, None] * torch.cos(angle) + coords[None, None, :] * torch.sin(angle)
    stripes = torch.sin(proj * 2 * torch.pi / 4)
    colour = torch.stack([(y % 3 == c).float() for c in range(3)], 1)[:, :, None, None]
    x = 0.5 * stripes[:, None] + colour + 0.3 * torch.randn(n, 3, size, size, generator=g)
    return x, y


def toy_databunch(kind: str = "blobs", n_train: int = 512, n_valid: int = 256, bs: int = 64, seed: int = 0, **kwargs) -> DataBunch:
    """A DataBunch over `toy_blobs` or `toy_images`: train and valid drawn from the same distribution."""
    makers = {"blobs": toy_blobs, "images": toy_images}
    if kind not in makers:
        raise ValueError(f"toy_databunch kind must be one of {sorted(makers)}, got {kind!r}.")
    x, y = makers[kind](n_train + n_valid, seed=seed, **kwargs)
    train, valid = TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])
    c_in = x.shape[1]
    c_out = int(kwargs.get("n_classes", 4))
    g = torch.Generator().manual_seed(seed)
    return DataBunch(DataLoader(train, bs, shuffle=True, generator=g), DataLoader(valid, bs * 2), c_in=c_in, c_out=c_out)
