"""Token mixers: the pluggable half of a Transformer layer.

Every mixer maps x [B, T, D] to y [B, T, D] (including its output projection) and
may return attention probabilities [B, H, T, T]. The layer around it adds the
residual, LayerNorm and the FFN (see encoder.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig
from .registry import ATTENTION_BIASES, MIXERS, lookup, register_attention_bias, register_mixer


# --- attention-logit hooks ------------------------------------------------------------

class AttentionBias(nn.Module):
    """An additive term on the attention logits: [T, T] (all heads) or [H, T, T] (per head).

    Built as ``cls(config, layer, **kwargs)`` from a spec ``{"name": ..., **kwargs}`` in
    the attention mixer's ``biases`` list, so a mask may depend on the layer and the
    head count. Masks live in the state dict (buffers or parameters), never as lists
    in the config. Learned masks (e.g. SparseBERT's DAM) hold parameters and return
    their penalties from :meth:`aux_losses` (summed into the training loss, logged
    under their own names, never inside the reported loss).
    """

    def __init__(self, config: EncoderConfig, layer: int):
        super().__init__()
        self.num_heads = config.num_heads
        self.max_len = config.max_position_embeddings
        self.layer = layer

    def forward(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def aux_losses(self) -> dict[str, torch.Tensor]:
        return {}


def mask_to_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool [..., T, T] (True = may attend) -> additive float (0 keep, dtype-min drop)."""
    return torch.zeros(allowed.shape, device=allowed.device, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


@register_attention_bias("diagonal")
class DiagonalMask(AttentionBias):
    """Forbid each token attending to itself (SparseBERT's no-diagonal attention)."""

    def forward(self, seq_len, device, dtype):
        return mask_to_bias(~torch.eye(seq_len, device=device, dtype=torch.bool), dtype)   # [T,T]


@register_attention_bias("fixed")
class FixedMask(AttentionBias):
    """A fixed boolean pattern (True = may attend), stored as the persistent buffer `allowed`.

    Shape [P, P], or [H, P, P] with ``per_head=True`` (P = max_position_embeddings);
    sequences of length T use the top-left [..., :T, :T] block. It starts as "all
    allowed" or, with ``band=w``, the band |i - j| <= w; code that derives a pattern
    (e.g. from a learned mask) writes it with :meth:`set_mask`, and the checkpoint
    carries it (model.safetensors), not the config.
    """

    def __init__(self, config: EncoderConfig, layer: int, per_head: bool = False, band: int | None = None):
        super().__init__(config, layer)
        P = self.max_len
        allowed = torch.ones(P, P, dtype=torch.bool)
        if band is not None:
            if band < 0:
                raise ValueError(f"fixed mask band={band} must be >= 0")
            i = torch.arange(P)
            allowed = (i[:, None] - i[None, :]).abs() <= band
        if per_head:
            allowed = allowed.expand(self.num_heads, P, P).clone()
        self.register_buffer("allowed", allowed, persistent=True)

    def set_mask(self, allowed: torch.Tensor) -> None:
        """Write a pattern: [T, T] or [H, T, T] bool, T <= P (the rest stays as it was)."""
        allowed = torch.as_tensor(allowed, dtype=torch.bool)
        if allowed.dim() != self.allowed.dim() or allowed.shape[:-2] != self.allowed.shape[:-2]:
            raise ValueError(f"fixed mask: got shape {tuple(allowed.shape)}, buffer is {tuple(self.allowed.shape)}")
        T = allowed.shape[-1]
        if allowed.shape[-2] != T or T > self.allowed.shape[-1]:
            raise ValueError(f"fixed mask: {tuple(allowed.shape)} is not square within {tuple(self.allowed.shape)}")
        with torch.no_grad():
            self.allowed[..., :T, :T] = allowed.to(self.allowed.device)

    def forward(self, seq_len, device, dtype):
        if seq_len > self.allowed.shape[-1]:
            raise ValueError(f"fixed mask holds {self.allowed.shape[-1]} positions, got a sequence of {seq_len}")
        return mask_to_bias(self.allowed[..., :seq_len, :seq_len].to(device), dtype)   # [T,T] | [H,T,T]


def build_biases(specs: list[dict] | None, config: EncoderConfig, layer: int) -> nn.ModuleList:
    """`[{"name": ..., **kwargs}, ...]` -> ModuleList of ``cls(config, layer, **kwargs)``."""
    mods = nn.ModuleList()
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"biases[{i}] = {spec!r}: each bias is a mapping with a 'name' "
                             f"(known: {', '.join(sorted(ATTENTION_BIASES))})")
        spec = dict(spec)
        name = spec.pop("name")
        mods.append(lookup(ATTENTION_BIASES, name, "attention bias")(config, layer, **spec))
    return mods


# --- mixers ------------------------------------------------------------------------------

@register_mixer("attention")
class MultiHeadSelfAttention(nn.Module):
    """BERT self-attention with output projection, via scaled_dot_product_attention.

    `biases`: attention-bias specs ({"name": "diagonal"}, ...) summed into the logits
    next to the padding bias: [B,1,1,T] + [T,T] | [H,T,T] -> [B,1|H,T,T].
    """

    def __init__(self, config: EncoderConfig, layer: int = 0, biases: list[dict] | None = None):
        super().__init__()
        d, self.h = config.hidden_size, config.num_heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.dropout_p = config.attention_dropout_prob
        self.biases = build_biases(biases, config, layer)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B,T,D] -> [B,H,T,Dh]
        B, T, D = x.shape
        return x.view(B, T, self.h, D // self.h).transpose(1, 2)

    def logits_bias(self, attn_bias: torch.Tensor | None, T: int, x: torch.Tensor) -> torch.Tensor | None:
        bias = attn_bias
        for b in self.biases:
            extra = b(T, x.device, x.dtype)
            # clamp so that two -inf-like terms never overflow to -inf + -inf = nan rows
            bias = extra if bias is None else (bias + extra).clamp_min(torch.finfo(x.dtype).min)
        return bias

    def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        bias = self.logits_bias(attn_bias, T, x)
        p_drop = self.dropout_p if self.training else 0.0
        if output_attentions:  # SDPA does not expose the probabilities: compute them
            logits = q @ k.transpose(-1, -2) / math.sqrt(D // self.h)   # [B,H,T,T]
            if bias is not None:
                logits = logits + bias
            probs = logits.softmax(-1)
            y = F.dropout(probs, p_drop, self.training) @ v
        else:
            probs = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p_drop)
        y = y.transpose(1, 2).reshape(B, T, D)
        return self.out(y), probs


@register_mixer("conv")
class LightConvMixer(nn.Module):
    """Depthwise 1-D convolution mixer (GLU in, depthwise conv over time, linear out).

    A lightweight-convolution layer in the spirit of Wu et al. (2019); AutoBERT-Zero
    interleaves such layers with attention. `kernel_size` must be odd.
    """

    def __init__(self, config: EncoderConfig, layer: int = 0, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv mixer kernel_size={kernel_size} must be odd")
        d = config.hidden_size
        self.glu_in = nn.Linear(d, 2 * d)
        self.conv = nn.Conv1d(d, d, kernel_size, padding=kernel_size // 2, groups=d)
        self.out = nn.Linear(d, d)

    def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
        h = F.glu(self.glu_in(x), dim=-1)                    # [B,T,D]
        if key_padding_mask is not None:                     # padding must not leak into real tokens
            h = h.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)     # [B,T,D]
        return self.out(h), None


def build_mixer(config: EncoderConfig, layer: int) -> nn.Module:
    """``MIXERS[name](config, layer, **kwargs)`` for `layer` (see EncoderConfig.mixer_for)."""
    cls = lookup(MIXERS, config.mixer_names()[layer], "mixer")   # loads paper plugins first
    name, kwargs = config.mixer_for(layer, known=frozenset(MIXERS))
    return cls(config, layer, **kwargs)
