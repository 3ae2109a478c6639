"""Batched sampling from a causal LM with a KV cache, and ZeroGen's self-debiasing.

    cfg = DecodeConfig(top_p=0.9, max_new_tokens=40)
    texts = sample(model, tok, ["Movie: \"", ...], cfg, seed=42)          # one text per prompt
    texts = sample(model, tok, prompts, cfg, seed=42, counters=[[c1], ...])  # self-debiased (NLI)

One step of decoding, for a batch of B rows (prompts left-padded to one length):

    logits  = LM(x_t | cache)[:, -1] / temperature              # (B, V)
    logits  = self_debias(logits)                               # only with counter prompts, λ > 0
    logits  = top_k(logits, k); logits = top_p(logits, p)       # -inf outside the kept set
    x_{t+1} ~ softmax(logits)   (argmax when do_sample=False)

Self-debiasing (Schick et al. 2021 as ZeroGen uses it, spec A.6). A regular row r with its
counter-label rows c_1..c_K share the continuation so far:

    p_reg   = softmax(logits_r)                     p_cnt = max_k softmax(logits_{c_k})
    α       = max(0, p_cnt − p_reg)                 p̃    ∝ p_reg · max(ε, exp(−λ α))

the regular row samples from p̃ (then top-k / top-p), and the sampled token is forced onto its
counter rows so they stay aligned. λ = 0 switches it off.

A row stops at the first token whose text contains the stop string (the closing `"`), or at
EOS when EOS is allowed; the batch stops when every row has stopped or ``max_new_tokens`` is
reached. ZeroGen itself always generates ``max_length`` tokens with EOS suppressed (its
quirk, spec A.4) and cuts the text afterwards: stopping at the quote gives the same text
distribution, since nothing after the first quote is kept. ``suppress_eos=True`` keeps
ZeroGen's "no EOS before max_new_tokens" rule.

Deterministic for a seed: one ``torch.Generator`` seeded with ``seed`` drives all sampling,
and batches are formed in input order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from pydantic import Field

from ...config import Section


class DecodeConfig(Section):
    """How to sample; the defaults are ZeroGen's x2 settings (spec A.4)."""

    do_sample: bool = True                       # False = greedy
    top_k: int = Field(0, ge=0)                  # 0 = off (ZeroGen: 0)
    top_p: float = Field(0.9, gt=0, le=1)        # 1.0 = off (ZeroGen: 0.9)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(40, ge=1)        # ZeroGen x2: 40; x1 (titles): 10
    stop: str = '"'                              # a row stops once its text contains this
    suppress_eos: bool = True                    # ZeroGen's min_length = max_length: no EOS
    batch_size: int = Field(32, ge=1)            # prompts per forward pass (counter rows extra)
    decay_constant: float = Field(0.0, ge=0)     # self-debiasing λ (ZeroGen NLI: 200; 0 = off)
    epsilon: float = Field(0.01, gt=0, le=1)     # self-debiasing floor ε

    def label(self) -> str:
        """Short tag for file names and tables: 'topk0_topp0.9_t1.0' / 'greedy'."""
        if not self.do_sample:
            return "greedy"
        return f"topk{self.top_k}_topp{self.top_p:g}_t{self.temperature:g}"


