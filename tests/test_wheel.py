"""Installed, not only editable: build the wheel, install it outside the repository, and use it from there.

A module left out of the package would hide behind `pip install -e` (the venv's editable finder serves the
repository's files), so the installed copy runs with `python -S`: no .pth file, hence no editable finder, and
sys.path holds only the installed copy and the venv's site-packages (for torch and friends).
"""
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

IMPORT_ALL = textwrap.dedent("""
    import importlib, pkgutil, sys
    assert not any('editable' in repr(f).lower() for f in sys.meta_path), sys.meta_path
    import teachkit
    names = ['teachkit'] + [m.name for m in pkgutil.walk_packages(teachkit.__path__, 'teachkit.')]
    for name in names:
        mod = importlib.import_module(name)
        assert mod.__file__.startswith(sys.argv[1]), (name, mod.__file__)
    print('\\n'.join(sorted(names)))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the package sources, installed with --target into a fresh folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "teachkit", src / "teachkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel, = (tmp / "dist").glob("teachkit-*.whl")
    target = tmp / "installed"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    return target


def run_installed(target: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Python without site (no editable finder), seeing the installed copy first, then the venv's packages."""
    path = os.pathsep.join([str(target), *site.getsitepackages()])
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**clean, "PYTHONPATH": path, **env})


def test_every_module_imports_from_the_installed_wheel(installed, tmp_path):
    res = run_installed(installed, ["-c", IMPORT_ALL, str(installed)], tmp_path)
    assert res.returncode == 0, res.stderr
    in_wheel = set(res.stdout.split())
    in_repo = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for p in (REPO / "teachkit").rglob("*.py")}
    assert in_repo <= in_wheel, f"missing from the wheel: {sorted(in_repo - in_wheel)}"


def test_the_cli_smoke_run_works_from_the_installed_wheel(installed, tmp_path):
    res = run_installed(installed, ["-m", "teachkit.train", "--epochs", "1"], tmp_path,
                        TEACHKIT_SMOKE="1", TEACHKIT_DATA=str(tmp_path / "data"))
    assert res.returncode == 0, res.stderr
    assert "Final: valid accuracy" in res.stdout and "valid_accuracy" in res.stdout


def test_a_module_missing_from_the_install_is_caught_not_served_by_the_editable_finder(installed, tmp_path):
    """Control: drop one module from a copy of the install. Without site it is missing, as it should be; with site
    (the editable finder active) the repository's file would have stood in for it: why the runs above use -S."""
    partial = tmp_path / "partial"
    shutil.copytree(installed, partial)
    (partial / "teachkit" / "toy.py").unlink()
    code = "import teachkit.toy; print(teachkit.toy.__file__)"
    assert "No module named 'teachkit.toy'" in run_installed(partial, ["-c", code], tmp_path).stderr
    with_site = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(partial)})
    if with_site.returncode == 0:  # an editable install is present: it serves the repository's copy
        assert with_site.stdout.strip() == str(REPO / "teachkit" / "toy.py")
