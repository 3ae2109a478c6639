"""The `report` stage: claims beside our numbers -> reports/index.html, results.md, results.json.

    python stages/report.py          # via dvc repro, or: arkbench report

Plots: every plots/**/*.json|csv a stage writes is drawn with matplotlib (Agg)
and embedded as a base64 PNG, so index.html is self-contained and opens
offline (``dvc plots show`` would load vega from a CDN). With ``write_pngs`` the
PNGs are also written to reports/plots/.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import Section, globals_, read_params, section
from ..utils import atomic_dir, atomic_write_json, atomic_write_text
from .claims import core_rows, evaluate_claims, load_claims, summarize, validate_claims


@section("report")
class ReportParams(Section):
    claims: str = ""            # claims registry; "" = the packaged src/arkbench/report/claims.yaml
    out_dir: str = "reports"
    plots_dir: str = "plots"
    write_pngs: bool = True     # also write reports/plots/*.png
    max_plots: int = Field(60, ge=0, le=500)


def _context(ctx: Any) -> tuple[str, str, str | None]:
    from ..tracking.workspace import data_source, git_commit

    raw: dict[str, Any] = {}
    try:
        raw = read_params()
    except Exception:  # noqa: BLE001 - the report still renders without params.yaml
        pass
    profile = getattr(ctx, "profile", None) or (globals_(raw).profile if raw else "unknown")
    return profile, data_source(raw, profile), git_commit()


def build_report(params: ReportParams, ctx: Any = None, root: str | Path = ".") -> dict[str, Any]:
    """Write the three report files; return the verdict counts (the stage's metrics)."""
    from .plots import render_plots
    from .render import to_html, to_markdown

    root = Path(root)
    doc = load_claims(params.claims or None)
    problems = validate_claims(doc)
    if problems:
        raise ValueError("claims registry is invalid:\n  " + "\n  ".join(problems))
    profile, source, commit = _context(ctx)
    results = evaluate_claims(doc, root, profile=profile, data_source=source)
    out = root / params.out_dir
    images = render_plots(root / params.plots_dir, params.max_plots)
    plots_meta = [{"file": Path(im["file"]).relative_to(root).as_posix(), "title": im["title"], "png": None}
                  for im in images]
    if params.write_pngs:
        with atomic_dir(out / "plots") as tmp:  # replaced whole: no stale PNGs from earlier runs
            for im, entry in zip(images, plots_meta):
                name = im["title"].replace("/", "__") + ".png"
                (tmp / name).write_bytes(im["png"])
                entry["png"] = (out / "plots" / name).relative_to(root).as_posix()
    res = {
        "profile": profile, "data_source": source, "git_commit": commit,
        "summary": summarize(results),
        "claims": [r.to_dict() for r in results],
        "core": core_rows(doc, root),
        "plots": plots_meta,
    }
    atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "results.md", to_markdown(res))
    atomic_write_text(out / "index.html", to_html(res, images))
    if ctx is not None and getattr(ctx, "log_artifact", None):
        for name in ("index.html", "results.md", "results.json"):
            ctx.log_artifact(out / name)
        if hasattr(ctx, "log_group_artifact"):   # the report on every parent run of this `dvc repro`
            ctx.log_group_artifact(out / "index.html")
    return {**res["summary"], "plots": len(images)}


def main() -> None:  # pragma: no cover - thin wrapper for `python -m arkbench.report.build`
    from ..config import stage_params

    print(json.dumps(build_report(stage_params("report")), indent=2))
