"""The grid's table in the paper's layout and the numbers the report's claims read.

Pure Python over the per-family result files (metrics/sparsebert/grid/<family>.json), so the
summary stage loads no model code. PAPER_TABLE: the official README (spec §2.7): sparsity %
and the nine GLUE scores + their average per mask.
"""
from __future__ import annotations

from typing import Any

from .patterns import PAPER_SPARSITY

FAMILIES = ("baselines", "patterns", "dam_u", "dam_s")

# official README (spec §2.7): sparsity %, then MNLI-m, MNLI-mm, QQP, QNLI, SST-2, CoLA, STS-B, MRPC, RTE, Avg
_COLS = ("sparsity", "mnli_m", "mnli_mm", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte", "avg")
_ROWS = {
    "strided": (70.4, 81.9, 81.9, 87.1, 89.0, 91.7, 58.4, 86.6, 86.1, 52.7, 79.5),
    "fixed": (72.7, 81.4, 81.8, 86.4, 88.1, 91.3, 54.2, 85.9, 88.7, 59.2, 79.7),
    "longformer": (88.7, 80.5, 81.0, 86.8, 88.4, 91.8, 57.9, 86.9, 81.7, 65.3, 80.1),
    "logsparse": (89.8, 77.9, 78.2, 85.9, 84.6, 92.0, 58.5, 83.2, 82.0, 58.8, 77.9),
    "bigbird": (93.2, 80.2, 80.1, 86.4, 87.6, 91.6, 54.3, 84.7, 84.1, 66.0, 79.4),
    "star": (96.1, 79.1, 79.0, 86.2, 86.4, 91.2, 59.6, 84.7, 83.9, 60.3, 78.9),
    "dam_u_1e-04": (78.9, 82.2, 82.6, 87.3, 89.7, 92.4, 57.3, 86.5, 89.2, 70.8, 82.0),
    "dam_u_1e-03": (79.2, 82.2, 82.4, 87.1, 89.5, 92.3, 57.2, 86.2, 89.1, 67.9, 81.6),
    "dam_u_1e-02": (79.8, 81.7, 82.3, 86.8, 89.4, 92.1, 57.2, 86.1, 89.0, 67.1, 81.3),
    "dam_u_1e-01": (85.8, 81.4, 82.2, 86.5, 89.1, 92.1, 56.6, 84.4, 88.3, 66.8, 80.8),
    "dam_s_1e-04": (91.2, 81.7, 81.7, 87.0, 88.3, 92.5, 59.4, 86.7, 88.4, 63.2, 80.9),
    "dam_s_1e-03": (91.6, 81.0, 81.2, 86.9, 88.0, 92.4, 58.6, 86.2, 85.7, 62.8, 80.3),
    "dam_s_1e-02": (91.7, 81.1, 80.9, 86.9, 87.9, 92.3, 57.9, 84.8, 85.4, 61.0, 79.8),
    "dam_s_1e-01": (93.5, 80.9, 81.0, 86.7, 87.7, 92.2, 57.7, 84.8, 85.2, 59.9, 79.6),
}
PAPER_TABLE: dict[str, dict[str, float]] = {k: dict(zip(_COLS, v)) for k, v in _ROWS.items()}
assert all(PAPER_TABLE[k]["sparsity"] == v for k, v in PAPER_SPARSITY.items())



# --- summary ---------------------------------------------------------------------------------
def _paper_avg(name: str, tasks: list[str]) -> float | None:
    row = PAPER_TABLE.get(name)
    if row is None or any(t not in row for t in tasks):
        return None
    return round(sum(row[t] for t in tasks) / len(tasks), 2)


def summarise(families: dict[str, dict], tasks: list[str], headline_lam: str = "1e-04") -> dict[str, Any]:
    """Table rows (paper layout, the paper's numbers beside ours) + the numbers the claims read."""
    V: dict[str, dict] = {}
    for fam in FAMILIES:
        if fam in families:
            V.update(families[fam]["variants"])
    # the paper's row order: baselines, the patterns as in its table, DAM_u then DAM_s by lambda
    order = ["dense", "no_diagonal", *PAPER_SPARSITY]
    V = dict(sorted(V.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order),
                                                kv[0].split("_")[1] if kv[0].startswith("dam_") else "",
                                                float(kv[0].rsplit("_", 1)[1]) if kv[0].startswith("dam_") else 0)))
    rows = []
    for name, v in V.items():
        paper = PAPER_TABLE.get(name, {})
        row = {"mask": name, "sparsity": round(v["sparsity"], 1), "mlm_loss": round(v["mlm_loss"], 4),
               "mlm_loss_std": round(v["mlm_loss_std"], 4), "n_seeds": v["n_seeds"]}
        row.update({t: round(v["tasks"][t]["mean"], 1) for t in tasks})
        row["avg"] = round(v["avg"], 1)
        row["paper_sparsity"] = paper.get("sparsity")
        row.update({f"paper_{t}": paper.get(t) for t in tasks})
        row["paper_avg_tasks"] = _paper_avg(name, tasks)
        row["paper_avg_glue9"] = paper.get("avg")
        rows.append(row)
    fam0 = next(iter(families.values()))
    prov = {"model": fam0.get("model"), "data_source": "+".join(sorted({str(f.get("data_source")) for f in
                                                                        families.values()}))}
    out: dict[str, Any] = {"rows": rows, "tasks": tasks, "provenance": prov}

    def pick(name):
        v = V.get(name)
        return None if v is None else {"mlm_loss": v["mlm_loss"], "mlm_loss_std": v["mlm_loss_std"],
                                       "sparsity": v["sparsity"], "avg": v["avg"], "n_seeds": v["n_seeds"]}

    masks = {n: pick(n) for n in V}
    patterns = [n for n in V if n in PAPER_SPARSITY]
    for kind in ("dam_u", "dam_s"):
        head = f"{kind}_{headline_lam}"
        if head in V:
            masks[kind] = {**pick(head), "variant": head}
            if patterns:   # the fixed pattern nearest in sparsity: "at similar sparsity"
                near = min(patterns, key=lambda n: abs(V[n]["sparsity"] - V[head]["sparsity"]))
                masks[f"{kind}_nearest_pattern"] = {**pick(near), "variant": near}
    if patterns:
        best = min(patterns, key=lambda n: V[n]["mlm_loss"])
        masks["best_pattern"] = {**pick(best), "variant": best}
    out["masks"] = masks

    sweep: dict[str, Any] = {}
    for kind in ("dam_u", "dam_s"):
        sp = {n: V[n]["sparsity"] for n in V if n.startswith(kind + "_")}
        if sp:
            sweep[kind] = sp
            sweep[f"{kind}_spread" if kind == "dam_s" else "sparsity_spread"] = max(sp.values()) - min(sp.values())
    out["lambda_sweep"] = sweep

    dam: dict[str, Any] = {}
    head = f"dam_u_{headline_lam}"
    if head in V:
        s1 = V[head]["seeds"][0]["stage1"]
        dam.update(s1["final"])
        dam["variant"] = head
        dam["over_time"] = [{k: h[k] for k in ("step", "diag_rank", "diag_minus_median_keep", "diag_keep",
                                                 "offdiag_median_keep", "sparsity")} for h in s1["history"]]
        # the first recorded step at which the diagonal is the least kept offset of all
        first = next((h["step"] for h in s1["history"] if h["step"] > 0 and h["diag_rank"] <= 1.5), None)
        dam["first_step_diag_least_kept"] = first
        # 0 = the least kept of all offsets, 1 = the most kept
        dam["diag_rank_quantile"] = (dam["diag_rank"] - 1) / max(dam["n_offsets"] - 1, 1)
    heads = f"dam_s_{headline_lam}"
    if heads in V:
        band = V[heads]["seeds"][0]["stage1"]["band"]
        dam["dam_s_band"] = {**band, "variant": heads,
                             "band_plus_long": bool(band["short_offsets_kept"] > band["long_offsets_kept"] > 0)}
    out["dam"] = dam

    nd = {}
    if "dense" in V and "no_diagonal" in V:
        d, n = V["dense"], V["no_diagonal"]
        noise = max(d["mlm_loss_std"], n["mlm_loss_std"])
        nd = {"dense": pick("dense"), "no_diag": {**pick("no_diagonal"), "seed_noise": noise},
              "difference": n["mlm_loss"] - d["mlm_loss"]}
    out["no_diagonal"] = nd
    return out


def table_markdown(summary: dict[str, Any]) -> str:
    """The grid in the paper's layout: ours | the paper's (README) per task, sparsity and average."""
    tasks = summary["tasks"]
    head = ["Mask", "Sparsity % (paper)"] + [f"{t.upper()} (paper)" for t in tasks] + \
        ["Avg (paper, same tasks)", "paper GLUE-9 avg", "MLM loss (held-out)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v, nd=1):
        return "–" if v is None else f"{v:.{nd}f}"

    for r in summary["rows"]:
        cells = [r["mask"], f"{f(r['sparsity'])} ({f(r['paper_sparsity'])})"]
        cells += [f"{f(r[t])} ({f(r[f'paper_{t}'])})" for t in tasks]
        cells += [f"{f(r['avg'])} ({f(r['paper_avg_tasks'])})", f(r["paper_avg_glue9"]),
                  f"{f(r['mlm_loss'], 3)} ± {f(r['mlm_loss_std'], 3)} (n={r['n_seeds']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
