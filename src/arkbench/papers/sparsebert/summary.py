"""Params section and `run` of the sparsebert_summary DVC stage (stages/sparsebert_summary.py).

Reads metrics/sparsebert/grid/<family>.json, writes the table in the paper's layout
(plots/sparsebert/summary/table.md, .csv; metrics/sparsebert/table.json) and the numbers
the report's claims read (metrics/sparsebert/{masks,lambda_sweep,dam,no_diagonal}.json).
Loads no model code (table.py is plain Python).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from arkbench.config import Section, section


@section("sparsebert_summary")
class SummaryParams(Section):
    grid_metrics: str = "metrics/sparsebert/grid"
    families: list[str] = Field(default_factory=lambda: ["baselines", "patterns", "dam_u", "dam_s"])
    tasks: list[str] = Field(default_factory=lambda: ["rte"])
    headline_lambda: str = "1e-04"
    metrics_dir: str = "metrics/sparsebert"
    plots_dir: str = "plots/sparsebert/summary"


def run_summary(p: SummaryParams, ctx=None, **_) -> dict[str, Any]:
    from arkbench.errors import read_json
    from arkbench.outputs import not_run, write_csv, write_json

    from .table import summarise, table_markdown

    fams, missing = {}, []
    for f in p.families:
        path = Path(p.grid_metrics) / f"{f}.json"
        if path.exists():
            fams[f] = read_json(path)
        else:
            missing.append(f)
    out = Path(p.metrics_dir)
    if not fams:
        nr = not_run(f"no grid results under {p.grid_metrics}")
        for name in ("masks", "lambda_sweep", "dam", "no_diagonal", "table"):
            write_json(out / f"{name}.json", nr)
        return nr
    s = summarise(fams, p.tasks, p.headline_lambda)
    for name in ("masks", "lambda_sweep", "dam", "no_diagonal"):
        write_json(out / f"{name}.json", {**s[name], **s["provenance"]} if s[name]
                   else not_run(f"families missing: {missing}"))
    write_json(out / "table.json", {"rows": s["rows"], "missing_families": missing, **s["provenance"]})
    plots = Path(p.plots_dir)
    write_csv(plots / "table.csv", s["rows"])
    md = plots / "table.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(table_markdown(s))
    if ctx is not None:
        ctx.log_artifact(md)
    return {"rows": len(s["rows"]), "missing_families": missing}
