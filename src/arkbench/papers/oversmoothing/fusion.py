"""Hierarchical fusion (spec §1.6): combine every layer's output instead of the last.

Registered in arkbench.models.FUSIONS, so any head takes ``fusion="concat"|"max"|"gate"``
(``SequenceClassifier``, ``SpanExtractor``, and ``MaskedLM`` for fusion during
pre-training). Each is built as ``cls(config, **fusion_kwargs)`` and called
``forward(hidden_states, attention_mask) -> (fused [B,T,D], extras | None)``.

The paper's exact formulas are [R]; the readings used here (spec §1.6 table):

    concat  o_i = W_c [h_i^(1); ...; h_i^(L)] + b_c          W_c in R^{d x Ld}
    max     o_{i,k} = max_l h_{i,k}^(l)                       no parameters
    gate    s_i^(l) = w^T h_i^(l) + b,  alpha_i = softmax_l(s_i),  o_i = sum_l alpha_i^(l) h_i^(l)

Options (the spec's open points; defaults are the reading we believe most plausible):

* ``include_embeddings`` (all three; default False): also fuse H^(0), the embedding output.
* gate ``activation``: "softmax" over layers (default) or "sigmoid", independent
  gates alpha_i^(l) = sigmoid(s_i^(l)) that need not sum to one; the sigmoid bias
  starts at log(1/(L-1)) so that sum_l alpha = 1 at initialisation.
* gate ``shared`` (default True): one scoring vector w for all layers; False gives
  each layer its own (w_l, b_l).
* concat ``init``: "normal" (BERT's N(0, 0.02), default, like any new layer), or
  "last" (identity on the last layer's block: starts as plain BERT), or "mean".

Gate returns ``extras = {"gate_weights": [B, T, L']}`` (L' layers fused) for Fig. 7.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from arkbench.models.config import EncoderConfig
from arkbench.models.registry import register_fusion

__all__ = ["ConcatFusion", "MaxFusion", "GateFusion", "select_layers"]


def select_layers(hidden_states, include_embeddings: bool) -> list[torch.Tensor]:
    hs = list(hidden_states)
    if len(hs) < 2:
        raise ValueError(f"fusion needs the embeddings plus at least one layer, got {len(hs)} tensors")
    return hs if include_embeddings else hs[1:]


def _n_layers(config: EncoderConfig, include_embeddings: bool) -> int:
    return config.num_layers + (1 if include_embeddings else 0)


@register_fusion("concat")
class ConcatFusion(nn.Module):
    """A linear map over the concatenation of all layers' outputs, per token."""

    def __init__(self, config: EncoderConfig, include_embeddings: bool = False, init: str = "normal", **_):
        super().__init__()
        self.include_embeddings = include_embeddings
        self.n = _n_layers(config, include_embeddings)
        d = config.hidden_size
        self.proj = nn.Linear(self.n * d, d)
        nn.init.zeros_(self.proj.bias)
        if init == "normal":
            nn.init.normal_(self.proj.weight, 0.0, config.initializer_range)
        elif init in ("last", "mean"):
            w = torch.zeros(d, self.n * d)
            eye = torch.eye(d)
            if init == "last":
                w[:, -d:] = eye
            else:
                for l in range(self.n):
                    w[:, l * d:(l + 1) * d] = eye / self.n
            with torch.no_grad():
                self.proj.weight.copy_(w)
        else:
            raise ValueError(f"concat fusion init={init!r}: allowed 'normal', 'last', 'mean'")

    def forward(self, hidden_states, attention_mask=None):
        hs = select_layers(hidden_states, self.include_embeddings)
        if len(hs) != self.n:
            raise ValueError(f"concat fusion built for {self.n} layers, got {len(hs)}")
        return self.proj(torch.cat(hs, dim=-1)), None


@register_fusion("max")
class MaxFusion(nn.Module):
    """Element-wise maximum over layers (Jumping-Knowledge max-pooling)."""

    def __init__(self, config: EncoderConfig, include_embeddings: bool = False, **_):
        super().__init__()
        self.include_embeddings = include_embeddings

    def forward(self, hidden_states, attention_mask=None):
        hs = select_layers(hidden_states, self.include_embeddings)
        return torch.stack(hs, dim=0).amax(dim=0), None


@register_fusion("gate")
class GateFusion(nn.Module):
    """Token-wise gate: a score per token and layer, softmax (or sigmoid) over layers."""

    def __init__(self, config: EncoderConfig, include_embeddings: bool = False,
                 activation: str = "softmax", shared: bool = True, **_):
        super().__init__()
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(f"gate fusion activation={activation!r}: allowed 'softmax', 'sigmoid'")
        self.include_embeddings = include_embeddings
        self.activation = activation
        self.shared = shared
        self.n = _n_layers(config, include_embeddings)
        d = config.hidden_size
        k = 1 if shared else self.n
        # zero scores at start: softmax gives the plain mean of the layers
        self.weight = nn.Parameter(torch.zeros(k, d))
        b0 = 0.0 if activation == "softmax" else math.log(1.0 / max(self.n - 1, 1))
        self.bias = nn.Parameter(torch.full((k,), b0))

    def forward(self, hidden_states, attention_mask=None):
        hs = select_layers(hidden_states, self.include_embeddings)
        if len(hs) != self.n:
            raise ValueError(f"gate fusion built for {self.n} layers, got {len(hs)}")
        H = torch.stack(hs, dim=2)                                   # [B,T,L,D]
        scores = (H * self.weight.to(H.dtype)).sum(-1) + self.bias.to(H.dtype)   # [B,T,L]
        if self.activation == "softmax":
            alpha = scores.float().softmax(-1).to(H.dtype)
        else:
            alpha = torch.sigmoid(scores)
        fused = (alpha.unsqueeze(-1) * H).sum(2)                     # [B,T,D]
        return fused, {"gate_weights": alpha}
