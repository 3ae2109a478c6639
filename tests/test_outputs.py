"""Shared stage helpers (arkbench.outputs) and the "not run" protocol in the report."""
from __future__ import annotations


# --- shared stage helpers ----------------------------------------------------------------------
def test_outputs_helpers_and_the_not_run_protocol(tmp_path):
    """A number under a {"status": "not run: ..."} record is reported "not run" with the
    stage's reason (before: "inconclusive", key missing)."""
    from arkbench import outputs
    from arkbench.report.claims import evaluate_claims

    assert outputs.metrics_path("mypaper", "eval").as_posix() == "metrics/mypaper/eval.json"
    assert outputs.metrics_path("mypaper", "grid", "rte").as_posix() == "metrics/mypaper/grid/rte.json"
    assert outputs.plots_dir("mypaper", "eval").as_posix() == "plots/mypaper/eval"
    outputs.write_csv(tmp_path / "a.csv", [{"x": 1}, {"x": 2, "y": 3}])
    assert (tmp_path / "a.csv").read_text().splitlines() == ["x,y", "1,", "2,3"]
    assert outputs.write_csv(tmp_path / "none.csv", []) is None and not (tmp_path / "none.csv").exists()
    outputs.write_json(tmp_path / "metrics" / "p" / "m.json",
                       {"real": outputs.not_run("../shared/data not found"), "embedded": {"slope": 0.5}})
    assert outputs.is_not_run({"status": "not run: x"}) and not outputs.is_not_run({"status": "ok"})
    row = {"text": "t", "paper": {"statement": "s", "evidence": "e"}, "criterion": {"kind": "gt", "than": 0}}
    doc = {"papers": {"p": {"title": "P", "claims": [
        {**row, "id": "p.real", "ours": {"file": "metrics/p/m.json", "key": "real.slope"}},
        {**row, "id": "p.emb", "ours": {"file": "metrics/p/m.json", "key": "embedded.slope"}},
        {**row, "id": "p.typo", "ours": {"file": "metrics/p/m.json", "key": "embedded.slop"}}]}}}
    res = {r.id: r for r in evaluate_claims(doc, tmp_path)}
    assert res["p.real"].verdict == "not run" and "../shared/data not found" in res["p.real"].reason
    assert res["p.emb"].verdict == "pass"
    assert res["p.typo"].verdict == "inconclusive"
