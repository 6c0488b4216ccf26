"""README.md's map of the package: every module it names exists and holds the names written beside it, and every
module of the package is on the map."""
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import teachkit

README = Path(__file__).resolve().parents[1] / "README.md"


def map_rows() -> list[list[str]]:
    """The cells of each row of the table that starts with `| module | idea |`."""
    section = README.read_text().split("| module | idea |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][1:]  # skip the rule
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]


def modules_of(row: list[str]) -> list[str]:
    """The modules a row's first cell names: `teachkit.x` spans, and short names after a package (`teachkit.optim`
    (`optimizer`, `factories`)) meaning its submodules."""
    mods, package = [], None
    for span in re.findall(r"`([\w.]+)`", row[0]):
        if span.startswith("teachkit"):
            mods.append(span)
            package = span
        elif package is not None:
            mods.append(f"{package}.{span}")
    return mods


def package_modules() -> set[str]:
    """Every module and subpackage of teachkit, but the exercises of single lessons (the map names their package)."""
    names = {m.name for m in pkgutil.walk_packages(teachkit.__path__, "teachkit.")}
    return {n for n in names if not n.startswith("teachkit.exercises.")}


def test_the_map_has_rows():
    assert len(map_rows()) > 10 and all(modules_of(r) for r in map_rows())


def test_every_module_of_the_package_is_on_the_map():
    mapped = {m for row in map_rows() for m in modules_of(row)}
    assert sorted(package_modules() - mapped) == []


def test_every_module_on_the_map_exists():
    mapped = {m for row in map_rows() for m in modules_of(row)}
    assert sorted(mapped - package_modules()) == []


@pytest.mark.parametrize("row", map_rows(), ids=lambda r: r[0])
def test_the_names_beside_a_module_live_there(row):
    mods = [importlib.import_module(m) for m in modules_of(row)]
    for name in re.findall(r"`([A-Za-z_]\w*)`", row[2]):
        assert any(hasattr(m, name) for m in mods), f"{name} is in none of {modules_of(row)}"
