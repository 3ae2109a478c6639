"""FinetuneHP: the hyper-parameter block of one fine-tuning run, shared by every section
that fine-tunes (finetune, a paper's grid). Light: pydantic only, so validating params
never imports torch.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..config import Section


class FinetuneHP(Section):
    """Hyper-parameters of one fine-tuning run (one task, one seed)."""

    lr: float = Field(2e-5, gt=0)                      # peak learning rate (BERT: 2e-5..5e-5)
    batch_size: int = Field(32, ge=1)                  # per process; x world size under DDP
    eval_batch_size: int = Field(64, ge=1)
    epochs: float = Field(3.0, gt=0)                   # used when max_steps == 0
    max_steps: int = Field(0, ge=0)                    # > 0: train exactly this many optimiser steps
    grad_accum: int = Field(1, ge=1)                   # micro-batches per optimiser step
    warmup_ratio: float = Field(0.1, ge=0, lt=1)       # share of steps with linear warm-up
    weight_decay: float = Field(0.01, ge=0)
    adam_eps: float = Field(1e-6, gt=0)
    max_grad_norm: float = Field(1.0, ge=0)            # 0 = no clipping
    max_seq_len: int = Field(128, ge=8)
    classifier_dropout: float | None = Field(None, ge=0, le=1)   # None = the encoder's dropout
    pooling: Literal["cls", "mean"] = "cls"   # sentence head input: BERT's [CLS] pooler or the token mean
    group_by_length: bool = False                      # length-grouped training batches (less padding)
    # extractive QA
    doc_stride: int = Field(32, ge=1)                  # context tokens shared by consecutive windows (BERT @384: 128)
    max_query_len: int = Field(64, ge=1)
    n_best: int = Field(20, ge=1)
    max_answer_length: int = Field(30, ge=1)
    null_threshold: float = 0.0                        # v2: predict "" if null - best > this
    # data budget (None = all)
    max_train_examples: int | None = Field(None, ge=1)
    max_eval_examples: int | None = Field(None, ge=1)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"   # autocast on GPU only; CPU is fp32
    log_every: int = Field(50, ge=1)
