"""ZeroGen's DVC stages: PLM -> synthesize (per prompt family) -> train/evaluate (per task) ->
analysis -> summary. Each stage reads its own params section; the logic lives in the modules.

    zerogen_plm                   models/zerogen/plm/<plm>       (tiny LM trained / SmolLM2 de-quantised)
    zerogen_synthesize@<set>      data/zerogen/synthetic/<set>/  (Dataset + provenance.json)
    zerogen_train@<task>          metrics/zerogen/train/<task>.json  ZeroGen (each TAM), SUPERVISED, PROMPTING
    zerogen_analysis              metrics/zerogen/analysis.json  size curve, decoding sweep, PLM size
    zerogen_summary               metrics/zerogen/{tc,size_sweep,decoding,plm_size}.json, reports table

Zero-shot purity: the synthesize stage reads gold *training premises* (NLI) without labels; the
train stage selects models on a held-out split of the synthetic set; gold labels are read only by
SUPERVISED (its own baseline) and by the final evaluation.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ...config import Section, section
from ...utils import atomic_write_json, atomic_write_text
from . import tasks as T
from .bidaf import BidafConfig
from .generate import DecodeConfig
from .synth import SynthConfig
from .tam import TamConfig
from .vllm_backend import VllmConfig

log = logging.getLogger(__name__)

SETS = {"movie": "sst2", "rte": "rte", "qnli": "qnli", "elec": "elec", "yelp": "yelp",
        "qa": "squad"}   # prompt family -> the task whose gold train split gives its contexts


def _set_of(task: str) -> str:
    fam = T.get_task(task).prompt_family
    if fam not in SETS:
        raise ValueError(f"task {task!r}: prompt family {fam!r} has no synthesize set ({', '.join(SETS)})")
    return fam


class DataParams(Section):
    """Where gold data come from (the registry's loaders)."""

    source: Literal["embedded", "local", "hub"] = "embedded"
    local_dir: str = "../shared/data"
    seed: int = 0                                 # carving / capping seed (fixed: the eval set never moves)
    eval_split: str | None = None                 # None: the task's default evaluation split (carved if absent)
    max_train: int | None = Field(None, ge=1)     # cap on gold train rows (premises, SUPERVISED)
    max_train_for: dict[str, int] = Field(default_factory=dict)   # data task -> its own cap (over max_train)
    max_eval: int | None = Field(None, ge=1)      # cap on gold evaluation rows
    embedded_sizes: tuple[int, int] = (300, 100)
    eval_fraction_for: dict[str, float] = Field(default_factory=dict)   # data task -> carved eval share

    @field_validator("max_train_for")
    @classmethod
    def _caps(cls, v):
        bad = {t: n for t, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"max_train_for: {bad}: each cap must be >= 1 gold train rows")
        return v


def load_gold(task: str, d: DataParams):
    """(train rows, eval rows, eval split name) of zerogen task `task`'s gold data."""
    from ...data import build_task, get_task

    zt = T.get_task(task)
    spec = get_task(zt.data_task)
    extra = {"eval_fraction": d.eval_fraction_for[zt.data_task]} if zt.data_task in d.eval_fraction_for else {}
    cap = d.max_train_for.get(zt.data_task, d.max_train)
    dd, _ = build_task(zt.data_task, d.source, local_dir=d.local_dir, max_examples=cap,
                       max_eval_examples=d.max_eval, seed=d.seed, eval_split=d.eval_split,
                       embedded_sizes=d.embedded_sizes, **extra)
    ev = spec.eval_splits[0]
    return dd[spec.train_split].to_list(), dd[ev].to_list(), ev


def set_threads(n: int | None) -> None:
    """torch intra-op threads for this stage (None: torch's default, one per core). The smoke
    profile's models (a 64-wide GPT-2, 64-wide LSTMs) are so small that a second thread costs
    more in synchronisation than it gains, and it stalls whenever another process (the MLflow
    worker) holds a core: zerogen_analysis ran in 26 s with 1 thread vs 144 s with 2 on a busy 2-core
    machine (tracking off, load 5-8, same metrics; 2026-11-30)."""
    if n:
        import torch

        torch.set_num_threads(n)


# ============================================================================ zerogen_plm
class TinyLM(Section):
    corpus: Literal["smoke", "smoke_qa", "wikitext"] = "smoke"   # smoke_qa: QA prompts over embedded articles
    vocab_size: int = Field(400, ge=260)
    n_layer: int = Field(2, ge=1)
    n_embd: int = Field(64, ge=8)
    n_head: int = Field(2, ge=1)
    seq_len: int = Field(96, ge=8)
    steps: int = Field(150, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    docs: int = Field(1200, ge=0)                # smoke corpus documents / WikiText lines (0 = all WikiText lines)


@section("zerogen_plm")
class PlmParams(Section):
    """Prepare every PLM the other stages name: train tiny LMs, de-quantise SmolLM2 once."""

    plms: list[str] = Field(default_factory=lambda: ["tiny", "tiny_qa"])   # names in `tiny` (trained here) | smollm2 | hub ids
    tiny: dict[str, TinyLM]                                      # name -> its size (params.yaml sets them)
    out_dir: str = "models/zerogen/plm"
    local_dir: str = "../shared/data"
    num_threads: int | None = Field(None, ge=1)   # torch threads (None: one per core); see set_threads

    @field_validator("plms")
    @classmethod
    def _known(cls, v):
        for p in v:
            if "/" in p.strip("/") and p.startswith(("/", ".")):
                raise ValueError(f"plms: {p!r}: give a name (tiny*, smollm2 or a hub id), not a path")
        return v


def plm_path(name: str, plm_dir: str) -> str:
    return str(Path(plm_dir) / name)


def run_plm(params: PlmParams, ctx) -> dict:
    from . import plm as P

    set_threads(params.num_threads)
    out: dict[str, Any] = {}
    for name in params.plms:
        if name == "smollm2":
            model, _ = P.load_plm("smollm2", cache_dir=params.out_dir)
            out[name] = {"params": P.n_params(model)}
            continue
        cfg = params.tiny.get(name)
        if cfg is None:     # a hub model (gpt2, gpt2-xl: the `hub` source, not offline)
            model, tok = P.load_plm(name)
            from ...utils import atomic_dir

            with atomic_dir(Path(params.out_dir) / name.replace("/", "--")) as tmp:
                model.save_pretrained(str(tmp))
                tok.save_pretrained(str(tmp))
            out[name] = {"params": P.n_params(model)}
            continue
        seed = ctx.seed if ctx else 0
        texts = (P.smoke_corpus(cfg.docs, seed=seed) if cfg.corpus == "smoke"
                 else P.smoke_qa_corpus(cfg.docs, seed=seed) if cfg.corpus == "smoke_qa"
                 else P.wikitext_corpus(params.local_dir, cfg.docs or None))
        info = P.train_tiny_lm(texts, Path(params.out_dir) / name, vocab_size=cfg.vocab_size, n_layer=cfg.n_layer,
                               n_embd=cfg.n_embd, n_head=cfg.n_head, seq_len=cfg.seq_len, steps=cfg.steps,
                               batch_size=cfg.batch_size, lr=cfg.lr, seed=ctx.seed if ctx else 0)
        if ctx is not None:
            ctx.log_metrics({f"{name}/seconds": info["seconds"]})
        out[name] = {"params": info["params"], "final_loss": round(info["final_loss"], 4)}
    return out


def _load_plm(name: str, plm_dir: str):
    from . import plm as P

    p = Path(plm_dir) / name
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: PLM {name!r} not prepared (add it to zerogen_plm.plms and run that stage)")
    return P.load_plm(str(p))


# ============================================================================ zerogen_synthesize
@section("zerogen_synthesize")
class SynthesizeParams(Section):
    matrix_keys = ("sets",)

    sets: list[str] = Field(default_factory=lambda: ["movie", "rte", "qa"])   # prompt families (dvc matrix)
    plm: str = "tiny"
    plm_for: dict[str, str] = Field(default_factory=dict)       # set -> its generator, overriding `plm`
    plm_dir: str = "models/zerogen/plm"
    seed: int = 42                                # ZeroGen's sampling seed
    synth: SynthConfig                                           # required: params.yaml sets every profile's sizes
    set_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)   # per set, merged over synth
    data: DataParams                                             # required: params.yaml sets the gold data's source
    out_dir: str = "data/zerogen/synthetic"
    samples_logged: int = Field(50, ge=0)         # rows in the MLflow sample table
    num_threads: int | None = Field(None, ge=1)   # torch threads (None: one per core); see set_threads
    backend: Literal["transformers", "vllm"] = "transformers"   # vllm: GPU hosts only (vllm_backend.py)
    backend_for: dict[str, Literal["transformers", "vllm"]] = Field(default_factory=dict)   # set -> backend
    vllm: VllmConfig = Field(default_factory=VllmConfig)       # the vLLM engine's settings

    @field_validator("sets", "backend_for")
    @classmethod
    def _known_sets(cls, v, info):
        for s in v:   # a list of sets, or a dict keyed by set
            if s not in SETS:
                raise ValueError(f"{info.field_name}: unknown prompt family {s!r}; allowed: {', '.join(SETS)}")
        return v

    @model_validator(mode="after")
    def _vllm_cannot_debias(self):
        """Refuse, before any work, a vllm set that self-debiases (see vllm_backend's docstring)."""
        for s in self.sets:
            if self.backend_of(s) != "vllm":
                continue
            lam = self.synth_for(s).x2.decay_constant
            if lam > 0 and T.get_task(SETS[s]).counter:
                raise ValueError(
                    f"{self.backend_key(s)}: vllm cannot serve set {s!r}, which self-debiases "
                    f"(x2.decay_constant = {lam:g}): vLLM offers no supported way to read the counter prompts' "
                    f"logits at every step. Set backend_for: {{{s}: transformers}}, or decay_constant: 0")
        return self

    def plm_of(self, s: str) -> str:
        return self.plm_for.get(s, self.plm)

    def backend_of(self, s: str) -> str:
        return self.backend_for.get(s, self.backend)

    def backend_key(self, s: str) -> str:
        """The params key that chose set `s`'s backend (for error messages)."""
        return f"zerogen_synthesize.backend_for.{s}" if s in self.backend_for else "zerogen_synthesize.backend"

    def synth_for(self, s: str) -> SynthConfig:
        from ...config import deep_merge

        return SynthConfig.model_validate(deep_merge(self.synth.model_dump(), self.set_overrides.get(s, {})))


def synthesize_set(set_name: str, model, tok, cfg: SynthConfig, seed: int, data: DataParams,
                   progress=None) -> tuple[list[dict], dict]:
    """Rows and filter stats of one prompt family's synthetic set."""
    from .synth import pick_premises, synthesize_nli, synthesize_tc

    task = T.get_task(SETS[set_name])
    if task.kind == "tc":
        return synthesize_tc(task, model, tok, cfg, seed=seed, progress=progress)
    if task.kind == "nli":
        train, _, _ = load_gold(task.name, data)
        premises = pick_premises([r[task.context_field] for r in train], cfg.n_contexts, seed)   # labels unread
        return synthesize_nli(task, model, tok, premises, cfg, seed=seed, progress=progress)
    from .qa import pick_contexts, synthesize_qa

    train, _, _ = load_gold(task.name, data)
    contexts = pick_contexts(train, cfg.n_contexts, seed, task.context_field)   # questions/answers unread
    return synthesize_qa(task, model, tok, contexts, cfg, seed=seed, progress=progress)


def run_synthesize(params: SynthesizeParams, ctx, set: str) -> dict:  # noqa: A002 - dvc matrix key
    from .plm import n_params
    from .synth import save_synthetic

    if set not in params.sets:
        raise ValueError(f"set {set!r} is not in zerogen_synthesize.sets {params.sets}")
    set_threads(params.num_threads)
    cfg = params.synth_for(set)
    backend = params.backend_of(set)
    if backend == "vllm":    # checks vllm and CUDA before loading anything
        from .vllm_backend import load_vllm_plm

        model, tok = load_vllm_plm(Path(params.plm_dir) / params.plm_of(set), params.vllm, seed=params.seed,
                                   key=params.backend_key(set))
    else:
        model, tok = _load_plm(params.plm_of(set), params.plm_dir)
    t0 = time.time()
    rows, stats = synthesize_set(set, model, tok, cfg, params.seed, params.data)
    dt = time.time() - t0
    if len(rows) < 2:
        raise RuntimeError(f"zerogen_synthesize@{set}: {len(rows)} rows survived the filters "
                           f"(x2 filter counts {stats['x2']}); a weak PLM or too small a budget "
                           f"(zerogen_synthesize.synth: n_contexts, per_label, min_words)")
    task = T.get_task(SETS[set])
    prov = {"set": set, "task": task.name, "plm": params.plm_of(set), "plm_params": n_params(model),
            "prompts": {"x1": task.x1, "x2": dict(task.x2), "counter": {k: list(v) for k, v in task.counter.items()}},
            "label_map": dict(task.labels), "zerogen_ids": dict(task.zerogen_ids), "evidence": task.evidence,
            "synth": cfg.model_dump(), "seed": params.seed, "filter": stats, "rows": len(rows), "backend": backend,
            "data_source": params.data.source}
    out = Path(params.out_dir) / set
    save_synthetic(rows, out, prov)
    if ctx is not None:
        ctx.log_metrics({"seconds": dt, "rows_per_second": len(rows) / max(dt, 1e-9)})
        if params.samples_logged and rows:
            table = {"columns": ["C", "X", "Y"],
                     "data": [[r["C"], r["X"], r["Y"]] for r in rows[: params.samples_logged]]}
            import tempfile

            tp = Path(tempfile.mkdtemp(prefix="zerogen-")) / f"samples_{set}.json"   # not beside the DVC output
            tp.write_text(json.dumps(table, indent=1))
            ctx.log_artifact(tp)      # MLflow table format (columns / data)
    per_label = stats["x2"]["per_label"]
    out = {"rows": len(rows), "contexts": stats["contexts"], "raw": stats["x2"]["raw"], "per_label": per_label,
           "kept_fraction": round(len(rows) / max(stats["x2"]["raw"], 1), 4)}
    if task.kind == "qa":
        out.update(answers=stats["answers"], too_long=stats["x2"]["too_long"],
                   contains_answer=stats["x2"]["contains_answer"], no_question_mark=stats["x2"]["no_cut"])
    return out


# ============================================================================ zerogen_train
@section("zerogen_train")
class TrainParams(Section):
    matrix_keys = ("tasks",)

    tasks: list[str] = Field(default_factory=lambda: ["sst2", "rotten_tomatoes", "rte", "squad"])   # dvc matrix
    models: list[Literal["lstm", "minilm"]] = Field(default_factory=lambda: ["lstm"])
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    tam: TamConfig                                               # required: params.yaml sets every profile's TAM
    task_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)    # task -> TamConfig keys
    model_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)   # lstm/minilm -> TamConfig keys
    bidaf: BidafConfig                                           # required: QA tasks' TAM (spec A.8 BiDAF)
    data: DataParams                                             # required: params.yaml sets the gold data's source
    synthetic_dir: str = "data/zerogen/synthetic"
    supervised: bool = True
    prompting: bool = True
    plm: str = "tiny"                              # PROMPTING's LM (the generator)
    plm_for: dict[str, str] = Field(default_factory=dict)   # task -> PROMPTING's LM (its set's generator)
    prompting_decode: DecodeConfig = Field(default_factory=lambda: DecodeConfig(max_new_tokens=40))   # QA answers
    plm_dir: str = "models/zerogen/plm"
    prompting_max_eval: int | None = Field(None, ge=1)   # PLM scoring is the slow part on CPU
    prompting_max_eval_for: dict[str, int | None] = Field(default_factory=dict)   # task -> its cap (None: all)
    poison_gold_train: bool = False                # test hook: shuffle gold train labels (ZeroGen must not move)
    num_threads: int | None = Field(None, ge=1)   # torch threads (None: one per core); see set_threads

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v):
        for t in v:
            _set_of(t)
        return v

    def prompting_rows(self, task: str, rows: list) -> list:
        cap = self.prompting_max_eval_for.get(task, self.prompting_max_eval)
        if cap is not None and cap < 1:
            raise ValueError(f"prompting_max_eval_for.{task}: {cap} (give >= 1, or null for every row)")
        return rows[:cap] if cap else rows

    @model_validator(mode="after")
    def _overrides_known(self):
        for key, table, known in (("task_overrides", self.task_overrides, self.tasks),
                                  ("model_overrides", self.model_overrides, ["lstm", "minilm"])):
            for name, over in table.items():
                if name not in known:
                    raise ValueError(f"zerogen_train.{key}.{name}: not one of {known}")
                bad = sorted(set(over) - set(TamConfig.model_fields))
                if bad:
                    raise ValueError(f"zerogen_train.{key}.{name}: unknown TAM keys {bad} "
                                     f"(known: {sorted(TamConfig.model_fields)})")
        return self

    def tam_for(self, model: str, task: str | None = None) -> TamConfig:
        """`tam`, then `task_overrides[task]`, then `model_overrides[model]` (as finetune's hp)."""
        return TamConfig.model_validate({**self.tam.model_dump(), **self.task_overrides.get(task or "", {}),
                                         **self.model_overrides.get(model, {})})