# ----------------------------------------------------------------------------- logits processors
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row (ties at the k-th value kept); others -> -inf. (B, V)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of tokens whose probability mass reaches p (HF's rule:
    drop a token when the mass *before* it already reaches p; the top token is always kept)."""
    if p >= 1.0:
        return logits
    sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
    probs = sorted_logits.softmax(-1)
    before = probs.cumsum(-1) - probs                  # mass strictly above each token
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def self_debias(reg_logits: torch.Tensor, cnt_logits: torch.Tensor, decay_constant: float,
                epsilon: float) -> torch.Tensor:
    """Debiased log-probabilities of the regular rows (spec A.6).

    reg_logits: (B, V); cnt_logits: (B, K, V), the K counter prompts of each regular row.
    Returns log p̃ (B, V), normalised.
    """
    p_reg = reg_logits.float().softmax(-1)                          # (B, V)
    p_cnt = cnt_logits.float().softmax(-1).amax(1)                  # (B, V)
    alpha = (p_cnt - p_reg).clamp_min(0.0)
    scale = torch.exp(-decay_constant * alpha).clamp_min(epsilon)
    q = p_reg * scale
    return (q / q.sum(-1, keepdim=True)).log()


# ----------------------------------------------------------------------------- tokenizer helpers
_STOP_CACHE: dict[tuple[int, str], torch.Tensor] = {}


def stop_token_mask(tokenizer, stop: str) -> torch.Tensor:
    """(V,) bool: token ids whose decoded text contains `stop` (cached per tokenizer)."""
    key = (id(tokenizer), stop)
    if key not in _STOP_CACHE:
        v = len(tokenizer)
        mask = torch.zeros(v, dtype=torch.bool)
        if stop:
            for tok, i in tokenizer.get_vocab().items():
                if i < v and stop in tokenizer.convert_tokens_to_string([tok]):
                    mask[i] = True
        _STOP_CACHE[key] = mask
    return _STOP_CACHE[key]


def _pad_id(tokenizer) -> int:
    for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if t is not None:
            return int(t)
    return 0


def prompt_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each prompt's token ids as every backend feeds them to the LM: no special tokens added
    (ZeroGen's prompts are plain text), an empty prompt becomes [BOS] (or [pad])."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if any(len(x) == 0 for x in ids):
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else _pad_id(tokenizer)
        ids = [x or [bos] for x in ids]
    return ids


def encode_left_padded(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, L) left-padded with the pad id, and the attention mask (N, L)."""
    ids = prompt_ids(tokenizer, texts)
    n = max(len(x) for x in ids)
    pad = _pad_id(tokenizer)
    out = torch.full((len(ids), n), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), n), dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, n - len(x):] = torch.tensor(x)
        mask[i, n - len(x):] = 1
    return out, mask


def cut_at_stop(text: str, stop: str) -> str:
    """`text` up to (not including) the first `stop` -- only for display; filters cut again."""
    return text.split(stop, 1)[0] if stop and stop in text else text


