"""Claims registry, verdicts, and the three report files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arkbench.report import criteria
from arkbench.report.build import ReportParams, build_report
from arkbench.report.claims import (PAPERS, VERDICTS, evaluate_claims, load_claims,
                                    validate_claims)


def _write(root: Path, rel: str, obj) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)


def test_packaged_claims_validate():
    doc = load_claims()
    assert validate_claims(doc) == []
    assert set(PAPERS) <= set(doc["papers"])
    for name, paper in doc["papers"].items():
        assert paper["claims"], name
        for row in paper["claims"]:
            assert {"id", "text", "paper", "ours", "criterion"} <= set(row)
            assert row["criterion"]["kind"] in criteria.KINDS
            assert row["ours"]["file"].startswith("metrics/")
            assert row["paper"].get("evidence")
    for name, rng in doc["core"]["expected"].items():   # every range is sourced and well-formed
        assert rng["source"] and rng["low"] < rng["high"], name


def test_validation_catches_bad_rows():
    doc = {"papers": {"x": {"title": "X", "claims": [
        {"id": "a", "text": "t", "paper": {"statement": "s", "evidence": "e"},
         "ours": {"file": "m.json", "key": "k"}, "criterion": {"kind": "eval", "expr": "1"}},
        {"id": "b", "text": "t", "paper": {"statement": "s", "evidence": "e"},
         "ours": {"file": "m.json", "key": "k"}, "criterion": {"kind": "ge_paper_minus", "margin": 1}},
        {"id": "c", "text": "t", "paper": {"value": 1.0, "evidence": "e"},
         "ours": {"file": "m.json"}, "criterion": {"kind": "gt", "than": 0, "bogus": 1}},
        {"id": "c", "paper": {"value": 1.0, "evidence": "e"},
         "ours": {"file": "m.json", "key": "k"}, "criterion": {"kind": "gt"}},
    ]}}}
    text = "\n".join(validate_claims(doc))
    assert "unknown criterion kind 'eval'" in text
    assert "paper.value is not a number" in text
    assert "'ours' needs 'file' and 'key'" in text
    assert "unknown parameter 'bogus'" in text
    assert "missing 'text'" in text and "duplicate id" in text and "needs 'than'" in text
    # every discovered paper (arkbench.papers) must be there; the message names its claims file
    assert "paper 'oversmoothing' missing (expected its claims in" in text


def _row(id_, file, key, crit, paper=None):
    return {"id": id_, "text": f"claim {id_}", "paper": paper or {"statement": "s", "evidence": "e"},
            "ours": {"file": file, "key": key}, "criterion": crit}


def test_verdicts_on_fake_metrics(tmp_path):
    _write(tmp_path, "metrics/p/a.json", {"m": {"slope": 0.2, "curve": [0.1, 0.3, 0.2, 0.5]},
                                          "gate": {"mean": 0.80, "std": 0.02}, "last": {"mean": 0.81},
                                          "glue": 80.5, "flag": True, "bad": "x", "nan": float("nan")})
    _write(tmp_path, "metrics/p/b.json", {"loss": 2.0})
    _write(tmp_path, "metrics/p/broken.json", "{not json")
    doc = {"papers": {"p": {"title": "P", "claims": [
        _row("pass_gt", "metrics/p/a.json", "m.slope", {"kind": "gt", "than": 0}),
        _row("fail_lt", "metrics/p/a.json", "m.slope", {"kind": "lt", "than": 0}),
        _row("pass_std", "metrics/p/a.json", "gate.mean",
             {"kind": "ge_other_minus", "other": {"key": "last.mean"}, "slack": {"key": "gate.std"}}),
        _row("fail_std", "metrics/p/a.json", "gate.mean", {"kind": "ge_other_minus", "other": {"key": "last.mean"}}),
        _row("pass_paper", "metrics/p/a.json", "glue", {"kind": "ge_paper_minus", "margin": 2.0},
             paper={"value": 82.0, "evidence": "e"}),
        _row("fail_tol", "metrics/p/a.json", "glue", {"kind": "abs_diff_le", "tol": 1.0},
             paper={"value": 82.0, "evidence": "e"}),
        _row("pass_other_file", "metrics/p/b.json", "loss",
             {"kind": "le_other_plus", "other": {"file": "metrics/p/a.json", "key": "glue"}}),
        _row("pass_trend", "metrics/p/a.json", "m.curve", {"kind": "increasing", "min_fraction": 0.6}),
        _row("fail_trend", "metrics/p/a.json", "m.curve", {"kind": "decreasing"}),
        _row("pass_true", "metrics/p/a.json", "flag", {"kind": "is_true"}),
        _row("pass_range", "metrics/p/a.json", "glue", {"kind": "in_range", "low": 80, "high": 81}),
        _row("notrun", "metrics/p/missing.json", "x", {"kind": "gt", "than": 0}),
        _row("inc_key", "metrics/p/a.json", "nope.x", {"kind": "gt", "than": 0}),
        _row("inc_type", "metrics/p/a.json", "bad", {"kind": "gt", "than": 0}),
        _row("inc_nan", "metrics/p/a.json", "nan", {"kind": "gt", "than": 0}),
        _row("inc_ref", "metrics/p/a.json", "glue", {"kind": "gt", "than": {"key": "nope"}}),
        _row("inc_json", "metrics/p/broken.json", "x", {"kind": "gt", "than": 0}),
        _row("inc_info", "metrics/p/missing.json", "x", {"kind": "info"}),
    ]}}}
    res = {r.id: r for r in evaluate_claims(doc, tmp_path, profile="smoke", data_source="embedded")}
    for id_, r in res.items():
        expected = {"pass": "pass", "fail": "fail", "notrun": "not run", "inc": "inconclusive"}[id_.split("_")[0]]
        assert r.verdict == expected, (id_, r.verdict, r.reason)
    assert res["pass_gt"].ours == 0.2 and res["pass_gt"].profile == "smoke"
    assert res["pass_std"].extra == {"other": 0.81, "slack": 0.02}
    assert res["notrun"].ours is None


def test_metrics_file_can_state_profile_and_source(tmp_path):
    _write(tmp_path, "metrics/p/a.json", {"x": 1, "profile": "paper", "data_source": "local"})
    doc = {"papers": {"p": {"title": "P", "claims": [_row("a", "metrics/p/a.json", "x", {"kind": "gt", "than": 0})]}}}
    (r,) = evaluate_claims(doc, tmp_path, profile="smoke", data_source="embedded")
    assert (r.profile, r.data_source, r.verdict) == ("paper", "local", "pass")


def test_claim_needs_the_profile_that_can_decide_it(tmp_path):
    """A real-data claim computed under smoke reads "needs cpu profile", not pass/fail; under cpu it is
    judged. Rows show where their number came from (profile, data source, model). Without the
    decided_by check both smoke rows below would read "pass"."""
    from arkbench.report.claims import verdict_text

    _write(tmp_path, "metrics/p/sim.json", {"minilm": {"slope": 0.2, "source": "embedded"}})
    _write(tmp_path, "metrics/p/fusion.json", {"gate": {"mean": 0.8}, "model": "minilm", "data_source": "local"})
    doc = {"papers": {"p": {"title": "P", "claims": [
        {**_row("real", "metrics/p/sim.json", "minilm.slope", {"kind": "gt", "than": 0}),
         "decided_by": "cpu", "model": "all-MiniLM-L6-v2"},
        {**_row("fusion", "metrics/p/fusion.json", "gate.mean", {"kind": "gt", "than": 0.5}), "decided_by": "cpu"},
        _row("mech", "metrics/p/sim.json", "minilm.slope", {"kind": "gt", "than": 0}),
    ]}}}
    assert not [p for p in validate_claims(doc) if "decided_by" in p or "unknown field" in p]
    smoke = {r.id: r for r in evaluate_claims(doc, tmp_path, profile="smoke", data_source="embedded")}
    assert smoke["real"].verdict == "needs profile" and verdict_text(smoke["real"].to_dict()) == "needs cpu profile"
    assert "criterion holds" in smoke["real"].reason                   # still computed: a mechanics check
    assert (smoke["real"].data_source, smoke["real"].model) == ("embedded", "all-MiniLM-L6-v2")
    assert smoke["fusion"].verdict == "needs profile" and smoke["fusion"].model == "minilm"
    assert smoke["mech"].verdict == "pass" and verdict_text(smoke["mech"].to_dict()) == "mechanics check: pass"
    cpu = {r.id: r for r in evaluate_claims(doc, tmp_path, profile="cpu", data_source="local")}
    assert cpu["real"].verdict == "pass" and verdict_text(cpu["real"].to_dict()) == "pass"
    assert cpu["fusion"].verdict == "pass" and cpu["fusion"].data_source == "local"
    bad = {"papers": {"p": {"title": "P", "claims": [{**_row("x", "m.json", "k", {"kind": "gt", "than": 0}),
                                                       "decided_by": "gpu"}]}}}
    assert any("decided_by 'gpu'" in p for p in validate_claims(bad))


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("profile: smoke\nseed: 0\ndownload:\n  source: embedded\nreport: {}\n")
    _write(tmp_path, "metrics/oversmoothing/similarity.json",
           {"minilm": {"slope": 0.05, "per_layer": [0.2, 0.3, 0.5, 0.6]}})
    _write(tmp_path, "metrics/oversmoothing/fusion.json",
           {"gate": {"mean": 0.7, "std": 0.01, "similarity": 0.6}, "last": {"mean": 0.8, "similarity": 0.4}})
    _write(tmp_path, "metrics/oversmoothing/theory.json",
           {"post_ln": {"rel_dm_last": 0.01}, "pre_ln": {"rel_dm_last": 0.5}})
    _write(tmp_path, "metrics/finetune/minilm-sst2.json",
           {"task": "sst2", "metric": "accuracy", "mean": 0.81, "std": 0.01, "seeds": [0.8, 0.82]})
    _write(tmp_path, "plots/pretrain/loss.json", [{"step": i, "loss": 3.0 / (i + 1)} for i in range(20)])
    _write(tmp_path, "plots/oversmoothing/cos.csv", "layer,cos,cos_centred\n1,0.1,0.05\n2,0.4,0.1\n3,0.7,0.2\n")
    _write(tmp_path, "plots/x/dict.json", {"layer": [1, 2, 3], "sim": [0.1, 0.2, 0.4]})
    _write(tmp_path, "plots/x/empty.json", {"note": "nothing numeric"})
    counts = build_report(ReportParams(), None, root=tmp_path)
    return tmp_path, counts


def test_build_report_files(built):
    root, counts = built
    out = root / "reports"
    html = (out / "index.html").read_text()
    res = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()

    n = len(res["claims"])
    assert counts["claims"] == n and counts["plots"] == 3
    assert "mechanics checks" in md and "not evidence about the papers" in md     # smoke report
    assert "needs cpu profile" in md and "needs cpu profile" in html
    assert sum(counts[v.replace(" ", "_")] for v in VERDICTS) == n
    assert counts["pass"] >= 1 and counts["needs_profile"] >= 2 and counts["not_run"] >= 1

    # self-contained HTML: no scripts, no remote references, plots embedded
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == 3
    assert "minilm" in html and "0.81 ± 0.01" in html

    # results.json structure
    assert {"profile", "data_source", "git_commit", "summary", "claims", "core", "plots"} <= set(res)
    for c in res["claims"]:
        assert {"paper", "id", "claim", "paper_value", "paper_statement", "ours", "source", "criterion",
                "criterion_text", "verdict", "reason", "profile", "data_source"} <= set(c)
        assert c["verdict"] in VERDICTS
    by_id = {c["id"]: c for c in res["claims"]}
    assert by_id["oversmoothing.similarity_rises"]["verdict"] == "needs profile"     # smoke: mechanics only
    assert "criterion holds" in by_id["oversmoothing.similarity_rises"]["reason"]
    assert "criterion does not hold" in by_id["oversmoothing.fusion_lowers_similarity"]["reason"]
    assert by_id["autobert_zero.glue_gap"]["verdict"] == "not run"             # claims from the paper's folder
    assert by_id["autobert_zero.glue_gap"]["paper_value"] == 2.4
    assert res["core"][0]["model"] == "minilm" and res["core"][0]["n_seeds"] == 2
    assert all((root / p["png"]).is_file() for p in res["plots"])

    # markdown: one table row per claim
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "`" in ln and "(`" in ln]
    assert len(rows) == n
    for c in res["claims"]:
        assert sum(f"(`{c['id']}`)" in ln for ln in rows) == 1


def test_report_stage_script(tmp_path, monkeypatch):
    from arkbench.stage import stage_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARKBENCH_TRACKING", "off")
    Path("params.yaml").write_text("profile: smoke\nseed: 0\ndownload:\n  source: embedded\nreport: {}\n")
    metrics = stage_main("report", build_report, argv=[], metrics_path="metrics/report.json")
    assert metrics["not_run"] == metrics["claims"] - metrics["inconclusive"]
    assert json.loads(Path("metrics/report.json").read_text()) == metrics
    assert Path("reports/index.html").is_file()
    # the DVC stage script itself, run as dvc runs it, writes the same metrics and report
    script = Path(__file__).resolve().parents[1] / "stages" / "report.py"
    out = tmp_path / "as_dvc"
    out.mkdir()
    (out / "params.yaml").write_text(Path("params.yaml").read_text())
    p = subprocess.run([sys.executable, str(script)], cwd=out, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ARKBENCH_TRACKING": "off"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((out / "metrics" / "report.json").read_text()) == metrics
    assert (out / "reports" / "index.html").is_file() and "[report] done in" in p.stdout


def test_core_rows_show_expected_range_verdict_and_not_run(tmp_path):
    from arkbench.report.claims import core_rows
    from arkbench.report.render import core_cell, expected_cell

    d = tmp_path / "metrics" / "finetune"
    d.mkdir(parents=True)
    (d / "minilm-rte.json").write_text(json.dumps({"task": "rte", "metric": "accuracy", "mean": 0.55,
                                                    "std": 0.0, "seeds": [{"seed": 0}], "data_source": "local"}))
    (d / "minilm-sst2.json").write_text(json.dumps({"task": "sst2", "metric": "accuracy", "mean": 0.55,
                                                     "std": 0.0, "seeds": [{"seed": 0}], "data_source": "embedded"}))
    (d / "minilm-cola.json").write_text(json.dumps({"task": "cola", "status": "not run: no data"}))
    doc = {"core": {"glob": ["metrics/finetune/*.json"],
                    "expected": {"finetune/minilm-rte": {"low": 0.6, "high": 0.68, "source": "s"},
                                 "finetune/minilm-sst2": {"low": 0.8, "high": 0.9, "source": "s"}}}}
    rows = {r["task"]: r for r in core_rows(doc, tmp_path)}
    assert expected_cell(rows["rte"]).endswith(": below")
    assert expected_cell(rows["sst2"]) == "—"          # generated data: a real-data range does not apply
    assert core_cell(rows["cola"]) == "not run: no data"
