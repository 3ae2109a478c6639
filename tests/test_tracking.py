"""MLflow tracking: sqlite store, batching, tags, parent/child nesting, failure and off modes."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from arkbench import config  # noqa: E402
from arkbench.tracking import (EXPERIMENTS, MlflowTracker, Tracker, experiment_for,  # noqa: E402
                               open_tracker, run_group_id)
from arkbench.tracking.workspace import dvc_stage_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARAMS = "profile: smoke\nseed: 0\ndownload:\n  source: local   # comment\nreport: {}\n"


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """A migrated, empty sqlite store (creating one costs seconds); each test gets a copy."""
    db = tmp_path_factory.mktemp("db") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ARKBENCH_TRACKING", "on")
    monkeypatch.setenv("ARKBENCH_RUN_GROUP", "group-a")
    monkeypatch.delenv("ARKBENCH_PARAMS", raising=False)
    return MlflowClient(uri)


def _runs(client, exp_name):
    exp = client.get_experiment_by_name(exp_name)
    assert exp is not None, f"experiment {exp_name} missing"
    return client.search_runs([exp.experiment_id], max_results=100)


def test_params_metrics_tags_batched(store, monkeypatch):
    calls = {"batch": [], "metric": 0, "param": 0}
    real_batch = MlflowClient.log_batch

    def spy_batch(self, run_id, metrics=(), params=(), tags=(), **kw):
        calls["batch"].append((len(metrics), len(params), len(tags)))
        return real_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", spy_batch)
    monkeypatch.setattr(MlflowClient, "log_metric", lambda *a, **k: calls.__setitem__("metric", calls["metric"] + 1))
    monkeypatch.setattr(MlflowClient, "log_param", lambda *a, **k: calls.__setitem__("param", calls["param"] + 1))

    params = {"lr": 1e-3, "nested": {f"p{i}": i for i in range(250)}}
    t = open_tracker(stage="finetune@tiny-cola", section="finetune", profile="smoke",
                     params=params, matrix={"model": "tiny", "task": "cola"})
    assert isinstance(t, MlflowTracker) and t.enabled
    for step in range(1200):
        t.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 1200}, step=step)
    Path("out.txt").write_text("artifact")
    t.log_artifact("out.txt")
    t.end("FINISHED")

    assert calls["metric"] == 0 and calls["param"] == 0
    assert all(m <= 1000 and p <= 100 and tg <= 100 for m, p, tg in calls["batch"])
    assert sum(m for m, _, _ in calls["batch"]) == 2400
    assert sum(1 for m, _, _ in calls["batch"] if m) == 3  # 2400 metrics -> 3 batches, not 2400 calls
    assert sum(1 for _, p, _ in calls["batch"] if p) == 3  # 253 params -> 3 batches

    runs = [r for r in _runs(store, "arkbench/core") if r.data.tags.get("arkbench.is_parent") != "true"]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.001" and run.data.params["nested/p249"] == "249"
    assert run.data.params["matrix/model"] == "tiny"
    assert len(store.get_metric_history(run.info.run_id, "loss")) == 1200
    tags = run.data.tags
    assert tags["arkbench.stage"] == "finetune@tiny-cola"
    assert tags["arkbench.section"] == "finetune"
    assert tags["arkbench.profile"] == "smoke"
    assert tags["arkbench.data_source"] == "local"
    assert tags["arkbench.dvc_stage_hash"] == "unlocked"
    assert tags["arkbench.matrix.task"] == "cola"
    assert tags["mlflow.parentRunId"]
    assert [a.path for a in store.list_artifacts(run.info.run_id)] == ["out.txt"]


def test_two_stages_nest_under_one_parent(store, monkeypatch):
    ids = []
    for stage, section in (("pretrain", "pretrain"), ("finetune@tiny-sst2", "finetune")):
        t = open_tracker(stage=stage, section=section, profile="smoke", params={"a": 1})
        t.log_metrics({"m": 1.0})
        t.end()
        ids.append((t.run_id, t.parent_run_id))
    assert ids[0][1] == ids[1][1]
    runs = _runs(store, "arkbench/core")
    parents = [r for r in runs if r.data.tags.get("arkbench.is_parent") == "true"]
    assert len(parents) == 1 and parents[0].info.run_id == ids[0][1]
    assert parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == ids[0][1]]
    assert {r.data.tags["arkbench.stage"] for r in children} == {"pretrain", "finetune@tiny-sst2"}

    monkeypatch.setenv("ARKBENCH_RUN_GROUP", "group-b")
    t = open_tracker(stage="pretrain", section="pretrain", profile="smoke", params={})
    t.end()
    assert t.parent_run_id != ids[0][1]


def test_failed_stage_marks_parent_failed(store):
    t = open_tracker(stage="pretrain", section="pretrain", profile="smoke", params={})
    t.end("FAILED")
    t2 = open_tracker(stage="finetune@x", section="finetune", profile="smoke", params={})
    t2.end("FINISHED")
    assert store.get_run(t.parent_run_id).info.status == "FAILED"


def test_group_id_follows_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARKBENCH_RUN_GROUP", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    Path("params.yaml").write_text(PARAMS)
    a = run_group_id("params.yaml")
    assert a == run_group_id("params.yaml") and len(a) == 12
    Path("dvc.lock").write_text("schema: '2.0'\n")  # dvc.lock changes during a repro: ignored
    assert run_group_id("params.yaml") == a
    Path("params.yaml").write_text(PARAMS.replace("seed: 0", "seed: 1"))
    assert run_group_id("params.yaml") != a
    monkeypatch.setenv("ARKBENCH_RUN_GROUP", "mine")
    assert run_group_id("params.yaml") == "mine"


def test_dvc_stage_hash(tmp_path):
    lock = tmp_path / "dvc.lock"
    assert dvc_stage_hash("pretrain", lock) == "unlocked"
    lock.write_text("schema: '2.0'\nstages:\n  pretrain:\n    cmd: python stages/pretrain.py\n"
                    "  finetune@a:\n    md5: abc123\n")
    h = dvc_stage_hash("pretrain", lock)
    assert len(h) == 32 and h != "unlocked"
    assert dvc_stage_hash("finetune@a", lock) == "abc123"
    assert dvc_stage_hash("other", lock) == "unlocked"


def test_experiment_mapping(monkeypatch):
    assert EXPERIMENTS["pretrain"] == "arkbench/core"
    assert experiment_for("download") == "arkbench/core"
    assert experiment_for("oversmoothing_theory") == "arkbench/oversmoothing"
    assert experiment_for("zerogen_generate") == "arkbench/zerogen"
    assert experiment_for("report") == "arkbench/report"
    assert experiment_for("unheard_of") == "arkbench/misc"
    mod = types.ModuleType("fake_paper_mod")
    mod.MLFLOW_EXPERIMENT = "arkbench/special"
    cls = type("FakeSection", (config.Section,), {"__module__": "fake_paper_mod"})
    monkeypatch.setitem(sys.modules, "fake_paper_mod", mod)
    monkeypatch.setitem(config._SECTIONS, "zerogen_fake", cls)
    assert experiment_for("zerogen_fake") == "arkbench/special"


def test_off_is_noop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARKBENCH_TRACKING", "off")
    t = open_tracker(stage="pretrain", section="pretrain", profile="smoke", params={"a": 1})
    assert type(t) is Tracker and not t.enabled
    t.log_params({"a": 1})
    t.log_metrics({"x": 1.0}, step=3)
    t.log_artifact("nothing")
    t.end("FINISHED")
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_backend_warns_once_in_process(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(PARAMS)
    monkeypatch.setenv("ARKBENCH_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    t0 = time.time()
    with caplog.at_level(logging.WARNING):
        t = open_tracker(stage="pretrain", section="pretrain", profile="smoke", params={"a": 1})
        for i in range(2000):
            t.log_metrics({"x": float(i)}, step=i)
        t.log_artifact("params.yaml")
        t.end("FINISHED")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("arkbench")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert time.time() - t0 < 30


STAGE_SCRIPT = textwrap.dedent("""
    from arkbench.stage import stage_main
    def run(params, ctx):
        for i in range(50):
            ctx.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
        ctx.log_artifact("params.yaml")
        return {"score": 0.5, "nested": {"acc": 0.75}}
    stage_main("report", run, argv=[], metrics_path="metrics/fake.json")
