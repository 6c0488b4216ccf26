"""GeneralCrop's fast path (`Image.resize(box=...)`) against torchvision's antialiased `resized_crop`, and its fallback."""
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from teachkit.augment import CenterCrop, GeneralCrop


def smooth_image(w: int = 200, h: int = 150) -> Image.Image:
    """A vertical ramp plus slow waves: smooth, yet a 5x shrink aliases it unless the resize averages (a pure linear
    ramp couldn't tell: point samples of a line equal its averages)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.stack([127.5 + 100 * np.sin(xx / 3), 255 * yy / (h - 1), 127.5 + 100 * np.cos((xx + yy) / 4)], -1)
    return Image.fromarray(a.round().astype(np.uint8))


def test_center_crop_matches_torchvision_antialiased_resized_crop():
    im = smooth_image()
    out = np.asarray(CenterCrop((32, 24), scale=1.25)(im)).astype(np.float64)  # the box (20, 15, 180, 135)
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float()
    ref = F.resized_crop(x, top=15, left=20, height=120, width=160, size=[24, 32], antialias=True)
    diff = np.abs(out - ref.permute(1, 2, 0).numpy())[1:-1, 1:-1]  # the border: PIL's filter also reads past the box
    assert out.shape == (24, 32, 3) and diff.max() <= 1.5  # rounding to uint8 and float order


class OutsideCrop(GeneralCrop):
    """A box reaching 10 px past the top-left corner, which `Image.resize(box=...)` can't take."""

    def get_corners(self, w, h, wc, hc):
        return -10.0, -10.0, float(w), float(h)


def test_box_outside_the_image_falls_back_to_extent_with_black_there():
    im = Image.new("RGB", (40, 40), (200, 100, 50))
    out = np.asarray(OutsideCrop(50)(im))
    assert out.shape == (50, 50, 3) and (out[:8, :8] == 0).all() and (out[20:, 20:] == (200, 100, 50)).all()
