"""What a user sees in MLflow, checked through the REST API of a real `mlflow server`.

`arkbench ui` (mlflow server, --workers 1, job execution off) on 127.0.0.1 in a temp
folder; real stage scripts (download, report) log to it over HTTP. Then, via REST:

- every experiment carries mlflow.experimentKind = custom_model_development (MLflow 3's
  UI then opens it on the runs table, not on a GenAI traces page) and a description;
- the download run lists its data sets as inputs (name, digest from the manifest,
  source, split context): the runs table's Dataset column;
- system metrics (psutil: CPU, memory) are logged per run;
- reports/index.html is attached to the parent run of the `dvc repro` in every experiment;
- `arkbench ui` prints the address of the runs table. MLflow 3.17's UI ignores the kind tag
  when choosing between its GenAI and "Model training" views (a global toggle, default
  GenAI), so the address carries workflowType=machine_learning; scripts/screenshots.sh
  checks in headless Chromium that this address renders the runs table.

Checked failing first: with create_experiment called without tags (the old code) the
tag assertion fails; without ctx.log_inputs in the download stage the inputs are empty.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from repo_copy import free_port, post_json
import yaml

pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KIND = "custom_model_development"



def _post(url: str, body: dict) -> dict:
    return post_json(url, body, timeout=20)


def _get(url: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(query)}", timeout=20) as r:
        return json.loads(r.read())


def _tags(obj: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in obj.get("tags", [])}


class Server:
    def __init__(self, cwd: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["PYTHONPATH"] = str(REPO / "src")
        self.proc = subprocess.Popen([sys.executable, "-m", "arkbench.cli", "ui", "--port", str(self.port)],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 300   # a loaded 2-core machine needs minutes to import mlflow
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"arkbench ui exited early: {self.proc.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                self.stop()          # no server left behind
                pytest.fail("mlflow server did not come up within 300 s")
            time.sleep(0.3)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)


def _stage(cwd: Path, script: str, uri: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ARKBENCH_TRACKING": "on", "MLFLOW_TRACKING_URI": uri,
           "ARKBENCH_RUN_GROUP": "rest-test", "ARKBENCH_SYSTEM_METRICS": "on", "ARKBENCH_PROGRESS": "off",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    r = subprocess.run([sys.executable, str(REPO / "stages" / script), "--params-file", "params.yaml"], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tracking disabled" not in r.stderr and "worker failed" not in r.stderr, r.stderr[-3000:]


def test_experiment_kind_inputs_system_metrics_and_report_through_rest(tmp_path):
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["download"].update(tasks=["rte", "corpus"], embedded_train_size=64, embedded_eval_size=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    server = Server(tmp_path)
    try:
        _stage(tmp_path, "download.py", server.base)
        _stage(tmp_path, "report.py", server.base)
        api = f"{server.base}/api/2.0/mlflow"
        exps = {e["name"]: e for e in _post(f"{api}/experiments/search", {"max_results": 100})["experiments"]}
        assert {"arkbench/core", "arkbench/report"} <= set(exps), sorted(exps)
        for name in ("arkbench/core", "arkbench/report"):
            tags = _tags(exps[name])
            assert tags.get("mlflow.experimentKind") == KIND, (name, tags)
            assert len(tags.get("mlflow.note.content", "")) > 40, (name, tags)

        runs = _post(f"{api}/runs/search", {"experiment_ids": [e["experiment_id"] for e in exps.values()],
                                            "max_results": 100})["runs"]
        by_stage = {_tags(r["data"]).get("arkbench.stage"): r for r in runs}
        parents = [r for r in runs if _tags(r["data"]).get("arkbench.is_parent") == "true"]
        dl = by_stage["download"]

        # data sets: one input per task split, digest = the manifest's fingerprint
        manifest = json.loads((tmp_path / "data/tasks/manifest.json").read_text())
        inputs = dl["inputs"]["dataset_inputs"]
        got = {i["dataset"]["name"]: i for i in inputs}
        want = {f"{t}/{s}": fp for t, e in manifest["tasks"].items() for s, fp in e["fingerprint"].items()}
        assert set(got) == set(want), (sorted(got), sorted(want))
        for name, i in got.items():
            assert i["dataset"]["digest"] == want[name]
            assert i["dataset"]["source_type"] == "embedded" and "data/tasks" in i["dataset"]["source"]
            context = {t["key"]: t["value"] for t in i.get("tags", [])}.get("mlflow.data.context")
            assert context == ("train" if name.endswith("/train") else "eval"), (name, context)
            assert json.loads(i["dataset"]["profile"])["num_rows"] == manifest["tasks"][name.split("/")[0]][
                "splits"][name.split("/")[1]]

        # system metrics, sampled while the stage ran
        metrics = {m["key"] for m in dl["data"].get("metrics", [])}
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= metrics, metrics

        # the report on the parent run of this repro, in every experiment that has one
        assert {_tags(r["data"]).get("arkbench.run_group") for r in parents} == {"rest-test"}
        assert len(parents) == 2
        for r in parents:
            files = _get(f"{api}/artifacts/list", run_id=r["info"]["run_id"]).get("files", [])
            assert "index.html" in {f["path"] for f in files}, (r["info"]["experiment_id"], files)

        # `arkbench ui` prints the address of arkbench/core's runs table ("Model training" view)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        shown = subprocess.run([sys.executable, "-m", "arkbench.cli", "ui", "--port", "5999", "--print-command"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120).stdout
        core = exps["arkbench/core"]["experiment_id"]
        assert f"http://127.0.0.1:5999/#/experiments/{core}?workflowType=machine_learning" in shown, shown
    finally:
        server.stop()
