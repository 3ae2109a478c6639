"""Fine-tuning: one training path for every encoder variant and every task.

    from arkbench.training.finetune import FinetuneHP, run_task
    res = run_task("cola", "models/pretrain/bert", FinetuneHP(epochs=3), seeds=[0, 1, 2])
    res["metric"], res["mean"], res["std"]   # 'matthews_correlation', 0.41, 0.02

`init` is a checkpoint folder (our pre-training output, with its tokenizer) or a
named real checkpoint ("minilm", "bert-base-uncased"). The head follows the task's
problem type (classification -> SequenceClassifier with num_labels classes,
regression -> SequenceClassifier(num_labels=1, MSE), span -> SpanExtractor).
Each seed trains from the same checkpoint with AdamW (BERT's no-decay rule),
linear warm-up + linear decay, gradient clipping, dynamic padding (length-grouped batches with hp.group_by_length); autocast on GPU;
DDP when launched by torchrun. Each seed is evaluated on every evaluation split of
the task with its official metric (MNLI: matched and mismatched).

Any task model: ``run_task(..., model_builder=f, tokenizer=tok)`` trains whatever
``f(spec, init, hp)`` returns (an LSTM, a BiDAF-style span model) with the same data
pipeline, optimiser, seeds, metrics and tracking. The model is called as
``model(input_ids, attention_mask, token_type_ids, labels=...)`` (span tasks:
``start_positions=, end_positions=``) and returns an object with ``.loss`` (None
without labels), ``.logits`` ([B, C], [B, 1] for regression, [B, T, 2] for spans) and,
optionally, ``.aux_losses`` {name: tensor}, which are back-propagated with the loss
and logged as ``seed<s>/aux/<name>`` but never enter the reported loss.

The params section ``finetune`` (:class:`FinetuneParams`) drives the DVC stages
``finetune`` (our variants) and ``finetune_ref`` (real checkpoints); see
``stages/finetune.py``.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from ..config import Section, section
from ..progress import progress
from ..models.heads import training_loss
from .hparams import FinetuneHP
from . import distributed as dist_utils
from . import glue as glue_data
from . import squad as squad_data
from .loop import grad_scaler, resolve_precision, train_step
from .optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

SUPPORTED_PROBLEMS = ("classification", "regression", "span")


# ------------------------------------------------------------------------ params
def _span_tasks() -> list[str]:
    from ..data.registry import TASKS

    return [n for n, t in TASKS.items() if t.problem_type in SUPPORTED_PROBLEMS]


def check_task(name: str) -> str:
    """`name` if it is a task fine-tuning supports, else ValueError naming the allowed ones."""
    allowed = _span_tasks()
    if name not in allowed:
        raise ValueError(f"unknown fine-tuning task {name!r}; allowed: {', '.join(allowed)}")
    return name


@section("finetune")
class FinetuneParams(Section):
    """The ``finetune`` params section (stages finetune / finetune_ref)."""

    matrix_keys = ("models", "ref_models", "tasks")   # dvc.yaml matrix lists

    models: list[str] = Field(default_factory=list)          # our variants: models/pretrain/<name>
    ref_models: list[str] = Field(default_factory=lambda: ["minilm"])   # named real checkpoints
    tasks: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    pretrain_dir: str = "models/pretrain"
    data_root: str = "data/tasks"
    fusion: str = "last"
    fusion_kwargs: dict[str, Any] = Field(default_factory=dict)
    hp: FinetuneHP                                           # required: params.yaml sets every profile's recipe
    task_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    model_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)   # applied after task_overrides

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str]) -> list[str]:
        for t in v:
            check_task(t)
        if len(set(v)) != len(v):
            raise ValueError(f"tasks lists a name twice: {v}")
        return v

    @field_validator("ref_models")
    @classmethod
    def _known_refs(cls, v: list[str]) -> list[str]:
        from ..models.loading import CHECKPOINTS

        for m in v:
            if m not in CHECKPOINTS and not Path(m).is_dir():
                raise ValueError(f"ref_models: {m!r} is neither a named checkpoint "
                                 f"({', '.join(CHECKPOINTS)}) nor a folder")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds lists a value twice: {v}")
        return v

    @model_validator(mode="after")
    def _overrides(self):
        for t, over in self.task_overrides.items():
            check_task(t)
            try:
                FinetuneHP.model_validate({**self.hp.model_dump(), **over})
            except Exception as e:  # re-raise naming the task
                raise ValueError(f"task_overrides.{t}: {e}") from None
        for m, over in self.model_overrides.items():
            if m not in self.models and m not in self.ref_models:
                raise ValueError(f"model_overrides names {m!r}, which is in neither models {self.models} "
                                 f"nor ref_models {self.ref_models}")
            try:
                FinetuneHP.model_validate({**self.hp.model_dump(), **over})
            except Exception as e:
                raise ValueError(f"model_overrides.{m}: {e}") from None
        from ..data.registry import get_task

        for t in self.tasks:  # window geometry of span tasks, checked before any work
            if get_task(t).problem_type != "span":
                continue
            for m in (None, *self.models, *self.ref_models):
                hp = self.hp_for(t, m)
                if hp.doc_stride >= hp.max_seq_len - hp.max_query_len - 3:
                    raise ValueError(f"task {t!r}{f' model {m!r}' if m else ''}: doc_stride={hp.doc_stride} "
                                     f"must be < max_seq_len - max_query_len - 3 = "
                                     f"{hp.max_seq_len - hp.max_query_len - 3}")
        overlap = set(self.models) & set(self.ref_models)
        if overlap:
            raise ValueError(f"{sorted(overlap)} listed in both models and ref_models")
        return self

    def hp_for(self, task: str, model: str | None = None) -> FinetuneHP:
        """Default hyper-parameters with `task`'s, then `model`'s overrides merged."""
        check_task(task)
        return FinetuneHP.model_validate({**self.hp.model_dump(), **self.task_overrides.get(task, {}),
                                          **self.model_overrides.get(model or "", {})})

    def init_for(self, model: str) -> str:
        """Checkpoint of matrix value `model`: a named ref checkpoint or pretrain_dir/<model>."""
        if model in self.ref_models:
            return model
        if model in self.models:
            return str(Path(self.pretrain_dir) / model)
        raise ValueError(f"unknown model {model!r}; allowed: models {self.models} "
                         f"or ref_models {self.ref_models}")


# ------------------------------------------------------------------------ data
def _load_data(task: str, data_root: str | os.PathLike):
    from ..data import load_prepared

    return load_prepared(task, root=str(data_root))


def _subsample(ds, n: int | None, seed: int = 0):
    if n is None or len(ds) <= n:
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    return ds.select(idx.tolist())


def _split_suffix(split: str) -> str:
    return split.removeprefix("validation").lstrip("_") or split


def _model_name(init: str | os.PathLike) -> str:
    p = Path(init)
    return p.name if p.is_dir() else str(init)


# ------------------------------------------------------------------------ helpers
def _precision(device: torch.device, amp: str) -> str:
    """hp.amp -> "bf16" | "fp16" | "fp32" (mixed precision on GPU only; see loop.resolve_precision)."""
    return resolve_precision("fp32" if amp == "off" else amp, device)


ModelBuilder = Callable[[Any, "str | None", FinetuneHP], torch.nn.Module]   # (task spec, init, hp) -> model


def _build_model(spec, init: str, hp: FinetuneHP, fusion: str, fusion_kwargs: dict | None):
    from ..models import SequenceClassifier, SpanExtractor, from_pretrained

    if spec.problem_type == "span":
        return from_pretrained(SpanExtractor, init, fusion=fusion, fusion_kwargs=fusion_kwargs)
    return from_pretrained(SequenceClassifier, init, num_labels=spec.num_labels, fusion=fusion,
                           fusion_kwargs=fusion_kwargs, classifier_dropout=hp.classifier_dropout,
                           pooling=hp.pooling)


class _Prepared:
    """Tokenised training features and evaluation features of one task (shared by seeds)."""

    def __init__(self, spec, data, tokenizer, hp: FinetuneHP):
        self.spec = spec
        train = _subsample(data[spec.train_split], hp.max_train_examples, seed=0)
        self.eval_examples = {s: _subsample(data[s], hp.max_eval_examples, seed=0) for s in spec.eval_splits
                              if s in data}
        if not self.eval_examples:
            raise ValueError(f"task {spec.name!r}: data has none of its evaluation splits "
                             f"{list(spec.eval_splits)} (has {list(data)})")
        if spec.problem_type == "span":
            room = hp.max_seq_len - hp.max_query_len - 3
            if hp.doc_stride >= room:
                raise ValueError(f"task {spec.name!r}: doc_stride={hp.doc_stride} must be < max_seq_len - "
                                 f"max_query_len - 3 = {room} (the context room of a window)")
            kw = dict(max_seq_len=hp.max_seq_len, doc_stride=hp.doc_stride, max_query_len=hp.max_query_len)
            self.train = squad_data.prepare_features(train, tokenizer, train=True, **kw)
            self.eval = {s: squad_data.prepare_features(ex, tokenizer, train=False, **kw)
                         for s, ex in self.eval_examples.items()}
        else:
            kw = dict(text_fields=spec.text_fields, max_seq_len=hp.max_seq_len, problem_type=spec.problem_type)
            self.train = glue_data.encode(train, tokenizer, **kw)
            self.eval = {s: glue_data.encode(ex, tokenizer, **kw) for s, ex in self.eval_examples.items()}
        if not self.train:
            raise ValueError(f"task {spec.name!r}: no training examples")


def _evaluate(model, prep: _Prepared, hp: FinetuneHP, device, pad_id: int) -> dict[str, float]:
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(_precision(device, hp.amp))
    spec = prep.spec
    out: dict[str, float] = {}
    multi = len(prep.eval) > 1
    for i, (split, feats) in enumerate(prep.eval.items()):
        logits = glue_data.predict_by_length(model, feats, hp.eval_batch_size, device, pad_id=pad_id,
                                             autocast_dtype=amp_dtype, desc=f"evaluate {spec.name} {split}")
        examples = prep.eval_examples[split]
        if spec.problem_type == "span":
            preds = squad_data.postprocess(examples, feats, logits[..., 0], logits[..., 1], n_best=hp.n_best,
                                           max_answer_length=hp.max_answer_length,
                                           version_2=spec.metric == "squad_v2",
                                           null_threshold=hp.null_threshold)
            from .. import metrics

            m = metrics.compute(spec.metric, predictions=preds, references=squad_data.references(examples))
        else:
            m = glue_data.split_metrics(spec.metric, logits, [f["labels"] for f in feats], spec.problem_type)
        if multi:
            sfx = _split_suffix(split)
            out.update({f"{k}_{sfx}": v for k, v in m.items()})
            if i == 0:  # the first split (MNLI matched) also gives the un-suffixed headline keys
                out.update(m)
        else:
            out.update(m)
    return out


def train_one(prep: _Prepared, init: str | None, hp: FinetuneHP, seed: int, *, fusion: str = "last",
              fusion_kwargs: dict | None = None, ctx=None, pad_id: int = 0,
              info: dist_utils.DistInfo | None = None, model_builder: ModelBuilder | None = None):
    """Train one seed; returns (model unwrapped, in eval mode, train stats)."""
    info = info or dist_utils.DistInfo()
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if model_builder is not None:
        model = model_builder(prep.spec, init, hp).to(info.device)
    else:
        model = _build_model(prep.spec, init, hp, fusion, fusion_kwargs)
    ddp = dist_utils.wrap(model, info)
    # the same global batches whatever the world size (batch_size rows per rank)
    try:
        lengths = [len(f["input_ids"]) for f in prep.train] if hp.group_by_length else None
        sampler = glue_data.GlobalBatchSampler(len(prep.train), hp.batch_size, seed=seed, rank=info.rank,
                                               world_size=info.world_size, lengths=lengths)
    except ValueError as e:
        raise ValueError(f"task {prep.spec.name!r}: {e}") from None
    loader = glue_data.make_loader(prep.train, pad_id=pad_id, batch_sampler=sampler)
    if len(loader) < hp.grad_accum:
        raise ValueError(f"task {prep.spec.name!r}: grad_accum={hp.grad_accum} exceeds the {len(loader)} "
                         f"batches of one epoch (batch_size={hp.batch_size})")
    per_epoch = len(loader) // hp.grad_accum   # optimizer steps per epoch (an incomplete tail is dropped)
    total = hp.max_steps if hp.max_steps > 0 else max(1, math.ceil(hp.epochs * per_epoch))
    opt = build_optimizer(model, "adamw", lr=hp.lr, weight_decay=hp.weight_decay, eps=hp.adam_eps)
    sched = build_scheduler(opt, int(hp.warmup_ratio * total), total, "linear")
    precision = _precision(info.device, hp.amp)
    scaler = grad_scaler(info.device, precision)

    def loss_fn(m, batch):
        out = m(**{k: v.to(info.device) for k, v in batch.items()})
        total, aux = training_loss(out)       # aux losses are trained on, never reported as the loss
        stats = {"loss": out.loss.detach(), **{f"aux/{k}": v.detach() / hp.grad_accum for k, v in aux.items()}}
        return total / hp.grad_accum, stats

    step, epoch, t0 = 0, 0, time.time()
    loss_sum, loss_n = 0.0, 0
    bar = progress(total=total, desc=f"finetune {prep.spec.name} seed {seed}", unit="step", enabled=info.is_main)
    aux_sum: dict[str, float] = {}
    while step < total:
        sampler.set_epoch(epoch)
        batches = iter(loader)
        while step < total:
            micro = list(itertools.islice(batches, hp.grad_accum))
            if len(micro) < hp.grad_accum:   # an epoch's incomplete tail is dropped
                break
            stats = train_step(ddp, micro, loss_fn, opt, sched, scaler, device=info.device,
                               precision=precision, max_grad_norm=hp.max_grad_norm or None)
            loss_sum += float(stats["loss"]) / hp.grad_accum
            for k, v in stats.items():
                if k.startswith("aux/"):
                    aux_sum[k] = aux_sum.get(k, 0.0) + float(v)
            loss_n += 1
            step += 1
            bar.update(1)
            if step % hp.log_every == 0 or step == total:
                bar.set_postfix(loss=f"{loss_sum / max(1, loss_n):.4f}")
            if ctx is not None and (step % hp.log_every == 0 or step == total) and info.is_main:
                ctx.log_metrics({f"seed{seed}/train_loss": loss_sum / max(1, loss_n),
                                 f"seed{seed}/lr": sched.get_last_lr()[0],
                                 **{f"seed{seed}/{k}": v / max(1, loss_n) for k, v in aux_sum.items()}}, step=step)
                loss_sum, loss_n = 0.0, 0
                aux_sum.clear()
        epoch += 1
    bar.close()
    model.eval()
    if ctx is not None and info.is_main:
        ctx.log_metrics({f"seed{seed}/train_seconds": time.time() - t0})
    # only deterministic numbers go into the result (same params + seed => same file)
    return model, {"train_steps": step, "train_examples": len(prep.train)}


def _aggregate(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [k for k in per_seed[0] if k != "seed" and isinstance(per_seed[0][k], (int, float))
            and all(isinstance(r.get(k), (int, float)) for r in per_seed)]
    agg = {}
    for k in keys:
        vals = [float(r[k]) for r in per_seed]
        agg[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return agg


def run_task(task: str, init: str | os.PathLike | None, hp: FinetuneHP | dict | None, seeds: list[int] | int, *,
             fusion: str = "last", fusion_kwargs: dict | None = None, data_root: str | os.PathLike = "data/tasks",
             ctx=None, on_trained: Callable[[int, torch.nn.Module, Any], dict] | None = None,
             data=None, model_name: str | None = None, model_builder: ModelBuilder | None = None,
             tokenizer=None) -> dict[str, Any]:
    """Fine-tune `init` on `task` once per seed; evaluate; aggregate over seeds.

    model_builder(spec, init, hp) -> nn.Module: any task model instead of the BERT heads
    (see the module doc); seeded like ours, built once per seed. tokenizer: a tokenizer
    object or folder (default: the one saved with `init`); needed when init is None.

    data: a DatasetDict in the task's schema to use instead of ``load_prepared(task,
    data_root)`` (tests, real-data benchmarks). model_name: the ``model`` field of the
    result (default: the checkpoint name or folder name).
    on_trained(seed, model, eval_loader) -> dict: called after each seed with the model
    in eval mode and a DataLoader over the first evaluation split's tokenised batches
    (input_ids / attention_mask / token_type_ids); its metrics join that seed's entry.
    """
    from .. import metrics
    from ..data.registry import get_task
    from ..tokenization import load_tokenizer

    spec = get_task(check_task(task))
    hp = hp if isinstance(hp, FinetuneHP) else FinetuneHP.model_validate(hp or {})
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty")
    init = None if init is None else str(init)
    if tokenizer is None and init is None:
        raise ValueError(f"run_task({task!r}): pass init (a checkpoint with its tokenizer) or tokenizer=")
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(str(tokenizer if tokenizer is not None else init))
    if model_builder is None:
        from ..models import load_config

        cfg = load_config(init)
        if len(tokenizer) > cfg.vocab_size:
            raise ValueError(f"{init}: tokenizer has {len(tokenizer)} entries but the encoder only {cfg.vocab_size}")
        if hp.max_seq_len > cfg.max_position_embeddings:
            log.warning("%s: max_seq_len %d > the model's %d positions; using %d", init, hp.max_seq_len,
                        cfg.max_position_embeddings, cfg.max_position_embeddings)
            hp = hp.model_copy(update={"max_seq_len": cfg.max_position_embeddings})
    data = data if data is not None else _load_data(task, data_root)
    prep = _Prepared(spec, data, tokenizer, hp)
    pad_id = tokenizer.pad_token_id or 0
    info = dist_utils.init("auto")
    primary = metrics.primary_metric(spec.metric)
    per_seed: list[dict[str, Any]] = []
    for s in seeds:
        model, stats = train_one(prep, init, hp, s, fusion=fusion, fusion_kwargs=fusion_kwargs, ctx=ctx,
                                 pad_id=pad_id, info=info, model_builder=model_builder)
        row: dict[str, Any] = {"seed": s, **_evaluate(model, prep, hp, info.device, pad_id), **stats}
        if on_trained is not None:
            first = next(iter(prep.eval.values()))
            loader = glue_data.make_loader(first, hp.eval_batch_size, pad_id=pad_id, keys=glue_data.MODEL_INPUTS)
            model.eval()
            extra = on_trained(s, model, loader) or {}
            row.update(extra)
        if ctx is not None and info.is_main:
            ctx.log_metrics({f"seed{s}/{k}": v for k, v in row.items()
                             if k != "seed" and isinstance(v, (int, float))})
        log.info("finetune %s on %s seed %d: %s=%.4f", model_name or _model_name(init or "custom"), task, s,
                 primary, row[primary])
        per_seed.append(row)
        del model
    agg = _aggregate(per_seed)
    return {"task": task, "model": model_name or _model_name(init or "custom"), "init": init, "metric": primary,
            "mean": agg[primary]["mean"], "std": agg[primary]["std"], "n_seeds": len(per_seed),
            "seeds": per_seed, "aggregate": agg}


# ------------------------------------------------------------------------ stage
def run(params: FinetuneParams, ctx, model: str, task: str) -> dict:
    """DVC stage entry (``finetune@<model>-<task>`` / ``finetune_ref@<model>-<task>``)."""
    if task not in params.tasks:
        raise ValueError(f"task {task!r} is not in finetune.tasks {params.tasks}")
    init = params.init_for(model)
    if model in params.models and not Path(init).is_dir():
        from ..errors import DataMissingError

        raise DataMissingError(f"{init}: pre-trained model {model!r} not found (run the pretrain stage)")
    from ..data.registry import get_task
    from ..tracking.datasets import log_inputs, prepared_inputs

    spec = get_task(task)
    log_inputs(ctx, lambda: prepared_inputs(task, params.data_root, [spec.train_split, *spec.eval_splits]))
    res = run_task(task, init, params.hp_for(task, model), params.seeds, fusion=params.fusion,
                   fusion_kwargs=params.fusion_kwargs or None, data_root=params.data_root, ctx=ctx,
                   model_name=model)
    from ..data import prepared_source

    # provenance for the report: which data (expected ranges are real-data ranges). Not the profile:
    # a stage whose effective params are the same in two profiles is not rerun on a switch.
    res.update(data_source=prepared_source(task, params.data_root))
    return res

