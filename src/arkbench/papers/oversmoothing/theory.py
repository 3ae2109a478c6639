"""Theory demo (spec §1.5, §1.9): random Transformer stacks, when do tokens collapse?

A stack of our own encoder layers (arkbench.models.Encoder, ReLU FFN, no dropout) gets
fresh Gaussian weights with std ``gain / sqrt(fan_in)``, zero biases and LayerNorm
weights ``gamma`` (beta = 0); random token matrices X ~ N(0, 1) [B, n, d] go straight
into the first layer. Per layer we measure the mean token cosine similarity, the
relative distance d_M(H)/||H||_F to the rank-one subspace, the measured ratio
d_M(H_l)/d_M(H_{l-1}) and the bound v_l of :func:`measures.layer_bounds`.

This tests the paper's mechanism, not its numbers.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from arkbench.models.config import EncoderConfig
from arkbench.models.encoder import Encoder

from .measures import layer_bounds, rel_d_M, token_cosine, trace_encoder

__all__ = ["random_stack", "run_stack", "sweep", "COLLAPSE_THRESHOLD"]

COLLAPSE_THRESHOLD = 0.05   # rel d_M below this: tokens are (numerically) one vector


def random_stack(num_layers: int, d: int, heads: int, gain: float, gamma: float,
                 norm_position: str = "post", ffn_mult: int = 4, seed: int = 0,
                 act: str = "relu") -> Encoder:
    cfg = EncoderConfig(vocab_size=8, hidden_size=d, num_layers=num_layers, num_heads=heads,
                        intermediate_size=ffn_mult * d, hidden_act=act, max_position_embeddings=8,
                        hidden_dropout_prob=0.0, attention_dropout_prob=0.0, layer_norm_eps=1e-12,
                        norm_position=norm_position)
    g = torch.Generator().manual_seed(seed)
    enc = Encoder(cfg)
    with torch.no_grad():
        for m in enc.layers.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * gain / math.sqrt(m.in_features))
                m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(gamma)
                m.bias.zero_()
        if isinstance(enc.final_norm, nn.LayerNorm):
            enc.final_norm.weight.fill_(gamma)
            enc.final_norm.bias.zero_()
    return enc.eval()


def _nanmedian(x: torch.Tensor) -> float:
    return float(np.nanmedian(x.detach().cpu().numpy()))


def run_stack(enc: Encoder, n_tokens: int, batch: int, seed: int = 0) -> dict[str, Any]:
    """Per-layer curves (index 0 = input) and the bound check for one random stack."""
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(batch, n_tokens, enc.config.hidden_size, generator=g)
    tr = trace_encoder(enc, inputs=X)
    bounds = layer_bounds(enc, tr)
    cos = [float(token_cosine(h).nanmean()) for h in tr.hidden_states]
    rel = [float(rel_d_M(h).mean()) for h in tr.hidden_states]
    ratio = [None] + [_nanmedian(b["ratio"]) for b in bounds]
    v = [None] + [_nanmedian(b["v"]) for b in bounds]
    v_common = [None] + [_nanmedian(b["v_common"]) for b in bounds]
    lam = [None] + [float(b["lambda"].nanmean()) for b in bounds]
    sig1 = [None] + [float(b["sigma1_mean"].mean()) for b in bounds]
    sig2 = [None] + [float(b["sigma2_mean"].mean()) for b in bounds]
    # a ratio of two numbers that are both ~0 says nothing: only check where d_M is resolvable
    held, total, worst = 0, 0, 0.0
    for b in bounds:
        r, vv = b["ratio"], b["v"]
        ok = torch.isfinite(r) & torch.isfinite(vv)
        held += int((r[ok] <= vv[ok] * (1 + 1e-4)).sum())
        total += int(ok.sum())
        if ok.any():
            worst = max(worst, float((r[ok] / vv[ok]).max()))
    collapse = next((l for l, x in enumerate(rel) if l > 0 and x < COLLAPSE_THRESHOLD), None)
    return {"cos": cos, "rel_dm": rel, "ratio": ratio, "bound_v": v, "bound_v_common": v_common,
            "lambda": lam, "sigma1": sig1, "sigma2": sig2,
            "cos_last": cos[-1], "rel_dm_last": rel[-1], "collapse_layer": collapse,
            "bound_holds_fraction": held / total if total else float("nan"),
            "max_ratio_over_bound": worst}


def sweep(gains: list[float], gammas: list[float], norm_positions: list[str], *, num_layers: int,
          d: int, heads: int, n_tokens: int, batch: int, seed: int = 0) -> list[dict[str, Any]]:
    from ...progress import progress

    rows = []
    grid = [(norm, gain, gamma) for norm in norm_positions for gain in gains for gamma in gammas]
    for norm, gain, gamma in progress(grid, desc="theory sweep", unit="stack"):
        enc = random_stack(num_layers, d, heads, gain, gamma, norm, seed=seed)
        res = run_stack(enc, n_tokens, batch, seed=seed)
        rows.append({"norm_position": norm, "gain": gain, "gamma": gamma, **res})
    return rows
