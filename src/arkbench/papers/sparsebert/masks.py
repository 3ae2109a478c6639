"""SparseBERT's masks as encoder attention biases (arkbench.models.AttentionBias plugins).

    {"name": "diagonal"}                                  no-diagonal (core: arkbench.models.mixers)
    {"name": "sparse_pattern", "pattern": "bigbird", "random": 3}   a fixed pattern of patterns.py
    {"name": "dam_u", "lam": 1e-3}                        DAM_u: a logit per head and position pair
    {"name": "dam_s", "lam": 1e-3}                        DAM_s: a logit per head and offset |i - j|
    {"name": "fixed", "per_head": true}                   (core) the frozen stage-2 mask, [H, P, P] buffer

Fixed patterns are built once at P = max_position_embeddings as a persistent bool
buffer (saved with the model); a sequence of length T uses its top-left [T, T] block
(official code: the top-left sub-block for n < 128).

DAM (spec §2.5). alpha ("mask_logits") is a parameter per layer:
    DAM_u  alpha [H, P, P];  M[h, i, j] = GS(alpha[h, i, j])   (symmetric=True: alpha and the
           sample are mirrored from the upper triangle; off by default: the paper's choice is [?])
    DAM_s  alpha [H, P];     m[h, k] = GS(alpha[h, k]),  M[h, i, j] = m[h, |i - j|]  (Toeplitz band)
GS = hard Gumbel-sigmoid with the straight-through gradient (dam.py). One sample per
forward (one [H, T, T] mask shared by the batch, as the official code), drawn from
torch's default generator (the MLM loop seeds it per step: same params and seed,
same masks). The mask enters the logits additively, after the scaling, as the
official code does:  bias = (M - 1) * scale  (scale 1e4: 0 where kept, -1e4 where
dropped; finite so the ST gradient reaches alpha).

Deviation from the official DAM_s: it shares one mask across all layers; ours learns
one per layer (the bias factory is per layer; heat maps per layer are part of the
importance analysis). Sharing across layers is not implemented.

L1 regulariser, reported as aux loss "dam_l1" (never in the MLM loss):
    normalize="count" (default, official): lam * ||M_l||_1 per layer (kept-entry count; offset k
                                 of DAM_s counted 2 (T - k) times, the diagonal T times). The
                                 paper's lam grid (1e-4 .. 1e-1) was set for this form; its
                                 gradient per logit, lam * dM/dalpha, does not depend on the
                                 model's size, so the grid carries over to small models.
    normalize="mean":            lam * ||M_l||_1 / (L * H * T^2) summed over layers
                                 = lam * (kept fraction of all entries): lam is scale-free
In eval mode or once frozen the mask is deterministic, keep = 1[alpha > 0], and no
penalty is returned.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from arkbench.models import AttentionBias, FixedMask, register_attention_bias

from .dam import gumbel_sigmoid
from .patterns import build_pattern


@register_attention_bias("sparse_pattern")
class SparsePatternMask(FixedMask):
    """A fixed pattern of patterns.py (`pattern` + its parameters), stored as FixedMask's buffer."""

    def __init__(self, config, layer: int, pattern: str = "dense", **params: Any):
        super().__init__(config, layer, per_head=False)
        if pattern == "bigbird" and "seed" not in params:
            params = {**params, "seed": layer}             # different random keys per layer, reproducible
        self.pattern = pattern
        self.set_mask(build_pattern(pattern, self.max_len, **params))


