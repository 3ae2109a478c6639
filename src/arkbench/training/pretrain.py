"""MLM pre-training of any encoder variant: the `pretrain` DVC stage.

    python stages/pretrain.py --variant bert            # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 stages/pretrain.py --variant bert   # DDP

Params (`pretrain:` in params.yaml, schema :class:`PretrainParams`): `model` holds
the EncoderConfig fields of the scale (vocab_size comes from the tokenizer),
`variants` maps a variant name to EncoderConfig overrides (`bert: {}`,
`sparse_nodiag: {mixer_kwargs: {biases: [{name: diagonal}]}}`, ...). Overrides are
validated -- keys, types, and by building the model on the meta device -- when the
params are read, so a bad variant fails before any work, naming
`pretrain.variants.<name>.<key>`.

Batching: `batch_size` is the *global* number of sequences per optimizer step;
each of `world_size` ranks runs `grad_accum` micro-batches of
`batch_size / (world_size * grad_accum)`. The masked global batch of step s is a
pure function of (seed, s) (see :mod:`arkbench.training.mlm`), every rank takes
its slice, and each micro-batch's loss is weighted by its share of the global
batch's masked tokens -- so the update is the same for any world size and
accumulation split (up to float summation order), and resuming needs only the step.

Outputs (rank 0): `models/pretrain/<variant>/` (save_pretrained + tokenizer),
`plots/pretrain/<variant>.csv` (step, loss, mlm_acc, lr), checkpoints in
`checkpoints/pretrain/<variant>/step_*.pt` (atomic, last K kept; a rerun resumes
from the newest one whose params fingerprint matches).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from ..config import Section, section
from ..models import EncoderConfig, MaskedLM, save_pretrained
from ..utils import atomic_dir, atomic_write_text
from . import checkpoint as ckpt
from . import distributed as dist_utils
from .loop import autocast, grad_scaler, mfu, resolve_precision, train_step
from .mlm import (DROPOUT, VAL_MASK, BlockSampler, Masker, derive_seed, global_batch, pack_blocks,
                  shard, step_generator, tokenize_texts)
from .optim import build_optimizer, build_scheduler

log = logging.getLogger("arkbench.pretrain")

_ENC_FIELDS = tuple(EncoderConfig.__dataclass_fields__)
_ENC_ADAPTER = TypeAdapter(EncoderConfig)


# A variant may also name a fusion of all layers' outputs for the MLM head (the
# over-smoothing paper's fusion "optionally during pre-training"): {fusion: gate, fusion_kwargs: {...}}.
FUSION_KEYS = ("fusion", "fusion_kwargs")


def split_fusion(overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return str(overrides.get("fusion", "last")), dict(overrides.get("fusion_kwargs") or {})


def check_encoder_config(base: dict[str, Any], overrides: dict[str, Any], where: str,
                         base_where: str = "pretrain.model") -> EncoderConfig:
    """EncoderConfig(**base, **overrides), or ValueError naming `<where>.<key>`.

    Checks unknown keys, types, EncoderConfig's own rules, then builds MaskedLM on
    the meta device (no memory, no init cost) so that unknown mixers, attention
    biases or bad mixer kwargs fail here too.
    """
    if not isinstance(overrides, dict):
        raise ValueError(f"{where} must be a mapping of EncoderConfig fields, got {overrides!r}")
    fusion, fusion_kwargs = split_fusion(overrides)
    overrides = {k: v for k, v in overrides.items() if k not in FUSION_KEYS}
    for k in overrides:
        if k not in _ENC_FIELDS:
            raise ValueError(f"{where}.{k}: unknown EncoderConfig key; allowed: {', '.join(_ENC_FIELDS)}")
        if k == "vocab_size":
            raise ValueError(f"{where}.vocab_size: set by the tokenizer (use pretrain.vocab_size "
                             "with tokenizer: train)")
    merged = {**base, **overrides}
    try:
        cfg = _ENC_ADAPTER.validate_python(merged)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else None
        owner = where if key is None or key in overrides else base_where
        loc = f"{owner}.{key}" if key else owner
        shown = f" = {merged[key]!r}" if key in merged else ""
        raise ValueError(f"{loc}{shown}: {err['msg']}") from None
    try:
        with torch.device("meta"):
            MaskedLM(cfg, fusion=fusion, fusion_kwargs=fusion_kwargs)
    except Exception as e:  # noqa: BLE001 - any construction error is a params error here
        raise ValueError(f"{where}: the encoder cannot be built: {type(e).__name__}: {e}") from None
    return cfg


@section("pretrain")
class PretrainParams(Section):
    matrix_keys = ("variants",)   # dvc.yaml foreach list
    # -- model ---------------------------------------------------------------------
    model: dict[str, Any] = Field(default_factory=lambda: dict(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256, max_position_embeddings=64))
    variants: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"bert": {}})
    # -- data ----------------------------------------------------------------------
    tokenizer: str = "bert-base-uncased"      # bert-base-uncased | train | a tokenizer folder
    vocab_size: int = Field(8000, ge=50)      # WordPiece size when tokenizer: train
    corpus: str = "prepared"                  # prepared (download stage) | embedded | a folder
    data_root: str = "data/tasks"             # where the download stage writes prepared tasks
    max_documents: int | None = Field(None, ge=1)
    seq_len: int = Field(64, ge=8)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    # -- optimisation ----------------------------------------------------------------
    batch_size: int = Field(32, ge=1)         # global sequences per optimizer step
    grad_accum: int = Field(1, ge=1)
    max_steps: int = Field(300, ge=1)
    optimizer: Literal["adamw", "lamb"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-6, gt=0)
    warmup_steps: int = Field(30, ge=0)
    schedule: Literal["linear", "polynomial"] = "linear"
    power: float = Field(1.0, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1)
    # -- bookkeeping -----------------------------------------------------------------
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(100, ge=1)
    eval_blocks: int = Field(256, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    log_every: int = Field(10, ge=1)
    curve_every: int = Field(1, ge=1)
    output_dir: str = "models/pretrain"
    plots_dir: str = "plots/pretrain"
    checkpoint_dir: str = "checkpoints/pretrain"

    @field_validator("model")
    @classmethod
    def _check_model(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_encoder_config({}, v, "pretrain.model")
        return v

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, v: dict[str, dict[str, Any]], info) -> dict[str, dict[str, Any]]:
        if not v:
            raise ValueError("pretrain.variants: at least one variant is needed, e.g. {bert: {}}")
        base = info.data.get("model")
        if base is None:  # model itself was invalid; its own error is reported
            return v
        for name, over in v.items():
            check_encoder_config(base, over or {}, f"pretrain.variants.{name}")
        return v

    def encoder_config(self, variant: str, vocab_size: int) -> EncoderConfig:
        over = {k: v for k, v in (self.variants[variant] or {}).items() if k not in FUSION_KEYS}
        return EncoderConfig.from_dict({**self.model, **over, "vocab_size": vocab_size})

    def fusion_for(self, variant: str) -> tuple[str, dict[str, Any]]:
        """The MLM head's input: "last" (BERT) unless the variant names a fusion."""
        return split_fusion(self.variants[variant] or {})