def examples_from_gold(task: T.ZeroGenTask, rows: list[dict]) -> list[tuple]:
    if task.kind == "tc":
        return [(r[task.text_field], None, int(r["label"])) for r in rows]
    return [(r[task.context_field], r[task.text_field], int(r["label"])) for r in rows]


def examples_from_synthetic(task: T.ZeroGenTask, rows: list[dict]) -> list[tuple]:
    lab = T.check_label_map(task)
    if task.kind == "tc":
        return [(r["X"], None, lab[r["Y"]]) for r in rows]
    return [(r["C"], r["X"], lab[r["Y"]]) for r in rows]


def prompting_accuracy(task: T.ZeroGenTask, model, tok, gold: list[tuple]) -> float:
    """PROMPTING (spec A.7): argmin over labels of the mean NLL of the filled zs template."""
    from .generate import mean_nll

    lab = T.check_label_map(task)
    meanings = list(task.labels)
    texts = []
    for a, b, _ in gold:
        for m in meanings:
            texts.append(task.zs_prompt(m, a) if b is None else task.zs_prompt(m, b, a))
    nll = mean_nll(model, tok, texts)
    right = 0
    for i, (_, _, y) in enumerate(gold):
        scores = nll[i * len(meanings): (i + 1) * len(meanings)]
        right += lab[meanings[scores.index(min(scores))]] == y
    return right / max(len(gold), 1)


