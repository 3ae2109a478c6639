"""AutoBERT-Zero: one MLflow child run per candidate under the search stage's run, in the paper's
experiment. Before the MLFLOW_EXPERIMENT override the autobert_* sections' runs went to arkbench/misc,
where log_candidate_runs found no stage run and logged nothing: the first assertion catches that."""
from __future__ import annotations

from types import SimpleNamespace

from arkbench.papers.autobert_zero import space as S
from arkbench.papers.autobert_zero import stages as ST


def test_child_run_per_candidate(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from arkbench.tracking import experiment_for

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ARKBENCH_TRACKING", "on")
    assert experiment_for("autobert_search", "autobert_search") == "arkbench/autobert_zero"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("arkbench/autobert_zero")
    stage_run = client.create_run(exp, tags={"arkbench.stage": "autobert_search"})
    entries = [{"i": i, "hash": f"h{i}", "arch": S.bert_arch(2), "parent": None, "mutation": "init",
                "score": -6.0 + i, "mlm_loss": 6.0 - i, "glue_acc": None, "params": 10, "flops": 20,
                "eval_s": 1.0, "strategy": "op", "seed": 0} for i in range(3)]
    ctx = SimpleNamespace(stage="autobert_search", section="autobert_search", tracker=object())
    assert ST.log_candidate_runs(ctx, entries) == 3
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{stage_run.info.run_id}'")
    assert sorted(r.data.tags["arkbench.candidate"] for r in children) == ["h0", "h1", "h2"]
    assert {r.data.metrics["score"] for r in children} == {-6.0, -5.0, -4.0}
    assert all("arkbench.stage" not in r.data.tags for r in children)   # stage runs stay one per stage
