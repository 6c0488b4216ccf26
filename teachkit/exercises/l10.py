"""Lesson 10's exercise: the rotation matrix of batched augmentation, an inverse map with its aspect fix.

The matrix maps each OUTPUT pixel to where it reads from in the INPUT, in grid_sample's normalised [-1, 1]
coordinates (x right, y down). teachkit's reference is `teachkit.augment.batch.rotation_matrix`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..augment import rotation_matrix
from . import Case, Exercise, Mistake, Verdict


def solution_rotation_matrix(thetas: Tensor, aspect: float = 1.0) -> Tensor:
    """(n,) angles in degrees -> (n, 3, 3): where each output pixel of an image rotated clockwise reads from."""
    rad = thetas.float() * math.pi / 180
    c, s = rad.cos(), rad.sin()
    m = torch.eye(3).repeat(len(thetas), 1, 1)
    m[:, 0, 0], m[:, 0, 1] = c, s / aspect   # x is stretched by the width, y by the height: undo, rotate, redo
    m[:, 1, 0], m[:, 1, 1] = -s * aspect, c
    return m


def _reference(thetas: Tensor, aspect: float = 1.0) -> Tensor:
    return rotation_matrix(thetas, aspect)


def _angles(seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.tensor([0.0, 30.0, 90.0]), torch.rand(5, generator=g) * 360 - 180])


CASES = [Case("On a square image (aspect 1)", lambda: (_angles(0), 1.0)),
         Case("On a 3:2 image (aspect 1.5)", lambda: (_angles(1), 1.5))]


def _observe(fn: Any, args: tuple) -> dict[str, Any]:
    """Each angle's matrix on its own, so the message can say which angle went wrong."""
    thetas, aspect = args
    m = fn(thetas, aspect)
    if not isinstance(m, Tensor):
        return {"the result": type(m).__name__}
    out = {"the result's shape": tuple(m.shape)}
    if m.shape == (len(thetas), 3, 3):
        out.update({f"the matrix for {t:.0f}°": m[i].float() for i, t in enumerate(thetas.tolist())})
    return out


def _radians(thetas, aspect=1.0):
    return solution_rotation_matrix(thetas * 180 / math.pi, aspect)


def _forward_map(thetas, aspect=1.0):
    return solution_rotation_matrix(-thetas, aspect)


def _no_aspect(thetas, aspect=1.0):
    return solution_rotation_matrix(thetas, 1.0)


def _aspect_swapped(thetas, aspect=1.0):
    return solution_rotation_matrix(thetas, 1 / aspect)


MISTAKES = [
    Mistake(_radians, "the angles are in degrees: convert them to radians (times pi / 180) before cos and sin."),
    Mistake(_forward_map, "the matrix is an inverse map: for each output pixel it says where to READ in the input, "
                          "so it turns the other way from the picture (swap the signs of the sin terms)."),
    Mistake(_no_aspect, "on a non-square image the normalised coordinates stretch x by the width and y by the height: "
                        "divide the top-right sin by aspect and multiply the bottom-left one by it, or the picture shears."),
    Mistake(_aspect_swapped, "the aspect fix is the wrong way round: s / aspect goes in row 0 (x), -s * aspect in row 1 (y)."),
]

EXERCISE = Exercise("rotation_matrix", _reference, CASES, _observe, MISTAKES, rtol=1e-5, atol=1e-5,
                    signature_hint="It is called as rotation_matrix(thetas, aspect): a 1-D tensor of angles in degrees "
                                   "and width / height.", solution=solution_rotation_matrix)


def check_rotation_matrix(fn: Any) -> Verdict:
    """Check a learner's `rotation_matrix(thetas, aspect)` against `teachkit.augment.batch.rotation_matrix`."""
    return EXERCISE.check(fn)
