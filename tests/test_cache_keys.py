"""Cache keys that survive a clone: `dvc pull` in a fresh clone must really skip work.

- byte-code and other machine-local files are not part of a directory dep's hash
  (.dvcignore); checked failing first: without .dvcignore the probe stage below is
  reported "modified" once __pycache__ exists;
- the committed dvc.lock matches a fresh clone: `dvc status` there reports no modified
  code dep and no changed param for any locked stage (fails while dvc.lock is stale,
  i.e. code or params changed since it was written: regenerate it with `dvc repro`);
- the pre-trained model folder, a dep of later stages, is byte-identical across two runs
  with the same params and seed (no tokens/s in meta.json); checked failing first with
  the old meta.json that held tokens_per_s; so are captioning's detection and graph folders
  (their summary.json / meta.json held `seconds`, so a rerun of the detection reran phase 1,
  phase 2 and the evaluation).

The push -> clone -> pull -> `dvc repro` runs-nothing round trip is in
tests/test_dvc_remote.py (local remote) and tests/test_s3_remote.py (S3).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from repo_copy import DVC, copy_repo, dvc, git

pytestmark = pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed at {DVC}")


def _origin(tmp: Path) -> Path:
    origin = tmp / "origin"
    origin.mkdir()
    copy_repo(origin)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "repo copy")
    return origin


def _status(root: Path, *targets: str) -> dict:
    out = dvc(root, "status", "--json", *targets)
    return json.loads(out[out.index("{"):]) if "{" in out else {}


def test_bytecode_is_not_part_of_dep_hashes(tmp_path):
    origin = _origin(tmp_path)
    dvc(origin, "stage", "add", "-n", "cache_key_probe", "-d", "src/arkbench/data", "-d", "stages",
        "-o", "probe.txt", f"{sys.executable} -c \"open('probe.txt', 'w').write('x')\"")
    dvc(origin, "repro", "cache_key_probe")
    assert _status(origin, "cache_key_probe") == {}
    # what running the stages leaves behind on a developer's machine
    subprocess.run([sys.executable, "-m", "compileall", "-q", "src", "stages"], cwd=origin, check=True)
    assert list((origin / "src/arkbench/data").glob("__pycache__/*.pyc")), "compileall wrote no byte-code"
    (origin / "src/arkbench/data/.DS_Store").write_bytes(b"\0")
    (origin / "src/arkbench/data/load.py~").write_text("editor backup")
    assert _status(origin, "cache_key_probe") == {}, "machine-local files changed a dep's hash"


def test_fresh_clone_matches_committed_lock(tmp_path):
    origin = _origin(tmp_path)
    lock = yaml.safe_load((origin / "dvc.lock").read_text())["stages"]
    outs = {o["path"] for st in lock.values() for o in st.get("outs") or []}
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    status = _status(clone)          # nothing run, nothing pulled
    stale: dict[str, list[str]] = {}
    for stage, entries in status.items():
        if stage not in lock:
            continue
        for e in entries if isinstance(entries, list) else []:
            if not isinstance(e, dict):
                continue
            for path, what in (e.get("changed deps") or {}).items():
                # deps produced by other stages are simply absent in a clone (not pulled)
                if what == "modified" or (what != "deleted" and path not in outs):
                    stale.setdefault(stage, []).append(f"{path}: {what}")
            for path, what in (e.get("changed params") or {}).items() if isinstance(
                    e.get("changed params"), dict) else []:
                stale.setdefault(stage, []).append(f"params {path}: {what}")
    assert not stale, ("a fresh clone does not match the committed dvc.lock (regenerate it with `dvc repro` "
                       f"from a clean tree):\n{json.dumps(stale, indent=1)}")


def test_model_folder_is_byte_identical_across_runs(tmp_path):
    from datasets import Dataset, DatasetDict

    from arkbench.config import stage_params
    from arkbench.training.pretrain import train
    words = "the a cat dog sees likes red big house river runs sleeps".split()
    docs = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) + " ." for i in range(230)]
    corpus = DatasetDict({"train": Dataset.from_dict({"text": docs[:200]}),
                          "validation": Dataset.from_dict({"text": docs[200:]})})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "smoke", "seed": 0, "pretrain": {
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                  "max_position_embeddings": 32},
        "variants": {"bert": {}}, "tokenizer": "bert-base-uncased", "seq_len": 32, "batch_size": 8,
        "max_steps": 6, "warmup_steps": 1, "checkpoint_every": 3, "eval_every": 3, "eval_blocks": 8,
        "log_every": 2, "num_threads": 1}}))
    p = stage_params("pretrain", params)
    folders = []
    for run in ("a", "b"):
        train(p, "bert", corpus=corpus, workdir=tmp_path / run, progress=False)
        folders.append(tmp_path / run / "models" / "pretrain" / "bert")
    files = sorted(f.relative_to(folders[0]) for f in folders[0].rglob("*") if f.is_file())
    assert Path("meta.json") in files and Path("model.safetensors") in files
    assert files == sorted(f.relative_to(folders[1]) for f in folders[1].rglob("*") if f.is_file())
    differ = [str(f) for f in files if (folders[0] / f).read_bytes() != (folders[1] / f).read_bytes()]
    assert not differ, f"the model folder (a DVC dep of later stages) differs between identical runs: {differ}"
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert "tokens_per_s" not in meta["metrics"] and "val_loss" in meta["metrics"]


def test_captioning_data_folders_are_byte_identical_across_runs(tmp_path, monkeypatch):
    """data/captioning/detect and data/captioning/graphs are deps of every later captioning stage: two
    smoke runs with the same params and seed write the same bytes, even when the clock says the second
    took longer (each time.time() call 5 s later). Checked failing first: summary.json and meta.json
    held `seconds` (0.9 vs 2.6 s between two real runs); the stages still return it, for MLflow."""
    import itertools
    import shutil

    from arkbench.config import stage_params
    from arkbench.papers.captioning import stages as cap
    from repo_copy import REPO

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    runs = []
    for run in range(2):
        if run == 1:
            clock = itertools.count(1_000_000.0, 5.0)
            monkeypatch.setattr(cap.time, "time", lambda: next(clock))
        dp, gp = stage_params("captioning_detect", "params.yaml"), stage_params("captioning_graphs", "params.yaml")
        got = {**cap.run_detect(dp, None), **cap.run_graphs(gp, None)}
        assert "seconds" in got   # still reported (MLflow), just not written into the folders
        folders = [Path(dp.out_dir), Path(gp.out_dir)]
        runs.append({str(f): f.read_bytes() for d in folders for f in sorted(d.rglob("*")) if f.is_file()})
        for d in folders:
            shutil.rmtree(d)
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) >= 5
    differ = [f for f in runs[0] if runs[0][f] != runs[1][f]]
    assert not differ, f"captioning data folders (DVC deps of later stages) differ between identical runs: {differ}"


def test_autobert_ranking_deps_are_byte_identical_across_supernet_runs(tmp_path, monkeypatch):
    """autobert_ranking reruns only when what it reads changes: two smoke runs of autobert_supernet with
    the same params and seed, the second on a clock 5 s faster per call, write the same bytes for every
    ranking dep that supernet writes. metrics/autobert_zero/supernet.json holds wall-clock seconds
    (prep_s, time_s) and must stay out of them: ranking reads the supernet's step count from proxy.pt.
    Checked failing first with supernet.json back among ranking's deps."""
    import itertools
    import shutil
    import types

    from arkbench.config import stage_params
    from arkbench.papers.autobert_zero import stages as ab
    from repo_copy import REPO

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["autobert_ranking"]["deps"]
    p = stage_params("autobert_supernet", "params.yaml").model_copy(update={"supernet_steps": 4})
    ctx = types.SimpleNamespace(seed=0, log_metrics=lambda *a, **k: None)
    runs = []
    for run in range(2):
        if run == 1:
            clock = itertools.count(1_000_000.0, 5.0)
            monkeypatch.setattr(ab.time, "perf_counter", lambda: next(clock))
        got = ab.run_supernet(p, ctx)
        runs.append({d: Path(d).read_bytes() for d in deps if Path(d).is_file()})
        assert got["prep_s"] > 0 and Path(p.metrics_dir, "supernet.json").is_file()
        shutil.rmtree(p.model_dir)
        shutil.rmtree(p.metrics_dir)
    assert "models/autobert_zero/proxy.pt" in runs[0], "ranking's deps no longer name the supernet's weights"
    differ = [d for d in runs[0] if runs[0][d] != runs[1][d]]
    assert not differ, f"autobert_ranking deps differ between identical supernet runs: {differ}"
