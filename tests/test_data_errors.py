"""Bad data stops every stage entry point with one clean line and exit 2, nothing half-written.

Each case runs a real stage script (stages/*.py) as `dvc repro` would, in a temp folder
with the repository's params.yaml cut down, and a missing or malformed data file:

    exit status 2, stderr = exactly one line "[<stage>] data error: <file>[:<line>]: <problem>",
    no traceback, and none of the stage's outputs (or temp files) left behind.

Checked failing first: with the `except DataError` branch of arkbench.stage.stage_main
removed, every case ends in a traceback with exit 1.
Stages without data inputs (oversmoothing_theory) have no case; the report renders a
corrupt metrics file as an "inconclusive" claim naming the file (tests/test_report.py).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow   # ~10 stage start-ups

STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
RTE_HEADER = "index\tsentence1\tsentence2\tlabel"


def _w(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def bad_stsb(root: Path) -> Path:
    """glue_data/STS-B/train.tsv whose line 3 has a score that is not a number."""
    f = root / "glue_data/STS-B/train.tsv"
    _w(f, [STSB_HEADER, "0\tg\tf\t2012\t0\tn\tn\tA man eats .\tA man is eating .\t4.5",
           "1\tg\tf\t2012\t1\tn\tn\tA dog runs .\tA cat sleeps .\tabc"])
    _w(root / "glue_data/STS-B/dev.tsv", [STSB_HEADER, "0\tg\tf\t2012\t0\tn\tn\ta\tb\t1.0"])
    return f


def bad_rte(root: Path) -> Path:
    """glue_data/RTE/train.tsv whose line 4 has a label RTE does not have."""
    f = root / "glue_data/RTE/train.tsv"
    _w(f, [RTE_HEADER, "0\tA man sleeps .\tA man rests .\tentailment",
           "1\tA dog runs .\tA cat sleeps .\tnot_entailment", "2\tIt rains .\tIt is dry .\tmaybe"])
    _w(root / "glue_data/RTE/dev.tsv", [RTE_HEADER, "0\ta\tb\tentailment"])
    return f


def _params(tmp: Path, **sections) -> Path:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, over in sections.items():
        p[name] = {**p[name], **over}
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def _run(tmp: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ARKBENCH_TRACKING": "off",
           "ARKBENCH_PROGRESS": "off"}
    return subprocess.run([sys.executable, str(REPO / "stages" / script), "--params-file", "params.yaml", *args],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def _assert_clean(r: subprocess.CompletedProcess, stage: str, pattern: str, tmp: Path, outs: list[str]) -> None:
    err = r.stderr.strip()
    assert r.returncode == 2, f"exit {r.returncode}, expected 2:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[-3000:]}"
    assert lines[0].startswith(f"[{stage}] data error: "), lines[0]
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    for o in outs:
        assert not (tmp / o).exists(), f"{o} was written although the stage failed"
    leftovers = [p for p in tmp.rglob("*.tmp")]
    assert not leftovers, f"temp files left behind: {leftovers}"


def test_download_malformed_local_file(tmp_path):
    bad = bad_stsb(tmp_path / "data_in")
    _params(tmp_path, download={"source": "local", "local_dir": str(tmp_path / "data_in"), "tasks": ["stsb"]})
    r = _run(tmp_path, "download.py")
    _assert_clean(r, "download", re.escape(f"{bad}:3: expected a number, got 'abc'"), tmp_path,
                  ["data/tasks", "metrics/download.json"])


def test_download_file_not_utf8(tmp_path):
    bad = bad_rte(tmp_path / "data_in")
    bad.write_bytes(bad.read_bytes().replace(b"It rains", b"It r\xe4ins"))
    _params(tmp_path, download={"source": "local", "local_dir": str(tmp_path / "data_in"), "tasks": ["rte"]})
    r = _run(tmp_path, "download.py")
    _assert_clean(r, "download", re.escape(f"{bad}:4: not UTF-8 text"), tmp_path, ["data/tasks"])


def test_download_missing_task_folder(tmp_path):
    (tmp_path / "data_in" / "glue_data").mkdir(parents=True)
    _params(tmp_path, download={"source": "local", "local_dir": str(tmp_path / "data_in"), "tasks": ["rte"]})
    r = _run(tmp_path, "download.py")
    _assert_clean(r, "download", r"task 'rte': no data under .*glue_data/RTE", tmp_path, ["data/tasks"])


def test_pretrain_missing_corpus(tmp_path):
    _params(tmp_path, pretrain={"corpus": "corpus_folder"})
    r = _run(tmp_path, "pretrain.py", "--variant", "bert")
    _assert_clean(r, "pretrain@bert", r"pretrain.corpus = 'corpus_folder': not", tmp_path,
                  ["models/pretrain/bert", "metrics/pretrain/bert.json", "plots/pretrain/bert.csv"])


def test_finetune_task_not_prepared(tmp_path):
    _params(tmp_path)
    r = _run(tmp_path, "finetune.py", "--model", "minilm", "--task", "rte",
             "--stage-name", "finetune_ref@minilm-rte")
    _assert_clean(r, "finetune_ref@minilm-rte", r"data/tasks/rte: task 'rte' has not been prepared", tmp_path,
                  ["metrics/finetune"])


def test_finetune_prepared_task_corrupt(tmp_path):
    d = tmp_path / "data/tasks/rte"
    d.mkdir(parents=True)
    (d / "dataset_dict.json").write_text('{"splits": ["train", "validation"]')   # truncated
    _params(tmp_path)
    r = _run(tmp_path, "finetune.py", "--model", "minilm", "--task", "rte",
             "--stage-name", "finetune_ref@minilm-rte")
    _assert_clean(r, "finetune_ref@minilm-rte", r"data/tasks/rte: cannot read the saved task", tmp_path,
                  ["metrics/finetune"])


def test_finetune_pretrained_model_missing(tmp_path):
    _params(tmp_path)
    r = _run(tmp_path, "finetune.py", "--model", "bert", "--task", "rte")
    _assert_clean(r, "finetune@bert-rte", r"models/pretrain/bert: pre-trained model 'bert' not found", tmp_path,
                  ["metrics/finetune"])


def test_download_missing_local_folder(tmp_path):
    """The cpu profile's data folder is absent: the download stage stops before any work, naming the
    folder and the alternative (download.source=hub)."""
    _params(tmp_path, download={"source": "local", "local_dir": str(tmp_path / "no_data"), "tasks": ["rte", "sst2"]})
    r = _run(tmp_path, "download.py")
    _assert_clean(r, "download", r"download.local_dir: data folder .*no_data.* not found.*download.source=hub",
                  tmp_path, ["data/tasks"])


def test_oversmoothing_similarity_malformed_file(tmp_path):
    bad = bad_stsb(tmp_path / "data_in")
    _params(tmp_path, oversmoothing_similarity={"source": "local", "local_dir": str(tmp_path / "data_in"),
                                                "tasks": ["stsb"]})
    r = _run(tmp_path, "oversmoothing_similarity.py")
    _assert_clean(r, "oversmoothing_similarity", re.escape(f"{bad}:3: expected a number"), tmp_path,
                  ["plots/oversmoothing/similarity", "metrics/oversmoothing/similarity.json"])


def test_oversmoothing_probe_malformed_file(tmp_path):
    bad = bad_rte(tmp_path / "data_in")
    _params(tmp_path, oversmoothing_probe={"source": "local", "local_dir": str(tmp_path / "data_in"), "task": "rte"})
    r = _run(tmp_path, "oversmoothing_probe.py")
    _assert_clean(r, "oversmoothing_probe", re.escape(f"{bad}:4: bad label 'maybe'"), tmp_path,
                  ["plots/oversmoothing/probe", "metrics/oversmoothing/layerwise.json"])


def test_oversmoothing_fusion_task_not_prepared(tmp_path):
    _params(tmp_path, oversmoothing_fusion={"init": "minilm", "tasks": ["rte"]})
    r = _run(tmp_path, "oversmoothing_fusion.py", "--task", "rte")
    _assert_clean(r, "oversmoothing_fusion@rte", r"data/tasks/rte: task 'rte' has not been prepared", tmp_path,
                  ["plots/oversmoothing/fusion", "metrics/oversmoothing/fusion/rte.json"])


def test_oversmoothing_fusion_summary_corrupt_metrics(tmp_path):
    f = tmp_path / "metrics/oversmoothing/fusion/rte.json"
    f.parent.mkdir(parents=True)
    f.write_text('{"task": "rte",\n "last": {"mean": 0.5,}\n}\n')
    _params(tmp_path, oversmoothing_fusion={"tasks": ["rte"]})
    r = _run(tmp_path, "oversmoothing_fusion_summary.py")
    _assert_clean(r, "oversmoothing_fusion_summary", re.escape("metrics/oversmoothing/fusion/rte.json:2:") +
                  r"\d+: not valid JSON", tmp_path,
                  ["plots/oversmoothing/fusion/summary", "metrics/oversmoothing/fusion.json"])
