"""ZeroGen generator: logits processors, self-debiasing, batched KV-cache decoding, determinism."""
from __future__ import annotations

import pytest
import torch

from arkbench.papers.zerogen import generate as G
from arkbench.papers.zerogen import plm
from tiny_lm import random_gpt2


@pytest.fixture(scope="module")
def tiny():
    """A randomly initialised GPT-2-shaped LM with a byte-level BPE (seeded; no training)."""
    model, tok = random_gpt2(plm.smoke_corpus(60), n_positions=256, n_embd=32, n_layer=2, tie_word_embeddings=False)
    with torch.no_grad():   # peaky next-token distributions (untied: a tied random head copies its input)
        model.lm_head.weight.mul_(5.0)
    return model, tok


PROMPTS = ['Movie: "', 'The movie review in positive sentiment for movie "Night Train" is: "',
           '"A man is here."\nBased on the above description, the following sentence is definitely wrong: "']


# ----------------------------------------------------------------------------- processors
def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = G.top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, False, True, False]]
    assert torch.equal(G.top_k_filter(logits, 0), logits)


def test_top_p_matches_hf_warper():
    """Same kept set as transformers' TopPLogitsWarper on random rows."""
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(1)
    logits = torch.randn(6, 50) * 3
    for p in (0.1, 0.5, 0.9, 0.99):
        ours = torch.isfinite(G.top_p_filter(logits, p))
        ref = torch.isfinite(TopPLogitsWarper(p)(None, logits.clone()))
        assert torch.equal(ours, ref), p


def test_self_debias_lowers_counter_favoured_tokens():
    """Tokens the counter prompt favours lose probability; λ = 0 is plain softmax; ε floors the decay.
    (Switched off -- returning log_softmax(reg) -- the first assertion fails.)"""
    reg = torch.tensor([[2.0, 1.0, 0.0, 0.5]])
    cnt = torch.tensor([[[0.0, 3.0, 0.0, 0.5]]])            # counter favours token 1
    p_reg = reg.softmax(-1)
    q = G.self_debias(reg, cnt, decay_constant=200.0, epsilon=0.01).exp()
    assert q[0, 1] < 0.5 * p_reg[0, 1]
    assert q[0, 0] > p_reg[0, 0]                           # mass moves to unfavoured tokens
    assert torch.allclose(q.sum(-1), torch.ones(1))
    plain = G.self_debias(reg, cnt, decay_constant=0.0, epsilon=0.01).exp()
    assert torch.allclose(plain, p_reg, atol=1e-6)
    # with a huge λ the factor is exactly ε for every token with α > 0
    alpha = (cnt.softmax(-1)[:, 0] - p_reg).clamp_min(0)
    hard = G.self_debias(reg, cnt, decay_constant=1e6, epsilon=0.01).exp()
    expect = p_reg * torch.where(alpha > 0, torch.tensor(0.01), torch.tensor(1.0))
    assert torch.allclose(hard, expect / expect.sum(), atol=1e-6)


# ----------------------------------------------------------------------------- decoding
def _greedy_reference(model, tok, prompt: str, n: int, counter: str | None = None, lam: float = 0.0,
                      suppress_eos: bool = True, stop_str: str = '"') -> list[int]:
    """Full-sequence recomputation (no cache, no padding), one prompt at a time."""
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    cids = tok(counter, add_special_tokens=False)["input_ids"] if counter else None
    out: list[int] = []
    stop = G.stop_token_mask(tok, stop_str)
    with torch.no_grad():
        for _ in range(n):
            lg = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            if cids is not None:
                cl = model(input_ids=torch.tensor([cids + out])).logits[0, -1]
                lg = G.self_debias(lg[None], cl[None, None], lam, 0.01)[0]
            if suppress_eos:
                lg[tok.eos_token_id] = float("-inf")
            nxt = int(lg.argmax())
            out.append(nxt)
            if stop[nxt]:
                break
    return out


def test_batched_kv_greedy_equals_unbatched_recompute(tiny):
    """Left padding + position ids + KV cache give the same tokens as recomputing each prompt alone
    (a wrong position offset for padded rows makes this fail)."""
    model, tok = tiny
    cfg = G.DecodeConfig(do_sample=False, max_new_tokens=12, batch_size=8)
    got = G.sample(model, tok, PROMPTS, cfg)
    for p, text in zip(PROMPTS, got):
        ref = tok.decode(_greedy_reference(model, tok, p, 12), skip_special_tokens=True)
        assert text == ref


