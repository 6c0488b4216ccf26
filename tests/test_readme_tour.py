"""README.md's short tour runs as written (one epoch instead of five, on the smoke-size generated set)."""
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_short_tour_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    monkeypatch.setenv("TEACHKIT_DATA", str(tmp_path))
    code = README.read_text().split("## A short tour", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "learn.fit(5," in code
    scope: dict = {}
    exec(compile(code.replace("learn.fit(5,", "learn.fit(1,"), "README tour", "exec"), scope)
    assert len(scope["learn"].recorder.losses) > 0 and "valid_accuracy" in capsys.readouterr().out
