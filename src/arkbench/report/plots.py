"""Render the stages' plot files (plots/**/*.json|csv) as PNG line plots.

This is the offline replacement for ``dvc plots show`` (whose HTML loads vega
from a CDN): the report embeds these PNGs as base64, so reports/index.html opens
with no network. Accepted layouts, kept generic:

* JSON list of records  ``[{"step": 0, "loss": 1.2}, ...]``
* JSON mapping holding one such list ``{"train": [{...}, ...]}`` (each list drawn)
* JSON mapping of equal-length numeric lists ``{"layer": [1, 2], "cos": [.1, .5]}``
* CSV with a header row and numeric columns.

The x axis is the first of step/epoch/iteration/layer/x/size found, else the
row index; every other numeric column (up to 8) is a line.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

X_NAMES = ("step", "epoch", "iteration", "iter", "layer", "x", "size", "n")
MAX_LINES = 8


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _series_from_records(records: list[dict]) -> dict[str, list[float | None]]:
    keys: list[str] = []
    for r in records:
        for k in r:
            if k not in keys:
                keys.append(k)
    cols = {k: [_num(r.get(k)) for r in records] for k in keys}
    return {k: v for k, v in cols.items() if any(x is not None for x in v)}


def read_series(path: Path) -> dict[str, dict[str, list[float | None]]]:
    """{panel title: {column: values}} for one plot file; {} when unreadable."""
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                return {"": _series_from_records(list(csv.DictReader(f)))}
        data = json.loads(path.read_text())
    except (OSError, ValueError, csv.Error):
        return {}
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return {"": _series_from_records(data)}
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list) and v}
        if lists and all(isinstance(r, dict) for v in lists.values() for r in v):
            return {k: _series_from_records(v) for k, v in lists.items()}
        numeric = {k: [_num(x) for x in v] for k, v in lists.items()
                   if all(not isinstance(x, (dict, list)) for x in v)}
        numeric = {k: v for k, v in numeric.items() if any(x is not None for x in v)}
        if numeric and len({len(v) for v in numeric.values()}) == 1:
            return {"": numeric}
        if numeric:  # ragged lists: one panel each, against their index
            return {k: {k: v} for k, v in numeric.items()}
    return {}


def render_png(title: str, panels: dict[str, dict[str, list[float | None]]]) -> bytes | None:
    """A PNG with one subplot per panel, or None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), squeeze=False)
    drew = False
    for ax, (name, cols) in zip(axes[0], panels.items()):
        xname = next((c for c in X_NAMES if c in cols and len(cols) > 1), None)
        n = max(len(v) for v in cols.values())
        xs = cols[xname] if xname else list(range(n))
        for col, ys in list((c, v) for c, v in cols.items() if c != xname)[:MAX_LINES]:
            pts = [(x, y) for x, y in zip(xs, ys)
                   if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) <= 30 else None,
                        markersize=3, linewidth=1.4, label=col)
                drew = True
        ax.set_xlabel(xname or "index")
        if name:
            ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    if drew:
        fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue() if drew else None


def render_plots(plots_dir: str | Path = "plots", max_plots: int = 60) -> list[dict[str, Any]]:
    """[{file, title, png (bytes), b64}] for every drawable plot file, sorted by path."""
    root = Path(plots_dir)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".csv") and p.is_file()) \
        if root.is_dir() else []
    out = []
    for p in files[:max_plots]:
        title = p.relative_to(root).with_suffix("").as_posix()
        png = render_png(title, read_series(p))
        if png:
            out.append({"file": p.as_posix(), "title": title, "png": png,
                        "b64": base64.b64encode(png).decode()})
    return out
