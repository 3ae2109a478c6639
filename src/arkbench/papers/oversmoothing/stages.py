"""Params sections and `run` functions of the over-smoothing DVC stages.

    oversmoothing_similarity      stages/oversmoothing_similarity.py     Fig. 1a + LN/lambda/bound stats
    oversmoothing_probe           stages/oversmoothing_probe.py          Fig. 1b (probe error per layer)
    oversmoothing_theory          stages/oversmoothing_theory.py         random post-/pre-LN stacks
    oversmoothing_fusion          stages/oversmoothing_fusion.py --task  fusion grid on one task
                                  stages/oversmoothing_fusion_summary.py  grid summary over tasks

Each `run` writes its metrics JSON itself (metrics/oversmoothing/...), curve data to
plots/oversmoothing/*.csv|json and PNGs beside them, and returns the metrics.
Real-data curves use the `local` source under `local_dir`; when that folder is absent
they are recorded as {"status": "not run: ..."} and the embedded-data curves still run.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from arkbench.config import Section, section
from arkbench.errors import DataMissingError, read_json
from arkbench.tracking.datasets import log_inputs, prepared_inputs, rows_inputs
from arkbench.progress import progress
from arkbench.outputs import not_run, pyplot, save_figure, write_csv, write_json
from arkbench.training.hparams import FinetuneHP

log = logging.getLogger(__name__)

FUSION_NAMES = ("last", "concat", "max", "gate")


# --------------------------------------------------------------------------- params
# Defaults equal params.yaml's smoke values (tests/test_papers.py checks it).
class _RealData(Section):
    source: Literal["local", "embedded", "hub"] = "embedded"
    local_dir: str = "../shared/data"
    fallback_source: Literal["embedded", "none"] = "none"
    data_seed: int = 0
    plots_dir: str
    metrics_dir: str = "metrics/oversmoothing"


@section("oversmoothing_similarity")
class SimilarityParams(_RealData):
    models: list[str] = Field(default_factory=lambda: ["minilm", "models/pretrain/bert"])
    tasks: list[str] = Field(default_factory=lambda: ["stsb", "cola", "squad"])
    plots_dir: str = "plots/oversmoothing/similarity"
    n_sentences: int = Field(32, ge=2)
    max_length: int = Field(128, ge=8)
    batch_size: int = Field(32, ge=1)
    bounds: bool = True


@section("oversmoothing_probe")
class ProbeParams(_RealData):
    models: list[str] = Field(default_factory=lambda: ["minilm"])
    plots_dir: str = "plots/oversmoothing/probe"
    task: str = "sst2"
    n_train: int = Field(1000, ge=10)
    n_test: int = Field(500, ge=10)
    max_length: int = Field(64, ge=8)
    batch_size: int = Field(64, ge=1)
    pool: Literal["mean", "cls"] = "mean"
    C: float | None = Field(None, gt=0)


@section("oversmoothing_theory")
class TheoryParams(Section):
    gains: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    gammas: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    norm_positions: list[Literal["post", "pre"]] = Field(default_factory=lambda: ["post", "pre"])
    reference_gain: float = 1.0
    reference_gamma: float = 1.0
    num_layers: int = Field(24, ge=1)
    hidden_size: int = Field(64, ge=4)
    num_heads: int = Field(4, ge=1)
    n_tokens: int = Field(32, ge=2)
    batch: int = Field(8, ge=1)
    seed: int = 0
    plots_dir: str = "plots/oversmoothing/theory"
    metrics_dir: str = "metrics/oversmoothing"


@section("oversmoothing_fusion")
class FusionParams(Section):
    matrix_keys = ("tasks",)   # dvc.yaml foreach list
    init: str = "models/pretrain/bert"
    tasks: list[str] = Field(default_factory=lambda: ["cola", "sst2", "stsb"])
    fusions: list[str] = Field(default_factory=lambda: list(FUSION_NAMES))
    fusion_kwargs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    data_root: str = "data/tasks"
    hp: FinetuneHP                  # every task's recipe (required: params.yaml sets it per profile)
    task_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)   # FinetuneHP keys per task
    analysis_batches: int = Field(4, ge=1)
    baseline: str = "last"
    plots_dir: str = "plots/oversmoothing/fusion"
    metrics_dir: str = "metrics/oversmoothing"

    @field_validator("fusions")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from arkbench.models.registry import FUSIONS, _load_plugins

        _load_plugins()
        bad = [f for f in v if f not in FUSIONS]
        if bad:
            raise ValueError(f"unknown fusion(s) {bad}; known: {sorted(FUSIONS)}")
        return v

    @model_validator(mode="after")
    def _typed_overrides(self):
        for t, over in self.task_overrides.items():   # a typo here fails `arkbench params check`
            try:
                self.hp_for(t)
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"task_overrides.{t}.{loc} = {err.get('input')!r}: {err['msg']}") from None
        return self

    def hp_for(self, task: str) -> FinetuneHP:
        return FinetuneHP.model_validate({**self.hp.model_dump(exclude_unset=True),
                                          **self.task_overrides.get(task, {})})


# --------------------------------------------------------------------------- helpers
def _fit_length(encoder, max_length: int) -> int:
    """Truncate to what the model can embed (the smoke encoder has 64 positions)."""
    return min(max_length, encoder.config.max_position_embeddings)


def _model_key(name: str) -> str:
    from arkbench.models.loading import CHECKPOINTS

    return name if name in CHECKPOINTS else Path(name).name


def _model_available(name: str) -> dict | None:
    from arkbench.models.loading import CHECKPOINTS

    if name in CHECKPOINTS or Path(name).is_dir():
        return None
    return not_run(f"checkpoint folder {name} not found (run the stage that writes it)")


def _load_encoder(name: str):
    from arkbench.models import MaskedLM, from_pretrained
    from arkbench.tokenization import load_tokenizer

    model = from_pretrained(MaskedLM, name).eval()
    tok = load_tokenizer(name)
    return model.encoder, tok


def _specials(tok) -> list[int]:
    return [i for i in (tok.cls_token_id, tok.sep_token_id) if i is not None]


def _sources(p: _RealData) -> list[tuple[str, str, dict | None]]:
    """(label, source, status): the real-data run and the embedded one."""
    out = []
    if p.source == "local" and not Path(p.local_dir).is_dir():
        out.append(("real", p.source, not_run(f"local data folder {p.local_dir} not found")))
    else:
        out.append(("real", p.source, None))
    if p.fallback_source == "embedded" and p.source != "embedded":
        out.append(("embedded", "embedded", None))
    return out


def _model_runs(p: _RealData, results: dict[str, Any]):
    """Yield (run key, source, encoder, tokenizer) for every model x data source of `p`.

    A model or source that cannot run gets {"status": "not run: ..."} in `results`
    instead; the real-data run is keyed by the model, the embedded one `<model>_embedded`.
    """
    for name in p.models:
        key = _model_key(name)
        missing = _model_available(name)
        if missing:
            results[key] = missing
            continue
        encoder, tok = _load_encoder(name)
        for label, source, status in _sources(p):
            mkey = key if label == "real" else f"{key}_embedded"
            if status:
                results[mkey] = status
                continue
            yield mkey, source, encoder, tok


# --------------------------------------------------------------------------- similarity
def run_similarity(p: SimilarityParams, ctx=None, **_) -> dict:
    from .analysis import layer_curves, load_inputs, summarise_curve, tokenize

    plots, mdir = Path(p.plots_dir), Path(p.metrics_dir)
    metrics: dict[str, Any] = {}
    rows, stat_rows = [], []
    for mkey, source, encoder, tok in _model_runs(p, metrics):
        per_task: dict[str, Any] = {}
        for task in p.tasks:
            inputs = load_inputs(task, source, local_dir=p.local_dir, n=p.n_sentences, seed=p.data_seed)
            log_inputs(ctx, lambda: rows_inputs(f"{task}/{mkey}", inputs, source,
                                                p.local_dir if source == "local" else None))
            batches = tokenize(tok, inputs, max_length=_fit_length(encoder, p.max_length),
                               batch_size=p.batch_size)
            c = layer_curves(encoder, progress(batches, desc=f"similarity {mkey} {task}", unit="batch"),
                             _specials(tok), bounds=p.bounds)
            per_task[task] = c
            for l in range(c["num_layers"] + 1):
                rows.append({"model": mkey, "source": source, "task": task, "layer": l,
                             **{k: c[k][l] for k in ("cos_raw", "cos_raw_content", "cos_centred",
                                                     "cos_centred_content", "rel_dm")}})
                if l > 0 and p.bounds:
                    stat_rows.append({"model": mkey, "source": source, "task": task, "layer": l,
                                      **{k: c[k][l] for k in ("ratio", "bound_v", "bound_v_common",
                                                              "lambda_mean", "lambda_max", "sigma1_mean",
                                                              "sigma1_min", "sigma2_mean", "sigma2_min",
                                                              "gamma1_max", "gamma2_max")}})
        import numpy as np

        def avg(k):
            return np.mean([per_task[t][k] for t in p.tasks], axis=0).tolist()

        rec = summarise_curve(avg("cos_raw"))                  # headline: the paper's raw cosine
        rec.update(source=source, tasks=p.tasks, num_sequences_per_task=p.n_sentences,
                   per_layer_centred=avg("cos_centred")[1:], per_layer_content=avg("cos_raw_content")[1:],
                   per_layer_centred_content=avg("cos_centred_content")[1:], rel_dm=avg("rel_dm"),
                   slope_centred=summarise_curve(avg("cos_centred"))["slope"],
                   embedding_similarity=avg("cos_raw")[0],
                   per_task={t: {"cos_raw": c["cos_raw"], "cos_centred": c["cos_centred"],
                                 "cos_raw_content": c["cos_raw_content"], "rel_dm": c["rel_dm"],
                                 "slope": summarise_curve(c["cos_raw"])["slope"],
                                 "bound_holds_fraction": c["bound_holds_fraction"],
                                 "ratio": c["ratio"], "bound_v": c["bound_v"],
                                 "lambda_mean": c["lambda_mean"], "sigma1_mean": c["sigma1_mean"],
                                 "sigma2_mean": c["sigma2_mean"], "gamma1_max": c["gamma1_max"],
                                 "gamma2_max": c["gamma2_max"]} for t, c in per_task.items()})
        if p.bounds:
            rec["bound_holds_fraction"] = min(c["bound_holds_fraction"] for c in per_task.values()
                                              if c["bound_holds_fraction"] is not None)
        metrics[mkey] = rec
        _plot_similarity(plots / f"similarity_{mkey}.png", mkey, per_task)
    write_csv(plots / "similarity.csv", rows)
    write_csv(plots / "layer_stats.csv", stat_rows)
    write_json(mdir / "similarity.json", metrics)
    return metrics


def _plot_similarity(path: Path, title: str, per_task: dict[str, dict]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for t, c in per_task.items():
        xs = list(range(len(c["cos_raw"])))
        line, = axes[0].plot(xs, c["cos_raw"], marker="o", label=f"{t} raw")
        axes[0].plot(xs, c["cos_centred"], ls="--", color=line.get_color(), label=f"{t} centred")
        axes[1].plot(xs, c["rel_dm"], marker="o", label=t)
    axes[0].set(xlabel="layer (0 = embeddings)", ylabel="token cosine similarity", title=f"{title}: Fig. 1a")
    axes[1].set(xlabel="layer", ylabel="d_M(H) / ||H||_F", title="distance to rank-one subspace")
    for a in axes:
        a.legend(fontsize=7)
        a.grid(alpha=.3)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- probe
def run_probe(p: ProbeParams, ctx=None, **_) -> dict:
    from arkbench.data import get_task

    from .analysis import layer_curves, load_inputs, tokenize
    from .probe import layer_features, probe_errors, summarise_probe

    spec = get_task(p.task)
    regression = spec.problem_type == "regression"
    plots, mdir = Path(p.plots_dir), Path(p.metrics_dir)
    per_model: dict[str, Any] = {}
    rows = []
    for mkey, source, encoder, tok in _model_runs(p, per_model):
        from arkbench.data import load_task

        dd = load_task(p.task, source, local_dir=p.local_dir, seed=p.data_seed)
        from arkbench.tracking.datasets import dataset_inputs

        log_inputs(ctx, lambda: dataset_inputs(p.task, dd, source, p.local_dir if source == "local" else None))

        def rows_of(split, n):
            import numpy as np

            ds = dd[split]
            if len(ds) > n:   # a seeded random subset (files are often sorted by source)
                ds = ds.select(sorted(np.random.default_rng(p.data_seed).permutation(len(ds))[:n].tolist()))
            return [tuple(ds[f][i] for f in spec.text_fields) for i in range(len(ds))], list(ds["label"])

        tr_x, tr_y = rows_of(spec.train_split, p.n_train)
        te_x, te_y = rows_of(spec.eval_splits[0], p.n_test)
        length = _fit_length(encoder, p.max_length)
        tr_b = tokenize(tok, tr_x, length, p.batch_size)
        te_b = tokenize(tok, te_x, length, p.batch_size)
        tr_f = layer_features(encoder, progress(tr_b, desc=f"probe {mkey} train", unit="batch"),
                              _specials(tok), p.pool)
        te_f = layer_features(encoder, progress(te_b, desc=f"probe {mkey} test", unit="batch"),
                              _specials(tok), p.pool)
        errs = probe_errors(tr_f, tr_y, te_f, te_y,
                            regression=regression, C=p.C, seed=p.data_seed)
        sim = layer_curves(encoder, te_b, _specials(tok), bounds=False)
        rec = summarise_probe(errs, tr_y, te_y, regression)
        rec.update(similarity=sim["cos_raw"][1:], similarity_centred=sim["cos_centred"][1:],
                   source=source, task=p.task, n_train=len(tr_x), n_test=len(te_x), pool=p.pool,
                   error_kind="1 - pearson" if regression else "1 - accuracy")
        per_model[mkey] = rec
        for l in range(len(errs)):
            rows.append({"model": mkey, "source": source, "task": p.task, "layer": l, "error": errs[l],
                         "cos_raw": sim["cos_raw"][l], "cos_centred": sim["cos_centred"][l]})
        _plot_probe(plots / f"probe_{mkey}.png", f"{mkey} / {p.task} ({source})", errs, sim["cos_raw"])
    write_csv(plots / "probe.csv", rows)
    # top level: the first model's real-data result, else its embedded one (claims read these keys)
    first = _model_key(p.models[0]) if p.models else None
    head = per_model.get(first, {})
    if "best_layer" not in head:
        head = per_model.get(f"{first}_embedded", head)
    metrics = {**{k: v for k, v in head.items()}, "model": first, "models": per_model}
    write_json(mdir / "layerwise.json", metrics)
    return metrics


def _plot_probe(path: Path, title: str, errs: list[float], sim: list[float]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = list(range(len(errs)))
    ax.plot(xs, errs, marker="o", color="C3", label="probe error")
    ax.set(xlabel="layer (0 = embeddings)", ylabel="probe error", title=f"{title}: Fig. 1b")
    ax2 = ax.twinx()
    ax2.plot(xs, sim, marker="s", color="C0", label="token cosine")
    ax2.set_ylabel("token cosine similarity")
    fig.legend(loc="upper center", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- theory
def run_theory(p: TheoryParams, ctx=None, **_) -> dict:
    from .theory import COLLAPSE_THRESHOLD, sweep

    rows = sweep(p.gains, p.gammas, p.norm_positions, num_layers=p.num_layers, d=p.hidden_size,
                 heads=p.num_heads, n_tokens=p.n_tokens, batch=p.batch, seed=p.seed)
    plots, mdir = Path(p.plots_dir), Path(p.metrics_dir)
    curve_rows = []
    for r in rows:
        for l in range(p.num_layers + 1):
            curve_rows.append({"norm_position": r["norm_position"], "gain": r["gain"], "gamma": r["gamma"],
                               "layer": l, "cos": r["cos"][l], "rel_dm": r["rel_dm"][l],
                               "ratio": r["ratio"][l], "bound_v": r["bound_v"][l],
                               "bound_v_common": r["bound_v_common"][l], "lambda": r["lambda"][l]})
    write_csv(plots / "theory.csv", curve_rows)
    grid = [{k: r[k] for k in ("norm_position", "gain", "gamma", "cos_last", "rel_dm_last", "collapse_layer",
                               "bound_holds_fraction", "max_ratio_over_bound")} for r in rows]
    metrics: dict[str, Any] = {"grid": grid, "collapse_threshold": COLLAPSE_THRESHOLD,
                               "num_layers": p.num_layers,
                               "bound_holds_fraction": min(r["bound_holds_fraction"] for r in rows),
                               "max_ratio_over_bound": max(r["max_ratio_over_bound"] for r in rows)}
    for norm in p.norm_positions:
        ref = [r for r in rows if r["norm_position"] == norm and r["gain"] == p.reference_gain
               and r["gamma"] == p.reference_gamma]
        if ref:
            r = ref[0]
            metrics[f"{norm}_ln"] = {"rel_dm_last": r["rel_dm_last"], "cos_last": r["cos_last"],
                                     "collapse_layer": r["collapse_layer"], "gain": r["gain"], "gamma": r["gamma"],
                                     "collapsed": r["rel_dm_last"] < COLLAPSE_THRESHOLD}
        sub = [r for r in rows if r["norm_position"] == norm]
        metrics[f"{norm}_ln_collapsed_fraction"] = sum(r["rel_dm_last"] < COLLAPSE_THRESHOLD for r in sub) / len(sub)
    _plot_theory(plots / "theory.png", rows, p)
    write_json(mdir / "theory.json", metrics)
    return metrics


def _plot_theory(path: Path, rows: list[dict], p: TheoryParams) -> None:
    import numpy as np

    plt = pyplot()
    norms = list(dict.fromkeys(r["norm_position"] for r in rows))
    fig, axes = plt.subplots(1, len(norms) + 1, figsize=(5 * (len(norms) + 1), 3.8), squeeze=False)
    axes = axes[0]
    for ax, norm in zip(axes, norms):
        for r in rows:
            if r["norm_position"] != norm or r["gamma"] != p.reference_gamma:
                continue
            xs = np.arange(len(r["rel_dm"]))
            line, = ax.semilogy(xs, np.maximum(r["rel_dm"], 1e-12), marker=".", label=f"gain {r['gain']}")
            # bound on d_M(H_l)/d_M(H_0), scaled to the relative distance at the input
            v = np.array([1.0] + [x for x in r["bound_v"][1:]], dtype=float)
            ax.semilogy(xs, np.minimum(np.cumprod(v) * r["rel_dm"][0], 1e6), ls=":", color=line.get_color())
        ax.set(xlabel="layer", ylabel="d_M(H)/||H||_F (dotted: bound)", title=f"{norm}-LN, gamma {p.reference_gamma}",
               ylim=(1e-8, 1e3))
        ax.legend(fontsize=7)
        ax.grid(alpha=.3)
    ax = axes[-1]
    for norm in norms:
        for gain in p.gains:
            ys = [r["rel_dm_last"] for r in rows if r["norm_position"] == norm and r["gain"] == gain]
            ax.semilogy(p.gammas[:len(ys)], np.maximum(ys, 1e-12), marker="o", ls="-" if norm == "post" else "--",
                        label=f"{norm}, gain {gain}")
    ax.axhline(0.05, color="k", lw=.5)
    ax.set(xlabel="LayerNorm gamma", ylabel=f"d_M/||H||_F at layer {p.num_layers}", title="collapse vs gamma")
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- fusion grid
def run_fusion(p: FusionParams, ctx=None, task: str | None = None, *, data=None, run_task=None) -> dict:
    """One task of the grid: every fusion in `p.fusions` over `p.seeds` via run_task.

    `data` / `run_task` let tests inject a DatasetDict and a fine-tuning function.
    """
    from arkbench.tokenization import load_tokenizer

    from .grid import aggregate_task, fusion_probe

    if task is None or task not in p.tasks:
        raise ValueError(f"--task {task!r} is not in oversmoothing_fusion.tasks {p.tasks}")
    if run_task is None:
        from arkbench.training.finetune import run_task
    if not Path(p.init).is_dir():
        from arkbench.models.loading import CHECKPOINTS

        if p.init not in CHECKPOINTS:
            raise DataMissingError(f"{p.init}: pre-trained model not found (run the pretrain stage first)")
    if data is None:
        log_inputs(ctx, lambda: prepared_inputs(task, p.data_root))
    tok = load_tokenizer(p.init)
    from arkbench.data import prepared_source

    results: dict[str, Any] = {"task": task, "init": p.init, "seeds": p.seeds, "model": _model_key(p.init),
                               "data_source": prepared_source(task, p.data_root) if data is None else "given"}
    for fusion in p.fusions:
        res = run_task(task, p.init, p.hp_for(task), p.seeds, fusion=fusion,
                       fusion_kwargs=p.fusion_kwargs.get(fusion) or None, data_root=p.data_root, ctx=ctx,
                       on_trained=fusion_probe(_specials(tok), p.analysis_batches), data=data)
        results[fusion] = aggregate_task(res)
    out = Path(p.metrics_dir) / "fusion" / f"{task}.json"
    write_json(out, results)
    _fusion_plots(Path(p.plots_dir), task, results, p.fusions)
    return results


def _fusion_plots(plots: Path, task: str, results: dict, fusions: list[str]) -> None:
    rows = []
    for f in fusions:
        r = results[f]
        for l, (a, b) in enumerate(zip(r.get("layer_sim_raw", []), r.get("layer_sim_centred", []))):
            rows.append({"task": task, "fusion": f, "layer": l, "cos_raw": a, "cos_centred": b,
                         "gate_weight": (r.get("gate_weights") or [None] * 999)[l - 1] if l > 0 else None})
    write_csv(plots / f"fusion_{task}.csv", rows)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [f for f in fusions]
    axes[0].bar(names, [results[f]["sim_fused_centred"]["mean"] for f in names],
                yerr=[results[f]["sim_fused_centred"]["std"] for f in names], color="C0", alpha=.7)
    if "last" in results:
        axes[0].axhline(results["last"]["sim_last_centred"]["mean"], color="k", ls="--", lw=1, label="BERT last layer")
        axes[0].legend(fontsize=7)
    axes[0].set(ylabel="centred token cosine of head input", title=f"{task}: fused vs last layer")
    if "gate" in results and results["gate"].get("gate_weights"):
        w = results["gate"]["gate_weights"]
        axes[1].bar(range(1, len(w) + 1), w, color="C2")
        axes[1].set(xlabel="layer", ylabel="mean gate weight", title="gate weights (Fig. 7)")
    fig.tight_layout()
    save_figure(fig, plots / f"fusion_{task}.png")


def run_fusion_summary(p: FusionParams, ctx=None, **_) -> dict:
    from .grid import aggregate_tasks

    per_task, missing = {}, []
    for t in p.tasks:
        f = Path(p.metrics_dir) / "fusion" / f"{t}.json"
        if f.exists():
            per_task[t] = read_json(f)
        else:
            missing.append(t)
    if not per_task:
        metrics = not_run(f"no per-task fusion results under {p.metrics_dir}/fusion")
    else:
        metrics = aggregate_tasks(per_task, p.fusions, baseline=p.baseline)
        metrics["missing_tasks"] = missing
        # provenance for the report: the model fine-tuned and where the task data came from
        metrics["model"] = _model_key(p.init)
        sources = sorted({str(r.get("data_source", "unknown")) for r in per_task.values()})
        metrics["data_source"] = "+".join(sources)
        summary_dir = Path(p.plots_dir) / "summary"   # the summary stage's own DVC out
        write_csv(summary_dir / "fusion_summary.csv",
                   [{"fusion": f, "mean": metrics[f]["mean"], "std": metrics[f]["std"],
                     "similarity_centred": metrics[f]["similarity"], "similarity_raw": metrics[f]["similarity_raw"]}
                    for f in p.fusions])
        if "gate" in metrics and metrics["gate"].get("gate_weights"):
            write_csv(summary_dir / "gate_weights.csv",
                       [{"layer": l + 1, "weight": w} for l, w in enumerate(metrics["gate"]["gate_weights"])])
    write_json(Path(p.metrics_dir) / "fusion.json", metrics)
    return metrics
