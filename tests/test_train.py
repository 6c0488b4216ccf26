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
    (["--lr", "inf"], "argument --lr: must be a finite number > 0, got 'inf'"),
    (["--data", "no-such-dataset"], "'no-such-dataset' is neither a dataset"),
    (["--arch", "resnet18"], "argument --arch: invalid choice: 'resnet18'"),
    (["--sched", "cosine"], "argument --sched: invalid choice: 'cosine'"),
    (["--mixup", "-0.2"], "argument --mixup: must be a finite number >= 0, got '-0.2'"),
    (["--label-smoothing", "1"], "argument --label-smoothing: must be a number >= 0 and < 1, got '1'"),
    (["--label-smoothing", "lots"], "argument --label-smoothing: must be a number >= 0 and < 1, got 'lots'"),
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
                 "--no-augment", "--mixed-precision", "--seed", "--arch", "--mixup", "--label-smoothing", "--sched"]:
        assert flag in res.stdout
    for choice in ["{cnn,xresnet18,xresnet34,xresnet50}", "{one-cycle,flat-cos}", "ranger"]:
        assert choice in res.stdout
    help_text = " ".join(res.stdout.split())
    assert "73.6% valid accuracy" in help_text and "Imagenette v1" in help_text and "500 images" in help_text


def test_a_folder_whose_name_starts_like_a_dataset_is_used_as_a_folder(tmp_path, monkeypatch):
    from teachkit.data.imagenette import get_data

    monkeypatch.delenv("TEACHKIT_SMOKE", raising=False)
    folder = tmp_path / "imagenette_local"
    folder.mkdir()
    assert get_data(str(folder)) == folder


def test_unknown_optimizer_is_a_clear_error():
    from teachkit.toy import toy_databunch
    from teachkit.recipe import build_learner

    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'"):
        build_learner(toy_databunch("images"), opt="adamw")


def test_flags_reach_the_learner(smoke):
    """--arch, --opt ranger, --sched flat-cos, --label-smoothing, --mixup and --mixed-precision build what they say."""
    from teachkit.mixup import MixUp
    from teachkit.precision import MixedPrecision
    from teachkit.recipe import build_learner
    from teachkit.toy import toy_databunch
    from teachkit.xresnet import XResNet

    args = parse_args(["--arch", "xresnet18", "--opt", "ranger", "--sched", "flat-cos", "--label-smoothing", "0.1",
                       "--mixup", "0.4", "--mixed-precision"])
    dls = toy_databunch("images")
    learn = build_learner(dls, args.opt, None, args.wd, args.lsuv, args.mixed_precision, False, "cpu", arch=args.arch,
                          sched=args.sched, mixup=args.mixup, label_smoothing=args.label_smoothing)
    assert isinstance(learn.model, XResNet) and learn.model.fc.out_features == dls.c_out
    assert learn.loss_func.label_smoothing == 0.1
    assert isinstance(learn.mix_up, MixUp) and learn.mix_up.alpha == 0.4
    assert any(isinstance(cb, MixedPrecision) for cb in learn.cbs)
    scheds = [cb for cb in learn.cbs if type(cb).__name__ == "ParamScheduler"]
    assert [s.pname for s in scheds] == ["lr"]  # flat-cos leaves momentum alone
    assert scheds[0].sched_funcs(0.5) == pytest.approx(1e-2)  # ranger's peak lr, still flat half-way
    opt = learn.opt_func(learn.model.parameters(), lr=learn.lr)
    assert "k" in opt.hypers[0] and "alpha" in opt.hypers[0]  # Lookahead's hyper-parameters: it is Ranger


def test_one_cycle_schedules_momentum_too_and_no_mixup_by_default():
    from teachkit.recipe import build_learner
    from teachkit.toy import toy_databunch

    learn = build_learner(toy_databunch("images"), "adam", progress=False, device="cpu", lsuv=False)
    assert [cb.pname for cb in learn.cbs if type(cb).__name__ == "ParamScheduler"] == ["lr", "mom"]
    assert not hasattr(learn, "mix_up") and learn.loss_func.label_smoothing == 0.0


