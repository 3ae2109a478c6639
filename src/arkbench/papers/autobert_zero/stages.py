"""Params sections and `run` functions of the AutoBERT-Zero DVC stages.

    autobert_supernet   proxy data (tokenizer trained on the proxy corpus, packed MLM blocks,
                        a GLUE proxy task) + the BIWS super-net, pre-trained once
    autobert_search     OP / regularized / random search x seeds (BIWS-initialised candidates),
                        best-so-far curves, best architecture, one MLflow child run per candidate
    autobert_ranking    Kendall tau of proxy vs longer from-scratch scores, with and without BIWS
    autobert_final      pre-train the searched backbone, the AutoBERT-Zero-base preset and BERT at
                        the searched model's parameter count; fine-tune on GLUE tasks; compare

Files flow through models/autobert_zero/ (proxy data, super-net, best architecture);
metrics go to metrics/autobert_zero/*.json, curves and tables to plots/autobert_zero/.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from arkbench.config import Section, section
from arkbench.utils import atomic_write_text

from . import graph as G
from . import space as S

log = logging.getLogger(__name__)

# every autobert_* section's runs go to the paper's experiment (the sections do not start with
# "autobert_zero", the EXPERIMENTS key)
MLFLOW_EXPERIMENT = "arkbench/autobert_zero"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class _Dirs(Section):
    model_dir: str = "models/autobert_zero"
    metrics_dir: str = "metrics/autobert_zero"
    plots_dir: str = "plots/autobert_zero"


# =========================================================================== supernet
@section("autobert_supernet")
class SupernetParams(_Dirs):
    corpus_source: Literal["embedded", "local"] = "embedded"
    local_dir: str = "../shared/data"
    glue_task: Literal["mrpc", "rte"] = "mrpc"
    glue_train_rows: int = Field(200, ge=8)
    glue_dev_rows: int = Field(100, ge=8)
    vocab_size: int = Field(1000, ge=100)
    seq_len: int = Field(32, ge=8)
    proxy: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)
    supernet_steps: int = Field(40, ge=0)
    seed: int = 0

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v):
        from .proxy import ProxyConfig

        try:
            ProxyConfig(**v)
        except TypeError as e:
            raise ValueError(f"unknown proxy key: {e}") from None
        return v

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        allowed = {"ops", "max_nodes", "kernels", "p_conv", "require_mixing"}
        bad = set(v) - allowed
        if bad:
            raise ValueError(f"unknown space keys {sorted(bad)}; allowed {sorted(allowed)}")
        unknown = [o for o in v.get("ops", []) if o not in G.PRIMITIVES]
        if unknown:
            raise ValueError(f"space.ops: unknown primitives {unknown}; known {list(G.PRIMITIVES)}")
        return v

    def space_full(self) -> dict[str, Any]:
        return {"ops": list(G.UNARY + G.BINARY), "max_nodes": 12, "kernels": list(S.KERNELS), "p_conv": 0.5,
                "require_mixing": False, **self.space}


def _corpus(p: SupernetParams, seed: int) -> tuple[list[str], list[str], str]:
    if p.corpus_source == "local":
        root = Path(p.local_dir) / "wikitext-2"
        files = [root / "test.txt", root / "valid.txt"]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise FileNotFoundError(f"autobert_supernet.corpus_source = local: missing {missing}")
        return (files[0].read_text().splitlines(), files[1].read_text().splitlines(),
                "WikiText-2 test.txt (train) / valid.txt (validation)")
    from arkbench.data import load_task

    ds = load_task("corpus", "embedded", seed=seed)
    return list(ds["train"]["text"]), list(ds["validation"]["text"]), "embedded corpus"


def _glue_rows(task: str, source: str, local_dir: str, n_train: int | None, n_dev: int | None, seed: int):
    from arkbench.data import load_task

    ds = load_task(task, source, local_dir=local_dir if source == "local" else None)
    rng = np.random.default_rng(seed)

    def take(split, n):
        rows = list(ds[split])
        if n is not None and len(rows) > n:
            idx = sorted(rng.choice(len(rows), n, replace=False).tolist())
            rows = [rows[i] for i in idx]
        return rows
    return take("train", n_train), take("validation", n_dev)


def prepare_proxy(p: SupernetParams, seed: int):
    """(tokenizer, ProxyData, description) from the params; the tokenizer is trained on the corpus."""
    import torch  # noqa: F401

    from arkbench.tokenization import train_wordpiece

    from .proxy import build_proxy_data

    train, val, what = _corpus(p, seed)
    tok = train_wordpiece(train, vocab_size=p.vocab_size)
    glue_tr, glue_dev = _glue_rows(p.glue_task, p.corpus_source, p.local_dir, p.glue_train_rows,
                                   p.glue_dev_rows, seed)
    data = build_proxy_data(tok, train, val, p.seq_len, glue=(glue_tr, glue_dev, ("sentence1", "sentence2")))
    return tok, data, what


def run_supernet(p: SupernetParams, ctx) -> dict[str, Any]:
    import torch

    from .biws import train_supernet
    from .proxy import ProxyConfig

    seed = p.seed + ctx.seed
    cfg = ProxyConfig(**p.proxy)
    t0 = time.perf_counter()
    tok, data, what = prepare_proxy(p, seed)
    prep_s = time.perf_counter() - t0
    out = Path(p.model_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out / "tokenizer"))
    space = p.space_full()
    state, info = train_supernet(data, cfg, p.supernet_steps, seed, space["ops"], space["max_nodes"],
                                 space["kernels"], space["p_conv"], log=ctx.log_metrics,
                                 require_mixing=space["require_mixing"])
    tmp = out / "proxy.pt.tmp"
    torch.save({"data": data.__dict__, "supernet": state, "proxy": cfg.__dict__, "space": space,
                "seed": seed, "corpus": what, "supernet_steps": int(info["steps"])}, tmp)
    tmp.replace(out / "proxy.pt")
    # the DSL facts the claims registry reads (no training involved)
    from arkbench.models import EncoderConfig

    from .modules import GraphAttention

    dcfg = EncoderConfig(hidden_size=768, num_heads=12, num_layers=1)
    n = lambda g: sum(x.numel() for x in GraphAttention(dcfg, graph=g).parameters())  # noqa: E731
    fig7 = S.figure7_graphs()
    preset = S.autobert_zero_base()
    S.check_arch(preset, num_layers=12)
    dsl = {"figure7_expressible": all(S.numerically_valid(g)[0] for g in fig7.values())
           and S.numerically_valid(S.vanilla_graph())[0],
           "params_shared_v": sum(n(fig7[i]) for i in (2, 4, 6, 8)),
           "params_unshared_v": 4 * n(S.vanilla_graph()),
           "shared_v_saving_per_layer": n(S.vanilla_graph()) - n(fig7[6]),
           "note": "attention-mixer parameters of Figure-7 layers 2-8 (no W_V) vs four vanilla layers, base width 768"}
    _write_json(Path(p.metrics_dir) / "dsl.json", dsl)
    metrics = {"supernet": info, "prep_s": prep_s, "corpus": what, "train_blocks": int(data.train.shape[0]),
               "val_blocks": int(data.val.shape[0]), "vocab_size": data.vocab_size,
               "glue_task": p.glue_task, "glue_train_rows": int(len(data.glue_train["labels"])),
               "glue_dev_rows": int(len(data.glue_dev["labels"]))}
    _write_json(Path(p.metrics_dir) / "supernet.json", metrics)
    return metrics


def load_proxy(model_dir: str):
    import torch

    from .proxy import ProxyConfig, ProxyData

    blob = torch.load(Path(model_dir) / "proxy.pt", weights_only=False)
    return ProxyData(**blob["data"]), ProxyConfig(**blob["proxy"]), blob["supernet"], blob["space"], blob


# =========================================================================== search
@section("autobert_search")
class SearchParams(_Dirs):
    plots_dir: str = "plots/autobert_zero/search"   # defaults = params.yaml (smoke)
    strategies: list[Literal["op", "regularized", "random"]] = Field(
        default_factory=lambda: ["op", "regularized", "random"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budget: int = Field(10, ge=2)
    population: int = Field(4, ge=2)
    sample_size: int = Field(2, ge=1)
    parallel: int = Field(2, ge=1)
    ucb_c: float = Field(0.5, ge=0)
    ucb_temperature: float = Field(0.1, gt=0)
    max_tries: int = Field(50, ge=1)
    biws: bool = True
    executor: dict[str, Any] = Field(default_factory=lambda: {"kind": "inprocess"})
    checkpoint_dir: str = "checkpoints/autobert_zero/search"
    mlflow_children: bool = True

    @field_validator("executor")
    @classmethod
    def _executor(cls, v):
        from .executors import EXECUTORS

        if v.get("kind", "inprocess") not in EXECUTORS:
            raise ValueError(f"executor.kind={v.get('kind')!r}: allowed {EXECUTORS}")
        return v


def _search_config(p: SearchParams, strategy: str, seed: int, space: dict, num_layers: int):
    from .search import SearchConfig

    return SearchConfig(strategy=strategy, budget=p.budget, population=p.population, sample_size=p.sample_size,
                        parallel=p.parallel, num_layers=num_layers, max_nodes=space["max_nodes"],
                        ops=list(space["ops"]), kernels=list(space["kernels"]), p_conv=space["p_conv"],
                        ucb_c=p.ucb_c, ucb_temperature=p.ucb_temperature, max_tries=p.max_tries, seed=seed,
                        require_mixing=bool(space.get("require_mixing", False)))


def summarise_runs(runs: dict[str, dict[int, dict]], budget: int) -> dict[str, Any]:
    """Per strategy: final best (mean, std over seeds), mean curve, candidates to reach the target."""
    from .search import best_so_far, candidates_to_reach

    out: dict[str, Any] = {}
    finals = {s: [best_so_far(st["history"])[-1] for st in by_seed.values()] for s, by_seed in runs.items()}
    target = float(np.mean(finals["random"])) if "random" in finals else None
    for s, by_seed in runs.items():
        curves = np.array([best_so_far(st["history"]) for st in by_seed.values()])
        reach = [candidates_to_reach(st["history"], target) if target is not None else None
                 for st in by_seed.values()]
        wall = sum(st["wall_s"] for st in by_seed.values())
        out[s] = {"best_score": float(np.mean(finals[s])), "best_score_std": float(np.std(finals[s])),
                  "curve_mean": curves.mean(0).tolist(), "curve_std": curves.std(0).tolist(),
                  "candidates_to_target": [r if r is not None else budget + 1 for r in reach],
                  "candidates_to_target_mean": float(np.mean([r if r is not None else budget + 1 for r in reach])),
                  "reached_target": sum(r is not None for r in reach),
                  "invalid_children": int(sum(st["rejected"]["invalid"] for st in by_seed.values())),
                  "duplicate_children": int(sum(st["rejected"]["duplicate"] for st in by_seed.values())),
                  "diverged": int(sum(h["diverged"] for st in by_seed.values() for h in st["history"])),
                  "candidates": int(sum(len(st["history"]) for st in by_seed.values())),
                  "candidates_per_hour": float(sum(len(st["history"]) for st in by_seed.values()) / max(wall, 1e-9)
                                               * 3600),
                  "wall_s": wall}
    out["target"] = target
    return out


def _plot_curves(summary: dict, path: Path, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(1, budget + 1)
    for s in ("op", "regularized", "random"):
        if s not in summary:
            continue
        m, sd = np.array(summary[s]["curve_mean"]), np.array(summary[s]["curve_std"])
        ax.plot(x, m, label={"op": "OP (UCB)", "regularized": "uniform mutation", "random": "random"}[s])
        ax.fill_between(x, m - sd, m + sd, alpha=0.2)
    if summary.get("target") is not None:
        ax.axhline(summary["target"], ls=":", c="k", lw=0.8)
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("best proxy score so far")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log_candidate_runs(ctx, entries: list[dict]) -> int:
    """One MLflow child run per candidate under this stage's run (found by its stage tag)."""
    from arkbench.tracking import experiment_for, tracking_enabled, tracking_uri

    if not tracking_enabled() or ctx.tracker is None or not entries:
        return 0
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(tracking_uri=tracking_uri())
        exp = None
        for _ in range(100):                                   # the worker opens the run asynchronously
            exp = client.get_experiment_by_name(experiment_for(ctx.section, ctx.stage))
            runs = client.search_runs([exp.experiment_id], filter_string=(
                f"tags.`arkbench.stage` = '{ctx.stage}' and attributes.status = 'RUNNING'"),
                order_by=["attributes.start_time DESC"], max_results=1) if exp else []
            if runs:
                break
            time.sleep(0.2)
        if not runs:
            return 0
        parent = runs[0].info.run_id
        ts = int(time.time() * 1000)
        for e in entries:
            name = f"{e['strategy']}-s{e['seed']}-c{e['i']:03d}"
            run = client.create_run(exp.experiment_id, run_name=name, tags={
                "mlflow.parentRunId": parent, "arkbench.candidate": e["hash"], "arkbench.strategy": e["strategy"],
                "arkbench.candidate_of": ctx.stage})      # not arkbench.stage: that tag names stage runs
            params = [Param("strategy", e["strategy"]), Param("seed", str(e["seed"])), Param("index", str(e["i"])),
                      Param("mutation", str(e["mutation"])), Param("parent", str(e["parent"])),
                      Param("arch", json.dumps([S.slot_key(s) for s in e["arch"]["slots"]])[:6000])]
            metrics = [Metric(k, float(e[k]), ts, 0) for k in ("score", "params", "flops", "eval_s")
                       if isinstance(e.get(k), (int, float))]
            if e.get("mlm_loss") is not None:
                metrics.append(Metric("mlm_loss", float(e["mlm_loss"]), ts, 0))
            if e.get("glue_acc") is not None:
                metrics.append(Metric("glue_acc", float(e["glue_acc"]), ts, 0))
            client.log_batch(run.info.run_id, metrics=metrics, params=params)
            client.set_terminated(run.info.run_id, "FINISHED")
        return len(entries)
    except Exception as exc:  # noqa: BLE001 - tracking never fails a stage
        log.warning("MLflow child runs not logged: %s: %s", type(exc).__name__, exc)
        return 0