# --- data --------------------------------------------------------------------------------

def load_corpus(p: PretrainParams, seed: int):
    """DatasetDict with a `text` column and train/validation splits."""
    from datasets import Dataset, DatasetDict, load_from_disk

    if p.corpus == "prepared":
        from ..data import load_prepared

        ds = load_prepared("corpus", root=p.data_root)
    elif p.corpus == "embedded":
        from ..data import load_task

        ds = load_task("corpus", "embedded", max_examples=p.max_documents, seed=seed)
    else:
        folder = Path(p.corpus)
        if (folder / "dataset_dict.json").exists():
            ds = load_from_disk(str(folder))
        elif (folder / "train.txt").exists():
            ds = DatasetDict({s: Dataset.from_dict({"text": (folder / f"{s}.txt").read_text().splitlines()})
                              for s in ("train", "validation") if (folder / f"{s}.txt").exists()})
        else:
            from ..errors import DataMissingError

            raise DataMissingError(f"pretrain.corpus = {p.corpus!r}: not 'prepared', 'embedded', a saved "
                                    "DatasetDict folder, or a folder with train.txt/validation.txt")
    for split in ("train", "validation"):
        if split not in ds:
            raise ValueError(f"pretrain corpus {p.corpus!r} has no {split!r} split (has {list(ds)})")
    if p.max_documents is not None and len(ds["train"]) > p.max_documents:
        ds["train"] = ds["train"].select(range(p.max_documents))
    return ds


def build_tokenizer(p: PretrainParams, train_texts, cache: Path, info: dist_utils.DistInfo):
    from ..tokenization import load_tokenizer, train_wordpiece

    if p.tokenizer != "train":
        return load_tokenizer(p.tokenizer)
    # trained once (rank 0), cached beside the checkpoints so a resumed run reuses the same vocab
    if info.is_main and not (cache / "tokenizer.json").exists():
        with atomic_dir(cache) as tmp:
            train_wordpiece(train_texts, vocab_size=p.vocab_size, out_dir=tmp)
    dist_utils.barrier(info)
    return load_tokenizer(cache)


