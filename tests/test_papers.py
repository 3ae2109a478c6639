"""A paper is a plugin: discovery, manifests, claims with the paper, tracking, report.

The acceptance test adds a toy paper as a temporary package (one params section, one
attention bias, one claim) on an extra path of ``arkbench.papers`` -- no file outside its
folder is edited -- and checks it is discovered, validated, tracked and reported; then
removes it and checks, in a fresh process, that nothing of it is left.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

TOY = {
    "__init__.py": '"""A toy paper for the plugin acceptance test."""\n',
    "manifest.py": '''
        from arkbench.papers import Paper

        PAPER = Paper(
            name="toypaper",
            title="A Toy Paper (Nobody et al., 2026)",
            sections={"toypaper_eval": "arkbench.papers.toypaper.stages"},
            plugins=("arkbench.papers.toypaper.bias",),
            tasks=("arkbench.papers.toypaper.tasks",),
        )
        ''',
    "tasks.py": '''
        import dataclasses
        from arkbench.data.registry import get_task, register_task

        register_task(dataclasses.replace(get_task("sst2"), name="toy_sst2"))
        ''',
    "bias.py": '''
        import torch
        from arkbench.models import AttentionBias, mask_to_bias, register_attention_bias

        @register_attention_bias("toy_causal")
        class ToyCausal(AttentionBias):
            def forward(self, seq_len, device, dtype):
                return mask_to_bias(torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril(), dtype)
        ''',
    "stages.py": '''
        from pydantic import Field
        from arkbench import outputs
        from arkbench.config import Section, section

        @section("toypaper_eval")
        class ToyParams(Section):
            n: int = Field(ge=1)
            scale: float = Field(gt=0)

        def run(p, ctx=None, **_):
            import torch
            from arkbench.models import EncoderConfig, MaskedLM

            cfg = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                max_position_embeddings=8, mixer_kwargs={"biases": [{"name": "toy_causal"}]})
            torch.manual_seed(0)
            probs = MaskedLM(cfg).eval().encoder(torch.arange(5, 10)[None], output_attentions=True).attentions[0]
            upper = float(probs[0, :, 0, 1:].abs().max())      # token 0 may not see later tokens
            metrics = {"score": p.n * p.scale, "upper_attention": upper}
            outputs.write_json(outputs.metrics_path("toypaper", "eval"), metrics)
            return metrics
        ''',
    "claims.yaml": '''
        title: "A Toy Paper (Nobody et al., 2026)"
        spec: "none"
        claims:
          - id: toypaper.score_positive
            text: "The toy score is positive."
            paper: {statement: "It is.", evidence: "[toy]"}
            ours: {file: metrics/toypaper/eval.json, key: score}
            criterion: {kind: gt, than: 0}
        ''',
}
PARAMS = """
profile: smoke
seed: 0
toypaper_eval:
  n: 3          # smoke
  scale: 0.5    # any positive value
  profiles:
    paper: {n: 300}