def run_search(p: SearchParams, ctx) -> dict[str, Any]:
    from arkbench.progress import progress

    from .executors import build_executor
    from .proxy import candidate_task
    from .search import run_search as search

    data, cfg, supernet, space, _ = load_proxy(p.model_dir)
    context = {"data": data, "cfg": cfg, "supernet": supernet if p.biws else None}
    proxy_digest = hashlib.sha256((Path(p.model_dir) / "proxy.pt").read_bytes()).hexdigest()
    ex = build_executor(p.executor)
    executor_kind = ex.kind
    runs: dict[str, dict[int, dict]] = {}
    children: list[dict] = []
    t0 = time.perf_counter()
    try:
        for seed in p.seeds:                # seed-major: a stopped run still compares strategies
            for strategy in p.strategies:
                scfg = _search_config(p, strategy, seed, space, cfg.num_layers)
                evaluate = ex.bind(candidate_task, {**context, "seed": seed})
                # keyed by settings + proxy data: changed params start afresh instead of resuming
                key = hashlib.sha256((json.dumps(asdict(scfg), sort_keys=True) + proxy_digest
                                      + str(p.biws)).encode()).hexdigest()[:12]
                path = Path(p.checkpoint_dir) / f"{strategy}-{seed}-{key}.json"
                with progress(total=p.budget, desc=f"search {strategy} seed {seed}", unit="cand") as bar:
                    def tick(st, entry, bar=bar):
                        bar.update(len(st["history"]) - bar.n)
                        bar.set_postfix(best=f"{max(h['score'] for h in st['history']):.3f}")
                    state = search(scfg, evaluate, path, on_candidate=tick)
                runs.setdefault(strategy, {})[seed] = state
                children += [{**h, "strategy": strategy, "seed": seed} for h in state["history"]]
                ctx.log_metrics({f"{strategy}.best": max(h["score"] for h in state["history"])}, seed)
    finally:
        ex.shutdown()
    total_s = time.perf_counter() - t0
    summary = summarise_runs(runs, p.budget)
    plots = Path(p.plots_dir)
    _plot_curves(summary, plots / "best_so_far.png", p.budget)
    _write_json(plots / "histories.json", {s: {str(seed): st["history"] for seed, st in by.items()}
                                           for s, by in runs.items()})
    best = max(children, key=lambda h: (h["score"], -h["i"]))
    best_arch = {"arch": best["arch"], "score": best["score"], "strategy": best["strategy"], "seed": best["seed"],
                 "index": best["i"], "hash": best["hash"], "slots": [S.slot_key(s) for s in best["arch"]["slots"]]}
    _write_json(Path(p.model_dir) / "best_arch.json", best_arch)
    n_children = log_candidate_runs(ctx, children) if p.mlflow_children else 0
    n_cand = sum(len(st["history"]) for by in runs.values() for st in by.values())
    metrics = {s: {k: v for k, v in summary[s].items() if k not in ("curve_mean", "curve_std")}
               for s in p.strategies}
    metrics.update({"target": summary["target"], "candidates": n_cand, "wall_s": total_s,
                    "candidates_per_hour": n_cand / max(total_s, 1e-9) * 3600,
                    # CPU hours of this search (all cores the executor used) beside the paper's 24K V100 hours
                    "gpu_hours": 0.0,
                    "cpu_core_hours": total_s * (_cores(p.executor) if executor_kind == "ray" else 1) / 3600,
                    "paper_gpu_hours": 24000, "paper_candidates": 760,
                    "best": {k: best_arch[k] for k in ("score", "strategy", "seed", "index", "slots")},
                    "biws": p.biws, "mlflow_child_runs": n_children, "executor": executor_kind})
    _write_json(Path(p.metrics_dir) / "search.json", metrics)
    return metrics


