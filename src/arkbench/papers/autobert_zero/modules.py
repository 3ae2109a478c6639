"""The encoder mixers of AutoBERT-Zero: searched-graph attention and convolution slots.

Both follow the encoder's mixer contract (arkbench.models.registry): built as
`cls(config, layer, **kwargs)` (layer optional), forward `(x [B,T,D], attn_bias
[B,1,1,T] additive | None, output_attentions, *, key_padding_mask [B,T] bool, True =
padding | None) -> (y [B,T,D], None)`; without key_padding_mask the padding is read
off the additive bias.

    abz_graph  GraphAttention(graph=...)       Q = X W_Q, K = X W_K, V = X W_V (only the
               ones the graph reads are created: "shared V" layers have no W_V), per head
               [n, d_h]; Y = concat_h(graph(Q_h, K_h, V_h)) W_O
    abz_conv   ConvSlot(kernel_size=k, conv_type="light" | "dynamic")
               G = GLU(X W_in)                                  [B,T,D]
               light:   w_h = softmax_k(W[h])        one kernel per head, shared by its D/H channels
               dynamic: w_{t,h} = softmax_k((G W_dyn)_t,h)   a kernel per position and head
               Y_t = (sum_j w_{h,j} G_{t+j-k//2}) W_O       (Wu et al. 2019, ICLR)

Padded positions are zeroed before the convolution and, in graph attention, masked
out of softmaxes over keys and out of token-contracting matmuls (graph.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from arkbench.models.config import EncoderConfig
from arkbench.models.registry import MIXERS, register_mixer

from . import graph as G

CONV_TYPES = ("light", "dynamic")


def _keep_from_bias(attn_bias: torch.Tensor | None, key_padding_mask: torch.Tensor | None = None,
                    ) -> torch.Tensor | None:
    """[B,T] float keep mask (1 token, 0 pad) from key_padding_mask, else from an additive
    key-padding bias [B,1,1,T]; None when there is no padding information."""
    if key_padding_mask is not None:
        return (~key_padding_mask.bool()).float()
    if attn_bias is None or attn_bias.dim() != 4 or attn_bias.shape[-2] != 1:
        return None
    return (attn_bias[:, 0, 0, :] == 0).float()


def _key_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B,T] keep -> additive [B,1,1,T] (0 keep, dtype-min drop)."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(
        keep == 0, torch.finfo(dtype).min)[:, None, None, :]


def _register(name: str):
    # idempotent: reloading this module (tests) must not trip the registry's twice-check
    def deco(cls):
        MIXERS.pop(name, None)
        return register_mixer(name)(cls)
    return deco


@_register("abz_graph")
class GraphAttention(nn.Module):
    def __init__(self, config: EncoderConfig, layer: int | None = None, *, graph: dict,
                 sqrt_reading: str = "signed", max_nodes: int | None = None):
        super().__init__()
        G.check_structure(graph, max_nodes)
        if sqrt_reading not in G.SQRT_READINGS:
            raise G.GraphError(f"sqrt_reading={sqrt_reading!r}: allowed {G.SQRT_READINGS}")
        d, self.h = config.hidden_size, config.num_heads
        self.graph = G.normalise(graph)
        self.sqrt_reading = sqrt_reading
        used = G.used_inputs(self.graph)
        self.query = nn.Linear(d, d) if "q" in used else None
        self.key = nn.Linear(d, d) if "k" in used else None
        self.value = nn.Linear(d, d) if "v" in used else None
        self.out = nn.Linear(d, d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B,T,D] -> [B,H,T,Dh]
        B, T, D = x.shape
        return x.view(B, T, self.h, D // self.h).transpose(1, 2)

    def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
        B, T, D = x.shape
        proj = [self._split(m(x)) if m is not None else None for m in (self.query, self.key, self.value)]
        keep = _keep_from_bias(attn_bias, key_padding_mask)
        key_bias = _key_bias(keep, x.dtype) if keep is not None else None
        key_keep = keep[:, None, :, None] if keep is not None else None      # [B,1,T,1]
        y = G.evaluate(self.graph, *proj, key_bias=key_bias, key_keep=key_keep,
                       sqrt_reading=self.sqrt_reading)                       # [B,H,T,Dh]
        return self.out(y.transpose(1, 2).reshape(B, T, D)), None


@_register("abz_conv")
class ConvSlot(nn.Module):
    def __init__(self, config: EncoderConfig, layer: int | None = None, *, kernel_size: int = 7,
                 conv_type: str = "light"):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"abz_conv kernel_size={kernel_size} must be a positive odd number")
        if conv_type not in CONV_TYPES:
            raise ValueError(f"abz_conv conv_type={conv_type!r}: allowed {CONV_TYPES}")
        d, self.h, self.k, self.conv_type = config.hidden_size, config.num_heads, kernel_size, conv_type
        self.glu_in = nn.Linear(d, 2 * d)
        if conv_type == "light":
            self.weight = nn.Parameter(torch.zeros(self.h, kernel_size))   # [H,k], softmax -> uniform at init
        else:
            self.kernel_proj = nn.Linear(d, self.h * kernel_size)         # per-position kernels
        self.out = nn.Linear(d, d)

    def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
        B, T, D = x.shape
        g = F.glu(self.glu_in(x), dim=-1)                                  # [B,T,D]
        keep = _keep_from_bias(attn_bias, key_padding_mask)
        if keep is not None:
            g = g * keep.unsqueeze(-1)
        k, H = self.k, self.h
        if self.conv_type == "light":
            w = self.weight.softmax(-1).repeat_interleave(D // H, 0)       # [D,k]
            y = F.conv1d(g.transpose(1, 2), w.unsqueeze(1), padding=k // 2, groups=D)  # [B,D,T]
            y = y.transpose(1, 2)
        else:
            w = self.kernel_proj(g).view(B, T, H, k).softmax(-1)          # [B,T,H,k]
            win = F.pad(g.transpose(1, 2), (k // 2, k // 2)).unfold(2, k, 1)  # [B,D,T,k]
            win = win.view(B, H, D // H, T, k)
            y = (win * w.permute(0, 2, 1, 3).unsqueeze(2)).sum(-1)        # [B,H,D/H,T]
            y = y.reshape(B, D, T).transpose(1, 2)
        return self.out(y), None
