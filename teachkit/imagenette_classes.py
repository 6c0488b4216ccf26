"""Imagenette's ten classes: the WordNet ids that name its folders, and what each one is.

The one table of them. `teachkit.datasets` exports it (its home for users) and `teachkit.lookalike` names the
generated set's folders from it, so the real dataset and its stand-in can't disagree.
"""
from __future__ import annotations

__all__ = ["IMAGENETTE_CLASSES"]

IMAGENETTE_CLASSES: dict[str, str] = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player", "n03000684": "chain saw",
    "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck", "n03425413": "gas pump",
    "n03445777": "golf ball", "n03888257": "parachute"}
"""Imagenette's WordNet ids (its folder names, in sorted order) and what they are."""