def _cores(executor: dict) -> int:
    if executor.get("kind", "inprocess") == "inprocess":
        return 1
    import os

    return int(executor.get("num_cpus") or os.cpu_count() or 1)


# =========================================================================== ranking
@section("autobert_ranking")
class RankingParams(_Dirs):
    plots_dir: str = "plots/autobert_zero/ranking"
    candidates: int = Field(4, ge=3)
    proxy_steps: int = Field(8, ge=1)
    reference_steps: int = Field(24, ge=1)
    seed: int = 0


def run_ranking(p: RankingParams, ctx) -> dict[str, Any]:
    from .biws import ranking_study

    data, cfg, supernet, space, blob = load_proxy(p.model_dir)
    rng = np.random.default_rng(p.seed + 1000)
    archs, seen = [], set()
    while len(archs) < p.candidates:
        mix = bool(space.get("require_mixing", False))
        a = S.random_arch(rng, cfg.num_layers, space["ops"], space["max_nodes"], space["kernels"], space["p_conv"],
                          require_mixing=mix)
        if S.valid_arch(a, space["max_nodes"], space["kernels"], mix)[0] and S.arch_hash(a) not in seen:
            seen.add(S.arch_hash(a))
            archs.append(a)
    out = ranking_study(data, cfg, supernet, archs, p.seed, p.proxy_steps, p.reference_steps, log=ctx.log_metrics)
    _write_json(Path(p.plots_dir) / "ranking_rows.json", out["rows"])
    # from proxy.pt (a dep), not supernet.json: that one holds wall-clock seconds, so reading it would
    # rerun this stage whenever the supernet stage reran with the same weights
    sup_steps = int(blob["supernet_steps"])
    metrics = {"n": out["n"], "proxy_steps": p.proxy_steps, "reference_steps": p.reference_steps,
               "tau_biws": out["tau"]["proxy_biws"]["tau"], "tau_scratch": out["tau"]["proxy_scratch"]["tau"],
               "p_biws": out["tau"]["proxy_biws"]["p"], "p_scratch": out["tau"]["proxy_scratch"]["p"],
               "supernet_steps": sup_steps,
               "supernet_steps_per_candidate": sup_steps / max(out["n"], 1),
               "proxy_biws_s_mean": float(np.mean([r["proxy_biws_s"] for r in out["rows"]])),
               "proxy_scratch_s_mean": float(np.mean([r["proxy_scratch_s"] for r in out["rows"]]))}
    _write_json(Path(p.metrics_dir) / "ranking.json", metrics)
    return metrics


