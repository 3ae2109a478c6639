"""Progress on long stages: tqdm on a terminal, bounded-rate lines otherwise (arkbench.progress).

The stage test drives real stage scripts with stdout a pipe (as under CI or
`dvc repro > log`) and reads their progress lines. Checked failing first: with
pretrain's loop back on a bare tqdm bar (no line mode) and finetune's loop without the
helper, the stage tests find no "[progress]" lines.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arkbench import progress as prog

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\[progress\] (?P<desc>[^:]+): (?P<n>\d+)/(?P<total>\d+) (?P<unit>\w+) \(\d+%\), "
                  r"[0-9.e+]+ \w+/s, (ETA \d+[hms]|done in \d+)")


def test_mode_follows_stdout_and_env(monkeypatch):
    monkeypatch.delenv("ARKBENCH_PROGRESS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert prog.mode() == "lines"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert prog.mode() == "bar"
    monkeypatch.setenv("ARKBENCH_PROGRESS", "off")
    assert prog.mode() == "off"
    monkeypatch.setenv("ARKBENCH_PROGRESS", "lines")
    monkeypatch.setenv("RANK", "1")          # torchrun: only rank 0 reports
    assert prog.mode() == "off"
    monkeypatch.setenv("ARKBENCH_PROGRESS", "loud")
    with pytest.raises(ValueError, match="ARKBENCH_PROGRESS='loud'"):
        prog.mode()


def test_lines_are_rate_bounded(monkeypatch, capsys):
    monkeypatch.setenv("ARKBENCH_PROGRESS", "lines")
    monkeypatch.delenv("RANK", raising=False)
    clock = [1000.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: clock[0])
    prog._last_line[0] = clock[0]
    monkeypatch.setenv("ARKBENCH_PROGRESS_INTERVAL", "30")
    with prog.progress(total=100, desc="loop", unit="step") as bar:
        for _ in range(100):
            clock[0] += 1.0               # 1 s per step: 100 s in all
            bar.update(1)
            bar.set_postfix(loss="0.5")
    out = capsys.readouterr().out.splitlines()
    # one line per 30 s (at 30, 60, 90 s) plus the closing line
    assert len(out) == 4, out
    assert [int(LINE.match(x)["n"]) for x in out] == [30, 60, 90, 100]
    assert out[0] == "[progress] loop: 30/100 step (30%), 1 step/s, ETA 1m10s, loss=0.5"
    assert out[-1].startswith("[progress] loop: 100/100 step (100%), 1 step/s, done in 1m40s")


def test_short_loops_stay_silent(monkeypatch, capsys):
    monkeypatch.setenv("ARKBENCH_PROGRESS", "lines")
    monkeypatch.setenv("ARKBENCH_PROGRESS_INTERVAL", "30")
    prog._last_line[0] = prog.time.monotonic()
    assert list(prog.progress(range(5), desc="quick")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().out == ""


def _stage(tmp: Path, script: str, *args: str, interval: str = "0") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ARKBENCH_PROGRESS"}    # auto: stdout is a pipe
    env.update(PYTHONPATH=str(REPO / "src"), ARKBENCH_TRACKING="off", ARKBENCH_PROGRESS_INTERVAL=interval)
    r = subprocess.run([sys.executable, str(REPO / "stages" / script), "--params-file", "params.yaml", *args],
                       cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _progress_lines(out: str, desc: str) -> list[re.Match]:
    return [m for m in map(LINE.match, out.splitlines()) if m and m["desc"].startswith(desc)]


@pytest.mark.slow
def test_stages_print_progress_lines_when_stdout_is_not_a_terminal(tmp_path):
    """download -> pretrain -> finetune on a tiny embedded setup; every loop reports."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["download"].update(tasks=["rte", "corpus"], embedded_train_size=64, embedded_eval_size=32)
    p["pretrain"].update(max_steps=6, warmup_steps=1, checkpoint_every=3, eval_every=3, log_every=2)
    p["finetune"].update(tasks=["rte"], seeds=[0])
    p["finetune"]["hp"].update(epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))

    dl = _stage(tmp_path, "download.py")
    assert _progress_lines(dl.stdout, "download"), dl.stdout
    pre = _stage(tmp_path, "pretrain.py", "--variant", "bert")
    lines = _progress_lines(pre.stdout, "pretrain bert")
    assert lines and all(int(m["total"]) == 6 for m in lines), pre.stdout
    assert lines[-1]["n"] == "6" and "done in" in lines[-1].string
    assert "\r" not in pre.stdout and "\r" not in pre.stderr, "a tqdm bar was drawn into a pipe"
    ft = _stage(tmp_path, "finetune.py", "--model", "bert", "--task", "rte")
    train = _progress_lines(ft.stdout, "finetune rte seed 0")
    evals = _progress_lines(ft.stdout, "evaluate rte validation")
    assert train and evals, ft.stdout
    assert train[-1]["n"] == train[-1]["total"] and "done in" in train[-1].string

    # the interval bounds the rate: a run shorter than it prints no progress line
    quiet = _stage(tmp_path, "download.py", interval="3600")
    assert not _progress_lines(quiet.stdout, ""), quiet.stdout
