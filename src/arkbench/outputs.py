"""What every stage writes, in one place: paths, JSON/CSV files, plots, the "not run" protocol.

    from arkbench import outputs as out
    out.write_json(out.metrics_path("mypaper", "eval"), metrics)        # metrics/mypaper/eval.json
    out.write_csv(out.plots_dir("mypaper", "eval") / "curve.csv", rows)  # plots/mypaper/eval/curve.csv
    plt = out.pyplot(); fig, ax = plt.subplots(); ...; out.save_figure(fig, path)
    metrics["real"] = out.not_run("../shared/data not found")          # {"status": "not run: ..."}

Convention (dvc.yaml lists exactly these as a stage's outs / metrics):

    metrics/<paper>/<name>.json            one metrics file per stage (name = the stage without the paper prefix)
    metrics/<paper>/<name>/<item>.json     one per matrix item of a foreach/matrix stage
    plots/<paper>/<name>/                  the stage's own plots folder (one DVC out per stage)

"Not run": a part of a stage that cannot run here (data folder absent, checkpoint not
built) is recorded as ``{"status": "not run: <reason>"}`` in place of its numbers, and
the stage still succeeds. The report shows a claim whose number sits under such a
record as "not run" with that reason (arkbench.report.claims), never as a failure.
Every file is written atomically (temp file + rename): nothing half-written looks valid.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from .utils import atomic_write_json, atomic_write_text

METRICS_ROOT = Path("metrics")
PLOTS_ROOT = Path("plots")
NOT_RUN = "not run"


def metrics_path(paper: str, name: str, item: str | None = None) -> Path:
    """metrics/<paper>/<name>.json, or metrics/<paper>/<name>/<item>.json for a matrix item."""
    return METRICS_ROOT / paper / name / f"{item}.json" if item is not None else METRICS_ROOT / paper / f"{name}.json"


def plots_dir(paper: str, name: str) -> Path:
    """plots/<paper>/<name>/: the stage's own plots folder."""
    return PLOTS_ROOT / paper / name


def write_json(path: str | Path, obj: Any) -> Path:
    """Sorted, indented JSON (NaN-safe via float()), atomically."""
    return atomic_write_json(path, obj)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path | None:
    """Rows of dicts -> CSV with the union of their keys (first-seen order); nothing for no rows."""
    rows = list(rows)
    if not rows:
        return None
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save and close `fig` (PNG), creating the folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi)
    pyplot().close(fig)
    return p


def not_run(reason: str) -> dict[str, str]:
    """The record of a part that could not run here: {"status": "not run: <reason>"}."""
    return {"status": f"{NOT_RUN}: {reason}"}


def not_run_reason(node: Any) -> str | None:
    """The reason if `node` is a "not run" record, else None."""
    if isinstance(node, dict):
        status = node.get("status")
        if isinstance(status, str) and status.startswith(NOT_RUN):
            return status
    return None


def is_not_run(node: Any) -> bool:
    return not_run_reason(node) is not None
