"""The two-stage protocol (spec §2.5 "Second stage"; the paper's exact protocol is [?]).

    stage 1  pre-train with DAM (dam_u / dam_s biases): alpha and the weights learn together
             (Algorithm 1), lam * ||M||_1 as an aux loss; the mask logits get their own
             optimizer group (no weight decay).
    freeze   keep = 1[alpha > 0] per layer and head  -> bool [L, H, T, T] (saved: masks.pt)
    stage 2  a model whose attention biases are core FixedMask(per_head=True) buffers holding
             that mask: pre-trained with it fixed (from scratch by default, as the fixed
             patterns are: an equal footing; `continue` keeps stage 1's weights), then
             fine-tuned with it fixed.

Fine-tuning never resamples the mask: the stage-2 checkpoint's config names the
"fixed" bias, so the task model loads the binary mask as a persistent buffer and no
Gumbel noise is drawn. The official run_glue.py loads the DAM checkpoint with
strict=False and keeps resampling during fine-tuning (spec §2.5, code caveat); we do
not copy that. tests/test_sparsebert.py checks that the mask is identical across
fine-tuning steps.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from arkbench.models import EncoderConfig, FixedMask

from .dam import dam_modules, learned_masks

FIXED_BIAS = {"name": "fixed", "per_head": True}


def fixed_mask_config(cfg: EncoderConfig) -> EncoderConfig:
    """`cfg` with every attention layer's biases replaced by one per-head FixedMask."""
    if cfg.mixer_names() != ["attention"] * cfg.num_layers:
        raise ValueError(f"sparsebert stage 2 needs attention in every layer, got mixers={cfg.mixers!r}")
    d = copy.deepcopy(cfg.to_dict())
    d["mixer_kwargs"] = {"biases": [dict(FIXED_BIAS)]}
    return EncoderConfig.from_dict(d)


def fixed_masks(model: nn.Module) -> list[FixedMask]:
    return [m for m in model.modules() if isinstance(m, FixedMask) and type(m) is FixedMask]


def apply_masks(model: nn.Module, masks: torch.Tensor) -> None:
    """Write bool [L, H, T, T] into the model's per-head FixedMask of each layer.

    Positions >= T of the [H, P, P] buffers stay as they were (all allowed): train
    the mask at the longest length you will use (our profiles: T = max positions).
    """
    mods = fixed_masks(model)
    if len(mods) != masks.shape[0]:
        raise ValueError(f"apply_masks: {masks.shape[0]} layer masks for {len(mods)} FixedMask layers")
    for m, layer_mask in zip(mods, masks):
        m.set_mask(layer_mask)


def current_masks(model: nn.Module, seq_len: int) -> torch.Tensor:
    """bool [L, H, T, T] the model attends with now: FixedMask buffers, or DAM's keep = 1[alpha > 0]."""
    mods = fixed_masks(model)
    if mods:
        return torch.stack([m.allowed[..., :seq_len, :seq_len].expand(m.num_heads, seq_len, seq_len).cpu()
                            for m in mods])
    return learned_masks(model, seq_len)


def save_masks(path: str | Path, masks: torch.Tensor, meta: dict[str, Any]) -> Path:
    """masks.pt: {"masks": bool [L, H, T, T], **meta}, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"masks": masks.bool().cpu(), **meta}, tmp)
    tmp.replace(path)
    return path


def load_masks(path: str | Path) -> torch.Tensor:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no learned mask (run the DAM search stage first)")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "masks" not in obj or obj["masks"].dim() != 4:
        raise ValueError(f"{path}: expected {{'masks': bool [L, H, T, T], ...}}")
    return obj["masks"].bool()


def freeze_dam(model: nn.Module) -> None:
    """Freeze every DAM layer in place (keep = 1[alpha > 0]; no sampling, no grad, no penalty)."""
    for m in dam_modules(model):
        m.freeze()