""")


def _run_stage(tmp_path, **env):
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    full = {**os.environ, "ARKBENCH_TRACKING": "on", "ARKBENCH_RUN_GROUP": "sub", **env}
    full.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
    full.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    t0 = time.time()
    p = subprocess.run([sys.executable, "stage.py"], cwd=tmp_path, env=full, capture_output=True,
                       text=True, timeout=120)
    return p, time.time() - t0


def test_unreachable_backend_stage_finishes_with_one_warning(tmp_path):
    p, dt = _run_stage(tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "metrics" / "fake.json").exists()
    assert "Traceback" not in p.stderr
    assert p.stderr.lower().count("warning") == 1, p.stderr
    assert "MLflow tracking disabled" in p.stderr
    assert dt < 60


def test_stage_main_logs_to_default_sqlite_store(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    env.update(ARKBENCH_TRACKING="on", ARKBENCH_RUN_GROUP="sub")
    p = subprocess.run([sys.executable, "stage.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", p.stderr  # mlflow/alembic stay quiet
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [r for r in _runs(client, "arkbench/report") if r.data.tags.get("arkbench.is_parent") != "true"]
    assert len(runs) == 1
    assert runs[0].data.metrics["score"] == 0.5 and runs[0].data.metrics["nested/acc"] == 0.75
    assert len(client.get_metric_history(runs[0].info.run_id, "loss")) == 50


def test_worker_tracker_replays_calls_and_marks_a_killed_stage(store, tmp_path):
    """Stages log through a worker process; if the stage dies (stdin closes with no
    "end"), the worker still writes what it got and ends the run KILLED, not RUNNING."""
    from arkbench.tracking import open_stage_tracker
    from arkbench.tracking.worker import WorkerTracker

    t = open_stage_tracker(stage="finetune@tiny-rte", section="finetune", profile="smoke",
                           params={"lr": 0.001}, matrix={"model": "tiny", "task": "rte"})
    assert isinstance(t, WorkerTracker)
    for i in range(5):
        t.log_metrics({"loss": 1.0 / (i + 1)}, step=i, timestamp_ms=1_000_000 + i)
    t.log_artifact(tmp_path / "params.yaml")
    t._proc.stdin.close()            # what a kill -9 of the stage looks like to the worker
    assert t._proc.wait(timeout=60) == 0
    runs = [r for r in _runs(store, "arkbench/core") if r.data.tags.get("arkbench.is_parent") != "true"]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "KILLED"
    assert run.data.params["lr"] == "0.001" and run.data.tags["arkbench.stage"] == "finetune@tiny-rte"
    hist = sorted(store.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in hist] == list(range(5))
    assert [m.timestamp for m in hist] == [1_000_000 + i for i in range(5)]   # the stage's clock, not the worker's
    assert [a.path for a in store.list_artifacts(run.info.run_id)] == ["params.yaml"]


def test_worker_tracker_end_waits_for_the_run(store):
    from arkbench.tracking import open_stage_tracker

    t = open_stage_tracker(stage="pretrain", section="pretrain", profile="smoke", params={})
    t.log_metrics({"mlm_loss": 2.5}, step=1)
    t.end("FINISHED")
    t.end("FINISHED")                # idempotent
    run = [r for r in _runs(store, experiment_for("pretrain")) if r.data.tags.get("arkbench.is_parent") != "true"][0]
    assert run.info.status == "FINISHED" and run.data.metrics["mlm_loss"] == 2.5