def test_smoke_run_with_the_capstone_flags(smoke, capsys):
    res = main(["--arch", "xresnet18", "--opt", "ranger", "--sched", "flat-cos", "--label-smoothing", "0.1",
                "--mixup", "0.2", "--epochs", "1"])
    out = capsys.readouterr().out
    assert res["arch"] == "xresnet18" and res["epochs"] == 1 and 0 <= res["valid_accuracy"] <= 1
    assert "Final: valid accuracy" in out


@pytest.mark.parametrize("flag, message", [
    (["--bs", "-1"], "argument --bs: must be a whole number >= 2, got '-1'"),
    (["--save", "."], "argument --save: '.' is a folder: name the checkpoint file in it"),
])
def test_a_refused_flag_never_imports_torch(flag, message):
    """Flags are checked before torch is imported (seconds): `-X importtime` lists every module imported."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "teachkit.train", *flag],
                         capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")]
    assert "teachkit.choices" in imported and "argparse" in imported  # the parser was built
    assert [m for m in imported if m == "torch" or m.startswith("torch.")] == []


def test_the_parser_offers_what_the_recipe_builds():
    from teachkit import choices, recipe
    from teachkit.data import imagenette as pipeline

    assert list(recipe.ARCHS) == list(choices.ARCH_NAMES)
    assert {k: lr for k, (_, lr) in recipe.OPT_CHOICES.items()} == choices.OPT_LRS
    assert tuple(pipeline.DATASETS) == choices.DATASET_NAMES and recipe.SCHEDS is choices.SCHEDS


def test_a_diverged_run_exits_with_its_message(smoke):
    with pytest.raises(SystemExit) as e:
        main(["--opt", "sgd", "--lr", "1e4", "--epochs", "1", "--no-lsuv"])
    assert str(e.value.code).startswith("error: Training diverged: the loss is nan at epoch 0, training batch ")
    assert "learning rate" in str(e.value.code)  # sys.exit(text): printed to stderr, exit status 1


@pytest.mark.parametrize("name", ["none.pt", "."])
def test_resume_needs_an_existing_checkpoint_file(tmp_path, capsys, name):
    with pytest.raises(SystemExit) as e:
        parse_args(["--resume", str(tmp_path / name)])
    assert e.value.code == 2 and "argument --resume: no checkpoint file" in capsys.readouterr().err


def test_save_refuses_a_folder_or_a_path_below_a_file_when_parsing(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--save", str(tmp_path)])
    assert e.value.code == 2 and f"argument --save: '{tmp_path}' is a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as e:
        parse_args(["--save", str(tmp_path / "file" / "run.pt")])
    assert e.value.code == 2 and f"'{tmp_path / 'file'}' is not a folder this user may write" in capsys.readouterr().err
    assert parse_args(["--save", str(tmp_path / "new" / "run.pt")]).save == str(tmp_path / "new" / "run.pt")


def test_resume_refuses_flags_that_differ_from_the_saved_run_and_allows_speed_flags(smoke):
    path = str(smoke / "adam.pt")
    main(["--epochs", "1", "--opt", "adam", "--save", path])
    with pytest.raises(SystemExit) as e:
        main(["--epochs", "1", "--opt", "lamb", "--lr", "3e-3", "--wd", "0.1", "--resume", path])
    assert str(e.value.code) == (f"error: {path} was saved by a run with other flags: opt (saved 'adam', now 'lamb'), "
                                 "wd (saved 0.01, now 0.1). Resume with the flags of the run that saved it, or start "
                                 "a new run without --resume.")
    with pytest.raises(SystemExit, match="nothing is left to resume"):  # past the flags: only speed flags differ
        main(["--epochs", "1", "--opt", "adam", "--workers", "0", "--channels-last", "--resume", path])


def test_teachkits_own_errors_end_the_cli_with_their_message(smoke, monkeypatch):
    import teachkit.recipe as recipe
    from teachkit.data.cache import CacheWriteError

    def full_disk(name):
        raise CacheWriteError(28, f"the dataset cache {smoke} is full: free some space or set TEACHKIT_DATA")

    monkeypatch.setattr(recipe, "get_data", full_disk)
    with pytest.raises(SystemExit) as e:
        main(["--epochs", "1"])
    assert str(e.value.code) == f"error: [Errno 28] the dataset cache {smoke} is full: free some space or set TEACHKIT_DATA"


@pytest.mark.parametrize("module, name, usual", [
    ("teachkit.checkpoint", "CheckpointError", ValueError), ("teachkit.guards", "DivergenceError", FloatingPointError),
    ("teachkit.data.datasets", "DownloadError", ConnectionError),
    ("teachkit.data.datasets", "CorruptArchiveError", ValueError), ("teachkit.data.cache", "CacheWriteError", OSError),
    ("teachkit.distributed", "DataMismatchError", ValueError), ("teachkit.data.files", "ImageLoadError", OSError),
])
def test_each_user_facing_error_is_a_teachkit_error(module, name, usual):
    """The CLI prints what it catches as TeachkitError; each error keeps its usual base for code that catches that."""
    import importlib

    from teachkit.errors import TeachkitError

    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, TeachkitError) and issubclass(error, usual)


class CtrlCInEpoch1:
    """A callback factory for `speed_callbacks`: Kernel -> Interrupt in epoch 1's third batch."""

    def __init__(self, original):
        self.original = original

    def __call__(self, *args):
        from teachkit.learner import Callback

        class CtrlC(Callback):
            def after_step(self):
                if self.epoch == 1 and self.iter == 2:
                    raise KeyboardInterrupt

        return self.original(*args) + [CtrlC()]