# --- training ------------------------------------------------------------------------------

_NOT_IN_FINGERPRINT = {"checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "eval_blocks",
                       "eval_batch_size", "output_dir", "plots_dir", "checkpoint_dir", "num_threads", "device"}


def code_digest() -> str:
    """Hash of the code that shapes a training run (models, training loops, tokenizer).

    Part of the checkpoint fingerprint: a code change (a loss fix, say) must retrain,
    never resume from a checkpoint the old code wrote.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted([*(root / "models").glob("*.py"), *(root / "training").glob("*.py"), root / "tokenization.py"]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(p: PretrainParams, variant: str, seed: int) -> str:
    """Hash of everything that changes the training trajectory (resume only if equal)."""
    d = {k: v for k, v in p.model_dump(mode="json").items() if k not in _NOT_IN_FINGERPRINT}
    d["variants"] = d["variants"][variant]
    blob = json.dumps({"params": d, "variant": variant, "seed": seed, "code": code_digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    model: torch.nn.Module                     # unwrapped, on its training device
    tokenizer: Any
    curve: list[tuple[int, float, float, float]] = field(default_factory=list)
    resumed_from: int = 0


def _evaluate(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, info, precision) -> tuple[float, float]:
    """(loss, mlm_acc) over this rank's rows, summed over ranks (every rank gets the totals)."""
    model.eval()
    tot = torch.zeros(3, dtype=torch.float64, device=info.device)
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            x = inputs[i:i + batch_size].to(info.device)
            y = labels[i:i + batch_size].to(info.device)
            n = (y != -100).sum()
            if n == 0:
                continue
            with autocast(info.device, precision):
                out = model(input_ids=x, labels=y)
            tot += torch.stack([out.loss.double() * n, (out.logits.argmax(-1) == y[y != -100]).sum().double(),
                                n.double()])
    tot = dist_utils.all_reduce_mean(tot, info) * info.world_size
    loss_sum, correct, n = tot.tolist()
    model.train()
    return loss_sum / max(n, 1), correct / max(n, 1)


# figures that depend on the machine and its load, not on params + seed
WALL_CLOCK_METRICS = frozenset({"tokens_per_s", "mfu"})


