"""Params sections and `run` functions of the SparseBERT DVC stages.

    sparsebert_warm     stages/sparsebert_warm.py   the tokenizer and the dense warm start every variant
                        starts from (warm_start.steps MLM steps; 0 = none: variants start from a fresh init)
                        -> models/sparsebert/warm/ (tokenizer/, model/), metrics/sparsebert/warm.json
    sparsebert_grid     stages/sparsebert_grid.py --family <f>   one family of mask variants:
                        baselines (dense, no_diagonal) | patterns (six fixed) | dam_u | dam_s (one per lambda)
                        -> models/sparsebert/<family>/ (models, masks/ learned masks),
                           plots/sparsebert/<family>/ (heat maps), metrics/sparsebert/grid/<family>.json
    sparsebert_summary  summary.py (its own module: the summary stage loads no model code)

Pre-training reads the prepared corpus (the download stage: generated text in smoke,
WikiText-2 under cpu) and fine-tunes the prepared GLUE tasks.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arkbench.config import Section, section

log = logging.getLogger(__name__)


class DAMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tau_start: float = Field(1.0, gt=0)                   # official: tau = 1, constant
    tau_end: float = Field(1.0, gt=0)
    schedule: Literal["constant", "linear", "exponential"] = "constant"
    normalize: Literal["count", "mean"] = "count"         # official: unnormalised count (see masks.py)
    init_mean: float = 0.0                                # official: alpha ~ 1e-3 N(0, 1)
    init_std: float = Field(1e-3, ge=0)
    symmetric: bool = False                               # DAM_u only
    scale: float = Field(1e4, gt=0)                       # official: (1 - M) * -10000 on the logits
    lr_scale: float = Field(1.0, gt=0)                    # mask-logit lr / model lr (official: 1)


class WarmStart(BaseModel):
    """A dense MLM pre-training every variant starts from (stage 1, stage 2, fixed patterns, baselines)."""
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(8, ge=0)                           # 0: no warm start (every variant from a fresh init)
    lr: float | None = Field(None, gt=0)                  # None: pretrain.lr


@section("sparsebert_grid")
class GridParams(Section):
    matrix_keys = ("families",)
    families: list[Literal["baselines", "patterns", "dam_u", "dam_s"]] = Field(
        default_factory=lambda: ["baselines", "patterns", "dam_u", "dam_s"])
    patterns: list[str] = Field(default_factory=lambda: ["strided", "fixed", "longformer", "logsparse", "bigbird",
                                                         "star"])
    pattern_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    lambdas: list[float] = Field(default_factory=lambda: [1e-4, 1e-1])
    dam: DAMOptions = Field(default_factory=lambda: DAMOptions(lr_scale=10.0))   # = params.yaml (smoke)
    model: dict[str, Any] = Field(default_factory=lambda: dict(
        hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_position_embeddings=32))
    pretrain: dict[str, Any] = Field(default_factory=dict)   # PretrainParams fields (steps, batch, lr, seq_len, ...)
    search_steps: int | None = Field(None, ge=1)              # stage-1 steps; None = pretrain.max_steps
    warm_start: WarmStart = Field(default_factory=WarmStart)
    stage2_init: Literal["start", "continue"] = "start"   # start: the warm start (or a fresh init), as every variant
    importance_points: int = Field(4, ge=1)
    snapshot_fractions: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    band: int = Field(4, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0])
    seeds_for: dict[str, list[int]] = Field(default_factory=dict)
    tasks: list[str] = Field(default_factory=lambda: ["rte"])
    hp: dict[str, Any] = Field(default_factory=dict)
    task_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    data_root: str = "data/tasks"
    models_dir: str = "models/sparsebert"
    plots_dir: str = "plots/sparsebert"
    metrics_dir: str = "metrics/sparsebert"

    @field_validator("patterns")
    @classmethod
    def _known_patterns(cls, v):
        from .patterns import PAPER_SPARSITY

        bad = [n for n in v if n not in PAPER_SPARSITY]
        if bad:
            raise ValueError(f"sparsebert_grid.patterns: unknown {bad}; allowed: {', '.join(PAPER_SPARSITY)}")
        return v

    @field_validator("pattern_params")
    @classmethod
    def _pattern_params(cls, v):
        from .patterns import build_pattern

        for name, kw in v.items():
            try:
                build_pattern(name, 8, **kw)
            except (KeyError, ValueError) as e:
                raise ValueError(f"sparsebert_grid.pattern_params.{name}: {e}") from None
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        from arkbench.training.pretrain import check_encoder_config

        check_encoder_config({}, v, "sparsebert_grid.model")
        return v

    @field_validator("pretrain")
    @classmethod
    def _pretrain(cls, v, info):
        from arkbench.training.pretrain import PretrainParams

        bad = [k for k in v if k in ("model", "variants")]
        if bad:
            raise ValueError(f"sparsebert_grid.pretrain.{bad[0]}: set the encoder under sparsebert_grid.model")
        try:
            p = PretrainParams(**v)
        except Exception as e:  # noqa: BLE001 - re-raised naming the section
            raise ValueError(f"sparsebert_grid.pretrain: {e}") from None
        m = info.data.get("model") or {}
        if p.seq_len > m.get("max_position_embeddings", 512):
            raise ValueError(f"sparsebert_grid.pretrain.seq_len = {p.seq_len} > model.max_position_embeddings")
        return v

    @field_validator("hp")
    @classmethod
    def _hp(cls, v):
        from arkbench.training.finetune import FinetuneHP

        FinetuneHP.model_validate(v)
        return v

    def pretrain_params(self):
        from arkbench.training.pretrain import PretrainParams

        return PretrainParams(**{**self.pretrain, "model": self.model})

    def warm_dir(self) -> Path:
        return Path(self.models_dir) / "warm"

    def hp_for(self, task: str):
        from arkbench.training.finetune import FinetuneHP

        return FinetuneHP.model_validate({**self.hp, **self.task_overrides.get(task, {})})


def _corpus(p: GridParams, ctx):
    """(corpus, seed): the stage's seed (0 without a stage context) is the one
    the corpus was split with, and the one the warm start trains with."""
    from arkbench.training.pretrain import load_corpus

    pp = p.pretrain_params()
    if pp.num_threads:
        import torch

        torch.set_num_threads(pp.num_threads)
    seed = ctx.seed if ctx is not None else 0
    return load_corpus(pp, seed), seed


def run_warm(p: GridParams, ctx=None) -> dict[str, Any]:
    """The tokenizer every family uses and the dense warm start (models/sparsebert/warm/)."""
    from .grid import warm_start

    corpus, seed = _corpus(p, ctx)
    meta = warm_start(p, corpus, seed=seed,
                      log_metrics=None if ctx is None else ctx.log_metrics)
    from arkbench.outputs import write_json

    write_json(Path(p.metrics_dir) / "warm.json", meta)
    return {k: v for k, v in meta.items() if isinstance(v, (int, float))}


def run_grid(p: GridParams, ctx=None, family: str | None = None) -> dict[str, Any]:
    from .grid import load_warm_start, run_family

    if family not in p.families:
        raise SystemExit(f"sparsebert_grid: --family {family!r} is not in sparsebert_grid.families {p.families}")
    corpus, _ = _corpus(p, ctx)
    tok, init_state, warm = load_warm_start(p)
    res = run_family(p, family, corpus=corpus, tokenizer=tok, init_state=init_state, warm=warm,
                     log_metrics=None if ctx is None else ctx.log_metrics)
    if ctx is not None:
        for f in sorted((Path(p.plots_dir) / family).glob("*.png")):
            ctx.log_artifact(f)          # heat maps of the learned masks in MLflow
        for f in sorted((Path(p.models_dir) / family / "masks").glob("*.pt")):
            ctx.log_artifact(f)
    return {name: {"mlm_loss": v["mlm_loss"], "sparsity": v["sparsity"], "avg": v["avg"]}
            for name, v in res["variants"].items()}