class DAMask(AttentionBias):
    """Base of DAM_u / DAM_s: sampling, freezing, L1 penalty, keep-probabilities."""

    def __init__(self, config, layer: int, lam: float = 1e-4, tau: float = 1.0, init_mean: float = 0.0,
                 init_std: float = 1e-3, normalize: str = "count", scale: float = 1e4, lr_scale: float = 1.0):
        super().__init__(config, layer)
        # own optimizer group (arkbench.training.optim.param_groups): no weight decay; lr = lr_scale x
        # the model's (official: weight_decay 0.0 and the same lr; its per-group lr 1e-5 is commented out)
        if lr_scale <= 0:
            raise ValueError(f"{type(self).__name__}: lr_scale={lr_scale} must be > 0")
        self.optimizer_group = {"name": "mask_logits", "weight_decay": 0.0, "lr_scale": float(lr_scale)}
        if normalize not in ("mean", "count"):
            raise ValueError(f"{type(self).__name__}: normalize={normalize!r}: allowed 'mean' or 'count'")
        if lam < 0 or tau <= 0 or scale <= 0:
            raise ValueError(f"{type(self).__name__}: need lam >= 0, tau > 0, scale > 0 "
                             f"(got lam={lam}, tau={tau}, scale={scale})")
        self.lam, self.tau, self.normalize, self.scale = float(lam), float(tau), normalize, float(scale)
        self.num_layers = config.num_layers
        self.init_mean, self.init_std = init_mean, init_std
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool), persistent=True)
        self._l1: torch.Tensor | None = None

    # -- subclasses: alpha laid out over [H, T, T] ------------------------------------------
    def logits(self, T: int) -> torch.Tensor:          # [H, T, T] logit of every entry
        raise NotImplementedError

    def sample(self, T: int) -> torch.Tensor:          # [H, T, T] hard ST sample
        return gumbel_sigmoid(self.logits(T), self.tau)

    # -- shared -----------------------------------------------------------------------------
    def _init_logits(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(self.init_mean + self.init_std * torch.randn(*shape))

    def binary_mask(self, T: int) -> torch.Tensor:
        """bool [H, T, T]: keep = 1[alpha > 0] (the frozen / evaluation mask)."""
        return self.logits(T).detach() > 0

    def keep_prob(self, T: int) -> torch.Tensor:
        """[H, T, T] sigmoid(alpha): probability that the sample keeps the entry at tau = 1."""
        return torch.sigmoid(self.logits(T).detach())

    def freeze(self) -> None:
        """Fix the mask at keep = 1[alpha > 0]: no more sampling, no gradient, no penalty."""
        self.frozen.fill_(True)
        for p in self.parameters(recurse=False):
            p.requires_grad_(False)

    def forward(self, seq_len: int, device, dtype) -> torch.Tensor:
        if seq_len > self.max_len:
            raise ValueError(f"{type(self).__name__} holds {self.max_len} positions, got a sequence of {seq_len}")
        if self.training and not bool(self.frozen):
            M = self.sample(seq_len)                                             # [H,T,T] 0/1, ST grad
            norm = self.num_layers * M.numel() if self.normalize == "mean" else 1
            self._l1 = self.lam * M.sum() / norm
        else:
            M = self.binary_mask(seq_len).float()
            self._l1 = None
        return ((M - 1.0) * self.scale).to(device=device, dtype=dtype)         # 0 keep, -scale drop

    def aux_losses(self) -> dict[str, torch.Tensor]:
        return {} if self._l1 is None else {"dam_l1": self._l1}


@register_attention_bias("dam_u")
class DAMUnstructured(DAMask):
    """DAM_u: alpha [H, P, P], a logit per head and position pair."""

    def __init__(self, config, layer: int, symmetric: bool = False, **kw: Any):
        super().__init__(config, layer, **kw)
        self.symmetric = symmetric
        self.mask_logits = self._init_logits(self.num_heads, self.max_len, self.max_len)

    def logits(self, T: int) -> torch.Tensor:
        a = self.mask_logits[:, :T, :T]
        if self.symmetric:                               # upper triangle mirrored: triu(a) + triu(a, 1)^T
            a = torch.triu(a) + torch.triu(a, 1).transpose(-1, -2)
        return a

    def sample(self, T: int) -> torch.Tensor:
        M = gumbel_sigmoid(self.logits(T), self.tau)
        if self.symmetric:                               # one draw per unordered pair
            M = torch.triu(M) + torch.triu(M, 1).transpose(-1, -2)
        return M


@register_attention_bias("dam_s")
class DAMStructured(DAMask):
    """DAM_s: alpha [H, P], a logit per head and offset k = |i - j|, expanded as a Toeplitz band."""

    def __init__(self, config, layer: int, **kw: Any):
        super().__init__(config, layer, **kw)
        self.mask_logits = self._init_logits(self.num_heads, self.max_len)

    @staticmethod
    def _offsets(T: int, device) -> torch.Tensor:
        i = torch.arange(T, device=device)
        return (i[:, None] - i[None, :]).abs()                                 # [T,T] |i - j|

    def logits(self, T: int) -> torch.Tensor:
        return self.mask_logits[:, :T][:, self._offsets(T, self.mask_logits.device)]   # [H,T,T]

    def sample(self, T: int) -> torch.Tensor:
        m = gumbel_sigmoid(self.mask_logits[:, :T], self.tau)                   # [H,T]: one draw per offset
        return m[:, self._offsets(T, m.device)]                                # [H,T,T] Toeplitz

    def offset_keep_prob(self, T: int | None = None) -> torch.Tensor:
        """[H, T] sigmoid(alpha) per offset."""
        return torch.sigmoid(self.mask_logits[:, : (T or self.max_len)].detach())