def train(p: PretrainParams, variant: str, *, seed: int = 0, corpus=None,
          log_metrics: Callable[[dict, int], None] | None = None, workdir: str | Path = ".",
          progress: bool = True) -> TrainResult:
    """Pre-train `variant`; resumes from its newest matching checkpoint. See the module doc."""
    if variant not in p.variants:
        raise ValueError(f"pretrain: unknown variant {variant!r}; params.yaml pretrain.variants has "
                         f"{', '.join(p.variants)}")
    info = dist_utils.init(p.device)
    if p.num_threads:
        torch.set_num_threads(p.num_threads)
    world = info.world_size
    if p.batch_size % (world * p.grad_accum):
        raise ValueError(f"pretrain.batch_size = {p.batch_size} is not divisible by world_size ({world}) "
                         f"x grad_accum ({p.grad_accum})")
    micro = p.batch_size // (world * p.grad_accum)
    precision = resolve_precision(p.precision, info.device)
    work = Path(workdir)
    out_dir = work / p.output_dir / variant
    ckpt_dir = work / p.checkpoint_dir / variant
    plot_path = work / p.plots_dir / f"{variant}.csv"
    fp = fingerprint(p, variant, seed)

    # -- data: tokenise, pack, fixed validation masks
    ds = corpus if corpus is not None else load_corpus(p, seed)
    tok = build_tokenizer(p, ds["train"]["text"], ckpt_dir / f"tokenizer-{fp}", info)
    train_blocks = pack_blocks(tokenize_texts(ds["train"]["text"], tok), p.seq_len, tok.cls_token_id,
                               tok.sep_token_id)
    val_blocks = pack_blocks(tokenize_texts(ds["validation"]["text"], tok), p.seq_len, tok.cls_token_id,
                             tok.sep_token_id)[: p.eval_blocks]
    masker = Masker.from_tokenizer(tok, p.mlm_probability)
    val_x, val_y = masker(val_blocks, step_generator(seed, 0, VAL_MASK))
    val_x, val_y = val_x[info.rank::world], val_y[info.rank::world]
    sampler = BlockSampler(len(train_blocks), seed)

    # -- model, optimiser, schedule (same init on every rank: same seed)
    cfg = p.encoder_config(variant, len(tok))
    if cfg.max_position_embeddings < p.seq_len:
        raise ValueError(f"pretrain.seq_len = {p.seq_len} > model max_position_embeddings = "
                         f"{cfg.max_position_embeddings}")
    torch.manual_seed(seed)
    fusion, fusion_kwargs = p.fusion_for(variant)
    model = MaskedLM(cfg, fusion=fusion, fusion_kwargs=fusion_kwargs).to(info.device)
    opt = build_optimizer(model, p.optimizer, p.lr, p.weight_decay, betas=tuple(p.adam_betas), eps=p.adam_eps)
    sched = build_scheduler(opt, p.warmup_steps, p.max_steps, p.schedule, p.power)
    scaler = grad_scaler(info.device, precision)
    n_params = sum(t.numel() for t in model.parameters())   # tied decoder counted once
    flops_per_token = 6 * (n_params - sum(m.weight.numel() for m in (
        model.encoder.embeddings.word, model.encoder.embeddings.position, model.encoder.embeddings.token_type)))

    # -- resume
    start, curve, train_time, extra = 0, [], 0.0, {}
    ckpt.clean_temp(ckpt_dir) if info.is_main else None
    last = ckpt.latest(ckpt_dir)
    if last is not None:
        state = ckpt.load(last, map_location=info.device)
        if state.get("extra", {}).get("fingerprint") == fp:
            start, extra = ckpt.restore(state, model, opt, sched, scaler)
            curve = [tuple(r) for r in extra.get("curve", [])]
            train_time = float(extra.get("train_time", 0.0))
            log.info("resuming %s from %s (step %d)", variant, last, start)
        else:
            log.warning("ignoring checkpoints in %s: params changed since they were written", ckpt_dir)
            dist_utils.barrier(info)
            if info.is_main:
                for _, old in ckpt.list_checkpoints(ckpt_dir):
                    old.unlink(missing_ok=True)
        del state
    dist_utils.barrier(info)
    ddp_model = dist_utils.wrap(model, info)

    def loss_fn(m, batch):
        x, y, n_total = batch
        sel = y != -100
        n = sel.sum()
        out = m(input_ids=x, labels=y)
        # weight = this micro-batch's share of the global batch's masked tokens, x world
        # (DDP averages gradients over ranks): the summed update is the global-batch mean
        weight = n.float() / n_total * world
        correct = (out.logits.argmax(-1) == y[sel]).sum()
        return out.loss * weight, {"loss_sum": out.loss.detach().float() * n, "correct": correct, "n": n}

    def save_checkpoint(step: int) -> None:
        if info.is_main:
            state = ckpt.training_state(model, opt, sched, scaler, step=step, extra={
                "fingerprint": fp, "variant": variant, "samples_seen": step * p.batch_size,
                "curve": curve, "train_time": train_time})
            ckpt.save(ckpt_dir, step, state, keep_last=p.keep_checkpoints)
        dist_utils.barrier(info)

    from ..progress import progress as progress_bar

    bar = progress_bar(total=p.max_steps, initial=start, desc=f"pretrain {variant}", unit="step",
                       enabled=progress and info.is_main)
    window = torch.zeros(3, dtype=torch.float64)
    window_t0, window_steps = time.perf_counter(), 0
    tokens_per_step = p.batch_size * p.seq_len
    val_loss = val_acc = float("nan")
    for step in range(start, p.max_steps):
        t0 = time.perf_counter()
        x, y = global_batch(train_blocks, sampler, masker, seed, step, p.batch_size)
        n_total = (y != -100).sum().clamp_min(1).to(info.device)
        micro_batches = [(shard(x, m, info.rank, world, micro).to(info.device, non_blocking=True),
                          shard(y, m, info.rank, world, micro).to(info.device, non_blocking=True), n_total)
                         for m in range(p.grad_accum)]
        torch.manual_seed(derive_seed(seed, step, DROPOUT, info.rank))   # dropout: a function of the step
        stats = train_step(ddp_model, micro_batches, loss_fn, opt, sched, scaler, device=info.device,
                           precision=precision, max_grad_norm=p.max_grad_norm)
        tot = torch.stack([torch.as_tensor(stats[k], device=info.device).double()
                           for k in ("loss_sum", "correct", "n")])
        tot = (dist_utils.all_reduce_mean(tot, info) * world).cpu()      # also syncs the device
        train_time += time.perf_counter() - t0
        loss, acc = (tot[0] / tot[2].clamp_min(1)).item(), (tot[1] / tot[2].clamp_min(1)).item()
        done = step + 1
        if done % p.curve_every == 0 or done == p.max_steps:
            curve.append((done, loss, acc, float(stats["lr"])))
        window += tot
        window_steps += 1
        bar.update(1)
        if done % p.log_every == 0 or done == p.max_steps:
            dt = time.perf_counter() - window_t0
            tps = window_steps * tokens_per_step / max(dt, 1e-9)
            wl, wa = (window[0] / window[2].clamp_min(1)).item(), (window[1] / window[2].clamp_min(1)).item()
            bar.set_postfix(loss=f"{wl:.3f}", acc=f"{wa:.3f}", tok_s=f"{tps:.0f}")
            if info.is_main and log_metrics is not None:
                m = {"train/loss": wl, "train/mlm_acc": wa, "train/lr": float(stats["lr"]),
                     "train/grad_norm": float(stats["grad_norm"]), "train/tokens_per_s": tps}
                u = mfu(flops_per_token, tps, info.device)
                if u is not None:
                    m["train/mfu"] = u
                log_metrics(m, done)
            window.zero_()
            window_t0, window_steps = time.perf_counter(), 0
        if done % p.eval_every == 0 and done != p.max_steps:
            val_loss, val_acc = _evaluate(model, val_x, val_y, p.eval_batch_size, info, precision)
            if info.is_main and log_metrics is not None:
                log_metrics({"val/loss": val_loss, "val/mlm_acc": val_acc}, done)
            window_t0 = time.perf_counter()   # keep eval time out of tokens/s
        if done % p.checkpoint_every == 0 or done == p.max_steps:
            save_checkpoint(done)
            window_t0 = time.perf_counter()
    bar.close()

    val_loss, val_acc = _evaluate(model, val_x, val_y, p.eval_batch_size, info, precision)
    steps_run = p.max_steps
    tokens_per_s = steps_run * tokens_per_step / train_time if train_time > 0 else float("nan")
    tail = [r[1] for r in curve[-10:]]
    metrics: dict[str, Any] = {
        "final_loss": sum(tail) / len(tail) if tail else float("nan"),   # mean of the last 10 curve points
        "val_loss": val_loss, "val_mlm_acc": val_acc, "tokens_per_s": tokens_per_s,
        "steps": steps_run, "params": n_params,
    }
    u = mfu(flops_per_token, tokens_per_s, info.device)
    if u is not None:
        metrics["mfu"] = u
    if info.is_main:
        if log_metrics is not None:
            log_metrics({"val/loss": val_loss, "val/mlm_acc": val_acc}, p.max_steps)
        with atomic_dir(out_dir) as tmp:
            # the model folder is a dep of later stages: only deterministic figures go into it
            # (tokens/s and MFU stay in the metrics file and MLflow), so the same params and seed
            # give a byte-identical folder and DVC does not rerun its dependents
            kept = {k: v for k, v in metrics.items() if k not in WALL_CLOCK_METRICS}
            save_pretrained(model, tmp, extra={"variant": variant, "fingerprint": fp, "metrics": kept,
                                               "seq_len": p.seq_len, "tokenizer": p.tokenizer})
            tok.save_pretrained(str(tmp))
        rows = ["step,loss,mlm_acc,lr"] + [f"{s},{lo!r},{a!r},{lr!r}" for s, lo, a, lr in curve]
        atomic_write_text(plot_path, "\n".join(rows) + "\n")
    dist_utils.barrier(info)
    dist_utils.shutdown(info)
    return TrainResult(metrics, model, tok, curve, resumed_from=start)


def run(params: PretrainParams, ctx, variant: str | None = None, **matrix) -> dict[str, Any]:
    """Stage entry point (`stage_main("pretrain", run)`): `--variant <name>` picks the variant."""
    if matrix:
        raise SystemExit(f"pretrain: unexpected arguments {sorted(matrix)}; only --variant <name>")
    if variant is None:
        if len(params.variants) != 1:
            raise SystemExit(f"pretrain: pass --variant, one of {', '.join(params.variants)}")
        variant = next(iter(params.variants))
    if variant not in params.variants:
        raise SystemExit(f"pretrain: unknown variant {variant!r}; params.yaml pretrain.variants has "
                         f"{', '.join(params.variants)}")
    from ..tracking.datasets import log_inputs, prepared_inputs

    if params.corpus == "prepared":
        log_inputs(ctx, lambda: prepared_inputs("corpus", params.data_root))
    return train(params, variant, seed=ctx.seed, log_metrics=ctx.log_metrics).metrics
