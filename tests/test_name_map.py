"""lessons/README.md's table from course-v3 names to teachkit names: every teachkit name in it imports, with the
parameters the table writes, and every course name the lessons promise to explain has a row."""
import importlib
import inspect
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "lessons" / "README.md"

COURSE_NAMES = ["get_learn_run", "get_learner", "Runner", "CudaCallback", "get_batch", "LR_Find", "Path.ls", "setify",
                "uniqueify", "lin_comb", "np_to_float", "rotate_batch", "affine_grid_cpu", "create_phases",
                "cnn_learner", "adam_opt()", "lsuv_module(m, xb)", "get_cnn_model(data", "model_summary(run",
                "append_stat", "_order", "self.run", "cb_funcs", "after_cancel_train"]


def table_rows() -> list[list[str]]:
    """The cells of each row of the table under '## Course names and teachkit names'."""
    section = README.read_text().split("## Course names and teachkit names", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # skip the header and the rule
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]


def teachkit_refs() -> list[str]:
    """Every `teachkit.…` span of the teachkit and why columns."""
    return sorted({ref for row in table_rows() for cell in row[1:] for ref in re.findall(r"`(teachkit\.[^`]+)`", cell)})


def resolve(dotted: str):
    """The object a dotted name such as `teachkit.learner.Callback.order` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_table_has_a_row_for_every_course_name():
    first_column = " ".join(row[0] for row in table_rows())
    missing = [n for n in COURSE_NAMES if n not in first_column]
    assert not missing, f"lessons/README.md's name table has no row for {missing}"


def test_every_row_names_a_replacement_or_says_why_not():
    for row in table_rows():
        assert len(row) == 3, row
        assert row[1].startswith("`teachkit.") or (row[1] == "—" and len(row[2]) > 20), row


@pytest.mark.parametrize("ref", teachkit_refs())
def test_teachkit_name_imports_with_the_parameters_written(ref):
    name, _, args = ref.partition("(")
    obj = resolve(name)
    if not args:
        return
    params = inspect.signature(obj).parameters
    written = [a.strip().split("=")[0].strip() for a in args.rstrip(")").split(",")]
    unknown = [a for a in written if a and a not in ("...", "*", "**kwargs") and a not in params]
    assert not unknown, f"{name} has no parameter(s) {unknown}; its signature is {inspect.signature(obj)}"
