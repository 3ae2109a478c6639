"""The experiment grid: every mask variant -> (stage 1 DAM search) -> pre-training with the mask
fixed -> fine-tuning, and the summary table in the paper's layout (spec §2.7).

    variants(p, family)      name -> attention-bias spec of each variant of a family
                             baselines: dense, no_diagonal; patterns: the six fixed ones;
                             dam_u / dam_s: one per lambda ("dam_u_1e-04", ...)
    run_family(p, family)    everything for one family, in one process (seeds, tasks inside)
    summarise(results)       the table rows + the numbers the report's claims read

Variant names and the paper's numbers: PAPER_TABLE (the official README, spec §2.7: the
nine-task GLUE average; we fine-tune RTE, MRPC and STS-B, so "avg" is over those three
and the paper's 3-task average is shown beside ours).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from arkbench.models import EncoderConfig, MaskedLM, save_pretrained

from . import analysis
from .dam import DAMCallback, learned_masks
from .patterns import PAPER_SPARSITY
from .protocol import apply_masks, fixed_mask_config, save_masks

log = logging.getLogger(__name__)

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


def dam_name(kind: str, lam: float) -> str:
    return f"{kind}_{lam:.0e}"                                   # dam_u_1e-04


def variants(p, family: str) -> dict[str, list[dict[str, Any]]]:
    """name -> attention biases (the encoder's `biases` list) of every variant of `family`."""
    if family == "baselines":
        return {"dense": [], "no_diagonal": [{"name": "diagonal"}]}
    if family == "patterns":
        return {n: [{"name": "sparse_pattern", "pattern": n, **p.pattern_params.get(n, {})}] for n in p.patterns}
    if family in ("dam_u", "dam_s"):
        dam = p.dam.model_dump()
        sym = dam.pop("symmetric")
        dam["tau"] = dam.pop("tau_start")                 # the callback anneals it (tau_end, schedule)
        dam.pop("tau_end"), dam.pop("schedule")
        if family == "dam_u":
            dam["symmetric"] = sym
        return {dam_name(family, lam): [{"name": family, "lam": lam, **dam}] for lam in p.lambdas}
    raise ValueError(f"sparsebert_grid: unknown family {family!r}; known: {', '.join(FAMILIES)}")


def encoder_config(p, biases: list[dict], vocab_size: int) -> EncoderConfig:
    kw = {"biases": biases} if biases else {}
    return EncoderConfig.from_dict({**p.model, "vocab_size": vocab_size, "mixer_kwargs": kw})


def attention_masks(model: torch.nn.Module, T: int) -> torch.Tensor:
    """bool [L, H, T, T]: where each layer's attention may look (bias == 0), for any variant."""
    out = []
    x = torch.zeros(1, T, model.config.hidden_size)
    was = model.training
    model.eval()                                                  # DAM: the deterministic mask
    with torch.no_grad():
        for layer in model.encoder.layers:
            b = layer.mixer.logits_bias(None, T, x)
            allowed = torch.ones(T, T, dtype=torch.bool) if b is None else b >= 0
            out.append(allowed.expand(model.config.num_heads, T, T).cpu())
    model.train(was)
    return torch.stack(out)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    t = torch.tensor(xs, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(xs) > 1 else 0.0)


def run_family(p, family: str, *, corpus, tokenizer, log_metrics: Callable[[dict, int | None], None] | None = None,
               finetune: Callable[..., dict] | None = None) -> dict[str, Any]:
    """Run every variant of `family` (stage 1 for DAM, stage 2, fine-tuning); returns its results.

    `corpus` (train/validation `text`), `tokenizer`: the MLM data; `finetune(task, init, hp, seeds)`
    -> run_task's result (default: arkbench.training.finetune.run_task on data_root).
    """
    from arkbench.outputs import save_figure, write_csv, write_json
    from arkbench.training.mlm_loop import mlm_loop, prepare_mlm_data

    if finetune is None:
        from arkbench.training.finetune import run_task

        def finetune(task, init, hp, seeds):
            return run_task(task, init, hp, seeds, data_root=p.data_root)

    pp = p.pretrain_params()
    T = pp.seq_len
    models_dir, plots, metrics_dir = Path(p.models_dir), Path(p.plots_dir) / family, Path(p.metrics_dir)
    import shutil

    for own in (plots, *(d for d in (models_dir / family).glob("*") if d.name != "tokenizer")):
        shutil.rmtree(own, ignore_errors=True)        # this family's outputs only: no stale variant survives
    m = p.model
    results: dict[str, Any] = {
        "family": family, "seq_len": T, "variants": {},
        "model": f"{m['num_layers']} x {m['hidden_size']} encoder, {m['num_heads']} heads, "
                 f"{pp.max_steps} MLM steps from scratch (seq {T})"}
    try:
        from arkbench.data import prepared_source

        results["data_source"] = prepared_source("corpus", p.data_root)
    except Exception:  # noqa: BLE001 - an injected corpus (tests) has no prepared manifest
        results["data_source"] = "given"
    data = {}

    def log(m: dict, step=None, prefix=""):
        if log_metrics is not None:
            log_metrics({f"{prefix}{k}": v for k, v in m.items() if isinstance(v, (int, float))}, step)

    for name, biases in variants(p, family).items():
        seeds = p.seeds_for.get(name, p.seeds)
        per_seed = []
        for seed in seeds:
            if seed not in data:
                data[seed] = prepare_mlm_data(corpus, tokenizer, pp, seed)
            d = data[seed]
            t0 = time.perf_counter()
            row: dict[str, Any] = {"seed": seed}
            cfg = encoder_config(p, biases, len(tokenizer))
            masks = None
            stage1 = None
            if family in ("dam_u", "dam_s"):
                # -- stage 1: learn the mask with the weights (Algorithm 1)
                torch.manual_seed(seed)
                stage1 = MaskedLM(cfg)
                steps1 = p.search_steps or pp.max_steps
                snaps = tuple(sorted({max(1, round(steps1 * f)) for f in p.snapshot_fractions}))
                tracker = analysis.ImportanceTracker(T, every=max(1, steps1 // p.importance_points),
                                                     snapshot_steps=snaps)
                res1 = mlm_loop(pp.model_copy(update={"max_steps": steps1}), stage1, d, seed=seed,
                                callbacks=[DAMCallback(T, p.dam.tau_start, p.dam.tau_end, p.dam.schedule), tracker],
                                progress=False, desc=f"{name} stage 1",
                                log_metrics=lambda m, s, _n=name, _s=seed: log(m, s, f"{_n}/seed{_s}/stage1/"))
                masks = learned_masks(stage1, T)                                   # [L,H,T,T] keep = alpha > 0
                final = tracker.history[-1]                                        # recorded at the last step
                row["stage1"] = {"val_loss": res1.val_loss, "history": tracker.history,
                                 "final": {k: v for k, v in final.items() if k != "step"},
                                 "profiles": tracker.profiles}
                if family == "dam_s":
                    row["stage1"]["band"] = analysis.band_summary(masks, p.band)
                save_masks(models_dir / family / "masks" / f"{name}_seed{seed}.pt", masks,
                           {"variant": name, "seed": seed, "seq_len": T})
                if seed == seeds[0]:
                    write_csv(plots / f"{name}_importance.csv",
                              [{k: v for k, v in h.items() if not isinstance(v, list)} for h in tracker.history])
                    for step, snap in sorted(tracker.snapshots.items()):
                        save_figure(analysis.heatmap_figure(snap, f"{name}: keep probability at step {step}"),
                                    plots / f"{name}_keep_step{step}.png")
                    save_figure(analysis.heatmap_figure(masks.float(), f"{name}: learned binary mask (stage 2)"),
                                plots / f"{name}_mask.png")
                    save_figure(analysis.profile_figure(tracker.profiles, f"{name}: keep probability per offset"),
                                plots / f"{name}_offsets.png")
                cfg = fixed_mask_config(cfg)
            # -- stage 2 (and the only stage of fixed masks): pre-train with the mask fixed
            torch.manual_seed(seed)
            model = MaskedLM(cfg)
            if masks is not None:
                if p.stage2_init == "continue":
                    own = model.state_dict()
                    model.load_state_dict({k: v for k, v in stage1.state_dict().items()
                                           if k in own and own[k].shape == v.shape and "biases" not in k},
                                          strict=False)
                apply_masks(model, masks)
            allowed = attention_masks(model, T)
            res = mlm_loop(pp, model, d, seed=seed, progress=False, desc=f"{name} pretrain",
                           log_metrics=lambda m, s, _n=name, _s=seed: log(m, s, f"{_n}/seed{_s}/"))
            assert masks is None or torch.equal(attention_masks(model, T), allowed), "stage-2 mask moved"
            row.update(mlm_loss=res.val_loss, mlm_acc=res.val_acc, sparsity=100.0 * (1 - allowed.float().mean().item()),
                       pretrain_steps=res.steps)
            out = models_dir / family / f"{name}_seed{seed}"
            save_pretrained(model, out, extra={"variant": name, "seed": seed, "mlm_loss": res.val_loss})
            tokenizer.save_pretrained(str(out))
            # -- fine-tuning with the mask fixed (FixedMask buffers in the checkpoint: no resampling)
            row["tasks"] = {}
            for task in p.tasks:
                r = finetune(task, str(out), p.hp_for(task), [seed])
                row["tasks"][task] = {"metric": r["metric"], "score": float(r["mean"])}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            log({"mlm_loss": row["mlm_loss"], "sparsity": row["sparsity"],
                 **{f"{t}": v["score"] for t, v in row["tasks"].items()}}, None, f"{name}/seed{seed}/")
            per_seed.append(row)
        results["variants"][name] = aggregate_variant(name, per_seed, p.tasks)
    write_json(metrics_dir / "grid" / f"{family}.json", results)
    return results


def aggregate_variant(name: str, per_seed: list[dict], tasks: list[str]) -> dict[str, Any]:
    """Mean / std over seeds of the MLM loss, sparsity and every task score (x 100)."""
    agg: dict[str, Any] = {"name": name, "n_seeds": len(per_seed), "seeds": per_seed}
    for key in ("mlm_loss", "mlm_acc", "sparsity"):
        agg[key], agg[f"{key}_std"] = _mean_std([r[key] for r in per_seed])
    scores = {}
    for t in tasks:
        m, s = _mean_std([100.0 * r["tasks"][t]["score"] for r in per_seed])
        scores[t] = {"mean": m, "std": s, "metric": per_seed[0]["tasks"][t]["metric"]}
    agg["tasks"] = scores
    agg["avg"] = sum(v["mean"] for v in scores.values()) / max(len(scores), 1)
    return agg


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
