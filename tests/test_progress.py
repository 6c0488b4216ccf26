"""teachkit.progress: bars in a notebook and a terminal, a few plain lines in a log file, never bar redraws there."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from fastprogress import fastprogress as fp

from teachkit import progress
from teachkit.progress import PlainMasterBar, PlainProgressBar, bar_kind, master_bar, progress_bar

REDRAWS = ["\r", "█", "|---"]

FIT_SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn
    from teachkit.callbacks import AvgStatsCallback, ProgressCallback
    from teachkit.learner import Learner
    from teachkit.toy import toy_databunch
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    Learner(model, toy_databunch('blobs', n_train=128, n_valid=64), lr=0.1,
            cbs=[AvgStatsCallback(), ProgressCallback()]).fit(2)
""")

LSUV_SCRIPT = textwrap.dedent("""
    import torch
    from teachkit.init import lsuv_init
    from teachkit.models import conv_layer, get_cnn_model, init_cnn
    torch.manual_seed(0)
    model = init_cnn(get_cnn_model(3, 10, [8, 16], conv_layer))
    lsuv_init(model, torch.randn(16, 3, 32, 32))
    print('LSUV finished')
""")


def run_to_file(args, tmp_path, env=None) -> str:
    """Run a Python command with stdout redirected to a file, as a batch job would; return what the file holds."""
    log = tmp_path / "out.log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, *args], stdout=f, stderr=subprocess.PIPE, text=True, check=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, **(env or {})})
    return log.read_text()


def assert_no_redraws(text: str) -> None:
    for r in REDRAWS:
        assert r not in text, f"bar redraw {r!r} in the log:\n{text}"


def test_cli_smoke_run_writes_a_clean_log(tmp_path):
    text = run_to_file(["-m", "teachkit.train"], tmp_path, {"TEACHKIT_SMOKE": "1", "TEACHKIT_DATA": str(tmp_path)})
    assert_no_redraws(text)
    lines = text.splitlines()
    assert sum(l.split()[:2] == ["epoch", "train_loss"] for l in lines) == 1  # the table header, once
    assert [l.split()[0] for l in lines if l[:1].isdigit() and len(l.split()) == 6] == ["0", "1"]  # a row per epoch
    assert text.count("Final: valid accuracy") == 1


def test_lsuv_init_writes_a_start_and_an_end_line(tmp_path):
    text = run_to_file(["-c", LSUV_SCRIPT], tmp_path)
    assert_no_redraws(text)
    lines = text.splitlines()
    assert sum(l.startswith("LSUV: started") for l in lines) == 1
    assert sum(l.startswith("LSUV: done") for l in lines) == 1
    assert lines[-1] == "LSUV finished" and len(lines) == 3


def test_fit_with_progress_callback_logs_the_table_once(tmp_path):
    text = run_to_file(["-c", FIT_SCRIPT], tmp_path)
    assert_no_redraws(text)
    lines = text.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "time"]
    assert [l.split()[0] for l in lines[1:]] == ["0", "1"]


def test_a_terminal_still_gets_fastprogress_bars(tmp_path):
    """In a pseudo-terminal the same fit draws bars (redraws with \\r), and the table is still there."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.run([sys.executable, "-c", FIT_SCRIPT], stdout=slave, stderr=subprocess.PIPE, timeout=300,
                          cwd=tmp_path)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0, proc.stderr
    text = b"".join(chunks).decode(errors="replace")
    assert "\r" in text and "Epoch 1/2" in text
    assert "valid_accuracy" in text


def test_kind_follows_stdout(monkeypatch, capsys):
    assert bar_kind() == "plain"  # pytest captures stdout: not a terminal
    assert isinstance(master_bar(range(3)), PlainMasterBar) and isinstance(progress_bar(range(3)), PlainProgressBar)

    class Tty:
        def isatty(self):
            return True

        def write(self, s):
            return len(s)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Tty())
    assert bar_kind() == "terminal"
    assert isinstance(master_bar(range(3)), fp.ConsoleMasterBar)


def test_notebook_kernel_gets_the_html_bars(monkeypatch):
    ZMQInteractiveShell = type("ZMQInteractiveShell", (), {})
    monkeypatch.setattr("builtins.get_ipython", lambda: ZMQInteractiveShell(), raising=False)
    assert bar_kind() == "notebook"
    mb = master_bar(range(2))
    assert isinstance(mb, fp.NBMasterBar)
    assert isinstance(progress_bar(range(4), parent=mb), fp.NBProgressBar)


def test_plain_bar_says_start_and_end_once(capsys):
    assert list(progress_bar(range(5), comment="work")) == list(range(5))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == "work: started, 5 steps" and lines[1].startswith("work: done, 5/5 in ")


def test_plain_bar_updated_by_hand(capsys):
    pb = progress_bar(range(1000), comment="downloading x.tgz")
    for got in (0, 300, 700, 1000):
        pb.update(got)
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "downloading x.tgz: done, 1000/1000" in out


def test_plain_bar_says_where_it_stopped(capsys):
    with pytest.raises(KeyboardInterrupt):
        for i in progress_bar(range(10), comment="LSUV"):
            if i == 3:
                raise KeyboardInterrupt
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("LSUV: stopped at 3/10") and len(lines) == 2


def test_plain_bar_without_len(capsys):
    assert sum(progress_bar(iter(range(4)), comment="gen")) == 6
    assert capsys.readouterr().out.splitlines()[-1].startswith("gen: done, 4/4")


def test_plain_child_bar_is_silent_and_master_prints_the_table(capsys):
    mb = master_bar(range(2))
    pb = progress_bar(range(10), parent=mb, leave=False)
    pb.update(0)
    pb.update(10)
    mb.write(["epoch", "train_loss"], table=True)
    mb.write(["0", "1.5"], table=True)
    assert capsys.readouterr().out.splitlines() == ["epoch     train_loss", "0         1.5       "]


def test_aligned_row_pads_each_cell():
    assert progress.aligned_row(["a", "bb"], [3, 4]) == "a    bb  "


@pytest.mark.parametrize("kind", ["terminal", "notebook"])
def test_fastprogress_bars_close_when_the_loop_is_left_by_ctrl_c(kind, monkeypatch):
    monkeypatch.setattr(progress, "bar_kind", lambda: kind)
    for name in ["on_iter_begin", "on_update", "on_iter_end"]:  # no kernel here to display HTML into
        monkeypatch.setattr(fp.NBProgressBar, name, lambda self, *a, **k: None)
    closed = []
    monkeypatch.setattr(fp.ProgressBar, "on_interrupt", lambda self: closed.append(type(self).__name__))
    with pytest.raises(KeyboardInterrupt):
        for i in progress_bar(range(10), leave=False, comment="LSUV"):
            if i == 3:
                raise KeyboardInterrupt
    assert closed == [{"terminal": "TerminalBar", "notebook": "NotebookBar"}[kind]]


def test_a_finished_fastprogress_bar_is_not_marked_interrupted(monkeypatch):
    monkeypatch.setattr(progress, "bar_kind", lambda: "terminal")
    closed = []
    monkeypatch.setattr(fp.ProgressBar, "on_interrupt", lambda self: closed.append(self))
    assert list(progress_bar(range(4))) == [0, 1, 2, 3] and closed == []
