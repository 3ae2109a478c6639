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
    """An additive term on the attention logits, shape broadcastable to [B, H, T, T].

    Fixed masks return a constant; learned masks (e.g. SparseBERT's DAM) hold
    parameters and may expose `regularizer()` for the training loss.
    """

    def forward(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor | None:
        return None


@register_attention_bias("diagonal")
class DiagonalMask(AttentionBias):
    """Forbid each token attending to itself (SparseBERT's no-diagonal attention)."""

    def forward(self, seq_len, device, dtype):
        eye = torch.eye(seq_len, device=device, dtype=torch.bool)
        return torch.zeros(seq_len, seq_len, device=device, dtype=dtype).masked_fill(eye, torch.finfo(dtype).min)


@register_attention_bias("fixed")
class FixedMask(AttentionBias):
    """A fixed boolean pattern (True = may attend), e.g. a band or strided pattern."""

    def __init__(self, allowed: torch.Tensor | list):
        super().__init__()
        self.register_buffer("allowed", torch.as_tensor(allowed, dtype=torch.bool), persistent=True)

    def forward(self, seq_len, device, dtype):
        allowed = self.allowed[:seq_len, :seq_len].to(device)
        return torch.zeros(allowed.shape, device=device, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def build_biases(specs: list[dict] | None) -> nn.ModuleList:
    mods = nn.ModuleList()
    for spec in specs or []:
        spec = dict(spec)
        name = spec.pop("name")
        mods.append(lookup(ATTENTION_BIASES, name, "attention bias")(**spec))
    return mods


# --- mixers ------------------------------------------------------------------------------

@register_mixer("attention")
class MultiHeadSelfAttention(nn.Module):
    """BERT self-attention with output projection, via scaled_dot_product_attention.

    `biases`: attention-bias specs ({"name": "diagonal"}, ...) summed into the logits
    next to the padding mask.
    """

    def __init__(self, config: EncoderConfig, biases: list[dict] | None = None):
        super().__init__()
        d, self.h = config.hidden_size, config.num_heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.dropout_p = config.attention_dropout_prob
        self.biases = build_biases(biases)

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

    def forward(self, x, attn_bias=None, output_attentions=False):
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

    def __init__(self, config: EncoderConfig, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv mixer kernel_size={kernel_size} must be odd")
        d = config.hidden_size
        self.glu_in = nn.Linear(d, 2 * d)
        self.conv = nn.Conv1d(d, d, kernel_size, padding=kernel_size // 2, groups=d)
        self.out = nn.Linear(d, d)

    def forward(self, x, attn_bias=None, output_attentions=False):
        h = F.glu(self.glu_in(x), dim=-1)                    # [B,T,D]
        if attn_bias is not None and attn_bias.dim() == 4 and attn_bias.shape[-2] == 1:
            keep = (attn_bias[:, 0, 0, :] == 0).to(h.dtype)    # [B,T] padding -> 0
            h = h * keep.unsqueeze(-1)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)     # [B,T,D]
        return self.out(h), None


def build_mixer(config: EncoderConfig, layer: int) -> nn.Module:
    name, kwargs = config.mixer_for(layer)
    return lookup(MIXERS, name, "mixer")(config, **kwargs)
