"""The whole pipeline, end to end, on a copy of the repository with a shrunken grid.

Same dvc.yaml, same stage scripts, same code paths as `dvc repro` on the defaults;
only params.yaml is cut down (one task, a few steps) so it runs in a few minutes on
2 cores. Checks the acceptance points of the pipeline spine:

- `dvc repro` ends with reports/index.html and reports/results.json;
- MLflow holds a run per stage with its metrics, nested under one parent run;
- a second `dvc repro` runs nothing;
- `dvc exp run -S finetune.hp.lr=...` reruns exactly the fine-tuning stages (and the
  report, when their metrics change);
- `dvc push` -> fresh clone -> `dvc pull` -> `dvc repro` runs nothing.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from repo_copy import DVC, copy_repo, dvc, git

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed at {DVC}")]


def shrink(params: dict) -> dict:
    """The default params with every grid cut to one task and every loop to a few steps."""
    p = params
    # rte, mrpc, stsb: sparsebert_grid's dvc.yaml deps name the three (its cpu tasks); corpus: pre-training
    p["download"].update(tasks=["rte", "mrpc", "stsb", "corpus"], embedded_train_size=64, embedded_eval_size=32)
    p["pretrain"].update(max_steps=12, warmup_steps=2, checkpoint_every=6, eval_every=6, log_every=2)
    ft = p["finetune"]
    ft.update(tasks=["rte"], seeds=[0])
    ft["hp"].update(epochs=1)
    ft["model_overrides"]["minilm"].update(max_steps=3)
    p["oversmoothing_similarity"].update(tasks=["stsb"], n_sentences=8)
    p["oversmoothing_probe"].update(n_train=48, n_test=24)
    p["oversmoothing_theory"].update(num_layers=4, batch=2)
    fu = p["oversmoothing_fusion"]
    fu.update(tasks=["rte"], seeds=[0], fusions=["last", "gate"])
    fu["hp"].update(epochs=1, max_steps=0)   # one pass over the 64 rows (smoke caps the pass at 10 steps)
    p["autobert_supernet"].update(supernet_steps=2)
    p["autobert_supernet"]["proxy"].update(steps=2)
    p["autobert_search"].update(budget=3, population=2, sample_size=1, strategies=["op", "random"])
    p["autobert_ranking"].update(candidates=3, proxy_steps=2, reference_steps=3)
    p["autobert_final"].update(pretrain_steps=2, finetune_steps=2, preset_layers=2)
    p["zerogen_synthesize"]["synth"].update(n_contexts=3, per_label=4, x1_samples=12)   # the tiny LM as in smoke
    p["zerogen_synthesize"]["synth"]["x2"].update(max_new_tokens=24)
    zt = p["zerogen_train"]
    zt["tam"].update(epochs=1)
    zt.update(prompting_max_eval=8)
    zt["data"].update(embedded_sizes=[32, 16], max_eval=16)
    za = p["zerogen_analysis"]
    za.update(size_fractions=[0.5, 1.0], sweep=[{"name": "greedy", "decode": {"do_sample": False, "max_new_tokens": 12}},
                                                {"name": "topp0.9", "decode": {"max_new_tokens": 12}}])
    za["sweep_synth"].update(n_contexts=1, per_label=2, x1_samples=12)
    za["tam"].update(epochs=1)
    za["data"].update(embedded_sizes=[32, 16], max_eval=16)
    sb = p["sparsebert_grid"]
    sb.update(patterns=["strided"], lambdas=[1.0e-1])
    sb["pretrain"].update(max_steps=2)
    sb["hp"].update(max_steps=2)
    return p


def ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def test_repro_noop_exp_run_and_pull(tmp_path: Path) -> None:
    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"
    origin.mkdir()
    copy_repo(origin)
    (origin / "dvc.lock").unlink(missing_ok=True)
    params = shrink(yaml.safe_load((origin / "params.yaml").read_text()))
    (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(origin, "init", "-q", "-b", "main")
    dvc(origin, "remote", "add", "-d", "local", str(remote))
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "shrunken pipeline")

    first = dvc(origin, "repro", tracking=True)
    stages = ran(first)
    assert {"resolve", "download", "pretrain@bert", "finetune@bert-rte", "finetune_ref@minilm-rte",
            "oversmoothing_similarity", "oversmoothing_fusion@rte", "report"} <= stages, first
    results = json.loads((origin / "reports/results.json").read_text())
    html = (origin / "reports/index.html").read_text()
    assert results["claims"] and "<img" in html and "src=\"http" not in html
    ranking = json.loads((origin / "metrics/autobert_zero/ranking.json").read_text())
    assert ranking["supernet_steps"] == 2   # shrink()'s; read from proxy.pt, not the supernet's timed metrics

    # MLflow: one run per stage with metrics, all under one parent run of this repro
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{origin / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    by_stage = {r.data.tags.get("arkbench.stage"): r for r in runs if "arkbench.stage" in r.data.tags}
    # `resolve` only merges params.yaml with the active profile (stdlib + yaml, no stage_main):
    # it logs no run; every other stage does.
    tracked = stages - {"resolve"}
    assert tracked <= set(by_stage), sorted(tracked - set(by_stage))
    assert all(by_stage[s].data.metrics for s in tracked if s != "report"), "a stage run has no metrics"
    parents = {r.data.tags.get("mlflow.parentRunId") for r in by_stage.values()}
    assert None not in parents and len(parents) == len({r.info.experiment_id for r in by_stage.values()})

    second = dvc(origin, "repro")
    assert ran(second) <= {"resolve"}, f"second dvc repro recomputed:\n{second}"   # resolve: ~0.2 s, always

    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "dvc repro")
    exp = dvc(origin, "exp", "run", "-S", "finetune.hp.lr=0.0005")
    # exactly the stages that read finetune.hp, and the report only if their metrics changed
    ft = {"finetune@bert-rte", "finetune_ref@minilm-rte"}
    assert ft <= ran(exp) <= ft | {"report", "resolve"}, exp
    git(origin, "add", "-A")          # keep the experiment's params + dvc.lock as the new baseline
    git(origin, "commit", "-q", "-m", "exp: finetune.hp.lr=0.0005")
    assert ran(dvc(origin, "repro")) <= {"resolve"}, "the experiment left stale stages"

    dvc(origin, "push")
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    dvc(clone, "pull")
    after = dvc(clone, "repro")
    assert ran(after) <= {"resolve"}, f"dvc repro after dvc pull recomputed:\n{after}"