# =========================================================================== final comparison
@section("autobert_final")
class FinalParams(_Dirs):
    plots_dir: str = "plots/autobert_zero/final"
    model: dict[str, Any] = Field(default_factory=lambda: dict(
        hidden_size=32, num_heads=2, intermediate_size=64, max_position_embeddings=64))
    pretrain_steps: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    tasks: list[Literal["mrpc", "rte"]] = Field(default_factory=lambda: ["mrpc"], min_length=1)
    task_source: Literal["embedded", "local"] = "embedded"
    local_dir: str = "../shared/data"
    max_train_rows: int | None = Field(200, ge=8)
    max_dev_rows: int | None = Field(100, ge=8)
    max_length: int = Field(64, ge=8)
    finetune_steps: int = Field(10, ge=1)
    finetune_lr: float = Field(1e-3, gt=0)
    finetune_batch_size: int = Field(16, ge=1)
    finetune_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    preset_layers: int = Field(12, ge=2)        # AutoBERT-Zero-base has 12 (6 conv + 6 attention)


def bert_at_params(target: int, base: dict, num_layers: int) -> tuple[dict, int]:
    """BERT with `num_layers` vanilla layers whose FFN width makes the layer parameters closest to target."""
    from arkbench.models import EncoderConfig, MaskedLM

    d = base["hidden_size"]
    attn = 4 * (d * d + d) + 4 * d                          # QKVO + two LayerNorms
    per_layer = target / num_layers
    inter = max(1, round((per_layer - attn - d) / (2 * d + 1)))   # FFN: 2*d*i + i + d
    cfg = {**base, "intermediate_size": inter}
    n = sum(x.numel() for x in MaskedLM(EncoderConfig(**cfg, num_layers=num_layers)).encoder.layers.parameters())
    return cfg, n


