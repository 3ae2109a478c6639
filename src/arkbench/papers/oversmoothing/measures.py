"""Over-smoothing measurements (spec §1.3-1.5), on hidden states and attention maps.

All functions take a batch ``H [B, T, D]`` (or one sequence ``[T, D]``) plus a
``mask [B, T]`` (1 = token to use). Padding, and optionally [CLS]/[SEP], are left
out by the mask; everything is computed in float32.

    token_cosine(H, mask, center=None)   mean cos over ordered pairs i != j      -> [B]
    d_M(H, mask)                          ||(I - ee^T/n) H||_F                   -> [B]
    rel_d_M(H, mask)                      d_M(H) / ||H||_F                        -> [B]
    attention_lambda(A, mask)             lambda_max(A^T (I - J) A) per head     -> [B, h]
    trace_encoder(encoder, ...)           hidden states, attentions and the LayerNorm
                                          inputs of every layer (forward hooks)
    layer_bounds(encoder, trace)          per-layer, per-sequence contraction bound v
                                          with d_M(H_l) <= v_l d_M(H_{l-1}), and its parts

The bound (derived for this benchmark; the paper's exact constants are [R]/[?]):
with  d_M(X)^2 = (1/2n) sum_{i,j} ||x_i - x_j||^2  every step below is exact or an
inequality that holds for each sequence:

* right-multiplication by W:           d_M(XW)     <= ||W||_2 d_M(X)
* attention (A e = e):                 d_M(AX)     <= sqrt(lambda) d_M(X)
* element-wise activation, Lipschitz c: d_M(act X) <= c d_M(X)   (ReLU c = 1, GELU 1.129)
* bias / beta rows (e b^T in M):        unchanged
* residual:                             d_M(X + f(X)) <= d_M(X) + d_M(f(X))
* LayerNorm: the row map z -> z / sigma(z) after centring over features is the radial
  projection onto the sphere of radius sqrt(d), which is (1/sigma_min)-Lipschitz on
  rows of norm >= sqrt(d) sigma_min; so  d_M(LN(Y)) <= max|gamma| / sigma_min d_M(Y).

Post-LN block:  v = (1 + sum_k sqrt(lambda_k) ||W_V^k W_O^k||_2) * g1/s1
                    * (1 + c ||W_1||_2 ||W_2||_2) * g2/s2
Pre-LN block:   v = (1 + a g1/s1) (1 + f g2/s2)
where s1, s2 are the smallest LayerNorm standard deviations over the sequence's tokens
("sigma_min" reading: a rigorous bound). ``v_common`` uses the mean sigma instead
(the "common sigma" reading of the paper's theorem; an estimate, not a bound).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "valid_mask", "content_mask", "token_cosine", "corpus_mean", "d_M", "rel_d_M",
    "attention_lambda", "layernorm_sigma", "ACT_LIPSCHITZ", "Trace", "trace_encoder",
    "layer_bounds", "gelu_lipschitz",
]


def _as_batch(H: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if H.dim() == 2:
        H = H.unsqueeze(0)
        mask = None if mask is None else mask.reshape(1, -1)
    if H.dim() != 3:
        raise ValueError(f"expected hidden states [B,T,D] or [T,D], got shape {tuple(H.shape)}")
    H = H.float()
    m = torch.ones(H.shape[:2], dtype=torch.bool, device=H.device) if mask is None else mask.to(H.device).bool()
    if m.shape != H.shape[:2]:
        raise ValueError(f"mask shape {tuple(m.shape)} does not match hidden states {tuple(H.shape[:2])}")
    return H, m


def valid_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.bool()


def content_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 special_ids: Sequence[int]) -> torch.Tensor:
    """attention_mask with [CLS]/[SEP]/... (the ids in `special_ids`) switched off."""
    special = torch.isin(input_ids, torch.as_tensor(list(special_ids), dtype=input_ids.dtype,
                                                    device=input_ids.device))
    return attention_mask.bool() & ~special


def corpus_mean(H: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean vector [D] over all used tokens of all sequences (the 'corpus' centre)."""
    H, m = _as_batch(H, mask)
    w = m.float().unsqueeze(-1)
    return (H * w).sum((0, 1)) / w.sum().clamp_min(1)