class _Timed:
    """`with _Timed("rte", "supervised/lstm", ctx):` prints the block's wall seconds and logs them to
    MLflow (`seconds/supervised/lstm`), so a run says which method a stage's minutes went to (the cpu
    budget is cut from these). Not in the stage's JSON: its metrics stay identical across runs."""

    def __init__(self, task: str, key: str, ctx=None):
        self.task, self.key, self.ctx = task, key, ctx

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        dt = time.perf_counter() - self.t0
        print(f"[zerogen_train@{self.task}] {self.key}: {dt:.1f}s", flush=True)
        if self.ctx is not None:
            self.ctx.log_metrics({f"seconds/{self.key}": dt})
        return False


def _mean_std(vals: list[float], key: str = "acc") -> dict[str, float]:
    return {key: statistics.fmean(vals), f"{key}_std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


def poison_qa(rows: list[dict]) -> list[dict]:
    """Test hook: every gold answer replaced by the context's first word (a wrong span)."""
    out = []
    for r in rows:
        w = (r["context"].split() or [""])[0]
        out.append({**r, "answers": {"text": [w], "answer_start": [r["context"].index(w) if w else 0]}})
    return out


def train_task_qa(params: TrainParams, task_name: str, synthetic_rows: list[dict], ctx=None) -> dict:
    """ZeroGen (BiDAF on the synthetic questions, selected on their held-out articles), SUPERVISED
    (BiDAF on gold train) and PROMPTING (the PLM's sampled answers): EM / F1 (percent) on gold eval.
    The LSTM-family TAM of a QA task is BiDAF, reported under the key "lstm" (the paper's table row);
    the transformer TAM is not implemented for QA and is skipped."""
    from .bidaf import fit_and_evaluate_qa
    from .qa import prompting_qa, to_squad_rows

    task = T.get_task(task_name)
    train_rows, eval_rows, ev = load_gold(task_name, params.data)
    syn = to_squad_rows(synthetic_rows)
    if not syn:
        raise ValueError(f"task {task_name!r}: the synthetic set is empty")
    out: dict[str, Any] = {"task": task_name, "kind": "qa", "metric": "squad (EM / F1, percent)", "eval_split": ev,
                           "n_eval": len(eval_rows), "n_synthetic": len(syn), "zerogen": {}, "supervised": {},
                           "data_source": params.data.source}
    if "lstm" in params.models:
        cfg = params.bidaf
        with _Timed(task_name, "zerogen/lstm", ctx):
            runs = [fit_and_evaluate_qa(syn, {"gold": eval_rows}, cfg, s) for s in params.seeds]
        out["zerogen"]["lstm"] = {**_mean_std([r["gold_exact_match"] for r in runs], "exact_match"),
                                  **_mean_std([r["gold_f1"] for r in runs], "f1"), "model": "bidaf",
                                  "params": runs[0]["params"], "synthetic_dev_f1": statistics.fmean(
                                      r["dev_f1"] for r in runs), "best_epoch": [r["best_epoch"] for r in runs]}
        if params.supervised:
            gold_train = poison_qa(train_rows) if params.poison_gold_train else train_rows
            with _Timed(task_name, "supervised/lstm", ctx):
                sup = [fit_and_evaluate_qa(gold_train, {"gold": eval_rows}, cfg, s) for s in params.seeds]
            out["supervised"]["lstm"] = {**_mean_std([r["gold_exact_match"] for r in sup], "exact_match"),
                                         **_mean_std([r["gold_f1"] for r in sup], "f1"), "model": "bidaf",
                                         "params": sup[0]["params"], "n_train": len(gold_train)}
        if ctx is not None:
            ctx.log_metrics({"bidaf/zerogen_f1": out["zerogen"]["lstm"]["f1"]})
    out["skipped_models"] = [m for m in params.models if m != "lstm"]   # no transformer QA TAM yet
    if params.prompting:
        from .plm import n_params

        plm = params.plm_for.get(task_name, params.plm)
        with _Timed(task_name, "prompting", ctx):
            model, tok = _load_plm(plm, params.plm_dir)
            ev_rows = params.prompting_rows(task_name, eval_rows)
            res = prompting_qa(task, model, tok, ev_rows, params.prompting_decode, seed=params.seeds[0])
        out["prompting"] = {**res, "params": n_params(model), "plm": plm}
    return out


def train_task(params: TrainParams, task_name: str, synthetic_rows: list[dict], ctx=None) -> dict:
    """ZeroGen (each TAM, each seed), SUPERVISED and PROMPTING on one task; gold eval accuracy."""
    import random

    from .tam import fit_and_evaluate

    task = T.get_task(task_name)
    if task.kind == "qa":
        return train_task_qa(params, task_name, synthetic_rows, ctx)
    n_classes = len(task.labels)
    train_rows, eval_rows, ev = load_gold(task_name, params.data)
    gold_eval = examples_from_gold(task, eval_rows)
    syn = examples_from_synthetic(task, synthetic_rows)
    if not syn:
        raise ValueError(f"task {task_name!r}: the synthetic set is empty")
    out: dict[str, Any] = {"task": task_name, "eval_split": ev, "n_eval": len(gold_eval), "n_synthetic": len(syn),
                           "zerogen": {}, "supervised": {}, "data_source": params.data.source}
    for m in params.models:
        cfg = params.tam_for(m, task_name)
        with _Timed(task_name, f"zerogen/{m}", ctx):
            runs = [fit_and_evaluate(m, task.kind, syn, {"gold": gold_eval}, n_classes, cfg, s) for s in params.seeds]
        out["zerogen"][m] = {**_mean_std([r["gold_acc"] for r in runs]), "params": runs[0]["params"],
                             "synthetic_dev_acc": statistics.fmean(r["dev_acc"] for r in runs),
                             "best_epoch": [r["best_epoch"] for r in runs]}
        if params.supervised:
            gold_train = examples_from_gold(task, train_rows)
            if params.poison_gold_train:
                ys = [y for _, _, y in gold_train]
                random.Random(0).shuffle(ys)
                gold_train = [(a, b, (y + 1) % n_classes) for (a, b, _), y in zip(gold_train, ys)]
            with _Timed(task_name, f"supervised/{m}", ctx):
                sup = [fit_and_evaluate(m, task.kind, gold_train, {"gold": gold_eval}, n_classes, cfg, s)
                       for s in params.seeds]
            out["supervised"][m] = {**_mean_std([r["gold_acc"] for r in sup]), "params": sup[0]["params"],
                                    "n_train": len(gold_train)}
        if ctx is not None:
            ctx.log_metrics({f"{m}/zerogen_acc": out["zerogen"][m]["acc"]})
    if params.prompting:
        from .plm import n_params

        plm = params.plm_for.get(task_name, params.plm)
        with _Timed(task_name, "prompting", ctx):
            model, tok = _load_plm(plm, params.plm_dir)
            ev_rows = params.prompting_rows(task_name, gold_eval)
            acc = prompting_accuracy(task, model, tok, ev_rows)
        out["prompting"] = {"acc": acc, "params": n_params(model),
                            "n_eval": len(ev_rows), "plm": plm}
    return out


def run_train(params: TrainParams, ctx, task: str) -> dict:
    from .synth import load_synthetic

    if task not in params.tasks:
        raise ValueError(f"task {task!r} is not in zerogen_train.tasks {params.tasks}")
    set_threads(params.num_threads)
    rows, prov = load_synthetic(Path(params.synthetic_dir) / _set_of(task))
    res = train_task(params, task, rows, ctx)
    res["synthetic"] = {"set": prov["set"], "plm": prov["plm"], "rows": prov["rows"]}
    return res


# ============================================================================ zerogen_analysis
class SweepPoint(Section):
    name: str
    decode: DecodeConfig


def _default_sweep() -> list[SweepPoint]:
    mk = lambda n, **kw: SweepPoint(name=n, decode=DecodeConfig(**kw))  # noqa: E731
    return [mk("greedy", do_sample=False), mk("topk5", top_k=5, top_p=1.0), mk("topk40", top_k=40, top_p=1.0),
            mk("topk80", top_k=80, top_p=1.0), mk("topp0.9", top_k=0, top_p=0.9)]


@section("zerogen_analysis")
class AnalysisParams(Section):
    task: str = "sst2"                              # the task of all three analyses
    size_fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    sweep: list[SweepPoint] = Field(default_factory=_default_sweep)   # ordered from least to most random
    sweep_synth: SynthConfig                                     # required: params.yaml sets the sweep's sizes
    oracle: Literal["lstm", "minilm"] = "lstm"      # correctness oracle, trained on gold train (spec: RoBERTa-large)
    plm_small: str | None = None                    # PLM-size comparison: the smaller generator (None = skip)
    plm: str = "tiny"                               # the generator of the main synthetic set
    plm_dir: str = "models/zerogen/plm"
    synthetic_dir: str = "data/zerogen/synthetic"
    seed: int = 42
    tam: TamConfig                                               # required: params.yaml sets every profile's TAM
    data: DataParams                                             # required: params.yaml sets the gold data's source
    self_bleu_sample: int = Field(1000, ge=2)
    num_threads: int | None = Field(None, ge=1)   # torch threads (None: one per core); see set_threads

    @field_validator("size_fractions")
    @classmethod
    def _fr(cls, v):
        if not v or any(not 0 < f <= 1 for f in v) or v != sorted(v):
            raise ValueError(f"size_fractions must be increasing values in (0, 1], got {v}")
        return v


def run_analysis(params: AnalysisParams, ctx) -> dict:
    import random

    from .analysis import self_bleu
    from .synth import load_synthetic
    from .tam import accuracy, fit_and_evaluate, train_lstm

    set_threads(params.num_threads)
    task = T.get_task(params.task)
    n_classes = len(task.labels)
    train_rows, eval_rows, _ = load_gold(task.name, params.data)
    gold_eval = examples_from_gold(task, eval_rows)
    rows, _ = load_synthetic(Path(params.synthetic_dir) / _set_of(task.name))
    syn = examples_from_synthetic(task, rows)
    out: dict[str, Any] = {"task": task.name, "data_source": params.data.source}

    # 1. accuracy vs synthetic-set size (nested random subsets of one shuffled order)
    order = list(range(len(syn)))
    random.Random(params.seed).shuffle(order)
    sizes, accs = [], []
    for f in params.size_fractions:
        sub = [syn[i] for i in sorted(order[: max(2, int(round(f * len(syn))))])]
        r = fit_and_evaluate("lstm", task.kind, sub, {"gold": gold_eval}, n_classes, params.tam, params.seed)
        sizes.append(len(sub))
        accs.append(r["gold_acc"])
    out["size"] = {"n": sizes, "acc": accs}

    # 2. decoding sweep: Self-BLEU and oracle correctness of fresh sets, plus their TAM accuracy
    oracle, vocab, _ = train_lstm(task.kind, examples_from_gold(task, train_rows), n_classes, params.tam,
                                  params.seed, dev=None)
    out["oracle_gold_acc"] = accuracy(oracle, gold_eval, vocab, params.tam)
    model, tok = _load_plm(params.plm, params.plm_dir)
    done: dict[tuple[str, str], tuple[list[dict], list[tuple], float]] = {}

    def synth_and_fit(plm: str, m, t, cfg) -> tuple[list[dict], list[tuple], float]:
        """(rows, their examples, TAM gold accuracy) of one synthesis. Generation and TAM are deterministic for a
        seed, so a (PLM, settings) pair already done (the PLM-size comparison's large generator
        samples as the sweep's top-p 0.9 point) is reused, not sampled and trained again."""
        key = (plm, cfg.model_dump_json())
        if key not in done:
            srows, _ = synthesize_set(_set_of(task.name), m, t, cfg, params.seed, params.data)
            ex = examples_from_synthetic(task, srows)
            acc = (fit_and_evaluate("lstm", task.kind, ex, {"gold": gold_eval}, n_classes, params.tam,
                                    params.seed)["gold_acc"] if len(ex) > 1 else float("nan"))
            done[key] = (srows, ex, acc)
        return done[key]

    sweep = {"name": [], "self_bleu": [], "correctness": [], "tam_acc": [], "rows": []}
    for pt in params.sweep:
        srows, ex, acc = synth_and_fit(params.plm, model, tok, params.sweep_synth.model_copy(update={"x2": pt.decode}))
        sweep["name"].append(pt.name)
        sweep["rows"].append(len(ex))
        sweep["self_bleu"].append(self_bleu([r["X"] for r in srows], params.self_bleu_sample))
        sweep["correctness"].append(accuracy(oracle, ex, vocab, params.tam) if ex else float("nan"))
        sweep["tam_acc"].append(acc)
    out["decoding"] = sweep

    # 3. PLM size: the same synthesis with a smaller generator, same TAM
    if params.plm_small:
        from .plm import n_params

        small, stok = _load_plm(params.plm_small, params.plm_dir)
        res = {}
        for label, plm, (m, t) in (("large", params.plm, (model, tok)), ("small", params.plm_small, (small, stok))):
            _, ex, acc = synth_and_fit(plm, m, t, params.sweep_synth)
            res[label] = {"acc": 0.0 if math.isnan(acc) else acc, "rows": len(ex),
                          "params": n_params(m), "plm": plm}
        out["plm_size"] = res
    return out


# ============================================================================ zerogen_summary
@section("zerogen_summary")
class SummaryParams(Section):
    train_dir: str = "metrics/zerogen/train"
    analysis: str = "metrics/zerogen/analysis.json"
    headline_model: Literal["lstm", "minilm"] = "lstm"   # the TAM the claims rows use
    out_dir: str = "metrics/zerogen"
    table: str = "reports/zerogen_table.md"


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _params(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def run_summary(params: SummaryParams, ctx) -> dict:
    files = sorted(Path(params.train_dir).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{params.train_dir}: no zerogen_train metrics (run zerogen_train first)")
    res = {f.stem: json.loads(f.read_text()) for f in files}
    tc = [t for t in res if T.get_task(t).kind == "tc"] or [t for t in res if T.get_task(t).kind != "qa"]
    qa = [t for t in res if T.get_task(t).kind == "qa"]
    hm = params.headline_model

    def avg(path: tuple[str, ...], tasks) -> float | None:
        vals = []
        for t in tasks:
            v: Any = res[t]
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if isinstance(v, (int, float)):
                vals.append(float(v))
        return statistics.fmean(vals) if vals else None

    tcj = {"tasks": tc, "model": hm, "profile": getattr(ctx, "profile", None),
           "data_source": next(iter(res.values())).get("data_source"),
           "zerogen": {"acc": avg(("zerogen", hm, "acc"), tc), "acc_std": avg(("zerogen", hm, "acc_std"), tc)},
           "prompting": {"acc": avg(("prompting", "acc"), tc)},
           "supervised": {"acc": avg(("supervised", hm, "acc"), tc)}}
    Path(params.out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(params.out_dir) / "tc.json", tcj)
    out = {"tc": tcj}
    qaj: dict[str, Any] = {"tasks": qa, "model": "bidaf", "metric": "squad EM / F1 (percent)",
                           "profile": tcj["profile"], "data_source": tcj["data_source"]}
    for k in ("zerogen", "supervised"):
        qaj[k] = {m: avg((k, hm, m), qa) for m in ("exact_match", "f1")}
        qaj[k]["f1_std"] = avg((k, hm, "f1_std"), qa)
    qaj["prompting"] = {m: avg(("prompting", m), qa) for m in ("exact_match", "f1")}
    if not qa:
        qaj["note"] = "no QA task in zerogen_train.tasks"
    atomic_write_json(Path(params.out_dir) / "qa.json", qaj)
    out["qa"] = qaj
    an_path = Path(params.analysis)
    if an_path.is_file():
        an = json.loads(an_path.read_text())
        atomic_write_json(Path(params.out_dir) / "size_sweep.json", {**an["size"], "task": an["task"]})
        atomic_write_json(Path(params.out_dir) / "decoding.json", {**an["decoding"], "task": an["task"],
                                                                   "oracle_gold_acc": an.get("oracle_gold_acc")})
        atomic_write_json(Path(params.out_dir) / "plm_size.json", an.get("plm_size") or {
            "large": {"acc": None}, "small": {"acc": None},
            "note": "not run: zerogen_analysis.plm_small is null in this profile"})
        out["analysis"] = {"size_acc": an["size"]["acc"], "self_bleu": an["decoding"]["self_bleu"]}

    # the paper's Table 1 layout: rows PROMPTING / ZeroGen (LSTM, transformer) / SUPERVISED, one column per
    # task: accuracy % for classification and NLI, EM/F1 (%) for QA, whose LSTM-family TAM is BiDAF
    tasks = sorted(res, key=lambda t: ("tc", "qa", "nli").index(T.get_task(t).kind))   # the paper's column order
    head = "| method | TAM | #Param | " + " | ".join(f"{t} (EM/F1)" if t in qa else t for t in tasks) + " |"
    lines = [head, "|" + " --- |" * (3 + len(tasks))]

    def get(t, path):
        v: Any = res[t]
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v if isinstance(v, (int, float)) else None

    def cell(t, base):
        if t not in qa:
            return _fmt(get(t, (*base, "acc")))
        em, f1 = get(t, (*base, "exact_match")), get(t, (*base, "f1"))
        return "—" if em is None or f1 is None else f"{em:.1f}/{f1:.1f}"

    def row(name, tam, base):
        ps = [get(t, (*base, "params")) for t in tasks]
        p = next((x for t, x in zip(tasks, ps) if x and t not in qa), None) or next((x for x in ps if x), None)
        extra = sorted({_params(x) for t, x in zip(tasks, ps) if x and t in qa and _params(x) != _params(p)})
        ptxt = _params(p) + (f" (QA: {', '.join(extra)})" if extra else "")
        return f"| {name} | {tam} | {ptxt} | " + " | ".join(cell(t, base) for t in tasks) + " |"

    plms = {t: res[t]["prompting"]["plm"] for t in tasks if "prompting" in res[t]}
    plm = next((p for t, p in plms.items() if t not in qa), None) or next(iter(plms.values()), "PLM")
    qa_plms = sorted({p for t, p in plms.items() if t in qa and p != plm})
    lines.append(row("PROMPTING", plm + (f" (QA: {', '.join(qa_plms)})" if qa_plms else ""), ("prompting",)))
    for m, label in (("lstm", "LSTM" + (" / BiDAF (QA)" if qa else "")), ("minilm", "MiniLM (DistilBERT-class)")):
        if any(m in r.get("zerogen", {}) for r in res.values()):
            lines.append(row("ZeroGen", label, ("zerogen", m)))
    for m, label in (("lstm", "LSTM" + (" / BiDAF (QA)" if qa else "")), ("minilm", "MiniLM (DistilBERT-class)")):
        if any(m in r.get("supervised", {}) for r in res.values()):
            lines.append(row("SUPERVISED", label, ("supervised", m)))
    syn = ", ".join(f"{t}: {r.get('n_synthetic')} synthetic / {r.get('n_eval')} gold eval ({r.get('eval_split')})"
                    for t, r in res.items())
    dec = next((res[t]["prompting"].get("decode") for t in qa if "prompting" in res[t]), None)
    qa_note = (f"; QA: no transformer TAM (its MiniLM cells show —), PROMPTING answers decoded from the "
               f"generator ({dec})" if qa else "")
    text = (f"# ZeroGen (accuracy %, gold evaluation split; QA: SQuAD EM/F1 %)\n\nprofile: {tcj['profile']}, "
            f"gold data: {tcj['data_source']}{qa_note}\n\n" + "\n".join(lines) + f"\n\n{syn}\n")
    atomic_write_text(params.table, text)
    return out
