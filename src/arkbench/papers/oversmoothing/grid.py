"""The fusion experiment grid: BERT vs +Concat / +Max / +Gate on one task, over seeds.

:func:`fusion_probe` builds the ``on_trained(seed, model, eval_loader)`` callback that
``arkbench.training.finetune.run_task`` calls after each seed: on the task's first
evaluation split it measures, on the fine-tuned model,

* the per-layer token similarity of the encoder (raw and corpus-centred),
* the similarity of the fused output the head reads and of the last layer
  (for ``fusion="last"`` the two coincide),
* the mean gate weight per layer over the non-padding tokens (Gate fusion; Fig. 7).

:func:`aggregate_tasks` turns per-task results into the grid summary (per fusion: the
average over tasks of each task's primary metric, mean +- std over seeds, and the
paired difference to the baseline seed by seed).
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .measures import content_mask, corpus_mean, token_cosine

__all__ = ["fusion_probe", "aggregate_task", "aggregate_tasks"]

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _mean(xs: list[torch.Tensor]) -> float:
    v = torch.cat([x.flatten() for x in xs])
    v = v[torch.isfinite(v)]
    return float(v.mean()) if v.numel() else float("nan")


def fusion_probe(special_ids: Sequence[int], max_batches: int | None = 8,
                 store: dict | None = None) -> Callable[[int, torch.nn.Module, Any], dict]:
    """An ``on_trained`` callback; also keeps each seed's full result in `store[seed]`."""

    @torch.no_grad()
    def on_trained(seed: int, model: torch.nn.Module, loader) -> dict:
        model.eval()
        outs = []
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            b = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
            enc, fused, extras = model.encode(b["input_ids"], b.get("attention_mask"), b.get("token_type_ids"))
            m = enc.attention_mask.bool()
            outs.append((b, [h.float() for h in enc.hidden_states], fused.float(), extras, m))
        if not outs:
            return {}
        L1 = len(outs[0][1])
        # corpus centres per representation over all evaluated tokens
        def centre(get):
            tot, n = 0.0, 0.0
            for o in outs:
                h, m = get(o), o[4]
                tot = tot + corpus_mean(h, m) * float(m.sum())
                n += float(m.sum())
            return tot / max(n, 1.0)

        mu_layers = [centre(lambda o, l=l: o[1][l]) for l in range(L1)]
        mu_fused = centre(lambda o: o[2])
        raw = [_mean([token_cosine(o[1][l], o[4]) for o in outs]) for l in range(L1)]
        cen = [_mean([token_cosine(o[1][l], o[4], center=mu_layers[l]) for o in outs]) for l in range(L1)]
        fused_raw = _mean([token_cosine(o[2], o[4]) for o in outs])
        fused_cen = _mean([token_cosine(o[2], o[4], center=mu_fused) for o in outs])
        fused_cen_content = _mean([token_cosine(o[2], content_mask(o[0]["input_ids"], o[4], special_ids),
                                                center=mu_fused) for o in outs])
        res: dict[str, Any] = {
            "sim_fused_raw": fused_raw, "sim_fused_centred": fused_cen,
            "sim_fused_centred_content": fused_cen_content,
            "sim_last_raw": raw[-1], "sim_last_centred": cen[-1],
            "layer_sim_raw": raw, "layer_sim_centred": cen,
        }
        gates = [o[3]["gate_weights"] for o in outs if o[3] and "gate_weights" in o[3]]
        if gates:
            tot = sum((g.float() * o[4].float().unsqueeze(-1)).sum((0, 1)) for g, o in zip(gates, outs))
            cnt = sum(float(o[4].sum()) for o in outs)
            w = (tot / cnt).tolist()
            res["gate_weights"] = w
            res["gate_entropy"] = float(-sum(x * np.log(max(x, 1e-12)) for x in w))
        if store is not None:
            store[seed] = res
        return {k: v for k, v in res.items()}

    return on_trained