# ----------------------------------------------------------------------------- the sampler
def _cache_kw(model) -> str:
    """transformers 5.x calls the KV cache argument `cache` (older: `past_key_values`)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(res):
    c = getattr(res, "past_key_values", None)
    return c if c is not None else getattr(res, "cache", None)


@torch.no_grad()
def _sample_batch(model, tokenizer, prompts: Sequence[str], counters: Sequence[Sequence[str]] | None,
                  cfg: DecodeConfig, gen: torch.Generator, trace: list | None = None) -> list[list[int]]:
    """New token ids for each prompt of one batch (counter rows ride along when debiasing).

    trace: if a list, each step's regular-row scores (B, V) after debiasing, before top-k/top-p, are
    appended to it (tests compare them with a full recomputation)."""
    b = len(prompts)
    k = len(counters[0]) if counters else 0
    rows = list(prompts) + [c for cs in (counters or []) for c in cs]   # (B + B·K) rows
    ids, mask = encode_left_padded(tokenizer, rows)
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    eos = tokenizer.eos_token_id
    stop_mask = stop_token_mask(tokenizer, cfg.stop).to(device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    out = torch.empty((b, 0), dtype=torch.long, device=device)
    past = None
    step_ids, step_pos = ids, pos
    for t in range(cfg.max_new_tokens):
        res = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, use_cache=True,
                    logits_to_keep=1, **{_cache_kw(model): past})
        past = _cache_of(res)
        logits = res.logits[:, -1, :].float()                         # (B + B·K, V)
        logits = logits[:, : len(stop_mask)] if logits.shape[-1] > len(stop_mask) else logits
        logits = logits / cfg.temperature
        reg = logits[:b]
        if k and cfg.decay_constant > 0:
            reg = self_debias(reg, logits[b:].view(b, k, -1), cfg.decay_constant, cfg.epsilon)
        if cfg.suppress_eos and eos is not None and eos < reg.shape[-1]:
            reg = reg.clone()
            reg[:, eos] = float("-inf")
        if trace is not None:
            trace.append(reg.detach().clone())
        if cfg.do_sample:
            reg = top_p_filter(top_k_filter(reg, cfg.top_k), cfg.top_p)
            probs = reg.softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(device)   # (B,)
        else:
            nxt = reg.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, _pad_id(tokenizer)), nxt)
        out = torch.cat([out, nxt[:, None]], 1)
        done = done | stop_mask[nxt] | ((nxt == eos) if eos is not None else False)
        if bool(done.all()):
            break
        full = torch.cat([nxt, nxt.repeat_interleave(k)]) if k else nxt   # force onto counter rows
        step_ids = full[:, None]
        step_pos = step_pos[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    result = []
    for i in range(b):
        seq = out[i].tolist()
        n = len(seq)
        for j, x in enumerate(seq):   # up to and including the stopping token
            if bool(stop_mask[x]) or x == eos:
                n = j + (0 if x == eos else 1)
                break
        result.append(seq[:n])
    return result


def sample(model, tokenizer, prompts: Sequence[str], cfg: DecodeConfig, seed: int = 0,
           counters: Sequence[Sequence[str]] | None = None,
           progress: Callable[[int, int], None] | None = None) -> list[str]:
    """One sampled continuation per prompt (decoded; the stop string kept if reached).

    counters[i]: the counter-label prompts of prompts[i] (all the same length K), used for
    self-debiasing when ``cfg.decay_constant > 0``.

    `model` may also be a serving backend with a ``sample_texts`` method (the optional vLLM
    backend, ``vllm_backend.VllmPLM``): it then receives the same prompts, settings and seed, so
    every caller (x1, x2, QA questions) builds its prompts once, whatever the backend.
    """
    if counters is not None:
        if len(counters) != len(prompts):
            raise ValueError(f"counters has {len(counters)} entries for {len(prompts)} prompts")
        ks = {len(c) for c in counters}
        if len(ks) > 1:
            raise ValueError(f"every prompt needs the same number of counter prompts, got {sorted(ks)}")
        if ks == {0}:
            counters = None
    if counters is not None and cfg.decay_constant == 0:
        counters = None      # λ = 0: plain sampling, no counter rows computed
    if hasattr(model, "sample_texts"):   # a serving backend (vllm_backend.VllmPLM) samples by itself
        return model.sample_texts(prompts, cfg, seed=seed, counters=counters, progress=progress)
    gen = torch.Generator().manual_seed(int(seed))
    model.eval()
    texts: list[str] = []
    for s in range(0, len(prompts), cfg.batch_size):
        chunk = prompts[s: s + cfg.batch_size]
        cnt = counters[s: s + cfg.batch_size] if counters is not None else None
        for new in _sample_batch(model, tokenizer, chunk, cnt, cfg, gen):
            texts.append(tokenizer.decode(new, skip_special_tokens=True))
        if progress is not None:
            progress(len(texts), len(prompts))
    return texts


def count_new_tokens(tokenizer, texts: Sequence[str]) -> int:
    """Tokens in the generated texts (for throughput figures)."""
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


@torch.no_grad()
def mean_nll(model, tokenizer, texts: Sequence[str], batch_size: int = 32) -> list[float]:
    """Mean token negative log-likelihood of each full string under the LM (spec A.7).

    nll(s) = (1/|s|−1) Σ_{t≥1} −log P(s_t | s_<t); pad positions are ignored, prompt tokens
    count (ZeroGen scores the whole filled template).
    """
    out = [0.0] * len(texts)
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))   # similar lengths share a batch: less padding
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        ids, mask = encode_left_padded(tokenizer, [texts[i] for i in idx])
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()   # (N, L, V)
        tgt = ids[:, 1:, None]
        lp = (logits[:, :-1].gather(-1, tgt) - logits[:, :-1].logsumexp(-1, keepdim=True)).squeeze(-1)   # (N, L-1)
        m = mask[:, 1:].float() * mask[:, :-1].float()
        nll = -(lp * m).sum(1) / m.sum(1).clamp_min(1)
        for i, v in zip(idx, nll.tolist()):   # back to the callers' order
            out[i] = v
    return out


def config_dict(cfg: DecodeConfig) -> dict:
    return cfg.model_dump() if hasattr(cfg, "model_dump") else asdict(cfg)


__all__ = ["DecodeConfig", "sample", "self_debias", "top_k_filter", "top_p_filter", "mean_nll",
           "count_new_tokens", "stop_token_mask", "encode_left_padded", "prompt_ids", "cut_at_stop"]