def test_save_then_resume_ends_with_the_weights_of_an_uninterrupted_run(smoke, monkeypatch, capsys):
    import teachkit.recipe as recipe

    flags = ["--epochs", "2", "--opt", "adam"]
    main(flags + ["--save", str(smoke / "full.pt")])
    with monkeypatch.context() as m:
        m.setattr(recipe, "speed_callbacks", CtrlCInEpoch1(recipe.speed_callbacks))
        with pytest.raises(KeyboardInterrupt):
            main(flags + ["--save", str(smoke / "run.pt")])
    capsys.readouterr()
    res = main(flags + ["--resume", str(smoke / "run.pt"), "--save", str(smoke / "run.pt")])
    assert res["start_epoch"] == 1 and "training epoch 1 on" in capsys.readouterr().out
    full, resumed = (torch.load(smoke / f, weights_only=True) for f in ("full.pt", "run.pt"))
    assert full["epochs_done"] == resumed["epochs_done"] == 2
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=0, atol=1e-6, msg=k)
    with pytest.raises(SystemExit, match="nothing is left to resume"):
        main(flags + ["--resume", str(smoke / "run.pt")])
    with pytest.raises(SystemExit, match=r"other flags: epochs \(saved 2, now 1\)"):  # before the data is built
        main(["--epochs", "1", "--opt", "adam", "--resume", str(smoke / "full.pt")])


class Unreadable(torch.utils.data.Dataset):
    """Every item is an image that can't be read."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        from teachkit.data.files import ImageLoadError

        raise ImageLoadError(f"Could not read image {i}.jpg: truncated. Delete or replace the file.")


def test_an_error_from_a_dataloader_worker_prints_its_message_not_the_workers_traceback():
    from teachkit.data.files import ImageLoadError
    from teachkit.errors import user_message

    with pytest.raises(ImageLoadError) as caught:
        next(iter(torch.utils.data.DataLoader(Unreadable(), num_workers=1)))
    assert "Original Traceback" in str(caught.value)  # torch puts the worker's traceback in the message
    assert user_message(caught.value) == "Could not read image 0.jpg: truncated. Delete or replace the file."
    assert user_message(ImageLoadError("plain")) == "plain"