def _ms(vals: list[float]) -> dict[str, float]:
    vals = [float(v) for v in vals if v is not None and np.isfinite(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "n": len(vals)}


def aggregate_task(res: dict[str, Any]) -> dict[str, Any]:
    """One fusion's run_task result -> the numbers the grid keeps (per seed and mean/std)."""
    seeds = res["seeds"]
    metric = res["metric"]
    out: dict[str, Any] = {"metric": metric, "mean": res["mean"], "std": res["std"],
                           "per_seed": {str(r["seed"]): float(r[metric]) for r in seeds}}
    for k in ("sim_fused_raw", "sim_fused_centred", "sim_fused_centred_content", "sim_last_raw",
              "sim_last_centred", "gate_entropy"):
        if any(k in r for r in seeds):
            out[k] = _ms([r.get(k) for r in seeds])
    for k in ("layer_sim_raw", "layer_sim_centred", "gate_weights"):
        rows = [r[k] for r in seeds if isinstance(r.get(k), list)]
        if rows:
            out[k] = np.mean(np.array(rows, dtype=float), axis=0).tolist()
    return out


def aggregate_tasks(per_task: dict[str, dict[str, Any]], fusions: Sequence[str],
                    baseline: str = "last") -> dict[str, Any]:
    """{task: {fusion: aggregate_task(...)}} -> per-fusion averages over tasks.

    ``<fusion>.mean/std``: mean and std over seeds of the per-seed average over tasks of
    each task's primary metric on a 0-100 scale (GLUE-style average: fractions x 100,
    SQuAD F1 as is, so no task's units dominate). ``<fusion>.similarity``: the mean
    corpus-centred token similarity of the output the head reads; for the baseline
    this is the last layer. ``<fusion>.minus_<baseline>``: the paired per-seed difference.
    """
    tasks = list(per_task)
    out: dict[str, Any] = {"tasks": tasks, "baseline": baseline}
    seeds = None
    for t in tasks:
        for f in fusions:
            s = set(per_task[t][f]["per_seed"])
            seeds = s if seeds is None else seeds & s
    seeds = sorted(seeds or [], key=int)
    from ...data import get_task
    from ...metrics import as_percent

    metric = {t: get_task(t).metric for t in tasks}
    avg_by_fusion: dict[str, list[float]] = {}
    for f in fusions:
        per_seed_avg = [statistics.fmean(as_percent(metric[t], per_task[t][f]["per_seed"][s]) for t in tasks)
                        for s in seeds]
        avg_by_fusion[f] = per_seed_avg
        rec = _ms(per_seed_avg)
        rec["per_task"] = {t: per_task[t][f]["mean"] for t in tasks}
        rec["similarity"] = statistics.fmean(per_task[t][f]["sim_fused_centred"]["mean"] for t in tasks)
        rec["similarity_raw"] = statistics.fmean(per_task[t][f]["sim_fused_raw"]["mean"] for t in tasks)
        rec["last_layer_similarity"] = statistics.fmean(per_task[t][f]["sim_last_centred"]["mean"] for t in tasks)
        gw = [per_task[t][f]["gate_weights"] for t in tasks if "gate_weights" in per_task[t][f]]
        if gw and len({len(g) for g in gw}) == 1:
            rec["gate_weights"] = np.mean(np.array(gw), axis=0).tolist()
        out[f] = rec
    if baseline in avg_by_fusion:
        for f in fusions:
            if f == baseline:
                continue
            diffs = [a - b for a, b in zip(avg_by_fusion[f], avg_by_fusion[baseline])]
            d = _ms(diffs)
            d["tasks_not_worse"] = sum(per_task[t][f]["mean"] >= per_task[t][baseline]["mean"] for t in tasks)
            out[f][f"minus_{baseline}"] = d
            out[f]["similarity_below_baseline"] = out[f]["similarity"] < out[baseline]["similarity"]
    out["seeds"] = [int(s) for s in seeds]
    return out