def run_final(p: FinalParams, ctx) -> dict[str, Any]:
    import torch

    from arkbench.tokenization import load_tokenizer

    from .proxy import (ProxyConfig, ProxyData, build_model, encode_pairs, glue_accuracy, mlm_val_loss,
                        train_mlm)

    data, pcfg, _, _, _ = load_proxy(p.model_dir)
    tok = load_tokenizer(str(Path(p.model_dir) / "tokenizer"))
    best = json.loads((Path(p.model_dir) / "best_arch.json").read_text())
    searched = best["arch"]
    preset = S.autobert_zero_base()
    if p.preset_layers != 12:
        preset = {"slots": preset["slots"][:p.preset_layers]}
    base_model = dict(p.model)
    cfg = ProxyConfig(model=base_model, num_layers=len(searched["slots"]), steps=p.pretrain_steps,
                      batch_size=p.batch_size, lr=p.lr, warmup=max(1, p.pretrain_steps // 10), eval_batches=8,
                      conv_type=pcfg.conv_type, sqrt_reading=pcfg.sqrt_reading, glue_lr=p.finetune_lr,
                      glue_steps=p.finetune_steps)
    # BERT with the searched model's depth and parameter count
    from arkbench.models import MaskedLM

    enc = S.encoder_config(searched, cfg.base(data.vocab_size), cfg.conv_type, cfg.sqrt_reading)
    n_searched = sum(x.numel() for x in MaskedLM(enc).encoder.layers.parameters())
    bert_model, n_bert = bert_at_params(n_searched, cfg.base(data.vocab_size), len(searched["slots"]))
    variants = {"searched": (searched, base_model), "preset": (preset, base_model),
                "bert_equal_params": (S.bert_arch(len(searched["slots"])),
                                      {**base_model, "intermediate_size": bert_model["intermediate_size"]})}
    tasks = {}
    for t in p.tasks:
        tr, dev = _glue_rows(t, p.task_source, p.local_dir, p.max_train_rows, p.max_dev_rows, 0)
        tasks[t] = (encode_pairs(tok, tr, ("sentence1", "sentence2"), p.max_length),
                    encode_pairs(tok, dev, ("sentence1", "sentence2"), p.max_length))
    results: dict[str, Any] = {}
    for name, (arch, model) in variants.items():
        vcfg = ProxyConfig(**{**cfg.__dict__, "model": model, "num_layers": len(arch["slots"])})
        t0 = time.perf_counter()
        torch.manual_seed(ctx.seed)
        m = build_model(arch, data, vcfg)
        threads = torch.get_num_threads()
        ok = train_mlm(m, data, vcfg, ctx.seed, p.pretrain_steps)
        loss = mlm_val_loss(m, data, vcfg) if ok else float("nan")
        row = {"mlm_loss": loss, "pretrain_s": time.perf_counter() - t0,
               "params": sum(x.numel() for x in m.encoder.layers.parameters()),
               "flops": S.count_flops(arch, m.config, data.seq_len, vcfg.conv_type),
               "layers": [S.slot_key(s)[:40] for s in arch["slots"]]}
        for t, (tr, dev) in tasks.items():
            accs = []
            for fs in p.finetune_seeds:
                torch.manual_seed(fs)
                d2 = ProxyData(train=data.train, val=data.val, vocab_size=data.vocab_size, mask_id=data.mask_id,
                               special_ids=data.special_ids, glue_train=tr, glue_dev=dev)
                fcfg = ProxyConfig(**{**vcfg.__dict__, "batch_size": p.finetune_batch_size})
                accs.append(glue_accuracy(m, d2, fcfg, fs))
            row[t] = {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs)), "seeds": len(accs)}
            row[t]["majority"] = float(max(dev["labels"].float().mean(), 1 - dev["labels"].float().mean()))
        torch.set_num_threads(threads)
        results[name] = row
        ctx.log_metrics({f"{name}.mlm_loss": loss})
    avg = {n: float(np.mean([results[n][t]["acc"] for t in p.tasks])) for n in results}
    for n in results:
        results[n]["glue_avg"] = avg[n]
        results[n]["glue_avg_std"] = float(np.mean([results[n][t]["acc_std"] for t in p.tasks]))
    results["searched_minus_bert"] = avg["searched"] - avg["bert_equal_params"]
    results["searched_minus_bert_mlm"] = results["searched"]["mlm_loss"] - results["bert_equal_params"]["mlm_loss"]
    results["tasks"] = p.tasks
    results["best_arch"] = best["slots"]
    _write_json(Path(p.metrics_dir) / "final.json", results)
    return results
