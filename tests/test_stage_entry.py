"""Every DVC stage script, run as DVC runs it: bad params exit 2 naming the key before any
work; under ARKBENCH_NPROC_PER_NODE=2 a training stage relaunches itself under torchrun
(2 gloo ranks) and only rank 0 writes metrics and tracks one MLflow run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# scripts that are not stage_main stages (no params section of their own to validate)
NOT_STAGE_MAIN = {"resolve.py": "merges every section with the active profile and writes them out; each "
                                "consuming stage validates its own section (and is tested here)"}
STAGES = sorted(p.name for p in (REPO / "stages").glob("*.py")
                if not p.name.startswith("_") and p.name not in NOT_STAGE_MAIN)
BOGUS = "arkbench_bogus_key"


def _env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ARKBENCH_NPROC_PER_NODE")}
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="1", **over)
    return env


def test_every_stage_script_is_covered():
    assert len(STAGES) >= 8 and "pretrain.py" in STAGES and "report.py" in STAGES


@pytest.fixture(scope="module")
def bad_params(tmp_path_factory) -> Path:
    """The shipped params.yaml with one unknown key added to every section."""
    d = tmp_path_factory.mktemp("bad")
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    n = 0
    for key, sec in doc.items():
        if isinstance(sec, dict) and key != "profiles":
            sec[BOGUS] = 1
            n += 1
    assert n >= 5
    (d / "params.yaml").write_text(yaml.safe_dump(doc))
    return d


@pytest.mark.parametrize("script", STAGES)
def test_stage_bad_params_exit_2_naming_the_key(bad_params, tmp_path, script):
    """Checked against a switched-off feature: with stage_main's ParamsError handler
    removed, the scripts exit 1 with a traceback and this fails."""
    (tmp_path / "params.yaml").write_text((bad_params / "params.yaml").read_text())
    p = subprocess.run([sys.executable, str(REPO / "stages" / script), "--params-file", "params.yaml"],
                       cwd=tmp_path, env=_env(ARKBENCH_TRACKING="off"), capture_output=True, text=True, timeout=900)
    assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
    assert re.search(rf"\b[a-z0-9_]+\.{BOGUS}\b", p.stderr), p.stderr[-3000:]
    assert "bad params" in p.stderr and "Traceback" not in p.stderr
    # nothing was started: no outputs, no tracking store
    assert sorted(x.name for x in tmp_path.iterdir()) == ["params.yaml"]


# ------------------------------------------------------------------------ torchrun relaunch
# An audit hook in every Python process of the run records the files it opens for writing,
# with the rank it runs as: what rank 1 wrote is then a fact, not an inference.
SITECUSTOMIZE = textwrap.dedent('''
    import json, os, sys
    _log = os.environ.get("ARKBENCH_TEST_WRITES")
    if _log and "RANK" in os.environ:
        _root = os.environ["ARKBENCH_TEST_ROOT"]
        _seen = set()
        _W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

        def _hook(event, args):
            if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
                return
            path, mode, flags = args[0], args[1], args[2]
            writing = (mode is not None and any(c in mode for c in "wax+")) or bool(flags and flags & _W)
            path = os.path.abspath(os.fsdecode(path))
            if writing and path.startswith(_root) and not path.startswith(_log) and path not in _seen:
                _seen.add(path)
                with open(os.path.join(_log, f"rank{os.environ['RANK']}_{os.getpid()}.txt"), "a") as f:
                    f.write(path + "\\n")

        sys.addaudithook(_hook)
        with open(os.path.join(_log, f"start_rank{os.environ['RANK']}_{os.getpid()}.json"), "w") as f:
            json.dump({"rank": os.environ["RANK"], "world": os.environ.get("WORLD_SIZE"),
                       "argv": sys.argv}, f)
''')


def test_torchrun_relaunch_only_rank0_writes_and_tracks(tmp_path):
    """`ARKBENCH_NPROC_PER_NODE=2 python stages/pretrain.py`: stage_main re-executes itself
    under torchrun; 2 ranks train in one gloo group; rank 0 alone writes the metrics file,
    the model, the checkpoints and one MLflow run; rank 1 writes nothing.

    Checked against a switched-off feature: with the relaunch disabled (one process), no
    rank-1 process starts and the test fails; with `is_main` forced True in stage_main,
    rank 1 writes the metrics file and a second MLflow run, and the test fails.
    """
    from mlflow import MlflowClient

    from test_pretrain import synthetic_corpus, write_corpus, write_params

    from arkbench.tokenization import train_wordpiece

    work, logs, site, tok = tmp_path / "work", tmp_path / "writes", tmp_path / "site", tmp_path / "tok"
    for d in (work, logs, site):
        d.mkdir()
    # one vocab for both ranks (the WordPiece trainer's tie-breaking differs per process)
    train_wordpiece(synthetic_corpus(200, 1), 200, out_dir=tok)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    write_corpus(work / "corpus", n_train=200, n_val=30)
    write_params(work, tokenizer=str(tok), max_steps=6, checkpoint_every=3, eval_every=6, eval_blocks=8,
                 log_every=3, warmup_steps=1)
    env = _env(ARKBENCH_NPROC_PER_NODE="2", ARKBENCH_TRACKING="on", ARKBENCH_RUN_GROUP="relaunch",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", ARKBENCH_TEST_WRITES=str(logs),
               ARKBENCH_TEST_ROOT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, str(REPO / "stages" / "pretrain.py"), "--params-file", "params.yaml",
                        "--variant", "bert"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    starts = [json.loads(f.read_text()) for f in logs.glob("start_rank*.json")]
    ranks = sorted((s["rank"], s["world"]) for s in starts if s["argv"][0].endswith("pretrain.py"))
    assert ranks == [("0", "2"), ("1", "2")], starts
    # one summary line (rank 0), one metrics file, model and checkpoints from rank 0 only
    assert p.stdout.count("[pretrain@bert] done in") == 1, p.stdout
    metrics = json.loads((work / "metrics" / "pretrain" / "bert.json").read_text())
    assert metrics["steps"] == 6
    written = {int(f.name[4]): f.read_text().split() for f in logs.glob("rank*_*.txt")}
    rank1 = [w for w in written.get(1, []) if not w.startswith("/dev/")]
    assert rank1 == [], f"rank 1 wrote {rank1}"
    assert any(w.startswith(str(work / "metrics" / "pretrain")) for w in written[0]), written[0]
    assert (work / "models" / "pretrain" / "bert" / "model.safetensors").exists()
    # exactly one MLflow stage run, with the metrics
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = [r for r in client.search_runs(exps, max_results=100) if r.data.tags.get("arkbench.is_parent") != "true"]
    assert len(runs) == 1, [r.data.tags.get("arkbench.stage") for r in runs]
    assert runs[0].info.status == "FINISHED" and runs[0].data.metrics["steps"] == 6
