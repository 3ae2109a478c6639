"""Differentiable Attention Mask (DAM), spec §2.5: the sampling maths, schedule and helpers.

Hard Gumbel-sigmoid with a straight-through (ST) gradient, per mask logit alpha:

    M_soft = sigmoid((alpha + G1 - G2) / tau),   G1, G2 ~ Gumbel(0, 1) independent
    M_hard = 1[M_soft > 1/2] = 1[alpha + G1 - G2 > 0]
    M      = M_hard + (M_soft - M_soft.detach())          forward: exactly M_hard (0 or 1)
                                                          backward: dM/dalpha = M_soft (1 - M_soft) / tau

G1 - G2 is a standard logistic variable, log(u) - log(1 - u) with u ~ U(0, 1): one
draw instead of two (same distribution). The official code's 2-class Gumbel-softmax
over (alpha0, alpha1) is this with alpha = alpha0 - alpha1 (spec §2.5, checked there).
We write the ST form as M_hard + (M_soft - M_soft.detach()): the added term is an
exact zero, so the forward mask is binary by construction (the usual
M_hard - M_soft.detach() + M_soft is also exact for M_soft in [0, 1] in float32 --
Sterbenz -- but only by that argument).

Temperature: the official code keeps tau = 1 (no schedule, spec §2.5); ours is
:func:`tau_at` (constant by default; linear or exponential annealing from
tau_start to tau_end over the run as options), set each step by :class:`DAMCallback`.

After stage 1 the mask is frozen as keep = 1[alpha > 0] (sigmoid(alpha) > 1/2: the
ST sample's most likely value, the spec's "keep where the logits say keep");
fine-tuning never resamples it (the official run_glue.py loads the DAM model with
strict=False and keeps drawing Gumbel noise: we do not copy that, see protocol.py).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def logistic_noise(shape, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """G1 - G2 for two independent Gumbel(0, 1): log u - log(1 - u), u ~ U(0, 1)."""
    u = torch.rand(shape, device=device, generator=generator).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


def gumbel_sigmoid(logits: torch.Tensor, tau: float = 1.0, hard: bool = True,
                   noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-sigmoid sample of `logits` (any shape); `hard`: binary forward with the ST gradient.

    `noise` (G1 - G2, same shape) can be passed in (tests); else drawn from `generator`.
    """
    if tau <= 0:
        raise ValueError(f"gumbel_sigmoid: tau={tau} must be > 0")
    if noise is None:
        noise = logistic_noise(logits.shape, logits.device, generator)
    soft = torch.sigmoid((logits + noise) / tau)
    if not hard:
        return soft
    hard_m = (soft > 0.5).to(soft.dtype)
    return hard_m + (soft - soft.detach())          # exact 0/1 forward, sigmoid gradient backward


def tau_at(step: int, max_steps: int, start: float = 1.0, end: float = 1.0, kind: str = "constant") -> float:
    """Temperature at `step` of `max_steps`: constant (official: 1), linear or exponential start -> end."""
    if kind == "constant":
        return float(start)
    if start <= 0 or end <= 0:
        raise ValueError(f"tau schedule: start={start}, end={end} must be > 0")
    frac = min(max(step / max(max_steps - 1, 1), 0.0), 1.0)
    if kind == "linear":
        return float(start + (end - start) * frac)
    if kind == "exponential":
        return float(start * math.exp(math.log(end / start) * frac))
    raise ValueError(f"tau schedule kind={kind!r}: allowed constant, linear, exponential")


def dam_modules(model: nn.Module) -> list[nn.Module]:
    """Every DAM attention bias in `model`, in layer order."""
    from .masks import DAMask

    return [m for m in model.modules() if isinstance(m, DAMask)]


def learned_masks(model: nn.Module, seq_len: int) -> torch.Tensor:
    """bool [L, H, T, T]: keep = 1[alpha > 0] of every DAM layer (the stage-2 mask)."""
    mods = dam_modules(model)
    if not mods:
        raise ValueError("learned_masks: the model has no DAM attention bias (dam_u / dam_s)")
    with torch.no_grad():
        return torch.stack([m.binary_mask(seq_len).cpu() for m in mods])


def keep_probabilities(model: nn.Module, seq_len: int) -> torch.Tensor:
    """float [L, H, T, T]: sigmoid(alpha) (the keep probability at tau = 1) of every DAM layer."""
    with torch.no_grad():
        return torch.stack([m.keep_prob(seq_len).cpu() for m in dam_modules(model)])


class DAMCallback:
    """mlm_loop callback: sets each step's temperature and reports the mask's state.

    on_step_start sets tau on every DAM layer; on_step_end returns
    ``dam/tau``, ``dam/sparsity`` (% of entries with alpha <= 0, i.e. dropped by the
    frozen mask) for logging. Duck-typed like arkbench.training.mlm_loop.Callback.
    """

    def __init__(self, seq_len: int, tau_start: float = 1.0, tau_end: float = 1.0, schedule: str = "constant"):
        self.seq_len, self.tau_start, self.tau_end, self.schedule = seq_len, tau_start, tau_end, schedule

    def on_step_start(self, state) -> None:
        tau = tau_at(state.step, state.max_steps, self.tau_start, self.tau_end, self.schedule)
        for m in dam_modules(state.model):
            m.tau = tau

    def on_step_end(self, state, stats: dict[str, float]) -> dict[str, float] | None:
        mods = dam_modules(state.model)
        if not mods:
            return None
        keep = learned_masks(state.model, self.seq_len)
        return {"dam/tau": float(mods[0].tau), "dam/sparsity": 100.0 * (1 - keep.float().mean().item())}

    def on_eval(self, state, metrics): ...

    def on_checkpoint(self, state, extra: dict[str, Any]) -> None: ...

    def on_resume(self, state, extra: dict[str, Any]) -> None: ...