def token_cosine(H: torch.Tensor, mask: torch.Tensor | None = None,
                 center: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cosine similarity over ordered token pairs i != j of each sequence -> [B].

    CosSim(H) = 1/(n(n-1)) sum_{i != j} h_i.h_j / (|h_i| |h_j|), over the n tokens the
    mask keeps. `center` [D] is subtracted from every token first ("mean-centred"
    cosine; pass :func:`corpus_mean` of the same layer over the evaluation set).
    Sequences with fewer than two tokens give nan.
    """
    H, m = _as_batch(H, mask)
    if center is not None:
        H = H - center.float().to(H.device)
    u = torch.nn.functional.normalize(H, dim=-1, eps=1e-12) * m.unsqueeze(-1)
    n = m.sum(1).float()
    s = u.sum(1).pow(2).sum(-1)                     # |sum_i u_i|^2 = sum_{i,j} u_i.u_j
    diag = u.pow(2).sum((1, 2))                     # sum_i |u_i|^2 (= n unless h_i = 0)
    out = (s - diag) / (n * (n - 1))
    return torch.where(n >= 2, out, torch.full_like(out, float("nan")))


def d_M(H: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Distance to M = {e c^T}: ||(I - ee^T/n) H||_F over the kept tokens -> [B]."""
    H, m = _as_batch(H, mask)
    w = m.float().unsqueeze(-1)
    mean = (H * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)
    return ((H - mean) * w).pow(2).sum((1, 2)).sqrt()


def rel_d_M(H: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """d_M(H) / ||H||_F (0: all tokens equal; 1: token mean is zero) -> [B]."""
    H, m = _as_batch(H, mask)
    norm = (H * m.float().unsqueeze(-1)).pow(2).sum((1, 2)).sqrt()
    return d_M(H, m) / norm.clamp_min(1e-30)


def attention_lambda(A: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """lambda_max(A^T (I - J) A), J = ee^T/n, per sequence and head -> [B, h].

    Equal to ||(I - J) A||_2^2, the square of the factor by which attention can
    stretch d_M. Uniform attention (A = J) gives 0, the identity gives 1. Only the
    kept tokens' rows and columns are used.
    """
    if A.dim() == 3:
        A = A.unsqueeze(0)
        mask = None if mask is None else mask.reshape(1, -1)
    A = A.float()
    B, h, T, _ = A.shape
    m = torch.ones(B, T, dtype=torch.bool, device=A.device) if mask is None else mask.to(A.device).bool()
    out = torch.full((B, h), float("nan"), device=A.device)
    for b in range(B):  # crop each sequence to its kept tokens: eigen-solves are cubic in n
        idx = m[b].nonzero().squeeze(-1)
        if idx.numel() == 0:
            continue
        P = A[b][:, idx][:, :, idx].double()                         # [h, n, n]
        C = P - P.mean(-2, keepdim=True)                             # (I - J) P
        out[b] = _gram_top(C).float()
    return out


def layernorm_sigma(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The per-token standard deviation a LayerNorm divides by: [B,T,D] -> [B,T]."""
    x = x.float()
    return (x.var(-1, unbiased=False) + eps).sqrt()


def gelu_lipschitz() -> float:
    """max_x |d/dx x Phi(x)| = Phi(sqrt 2) + sqrt 2 phi(sqrt 2) ~ 1.1289."""
    x = math.sqrt(2.0)
    return 0.5 * (1 + math.erf(x / math.sqrt(2))) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


ACT_LIPSCHITZ = {"relu": 1.0, "gelu": gelu_lipschitz(), "gelu_new": gelu_lipschitz()}


# --- tracing an encoder --------------------------------------------------------------

@dataclass
class Trace:
    """What one forward pass through the encoder's layers saw."""

    hidden_states: list[torch.Tensor]                  # L+1 x [B,T,D] (as Encoder returns them)
    attentions: list[torch.Tensor | None]              # L x [B,h,T,T]
    ln_inputs: list[dict[str, torch.Tensor]]           # L x {"mixer_norm": [B,T,D], "ffn_norm": ...}
    final_norm_input: torch.Tensor | None              # pre-LN: input of the final LayerNorm
    mask: torch.Tensor                                 # [B,T] bool
    extras: dict = field(default_factory=dict)


@contextmanager
def _capture_inputs(modules: dict[str, nn.Module], store: dict) -> Iterator[None]:
    handles = []
    for name, mod in modules.items():
        def hook(_m, args, _out, name=name):
            store[name] = args[0].detach()
        handles.append(mod.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def trace_encoder(encoder: nn.Module, input_ids: torch.Tensor | None = None,
                  attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                  *, inputs: torch.Tensor | None = None) -> Trace:
    """Run `encoder` (arkbench.models.Encoder) layer by layer in eval mode.

    Either token ids (through the embeddings) or `inputs` [B,T,D] fed straight to the
    first layer (the theory demo's random token matrices).
    """
    from arkbench.models.encoder import padding_bias

    was_training = encoder.training
    encoder.eval()
    try:
        if inputs is None:
            if input_ids is None:
                raise ValueError("give input_ids or inputs")
            x = encoder.embeddings(input_ids, token_type_ids)
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
        else:
            x = inputs
            if attention_mask is None:
                attention_mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
        bias = padding_bias(attention_mask, x.dtype)
        hidden, attns, lns = [x], [], []
        for layer in encoder.layers:
            store: dict[str, torch.Tensor] = {}
            with _capture_inputs({"mixer_norm": layer.mixer_norm, "ffn_norm": layer.ffn_norm}, store):
                x, probs = layer(x, bias, True)
            hidden.append(x)
            attns.append(probs)
            lns.append(store)
        final_in = None
        if isinstance(encoder.final_norm, nn.LayerNorm):
            final_in = x
            hidden[-1] = encoder.final_norm(x)
        return Trace(hidden, attns, lns, final_in, attention_mask.bool())
    finally:
        encoder.train(was_training)


def _gram_top(C: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of C^T C (= ||C||_2^2), batched, via the smaller Gram matrix.

    A symmetric eigen-solve is much cheaper than an SVD and exact to rounding (float64).
    """
    G = C @ C.transpose(-1, -2) if C.shape[-2] <= C.shape[-1] else C.transpose(-1, -2) @ C
    return torch.linalg.eigvalsh(G).amax(-1).clamp_min(0)


def _spectral(W: torch.Tensor) -> float:
    return float(_gram_top(W.detach().double()).sqrt())


def _head_norms(mix, dh: int) -> torch.Tensor:
    """||W_V^k W_O^k||_2 per head; the product has rank <= dh, so work in dh x dh."""
    out = []
    for k in range(mix.h):
        V = mix.value.weight[k * dh:(k + 1) * dh].detach().double()       # [dh, D]: W_V^k = V^T
        O = mix.out.weight[:, k * dh:(k + 1) * dh].detach().double()      # [D, dh]: W_O^k = O^T
        # ||V^T O^T||_2^2 = lambda_max(O^T O V V^T)  (eigenvalues of a product of two PSD dh x dh)
        M = (O.T @ O) @ (V @ V.T)
        out.append(float(torch.linalg.eigvals(M).real.max().clamp_min(0).sqrt()))
    return torch.tensor(out)


_WEIGHT_CACHE: dict[tuple, tuple] = {}


def _weight_factors(layer, cfg, c_act: float):
    """(per-head ||W_V^k W_O^k||_2, c ||W_1|| ||W_2||), cached while the weights do not change."""
    from arkbench.models.mixers import MultiHeadSelfAttention

    mix = layer.mixer
    params = [layer.ffn.up.weight, layer.ffn.down.weight]
    if isinstance(mix, MultiHeadSelfAttention):
        params += [mix.value.weight, mix.out.weight]
    key = (id(layer),) + tuple((id(p), p._version, p.data_ptr()) for p in params)
    if key not in _WEIGHT_CACHE:
        if len(_WEIGHT_CACHE) > 256:
            _WEIGHT_CACHE.clear()
        heads = (_head_norms(mix, cfg.hidden_size // mix.h) if isinstance(mix, MultiHeadSelfAttention) else None)
        f = c_act * _spectral(layer.ffn.up.weight) * _spectral(layer.ffn.down.weight)
        _WEIGHT_CACHE[key] = (heads, f)
    return _WEIGHT_CACHE[key]


def _masked_min_mean(v: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    big = torch.where(m, v, torch.full_like(v, float("inf")))
    mean = (v * m).sum(1) / m.sum(1).clamp_min(1)
    return big.min(1).values, mean


@torch.no_grad()
def layer_bounds(encoder: nn.Module, trace: Trace, mask: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """Per layer: the bound v [B], its parts and the measured ratio d_M(H_l)/d_M(H_{l-1}) [B].

    `mask` selects the tokens d_M is measured on (default: the trace's valid tokens).
    Keys per layer: ratio, v, v_common, attn_factor [B], lambda [B,h], sigma1_min,
    sigma1_mean, sigma2_min, sigma2_mean [B], gamma1_max, gamma2_max, ffn_factor (floats).
    Layers whose mixer is not multi-head attention get v = nan.
    """
    from arkbench.models.mixers import MultiHeadSelfAttention

    cfg = encoder.config
    m = trace.mask if mask is None else mask.bool()
    c_act = ACT_LIPSCHITZ.get(cfg.hidden_act, float("nan"))
    pre = cfg.norm_position == "pre"
    dms = [d_M(h, m) for h in trace.hidden_states]
    # for pre-LN the last stored hidden state already went through the final norm
    if trace.final_norm_input is not None:
        dm_last_raw = d_M(trace.final_norm_input, m)
    out = []
    L = len(encoder.layers)
    for i, layer in enumerate(encoder.layers):
        rec: dict[str, torch.Tensor | float] = {}
        mix = layer.mixer
        n1, n2 = layer.mixer_norm, layer.ffn_norm
        s1 = layernorm_sigma(trace.ln_inputs[i]["mixer_norm"], n1.eps)
        s2 = layernorm_sigma(trace.ln_inputs[i]["ffn_norm"], n2.eps)
        s1min, s1mean = _masked_min_mean(s1, m)
        s2min, s2mean = _masked_min_mean(s2, m)
        g1 = float(n1.weight.abs().max())
        g2 = float(n2.weight.abs().max())
        s_heads, f = _weight_factors(layer, cfg, c_act)
        if isinstance(mix, MultiHeadSelfAttention) and trace.attentions[i] is not None:
            lam = attention_lambda(trace.attentions[i], m)                       # [B,h]
            a = (lam.clamp_min(0).sqrt() * s_heads.to(lam.device)).sum(-1)      # [B]
        else:
            lam = torch.full((m.shape[0], cfg.num_heads), float("nan"))
            a = torch.full((m.shape[0],), float("nan"))
        if pre:
            v = (1 + a * g1 / s1min) * (1 + f * g2 / s2min)
            vc = (1 + a * g1 / s1mean) * (1 + f * g2 / s2mean)
        else:
            v = (1 + a) * (g1 / s1min) * (1 + f) * (g2 / s2min)
            vc = (1 + a) * (g1 / s1mean) * (1 + f) * (g2 / s2mean)
        prev = dms[i]
        cur = dms[i + 1]
        if pre and i == L - 1 and trace.final_norm_input is not None:
            sf = layernorm_sigma(trace.final_norm_input, encoder.final_norm.eps)
            sfmin, sfmean = _masked_min_mean(sf, m)
            gf = float(encoder.final_norm.weight.abs().max())
            v, vc = v * gf / sfmin, vc * gf / sfmean
            rec["ratio_before_final_norm"] = dm_last_raw / prev.clamp_min(1e-30)
        rec.update(ratio=cur / prev.clamp_min(1e-30), v=v, v_common=vc, attn_factor=a, **{"lambda": lam},
                   sigma1_min=s1min, sigma1_mean=s1mean, sigma2_min=s2min, sigma2_mean=s2mean,
                   gamma1_max=g1, gamma2_max=g2, ffn_factor=f)
        out.append(rec)
    return out
