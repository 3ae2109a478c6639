"""Load the claims registry, validate it, and compute each row's verdict."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..outputs import not_run_reason
from . import criteria

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")   # row format + the Transformer core
VERDICTS = ("pass", "fail", "not run", "inconclusive", "needs profile")
# Which profile can decide what: a claim row's `decided_by` names the least profile whose
# data and model can decide it. Under a lower profile its criterion is still computed
# (a mechanics check) but the verdict reads "needs <profile> profile".
PROFILE_RANK = {"smoke": 0, "cpu": 1, "small": 2, "paper": 3}


def __getattr__(name: str):
    if name == "PAPERS":   # the discovered papers, at the time of asking (arkbench.papers)
        from ..papers import papers

        return tuple(papers())
    raise AttributeError(name)


def load_claims(path: str | Path | None = None) -> dict[str, Any]:
    """The claims document: `core` from the registry file, `papers` from every paper's own
    claims file (found through its manifest). A file that has its own `papers` keeps them."""
    from ..papers import papers

    doc = yaml.safe_load(Path(path or CLAIMS_FILE).read_text()) or {}
    if "papers" not in doc:
        doc["papers"] = {name: p.load_claims() for name, p in papers().items()}
    return doc


def validate_claims(doc: dict[str, Any]) -> list[str]:
    """Every problem in a claims document (empty list when valid)."""
    problems: list[str] = []
    papers = doc.get("papers")
    if not isinstance(papers, dict):
        return ["top-level 'papers' mapping missing"]
    from ..papers import papers as discovered

    for name, paper in discovered().items():
        if name not in papers:
            problems.append(f"paper {name!r} missing (expected its claims in {paper.claims_file()})")
    seen: set[str] = set()
    for pname, paper in papers.items():
        if not isinstance(paper, dict) or not isinstance(paper.get("claims"), list) or not paper["claims"]:
            where = f" ({paper['file']})" if isinstance(paper, dict) and paper.get("file") else ""
            problems.append(f"{pname}{where}: needs a non-empty 'claims' list")
            continue
        if not paper.get("title"):
            problems.append(f"{pname}: needs a 'title'")
        for i, row in enumerate(paper["claims"]):
            where = f"{pname}.claims[{i}]"
            if not isinstance(row, dict):
                problems.append(f"{where}: must be a mapping")
                continue
            where = f"{pname}:{row.get('id', i)}"
            for key in ("id", "text", "paper", "ours", "criterion"):
                if key not in row:
                    problems.append(f"{where}: missing {key!r}")
            extra = set(row) - {"id", "text", "paper", "ours", "criterion", "note", "decided_by", "model"}
            if "decided_by" in row and row["decided_by"] not in PROFILE_RANK:
                problems.append(f"{where}: decided_by {row['decided_by']!r} is not a profile "
                                f"({', '.join(PROFILE_RANK)})")
            if extra:
                problems.append(f"{where}: unknown field(s) {sorted(extra)}")
            if row.get("id") in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(row.get("id"))
            paper_v = row.get("paper")
            if not isinstance(paper_v, dict) or not (("value" in paper_v) or paper_v.get("statement")):
                problems.append(f"{where}: 'paper' needs a value or a statement")
                paper_v = {}
            elif not paper_v.get("evidence"):
                problems.append(f"{where}: 'paper.evidence' missing (which spec tag backs it?)")
            value = paper_v.get("value")
            if value is not None and not isinstance(value, (int, float)):
                problems.append(f"{where}: paper.value must be a number")
            ours = row.get("ours")
            if not isinstance(ours, dict) or not isinstance(ours.get("file"), str) or not isinstance(ours.get("key"), str):
                problems.append(f"{where}: 'ours' needs 'file' and 'key' strings")
            problems += [f"{where}: {p}" for p in criteria.validate(row.get("criterion"), value)]
    return problems


# -- metrics lookup ---------------------------------------------------------------------
class _Files:
    """Reads metrics files relative to `root`, once each."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, Any] = {}

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def load(self, rel: str) -> Any:
        if rel not in self.cache:
            p = self.root / rel
            if not p.is_file():
                raise criteria.Inconclusive(f"{rel} not found")
            try:
                self.cache[rel] = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise criteria.Inconclusive(f"{rel} is not valid JSON: {e}") from None
        return self.cache[rel]

    def provenance(self, rel: str, key: str) -> dict[str, str]:
        """profile / data_source / model recorded in the file: at its top level, or in a
        node on the key's path (``minilm.slope`` -> the ``minilm`` node's ``source``)."""
        out: dict[str, str] = {}
        node = self.load(rel)
        for part in [None, *key.split(".")]:
            if part is not None:
                if not (isinstance(node, dict) and part in node):
                    break
                node = node[part]
            if not isinstance(node, dict):
                break
            for field_, names in (("profile", ("profile",)), ("data_source", ("data_source", "source")),
                                  ("model", ("model",))):
                for name in names:
                    if isinstance(node.get(name), str):
                        out[field_] = node[name]
                        break
        return out

    def get(self, rel: str, key: str) -> Any:
        node = self.load(rel)
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = node[int(part)]
            else:
                reason = not_run_reason(node)   # the stage recorded this part as "not run" (arkbench.outputs)
                if reason:
                    raise NotRun(f"{rel}: {reason}")
                raise criteria.Inconclusive(f"key {key!r} not in {rel}")
        return node


class NotRun(criteria.Inconclusive):
    """The number sits under a {"status": "not run: ..."} record."""


