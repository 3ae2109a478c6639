"""`arkbench ui` serves the local sqlite store: start it, query the REST API, stop it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from repo_copy import free_port, post_json

pytest.importorskip("mlflow")
from arkbench.tracking import open_tracker  # noqa: E402

pytestmark = pytest.mark.slow  # ~10 s; runs in CI (not deselected there)



def _post(url: str, body: dict) -> dict:
    return post_json(url, body, timeout=10)


def test_ui_serves_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ARKBENCH_TRACKING", "on")
    monkeypatch.setenv("ARKBENCH_RUN_GROUP", "ui-test")
    Path("params.yaml").write_text("profile: smoke\nseed: 0\ndownload:\n  source: embedded\n")
    stages = {"pretrain": ("pretrain", 2.5), "finetune@tiny-cola": ("finetune", 0.4),
              "report": ("report", 1.0)}
    for stage, (section, value) in stages.items():
        t = open_tracker(stage=stage, section=section, profile="smoke", params={"x": 1})
        t.log_metrics({"score": value})
        t.end()
    assert (tmp_path / "mlflow.db").exists()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen([sys.executable, "-m", "arkbench.cli", "ui", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 50
        while True:
            if proc.poll() is not None:
                pytest.fail(f"arkbench ui exited early: {proc.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.time() < deadline, "server did not come up"
            time.sleep(0.3)
        exps = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
        ids = [e["experiment_id"] for e in exps]
        assert {"arkbench/core", "arkbench/report"} <= {e["name"] for e in exps}
        runs = _post(f"{base}/api/2.0/mlflow/runs/search",
                     {"experiment_ids": ids, "max_results": 100})["runs"]
        by_stage = {}
        for r in runs:
            tags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
            if "arkbench.stage" in tags:
                by_stage[tags["arkbench.stage"]] = {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
        assert set(by_stage) == set(stages)
        for stage, (_, value) in stages.items():
            assert by_stage[stage]["score"] == pytest.approx(value)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
