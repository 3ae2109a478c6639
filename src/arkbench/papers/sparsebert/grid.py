"""The experiment grid: every mask variant -> (stage 1 DAM search) -> pre-training with the mask
fixed -> fine-tuning (spec §2.5-2.7); the summary table is table.py's.

    warm_start(p, corpus)    the tokenizer and the dense warm start every variant starts from
                             (models/sparsebert/warm/; the sparsebert_warm stage)
    start_from(model, state) load the warm start's weights into a variant's model (its mask kept)
    variants(p, family)      name -> attention-bias spec of each variant of a family
                             baselines: dense, no_diagonal; patterns: the six fixed ones;
                             dam_u / dam_s: one per lambda ("dam_u_1e-04", ...)
    run_family(p, family)    everything for one family, in one process (seeds, tasks inside)

Variant names and the paper's numbers: PAPER_TABLE (the official README, spec §2.7: the
nine-task GLUE average; we fine-tune RTE, MRPC and STS-B, so "avg" is over those three
and the paper's 3-task average is shown beside ours).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from arkbench.models import EncoderConfig, MaskedLM, save_pretrained

from . import analysis
from .dam import DAMCallback, learned_masks
from .protocol import apply_masks, fixed_mask_config, save_masks
from .table import FAMILIES, PAPER_TABLE  # noqa: F401 - re-exported

log = logging.getLogger(__name__)


def warm_start(p, corpus, *, seed: int = 0,
               log_metrics: Callable[[dict, int | None], None] | None = None) -> dict[str, Any]:
    """Write p.warm_dir(): tokenizer/ (trained on the corpus when pretrain.tokenizer is `train`) and,
    when warm_start.steps > 0, model/: a dense encoder after that many MLM steps (seeded by `seed`),
    then warm.json (its meta, written last: a folder without it is not a warm start). Returns the meta.

    Why: at the cpu profile's scale a from-scratch encoder is still at the unigram stage after the
    grid's 150 steps (held-out loss = the unigram entropy), so attention carries nothing and every
    mask, DAM's included, is as good as any other. A shared dense warm start that already uses
    context lets stage 1 learn which positions the attention needs; every variant (dense, the
    fixed patterns, DAM's stages 1 and 2) starts from it, so they stay on an equal footing."""
    from arkbench.training.distributed import DistInfo
    from arkbench.training.mlm_loop import mlm_loop, prepare_mlm_data
    from arkbench.training.pretrain import build_tokenizer
    from arkbench.utils import atomic_dir

    pp = p.pretrain_params()
    out = p.warm_dir()
    w = p.warm_start
    with atomic_dir(out) as tmp:
        if pp.tokenizer == "train":   # a WordPiece of pretrain.vocab_size on the corpus (deterministic)
            tok = build_tokenizer(pp, corpus["train"]["text"], tmp / "tokenizer", DistInfo())
        else:
            from arkbench.tokenization import load_tokenizer

            tok = load_tokenizer(pp.tokenizer)
            tok.save_pretrained(str(tmp / "tokenizer"))
        meta: dict[str, Any] = {"steps": w.steps, "vocab_size": len(tok), "seed": seed}
        if w.steps > 0:
            run = pp.model_copy(update={"max_steps": w.steps, "lr": w.lr or pp.lr,
                                        "warmup_steps": max(pp.warmup_steps, w.steps // 10),
                                        "eval_every": max(1, w.steps // 5), "log_every": max(1, w.steps // 20)})
            torch.manual_seed(seed)
            model = MaskedLM(encoder_config(p, [], len(tok)))
            res = mlm_loop(run, model, prepare_mlm_data(corpus, tok, run, seed), seed=seed, desc="warm start",
                           log_metrics=(lambda m, s: log_metrics({f"warm/{k}": v for k, v in m.items()
                                                                  if isinstance(v, (int, float))}, s))
                           if log_metrics else None)
            save_pretrained(model, tmp / "model", extra={"steps": res.steps, "val_loss": res.val_loss})
            meta.update(lr=run.lr, val_loss=res.val_loss, val_acc=res.val_acc)
        (tmp / "warm.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def load_warm_start(p):
    """(tokenizer, encoder state dict or None, meta) from p.warm_dir(); a missing or half-written folder,
    or one whose step count is not warm_start.steps, is an error naming it."""
    from arkbench.models import from_pretrained
    from arkbench.tokenization import load_tokenizer

    out = p.warm_dir()
    if not (out / "warm.json").is_file():
        raise FileNotFoundError(f"{out}/warm.json: no warm start (run stages/sparsebert_warm.py first)")
    meta = json.loads((out / "warm.json").read_text())
    if meta.get("steps") != p.warm_start.steps:
        raise ValueError(f"{out}/warm.json: {meta.get('steps')} warm-start steps, but sparsebert_grid.warm_start"
                         f".steps = {p.warm_start.steps} (rerun stages/sparsebert_warm.py)")
    tok = load_tokenizer(str(out / "tokenizer"))
    state = from_pretrained(MaskedLM, out / "model").state_dict() if p.warm_start.steps > 0 else None
    return tok, state, meta


def start_from(model: torch.nn.Module, state: dict[str, torch.Tensor] | None) -> None:
    """Load the warm start's weights into `model`: every weight but its attention biases (the
    variant's own mask: FixedMask buffers, DAM logits), which keep their init. A weight the state
    lacks or holds in another shape is an error naming it."""
    if state is None:
        return
    own = model.state_dict()
    mine = [k for k in own if ".biases." not in k]
    missing = [k for k in mine if k not in state]
    shape = [k for k in mine if k in state and state[k].shape != own[k].shape]
    if missing or shape:
        raise ValueError(f"warm start does not fit the variant's encoder: missing {missing[:3]}, "
                         f"other shape {shape[:3]} (sparsebert_grid.model changed? rerun sparsebert_warm)")
    model.load_state_dict({k: state[k] for k in mine}, strict=False)


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
               finetune: Callable[..., dict] | None = None, init_state: dict[str, torch.Tensor] | None = None,
               warm: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every variant of `family` (stage 1 for DAM, stage 2, fine-tuning); returns its results.

    `corpus` (train/validation `text`), `tokenizer`: the MLM data; `finetune(task, init, hp, seeds)`
    -> run_task's result (default: arkbench.training.finetune.run_task on data_root); `init_state`:
    the warm start every model starts from (start_from; None: a fresh init), `warm` its meta.
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

    for own in (plots, *(models_dir / family).glob("*")):
        shutil.rmtree(own, ignore_errors=True)        # this family's outputs only: no stale variant survives
    m = p.model
    results: dict[str, Any] = {
        "family": family, "seq_len": T, "variants": {},
        "model": f"{m['num_layers']} x {m['hidden_size']} encoder, {m['num_heads']} heads, "
                 + (f"{pp.max_steps} MLM steps from scratch (seq {T})" if init_state is None else
                    f"{pp.max_steps} MLM steps per variant from a shared dense warm start of "
                    f"{(warm or {}).get('steps', '?')} steps (seq {T})"),
        "warm_start": warm or {"steps": 0}}
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
                start_from(stage1, init_state)                             # the mask logits keep their init
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
            start_from(model, init_state)
            if masks is not None:
                if p.stage2_init == "continue":
                    start_from(model, stage1.state_dict())       # stage 1's weights, the fixed mask's own buffers
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
            # wall-clock seconds go to MLflow only: files later stages read hold no machine-dependent figure
            log({"seconds": round(time.perf_counter() - t0, 1), "mlm_loss": row["mlm_loss"],
                 "sparsity": row["sparsity"],
                 **{f"{t}": v["score"] for t, v in row["tasks"].items()}}, None, f"{name}/seed{seed}/")
            per_seed.append(row)
        results["variants"][name] = aggregate_variant(name, per_seed, p.tasks)
    # one row per variant and seed (also the folder every family writes, DAM heat maps or not)
    write_csv(plots / f"{family}_variants.csv",
              [{"variant": n, "seed": r["seed"], "mlm_loss": r["mlm_loss"], "sparsity": r["sparsity"],
                **{t: r["tasks"][t]["score"] for t in p.tasks}}
               for n, v in results["variants"].items() for r in v["seeds"]])
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