@dataclass
class ClaimResult:
    paper: str
    paper_title: str
    id: str
    claim: str
    paper_value: float | None
    paper_unit: str
    paper_statement: str
    paper_evidence: str
    ours: Any
    source: dict[str, str]
    criterion: dict[str, Any]
    criterion_text: str
    verdict: str
    reason: str
    profile: str
    data_source: str
    model: str = ""
    decided_by: str = ""            # least profile that can decide the claim ("" = any)
    mechanics: bool = False         # computed under smoke: a check of the pipeline, not of the paper
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def evaluate_claims(doc: dict[str, Any], root: str | Path = ".", profile: str = "unknown",
                    data_source: str = "unknown") -> list[ClaimResult]:
    """One :class:`ClaimResult` per row, in registry order."""
    files = _Files(Path(root))
    out: list[ClaimResult] = []
    for pname, paper in (doc.get("papers") or {}).items():
        for row in paper.get("claims") or []:
            ours_spec = row["ours"]
            crit = row["criterion"]
            pv = row.get("paper") or {}
            res = ClaimResult(
                paper=pname, paper_title=paper.get("title", pname), id=row["id"], claim=row["text"],
                paper_value=pv.get("value"), paper_unit=pv.get("unit", ""),
                paper_statement=pv.get("statement", ""), paper_evidence=pv.get("evidence", ""),
                ours=None, source={"file": ours_spec["file"], "key": ours_spec["key"]},
                criterion=dict(crit), criterion_text=criteria.describe(crit), verdict="inconclusive",
                reason="", profile=profile, data_source=data_source, model=str(row.get("model", "")),
                decided_by=str(row.get("decided_by", "")), note=row.get("note", ""))
            out.append(res)
            if crit["kind"] == "info":  # context rows: show our number if any, never judged
                try:
                    res.ours = _jsonable(files.get(ours_spec["file"], ours_spec["key"]))
                except criteria.Inconclusive:
                    pass
                res.reason = crit.get("note") or "context only; not reproduced at this scale"
                continue
            if not files.exists(ours_spec["file"]):
                res.verdict, res.reason = "not run", f"{ours_spec['file']} does not exist"
                continue
            try:
                files.load(ours_spec["file"])
                # a stage may record where its numbers came from (file top level or the key's node)
                prov = files.provenance(ours_spec["file"], ours_spec["key"])
                res.profile = prov.get("profile", profile)
                res.data_source = prov.get("data_source", data_source)
                res.model = prov.get("model", res.model)
                res.ours = _jsonable(files.get(ours_spec["file"], ours_spec["key"]))

                def resolve(ref: dict) -> Any:
                    return files.get(ref.get("file", ours_spec["file"]), ref["key"])

                ok = criteria.evaluate(crit, res.ours, pv.get("value"), resolve)
                res.verdict = "pass" if ok else "fail"
                res.reason = "criterion holds" if ok else "criterion does not hold"
                res.mechanics = res.profile == "smoke"
                need = res.decided_by
                if need and PROFILE_RANK.get(res.profile, -1) < PROFILE_RANK[need]:
                    res.reason = (f"mechanics check under {res.profile}: {res.reason}; only the {need} "
                                  f"profile (real data, real model) can decide it")
                    res.verdict = "needs profile"
                elif res.mechanics:
                    res.reason = f"mechanics check: {res.reason}"
                for name, v in crit.items():
                    if criteria.is_ref(v):
                        res.extra[name] = _jsonable(resolve(v))
            except NotRun as e:
                res.verdict, res.reason = "not run", str(e)
            except criteria.Inconclusive as e:
                res.verdict, res.reason = "inconclusive", str(e)
    return out


def verdict_text(c: dict[str, Any]) -> str:
    """How a verdict reads: "needs cpu profile", "mechanics check: pass", "pass"..."""
    if c["verdict"] == "needs profile":
        return f"needs {c.get('decided_by') or 'another'} profile"
    if c.get("mechanics") and c["verdict"] in ("pass", "fail"):
        return f"mechanics check: {c['verdict']}"
    return c["verdict"]


def summarize(results: list[ClaimResult]) -> dict[str, int]:
    counts = {v.replace(" ", "_"): 0 for v in VERDICTS}
    for r in results:
        counts[r.verdict.replace(" ", "_")] += 1
    counts["claims"] = len(results)
    return counts


# -- Transformer core -------------------------------------------------------------------
REAL_SOURCES = ("local", "hub")
def core_rows(doc: dict[str, Any], root: str | Path = ".") -> list[dict[str, Any]]:
    """Fine-tuning results: one row per metrics/finetune/<model>-<task>.json."""
    core = doc.get("core") or {}
    expected = core.get("expected") or {}
    rows = []
    globs = core.get("glob", "metrics/finetune/*.json")
    paths = [p for g in ([globs] if isinstance(globs, str) else globs) for p in sorted(Path(root).glob(g))]
    for p in paths:
        name = p.stem
        key = f"{p.parent.name}/{p.stem}"   # expected ranges are keyed "<folder>/<model>-<task>"
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            data = {}
        model, _, task = name.partition("-")
        seeds = data.get("seeds") if isinstance(data.get("seeds"), list) else []
        rows.append({
            "name": name, "file": p.relative_to(root).as_posix(),
            "model": data.get("model", model), "task": data.get("task", task or name),
            "metric": data.get("metric", "?"), "mean": _jsonable(data.get("mean")),
            "std": _jsonable(data.get("std")), "seeds": _jsonable(seeds), "n_seeds": len(seeds),
            "profile": data.get("profile"), "data_source": data.get("data_source"),
            # expected ranges are real-data ranges: shown only beside rows computed on real data
            "expected": (expected.get(key, expected.get(name))
                         if data.get("data_source") in REAL_SOURCES else None),
            "status": data.get("status"),
        })
    return rows
