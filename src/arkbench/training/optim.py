"""Optimisers and learning-rate schedules shared by pre-training and fine-tuning.

- AdamW (torch) with BERT's no-decay rule (biases and LayerNorm weights);
- LAMB (You et al. 2020), used by the paper profile for large-batch pre-training;
- warm-up then linear or polynomial decay (BERT / NVIDIA BERT).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class Lamb(Optimizer):
    """LAMB: Adam moments, update rescaled per tensor by the trust ratio ||w|| / ||update||."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.01):
        if lr <= 0:
            raise ValueError(f"LAMB lr={lr} must be > 0")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["m"], state["v"], state["step"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None) -> list[dict]:
    """BERT's rule: no weight decay on biases, LayerNorm weights and 1-d parameters.

    A module may claim its own direct parameters for a group of their own by defining
    ``optimizer_group = {"name": ..., "weight_decay": ..., "lr_scale": ...}`` (SparseBERT's
    mask logits: no decay); modules sharing a name share the group, whose lr is
    ``lr * lr_scale`` when `lr` is given. Empty groups are dropped.
    """
    special: dict[str, dict] = {}
    claimed: set[int] = set()
    for m in model.modules():
        opts = getattr(m, "optimizer_group", None)
        if not opts:
            continue
        own = [p for p in m.parameters(recurse=False) if p.requires_grad and id(p) not in claimed]
        if not own:
            continue
        g = special.setdefault(opts["name"], {"params": [], "name": opts["name"],
                                              "weight_decay": float(opts.get("weight_decay", 0.0))})
        if lr is not None:
            g["lr"] = lr * float(opts.get("lr_scale", 1.0))
        g["params"] += own
        claimed.update(id(p) for p in own)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in claimed:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return groups + list(special.values())


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 1e-4, weight_decay: float = 0.01,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6) -> Optimizer:
    groups = param_groups(model, weight_decay, lr)
    if name == "adamw":
        # fused: one kernel per step instead of ~10 small ops per tensor. torch only picks
        # it by itself on CUDA; on CPU the per-tensor loop dominated the tiny smoke
        # encoders' steps (oversmoothing_fusion@cola trained in 8.1 s instead of 13.2 s)
        params = [p for g in groups for p in g["params"]]
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps)
    raise ValueError(f"optimizer {name!r}: allowed 'adamw' or 'lamb'")


def lr_lambda(step: int, warmup_steps: int, total_steps: int, schedule: str = "linear",
              power: float = 1.0) -> float:
    """Multiplier on the peak lr at `step` (0-based): linear warm-up, then decay to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "polynomial":
        return (1.0 - progress) ** power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr schedule {schedule!r}: allowed constant, linear, polynomial, cosine")


def build_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int,
                    schedule: str = "linear", power: float = 1.0) -> LambdaLR:
    # validate the name now: at the first post-warm-up step (step 0 returns in the warm-up branch)
    lr_lambda(warmup_steps, warmup_steps, total_steps, schedule, power)
    return LambdaLR(optimizer, lambda s: lr_lambda(s, warmup_steps, total_steps, schedule, power))
