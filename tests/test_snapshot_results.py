"""scripts/snapshot_results.py: per-stage times from a timestamped dvc log, and the snapshot it writes."""
from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("snapshot_results", REPO / "scripts" / "snapshot_results.py")
snap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(snap)

LOG = """\
23:59:50 Running stage 'resolve':
23:59:51 > python -m arkbench.warm stages/resolve.py
23:59:55 Running stage 'pretrain@bert':
00:01:05 [progress] pretrain bert: 10/10 step
00:01:10 Running stage 'oversmoothing_fusion@cola':
00:02:10 Running stage 'report':
00:02:19 Use `dvc push` to send your updates to remote storage.
RC=0 WALL=149s
"""


def test_stage_times_span_midnight_and_end_at_the_last_stamp():
    times = snap.stage_times(LOG.splitlines())
    assert times == [("resolve", 5), ("pretrain@bert", 75), ("oversmoothing_fusion@cola", 60), ("report", 9)]
    assert [snap.part_of(n) for n, _ in times] == ["resolve", "pretrain", "oversmoothing", "report"]


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "reports" / "plots").mkdir(parents=True)
    (ws / "reports" / "results.md").write_text("# arkbench results\n")
    (ws / "reports" / "results.json").write_text(json.dumps({"summary": {"claims": 2, "pass": 1, "fail": 1}}))
    (ws / "reports" / "plots" / "a.png").write_bytes(b"\x89PNG")
    for name, (paper, src) in snap.paper_tables().items():
        (ws / src).parent.mkdir(parents=True, exist_ok=True)
        (ws / src).write_text(f"| {paper} | {name} |\n")
    for cmd in (["init", "-q"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty",
                                 "-m", "x"]):
        subprocess.run(["git", "-C", str(ws), *cmd], check=True)
    return ws


def test_snapshot_writes_report_plots_and_readme(tmp_path):
    ws = _workspace(tmp_path)
    log = tmp_path / "run.log"
    log.write_text(LOG)
    out = tmp_path / "snapshot"
    assert snap.main([str(ws), "--log", str(log), "--out", str(out), "--note", "idle"]) == 0
    readme = (out / "README.md").read_text()
    assert "0 h 02 min 29 s" in readme and "exit status 0" in readme and "| note | idle |" in readme
    assert "| `pretrain@bert` | 75 |" in readme and "| oversmoothing | 1 | 1.0 |" in readme
    assert "2 claims, 1 pass, 1 fail" in readme
    assert (out / "plots" / "a.png").read_bytes() == b"\x89PNG"
    assert json.loads((out / "results.json").read_text())["summary"]["pass"] == 1
    assert not list(out.rglob("*.tmp"))
    assert "What this run shows" not in readme   # no --findings


def test_snapshot_copies_every_papers_tables_and_the_findings(tmp_path):
    ws = _workspace(tmp_path)
    log, findings, out = tmp_path / "run.log", tmp_path / "findings.md", tmp_path / "snapshot"
    log.write_text(LOG)
    findings.write_text("- SparseBERT: the diagonal is the least important.\n")
    assert snap.main([str(ws), "--log", str(log), "--out", str(out), "--findings", str(findings)]) == 0
    tables = snap.paper_tables()
    assert {"zerogen_table.md", "captioning_table.md", "sparsebert_table.md"} <= set(tables)
    for name, (paper, _) in tables.items():
        assert (out / name).read_text() == f"| {paper} | {name} |\n"
    readme = (out / "README.md").read_text()
    assert all(f"[{name}]({name})" in readme for name in tables)
    assert readme.endswith("## What this run shows\n\n- SparseBERT: the diagonal is the least important.\n")


def test_paper_tables_are_dvc_outputs():
    """A manifest's `tables` point at files some DVC stage writes (else the snapshot could copy a stale file)."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = {str(o if isinstance(o, str) else next(iter(o))) for st in stages.values()
            for kind in ("outs", "metrics", "plots") for o in st.get(kind, [])}
    for name, (paper, src) in snap.paper_tables().items():
        assert any(src == o or src.startswith(o.rstrip("/") + "/") for o in outs), (paper, name, src)


@pytest.mark.parametrize("broken, message", [("no_end", "has not finished"), ("no_report", "did not reach"),
                                             ("no_table", "metrics/captioning/table.md (captioning's"),
                                             ("no_findings", "--findings")])
def test_snapshot_refuses_an_unfinished_run(tmp_path, capsys, broken, message):
    ws = _workspace(tmp_path)
    log = tmp_path / "run.log"
    log.write_text(LOG.replace("RC=0 WALL=149s\n", "") if broken == "no_end" else LOG)
    if broken == "no_report":
        (ws / "reports" / "results.json").unlink()
    if broken == "no_table":
        (ws / "metrics" / "captioning" / "table.md").unlink()
    extra = ["--findings", str(tmp_path / "nope.md")] if broken == "no_findings" else []
    assert snap.main([str(ws), "--log", str(log), "--out", str(tmp_path / "snapshot"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "snapshot").exists()