def test_self_debiased_sampling_equals_recomputation(tiny):
    """Counter rows are forced to the regular row's sampled token and debias every step: the debiased
    log-probabilities the batched, cached sampler uses equal self_debias() of a full recomputation of
    both prompts plus the tokens sampled so far; and they differ from plain sampling's (switched off,
    the second assertion fails)."""
    model, tok = tiny
    reg, cnt = PROMPTS[2], PROMPTS[1]
    cfg = G.DecodeConfig(top_p=1.0, max_new_tokens=6, decay_constant=200.0, stop="")
    trace: list = []
    ids = G._sample_batch(model, tok, [reg, PROMPTS[0]], [[cnt], [cnt]], cfg, torch.Generator().manual_seed(3),
                          trace=trace)[0]
    r_ids = tok(reg, add_special_tokens=False)["input_ids"]
    c_ids = tok(cnt, add_special_tokens=False)["input_ids"]
    moved = 0.0
    with torch.no_grad():
        for t, got in enumerate(trace):
            lr = model(input_ids=torch.tensor([r_ids + ids[:t]])).logits[0, -1]
            lc = model(input_ids=torch.tensor([c_ids + ids[:t]])).logits[0, -1]
            want = G.self_debias(lr[None], lc[None, None], 200.0, 0.01)[0]
            want[tok.eos_token_id] = float("-inf")
            fin = torch.isfinite(want)
            assert torch.allclose(got[0][fin], want[fin], atol=1e-4)
            moved = max(moved, float((want[fin] - lr.log_softmax(-1)[fin]).abs().max()))
    assert moved > 0.05      # some token's probability changed by > 5%


def test_sampling_is_deterministic_for_a_seed(tiny):
    model, tok = tiny
    cfg = G.DecodeConfig(top_p=0.9, max_new_tokens=10, batch_size=2)
    prompts = PROMPTS * 2
    a = G.sample(model, tok, prompts, cfg, seed=7)
    b = G.sample(model, tok, prompts, cfg, seed=7)
    c = G.sample(model, tok, prompts, cfg, seed=8)
    assert a == b
    assert a != c


def test_rows_stop_at_closing_quote(tiny):
    """A row ends with its first quote-bearing token; rows without one run to max_new_tokens."""
    model, tok = tiny
    cfg = G.DecodeConfig(top_p=1.0, temperature=2.0, max_new_tokens=30, batch_size=16)
    rows = G._sample_batch(model, tok, PROMPTS * 5, None, cfg, torch.Generator().manual_seed(0))
    stop = G.stop_token_mask(tok, '"')
    stopped = 0
    for ids in rows:
        flags = [bool(stop[i]) for i in ids]
        if any(flags):
            stopped += 1
            assert flags.index(True) == len(ids) - 1
        else:
            assert len(ids) == 30
    assert stopped > 0


def test_counter_argument_errors(tiny):
    model, tok = tiny
    cfg = G.DecodeConfig(decay_constant=1.0)
    with pytest.raises(ValueError, match="counters has 1 entries for 2 prompts"):
        G.sample(model, tok, PROMPTS[:2], cfg, counters=[["x"]])
    with pytest.raises(ValueError, match="same number of counter prompts"):
        G.sample(model, tok, PROMPTS[:2], cfg, counters=[["x"], ["y", "z"]])


def test_mean_nll_matches_hf_loss(tiny):
    """mean_nll equals transformers' own causal-LM loss of each string alone (padding ignored), in
    the callers' order although batches are formed by length (3 texts, batches of 2)."""
    model, tok = tiny
    texts = ["The movie review in positive sentiment is: \"fine\"", 'Movie: "A"',
             'The movie review in negative sentiment is: "dull and long"']
    ours = G.mean_nll(model, tok, texts, batch_size=2)
    for t, v in zip(texts, ours):
        ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            ref = float(model(input_ids=ids, labels=ids).loss)
        assert v == pytest.approx(ref, rel=1e-4)
