"""Data augmentation (lesson 10), in two modules:

- `pil`: per image, on PIL bytes before the tensor: flips, dihedral turns, crops, the perspective tilt;
- `batch`: per batch, one matrix per sample and one `grid_sample` for the whole batch, on the GPU when there is one.
"""
from .batch import (BatchAugment, BatchFlip, BatchRotate, BatchTransform, BatchWarp, BatchZoom, INTERP_MODES,
                    PAD_MODES, apply_matrices, flip_matrix, homography_grid, rotation_matrix, tilt_matrix,
                    zoom_matrix)
from .pil import (CenterCrop, GEOMETRIC_RESAMPLING, GeneralCrop, PilRandomDihedral, PilRandomFlip,
                  PilTiltRandomCrop, PilTransform, RandomCrop, RandomResizedCrop, centered, find_coeffs, fit_crop,
                  process_sz, tilted_corners, warp)

__all__ = ["GEOMETRIC_RESAMPLING", "PilTransform", "PilRandomFlip", "PilRandomDihedral", "GeneralCrop",
           "RandomCrop", "CenterCrop", "RandomResizedCrop", "PilTiltRandomCrop", "find_coeffs", "warp",
           "tilted_corners", "process_sz", "fit_crop", "centered", "INTERP_MODES", "PAD_MODES", "flip_matrix",
           "rotation_matrix", "zoom_matrix", "tilt_matrix", "homography_grid", "apply_matrices", "BatchTransform",
           "BatchFlip", "BatchRotate", "BatchZoom", "BatchWarp", "BatchAugment"]
