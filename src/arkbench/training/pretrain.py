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
from the newest one whose fingerprint -- params, seed, and the source of every
module the model is built from, papers included -- matches).

The loop itself is :func:`arkbench.training.mlm_loop.mlm_loop` (callbacks for
schedules, proxy training, logging); :func:`train` adds corpus, tokenizer, model
and outputs around it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from ..config import Section, section
from ..models import EncoderConfig, MaskedLM, save_pretrained
from ..utils import atomic_dir, atomic_write_text
from . import checkpoint as ckpt
from . import distributed as dist_utils
from .loop import mfu
from .mlm_loop import Callback, mlm_loop, prepare_mlm_data

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
    batch_size: int = Field(16, ge=1)         # global sequences per optimizer step
    grad_accum: int = Field(1, ge=1)
    max_steps: int = Field(120, ge=1)
    optimizer: Literal["adamw", "lamb"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-6, gt=0)
    warmup_steps: int = Field(12, ge=0)
    schedule: Literal["linear", "polynomial"] = "linear"
    power: float = Field(1.0, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1)
    # -- bookkeeping -----------------------------------------------------------------
    checkpoint_every: int = Field(40, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(40, ge=1)
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
# code that shapes a run besides the model's own modules (which ckpt.code_digest finds itself)
TRAINING_CODE = ("arkbench.training", "arkbench.tokenization")


def code_digest(model: torch.nn.Module | None = None, code=TRAINING_CODE) -> str:
    """Hash of the code that shapes a training run: every arkbench package the model is
    built from (models/, a paper's folder) plus the training loops and the tokenizer.

    Part of the checkpoint fingerprint: a code change (a loss fix, an edited paper
    mixer) must retrain, never resume from a checkpoint the old code wrote.
    """
    return ckpt.code_digest(model, code)


def _setup(p: PretrainParams, variant: str, seed: int) -> dict[str, Any]:
    d = {k: v for k, v in p.model_dump(mode="json").items() if k not in _NOT_IN_FINGERPRINT}
    d["variants"] = d["variants"][variant]
    return {"params": d, "variant": variant, "seed": seed}


def build_model(p: PretrainParams, variant: str, vocab_size: int) -> torch.nn.Module:
    """The variant's MaskedLM (EncoderConfig from params; fusion for the MLM head if named)."""
    fusion, fusion_kwargs = p.fusion_for(variant)
    return MaskedLM(p.encoder_config(variant, vocab_size), fusion=fusion, fusion_kwargs=fusion_kwargs)


def fingerprint(p: PretrainParams, variant: str, seed: int, model: torch.nn.Module | None = None) -> str:
    """Hash of everything that changes the training trajectory (resume only if equal):
    the params, the seed, and the source of every module the model is built from."""
    if model is None:   # which modules the variant uses: build it on the meta device (no memory)
        with torch.device("meta"):
            model = build_model(p, variant, 64)
    return ckpt.fingerprint(_setup(p, variant, seed), model=model, code=TRAINING_CODE,
                            digest=lambda m, c: code_digest(m, c))


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    model: torch.nn.Module                     # unwrapped, on its training device
    tokenizer: Any
    curve: list[tuple[int, float, float, float]] = field(default_factory=list)
    resumed_from: int = 0


# figures that depend on the machine and its load, not on params + seed
WALL_CLOCK_METRICS = frozenset({"tokens_per_s", "mfu"})


def train(p: PretrainParams, variant: str, *, seed: int = 0, corpus=None,
          log_metrics: Callable[[dict, int], None] | None = None, workdir: str | Path = ".",
          progress: bool = True, callbacks: Sequence[Callback] = (),
          model_builder: Callable[[PretrainParams, str, int], torch.nn.Module] | None = None) -> TrainResult:
    """Pre-train `variant`; resumes from its newest matching checkpoint. See the module doc.

    callbacks: :class:`arkbench.training.mlm_loop.Callback` hooks (schedules, logging).
    model_builder(p, variant, vocab_size) -> model: instead of :func:`build_model`.
    """
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
    work = Path(workdir)
    out_dir = work / p.output_dir / variant
    ckpt_dir = work / p.checkpoint_dir / variant
    plot_path = work / p.plots_dir / f"{variant}.csv"

    # -- data: tokenise, pack, fixed validation masks (the vocab depends on params only)
    ds = corpus if corpus is not None else load_corpus(p, seed)
    tok_key = ckpt.fingerprint(_setup(p, variant, seed), code=("arkbench.tokenization",))
    tok = build_tokenizer(p, ds["train"]["text"], ckpt_dir / f"tokenizer-{tok_key}", info)
    data = prepare_mlm_data(ds, tok, p, seed, info)

    # -- model (same init on every rank: same seed)
    cfg = p.encoder_config(variant, len(tok))
    if cfg.max_position_embeddings < p.seq_len:
        raise ValueError(f"pretrain.seq_len = {p.seq_len} > model max_position_embeddings = "
                         f"{cfg.max_position_embeddings}")
    torch.manual_seed(seed)
    model = (model_builder or build_model)(p, variant, len(tok)).to(info.device)
    fp = fingerprint(p, variant, seed, model)

    res = mlm_loop(p, model, data, seed=seed, callbacks=callbacks, ckpt_dir=ckpt_dir, fingerprint=fp,
                   log_metrics=log_metrics, progress=progress, desc=f"pretrain {variant}", info=info,
                   checkpoint_extra={"variant": variant})
    curve = res.curve
    steps_run = p.max_steps
    tokens_per_s = steps_run * p.batch_size * p.seq_len / res.train_time if res.train_time > 0 else float("nan")
    tail = [r[1] for r in curve[-10:]]
    metrics: dict[str, Any] = {
        "final_loss": sum(tail) / len(tail) if tail else float("nan"),   # mean of the last 10 curve points
        "val_loss": res.val_loss, "val_mlm_acc": res.val_acc, "tokens_per_s": tokens_per_s,
        "steps": steps_run, "params": res.n_params,
    }
    u = mfu(res.flops_per_token, tokens_per_s, info.device)
    if u is not None:
        metrics["mfu"] = u
    if info.is_main:
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
    return TrainResult(metrics, model, tok, curve, resumed_from=res.resumed_from)


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
