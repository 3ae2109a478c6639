"""Render report results as self-contained HTML (no scripts, no remote URLs) and Markdown."""
from __future__ import annotations

import html
from typing import Any

from .claims import verdict_text

COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "not run": "#6e7781", "inconclusive": "#9a6700",
          "needs profile": "#6e7781"}
MECHANICS = ("Smoke profile: tiny models trained for seconds on generated (embedded) data. Its verdicts "
             "are **mechanics checks** (every stage runs, every number is computed and compared); they are "
             "not evidence about the papers. Claims that need real data and real models read "
             "\"needs cpu profile\"; run `dvc exp run -S profile=cpu` (about 2 hours on 2 cores) to decide them.")
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;width:100%;margin:.6em 0 1.6em}
th,td{border:1px solid #d0d7de;padding:4px 7px;vertical-align:top;text-align:left}
th{background:#f6f8fa} code{font-size:12px;background:#f6f8fa;padding:1px 3px}
.v{font-weight:600;white-space:nowrap} .small{color:#57606a;font-size:12px}
img{max-width:100%;border:1px solid #d0d7de;margin:.3em 0}
figure{margin:0 0 1.2em} figcaption{font-size:12px;color:#57606a}
"""


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, list):
        shown = ", ".join(fmt(x, 3) for x in v[:8])
        return f"[{shown}{', …' if len(v) > 8 else ''}]"
    return str(v)


def paper_cell(c: dict) -> str:
    if c.get("paper_value") is not None:
        unit = f" {c['paper_unit']}" if c.get("paper_unit") else ""
        return f"{c['paper_value']}{unit}"
    return c.get("paper_statement") or "—"


def ours_cell(c: dict) -> str:
    extra = ", ".join(f"{c['criterion'][k]['key']} = {fmt(v)}" for k, v in (c.get("extra") or {}).items())
    return fmt(c["ours"]) + (f" (vs {extra})" if extra else "")


def core_cell(r: dict) -> str:
    if r.get("mean") is None:
        return str(r.get("status") or "—")
    std = f" ± {fmt(r['std'])}" if r.get("std") is not None else ""
    return f"{fmt(r['mean'])}{std}"


def expected_cell(r: dict) -> str:
    e = r.get("expected")
    if not e:
        return "—"
    rng = f"{fmt(e.get('low'))}–{fmt(e.get('high'))} ({e.get('source', 'no source')})"
    m = r.get("mean")
    if not isinstance(m, (int, float)):
        return rng
    where = "below" if m < e["low"] else "above" if m > e["high"] else "in range"
    return f"{rng}: {where}"


def provenance(c: dict) -> str:
    """profile / data source / model of one claim or core row."""
    parts = [str(c.get("profile") or "?"), str(c.get("data_source") or "?")]
    if c.get("model"):
        parts.append(str(c["model"]))
    return " / ".join(parts)


def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def to_markdown(res: dict[str, Any]) -> str:
    lines = [
        "# arkbench results", "",
        f"Profile **{res['profile']}**, data source **{res['data_source']}**, "
        f"commit `{res.get('git_commit') or 'unknown'}`.", "",
        summary_line(res), "",
    ]
    if res["profile"] == "smoke":
        lines += [MECHANICS, ""]
    lines += [
        "## Paper claims", "",
        "| paper | claim | paper's number | ours | profile / source / model | criterion | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in res["claims"]:
        lines.append("| " + " | ".join(_md(x) for x in (
            c["paper"], f"{c['claim']} (`{c['id']}`)", paper_cell(c), ours_cell(c),
            provenance(c), c["criterion_text"],
            verdict_text(c) + (f" — {c['reason']}" if c["verdict"] != "pass" else ""))) + " |")
    lines += ["", "## Transformer core: fine-tuning (mean ± std over seeds)", ""]
    if res["core"]:
        lines += ["| model | task | metric | ours | seeds | expected (real data) | profile / source |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["core"]:
            lines.append("| " + " | ".join(_md(x) for x in (
                r["model"], r["task"], r["metric"], core_cell(r), r["n_seeds"], expected_cell(r),
                f"{r.get('profile') or res['profile']} / {r.get('data_source') or res['data_source']}")) + " |")
    else:
        lines.append("No `metrics/finetune/*.json` yet (not run).")
    if res["plots"]:
        lines += ["", "## Plots", ""] + [f"- {p['title']}: `{p['png']}`" if p.get("png") else
                                         f"- {p['title']} (embedded in index.html)" for p in res["plots"]]
    return "\n".join(lines) + "\n"


def summary_line(res: dict[str, Any]) -> str:
    s = res["summary"]
    kind = "mechanics checks" if res["profile"] == "smoke" else "claims"
    return (f"{s['claims']} {kind}: {s['pass']} pass, {s['fail']} fail, {s.get('needs_profile', 0)} need a "
            f"real-data profile, {s['not_run']} not run, {s['inconclusive']} inconclusive.")


def to_html(res: dict[str, Any], images: list[dict[str, Any]]) -> str:
    e = html.escape
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>arkbench results ({e(res['profile'])})</title><style>{CSS}</style></head><body>",
           "<h1>arkbench results</h1>",
           f"<p>Profile <b>{e(res['profile'])}</b>, data source <b>{e(res['data_source'])}</b>, "
           f"commit <code>{e(res.get('git_commit') or 'unknown')}</code>.<br>"
           f"{e(summary_line(res))}</p>"]
    if res["profile"] == "smoke":
        out.append(f"<p><b>{e(MECHANICS.replace('**', '').replace('`', ''))}</b></p>")
    papers: dict[str, list[dict]] = {}
    for c in res["claims"]:
        papers.setdefault(c["paper"], []).append(c)
    for pname, rows in papers.items():
        out.append(f"<h2>{e(rows[0]['paper_title'])}</h2><table><tr><th>claim</th><th>paper's number</th>"
                   "<th>ours</th><th>profile / source / model</th><th>criterion</th><th>verdict</th></tr>")
        for c in rows:
            note = f"<div class='small'>{e(c['note'])}</div>" if c.get("note") else ""
            stmt = (f"<div class='small'>{e(c['paper_statement'])}</div>"
                    if c.get("paper_value") is not None and c.get("paper_statement") else "")
            src = f"<div class='small'><code>{e(c['source']['file'])}</code> : <code>{e(c['source']['key'])}</code></div>"
            out.append(
                f"<tr><td>{e(c['claim'])}<div class='small'><code>{e(c['id'])}</code></div>{note}</td>"
                f"<td>{e(paper_cell(c))}{stmt}<div class='small'>{e(c['paper_evidence'])}</div></td>"
                f"<td>{e(ours_cell(c))}{src}</td><td>{e(provenance(c))}</td>"
                f"<td>{e(c['criterion_text'])}</td>"
                f"<td class='v' style='color:{COLORS[c['verdict']]}'>{e(verdict_text(c))}"
                f"<div class='small'>{e(c['reason'])}</div></td></tr>")
        out.append("</table>")
    out.append("<h2>Transformer core: fine-tuning (mean ± std over seeds)</h2>")
    if res["core"]:
        out.append("<table><tr><th>model</th><th>task</th><th>metric</th><th>ours</th><th>seeds</th>"
                   "<th>expected (real data)</th><th>profile / source</th></tr>")
        for r in res["core"]:
            out.append(f"<tr><td>{e(str(r['model']))}</td><td>{e(str(r['task']))}</td><td>{e(str(r['metric']))}</td>"
                       f"<td>{e(core_cell(r))}</td><td>{r['n_seeds']}</td><td>{e(expected_cell(r))}</td>"
                       f"<td>{e(str(r.get('profile') or res['profile']))} / "
                       f"{e(str(r.get('data_source') or res['data_source']))}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No <code>metrics/finetune/*.json</code> yet (not run).</p>")
    if images:
        out.append("<h2>Plots</h2>")
        for im in images:
            out.append(f"<figure><img alt='{e(im['title'])}' src='data:image/png;base64,{im['b64']}'>"
                       f"<figcaption>{e(im['file'])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