"""


def _src_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(SRC.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(SRC)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _write_toy(root: Path) -> Path:
    pkg = root / "extra_papers" / "toypaper"
    pkg.mkdir(parents=True)
    for name, text in TOY.items():
        (pkg / name).write_text(textwrap.dedent(text).lstrip())
    return root / "extra_papers"


def _py(code: str, cwd: Path, extra: Path | None, **env) -> dict:
    prelude = (f"import sys; sys.path.insert(0, {str(SRC)!r})\n"
               "import arkbench.papers\n"
               + (f"arkbench.papers.__path__.append({str(extra)!r})\n" if extra else ""))
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(SRC), "ARKBENCH_TRACKING": "off", **env})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shipped_papers_are_discovered_with_their_claims():
    from arkbench import papers
    from arkbench.report.claims import load_claims, validate_claims

    papers.refresh()
    found = papers.papers()
    assert {"oversmoothing", "autobert_zero", "zerogen", "captioning"} <= set(found)
    doc = load_claims()
    assert validate_claims(doc) == []
    for name, p in found.items():
        assert p.claims_file().is_file() and p.claims_file().parent.name == name
        assert all(row["id"].startswith(f"{name}.") for row in doc["papers"][name]["claims"])
    assert "papers" not in yaml.safe_load((SRC / "arkbench/report/claims.yaml").read_text())
    assert papers.paper_for_section("oversmoothing_fusion").name == "oversmoothing"
    # no central list names a paper: no string in the code outside the papers' folders
    # (docstrings and comments aside) mentions one
    assert _code_strings_naming(set(found)) == []


def _code_strings_naming(names: set[str]) -> list[str]:
    import ast

    hits = []
    for f in (SRC / "arkbench").rglob("*.py"):
        if "papers" in f.relative_to(SRC / "arkbench").parts:
            continue
        tree = ast.parse(f.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                hits += [f"{f.relative_to(SRC)}:{node.lineno}: {node.value[:60]!r}" for n in names if n in node.value]
    return hits


def test_toy_paper_is_discovered_validated_tracked_and_reported(tmp_path):
    before = _src_digest()
    extra = _write_toy(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(PARAMS)
    store = tmp_path / "mlflow.db"
    res = _py('''
        import json
        from arkbench import papers
        from arkbench.config import ParamsError, check_all, stage_params, validate_section
        from arkbench.models import EncoderConfig, MaskedLM
        from arkbench.report.build import ReportParams, build_report
        from arkbench.stage import stage_main
        from arkbench.tracking import experiment_for

        out = {"papers": sorted(papers.papers()), "problems": check_all("params.yaml")}
        out["n_smoke"] = stage_params("toypaper_eval", "params.yaml").n
        try:
            validate_section("toypaper_eval", {"n": 3, "scael": 1.0})
        except ParamsError as e:
            out["typo"] = str(e)
        MaskedLM(EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                               mixer_kwargs={"biases": [{"name": "toy_causal"}]}))   # the plugin is found by name
        out["experiment"] = experiment_for("toypaper_eval")
        from arkbench.data import get_task
        out["task"] = get_task("toy_sst2").name
        import os
        from arkbench.papers.toypaper.stages import run
        os.environ["ARKBENCH_TRACKING"] = "off"
        out["metrics"] = stage_main("toypaper_eval", run, argv=["--params-file", "params.yaml"])
        os.environ["ARKBENCH_TRACKING"] = "on"
        # tracked: the tracker a stage opens (here in-process: the stage's worker process is a
        # fresh interpreter that would not see this temporary path)
        from arkbench.tracking import open_tracker
        t = open_tracker(stage="toypaper_eval", section="toypaper_eval", profile="smoke", params={"n": 3})
        t.log_metrics({"score": out["metrics"]["score"]})
        t.end("FINISHED")
        rep = build_report(ReportParams(out_dir="reports", plots_dir="plots", write_pngs=False))
        claims = json.load(open("reports/results.json"))["claims"]
        out["claims"] = {c["id"]: c["verdict"] for c in claims if c["paper"] == "toypaper"}
        print(json.dumps(out))
        ''', work, extra, ARKBENCH_TRACKING="on", MLFLOW_TRACKING_URI=f"sqlite:///{store}",
              ARKBENCH_RUN_GROUP="toy")
    assert "toypaper" in res["papers"] and res["problems"] == []
    assert res["n_smoke"] == 3
    assert "toypaper_eval.scael" in res["typo"]
    assert res["experiment"] == "arkbench/toypaper" and res["task"] == "toy_sst2"
    assert res["metrics"]["score"] == 1.5 and res["metrics"]["upper_attention"] < 1e-6
    assert res["claims"] == {"toypaper.score_positive": "pass"}
    # tracked: the stage's run sits in the paper's experiment, described by its title and claims
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    exp = client.get_experiment_by_name("arkbench/toypaper")
    assert exp is not None and "A Toy Paper" in exp.tags["mlflow.note.content"]
    assert "The toy score is positive." in exp.tags["mlflow.note.content"]
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("arkbench.stage") == "toypaper_eval"]
    assert runs and runs[0].data.metrics["score"] == 1.5
    # profile overrides beside the section: the paper profile's value, validated
    (work / "params.yaml").write_text(PARAMS.replace("profile: smoke", "profile: paper"))
    res = _py('''
        import json
        from arkbench.config import stage_params
        print(json.dumps({"n": stage_params("toypaper_eval", "params.yaml").n}))
        ''', work, extra)
    assert res["n"] == 300

    # removed: a fresh process without the extra path knows nothing of it
    import shutil

    shutil.rmtree(extra)
    res = _py('''
        import json
        from arkbench import papers
        from arkbench.config import registered_sections
        from arkbench.models.registry import ATTENTION_BIASES, _load_plugins
        from arkbench.report.claims import load_claims
        from arkbench.tracking import experiment_for
        from arkbench.data.registry import TASKS
        _load_plugins()
        doc = load_claims()
        print(json.dumps({"papers": sorted(papers.papers()), "sections": sorted(registered_sections()),
                          "biases": sorted(ATTENTION_BIASES), "claims": sorted(doc["papers"]),
                          "experiment": experiment_for("toypaper_eval"), "tasks": sorted(TASKS)}))
        ''', work, None)
    assert "toypaper" not in res["papers"] and "toypaper" not in res["claims"]
    assert "toypaper_eval" not in res["sections"] and "toy_causal" not in res["biases"]
    assert res["experiment"] == "arkbench/misc" and "toy_sst2" not in res["tasks"]
    assert _src_digest() == before, "the toy paper edited files outside its folder"


def test_section_defaults_equal_params_yaml():
    """A pydantic default is params.yaml's (smoke) value, or absent (required), or empty
    (none/nothing: {}, [], None, ""): a default that disagrees with params.yaml would
    silently differ between a test and a stage. Switch one default (n_sentences: 128)
    and this fails."""
    from pydantic import BaseModel

    from arkbench.config import read_params, registered_sections, split_section

    raw = read_params(REPO / "params.yaml")
    bad = []
    for name, schema in registered_sections().items():
        if name not in raw:
            continue
        base, _ = split_section(raw, name)
        validated = schema.model_validate(base)
        for f, info in schema.model_fields.items():
            if info.is_required() or f not in base:
                continue
            d = info.get_default(call_default_factory=True)
            if d in ({}, [], None, ""):
                continue
            d = d.model_dump() if isinstance(d, BaseModel) else d
            v = getattr(validated, f)
            v = v.model_dump() if isinstance(v, BaseModel) else v
            if d != v:
                bad.append(f"{name}.{f}: default {d!r} != params.yaml {v!r}")
    assert bad == []
