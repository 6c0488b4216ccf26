"""`python -m teachkit.train`: the smoke run learns the generated set, and bad flags fail with argparse's message."""
import subprocess
import sys

import pytest
import torch

from teachkit.train import main, parse_args


@pytest.fixture
def smoke(monkeypatch, tmp_path):
    monkeypatch.setenv("TEACHKIT_SMOKE", "1")
    monkeypatch.setenv("TEACHKIT_DATA", str(tmp_path))
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)  # smoke mode trains on one thread


def test_smoke_run_learns_the_generated_set_well_above_chance(smoke, capsys):
    res = main(["--data", "imagenette-160", "--size", "128", "--epochs", "5", "--bs", "64", "--opt", "lamb"])
    out = capsys.readouterr().out
    assert res["synthetic"] and (res["size"], res["epochs"], res["bs"]) == (32, 2, 32)
    # 10 balanced classes: chance is 10%. With LAMB two short epochs reach 69-75% (seeds 0-4 and 42); 40% is four times chance.
    assert res["valid_accuracy"] > 0.40, res
    for text in ["GENERATED", "valid_accuracy", "Final: valid accuracy", "images/s"]:
        assert text in out


@pytest.mark.parametrize("flag, message", [
    (["--opt", "adamw"], "argument --opt: invalid choice: 'adamw'"),
    (["--size", "0"], "argument --size: must be a whole number >= 16, got '0'"),
    (["--bs", "ten"], "argument --bs: must be a whole number >= 2, got 'ten'"),
    (["--lr", "-1"], "argument --lr: must be a finite number > 0, got '-1'"),
    (["--data", "no-such-dataset"], "'no-such-dataset' is neither a dataset"),
])
def test_bad_flags_exit_with_code_2_and_say_why(flag, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(flag)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_folder_without_a_validation_split_is_refused(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    with pytest.raises(SystemExit):
        parse_args(["--data", str(tmp_path)])
    assert "needs train/ and val/" in capsys.readouterr().err


def test_the_module_runs_from_a_terminal():
    res = subprocess.run([sys.executable, "-m", "teachkit.train", "--help"], capture_output=True, text=True, check=True)
    for flag in ["--data", "--size", "--epochs", "--bs", "--opt", "--lr", "--wd", "--workers", "--no-lsuv",
                 "--no-augment", "--mixed-precision", "--seed"]:
        assert flag in res.stdout


def test_a_folder_whose_name_starts_like_a_dataset_is_used_as_a_folder(tmp_path, monkeypatch):
    from teachkit.pipeline import get_data

    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)
    folder = tmp_path / "imagenette_local"
    folder.mkdir()
    assert get_data(str(folder)) == folder


def test_unknown_optimizer_is_a_clear_error():
    from teachkit.toy import toy_databunch
    from teachkit.recipe import build_learner

    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'"):
        build_learner(toy_databunch("images"), opt="adamw")
