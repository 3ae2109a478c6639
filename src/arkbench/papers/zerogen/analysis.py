"""Diversity of a synthetic set: Self-BLEU (spec A.10, ZeroGen's ``scripts/self_bleu.py``).

    self_bleu(texts, n_sample=1000, seed=0)   # mean over n = 1..5 of mean sentence-BLEU-n

For each of (up to) ``n_sample`` texts sampled with ``random.Random(seed)``, sentence BLEU
with uniform weights over 1..n-grams is computed against all the *other* sampled texts as
references, with NLTK's ``SmoothingFunction().method1`` (a zero n-gram match count becomes
ε = 0.1 / total); the result is the average over texts and over n = 1..5 (NLTK's rules, see sentence_bleu). Lower = more
diverse. Tokenisation: lower-cased regex word/punctuation split (ZeroGen uses spaCy's
tokenizer; the split here is ours and documented as a deviation).

    BLEU_n(h, R) = BP · exp( Σ_{k≤n} (1/n) log p_k ),  p_k = Σ_g min(c_h(g), max_r c_r(g)) / Σ_g c_h(g)
    BP = 1 if |h| > r* else exp(1 − r*/|h|),  r* = the reference length closest to |h| (shorter on ties)
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Sequence

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], k: int) -> Counter:
    return Counter(tuple(tokens[i: i + k]) for i in range(len(tokens) - k + 1))


def sentence_bleu(hyp: Sequence[str], refs_max: dict[int, Counter], ref_lens: Sequence[int], n: int) -> float:
    """BLEU-n of `hyp` given, per order k, the max count of each k-gram over the references.

    As NLTK's sentence_bleu with SmoothingFunction().method1: no unigram match -> 0; an order
    with no match (or no k-gram at all) gets p_k = 0.1 / max(1, #k-grams of hyp).
    """
    if not hyp:
        return 0.0
    logs = []
    for k in range(1, n + 1):
        counts = _ngrams(hyp, k)
        total = max(1, sum(counts.values()))
        match = sum(min(c, refs_max[k].get(g, 0)) for g, c in counts.items())
        if k == 1 and match == 0:
            return 0.0
        logs.append(math.log(match / total if match > 0 else 0.1 / total))
    h = len(hyp)
    r = min(ref_lens, key=lambda L: (abs(L - h), L))
    bp = 1.0 if h > r else math.exp(1 - r / h)
    return bp * math.exp(sum(logs) / n)


def self_bleu(texts: Sequence[str], n_sample: int = 1000, seed: int = 0, max_n: int = 5) -> float:
    """Mean Self-BLEU over n = 1..max_n (0 when fewer than two texts)."""
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        return 0.0
    rng = random.Random(seed)
    picked = rng.sample(list(texts), min(n_sample, len(texts)))
    toks = [tokenize(t) for t in picked]
    grams = [{k: _ngrams(t, k) for k in range(1, max_n + 1)} for t in toks]
    lens = [len(t) for t in toks]
    scores = {n: [] for n in range(1, max_n + 1)}
    for i, hyp in enumerate(toks):
        refs_max: dict[int, Counter] = {}
        for k in range(1, max_n + 1):
            m: Counter = Counter()
            for j, g in enumerate(grams):
                if j != i:
                    m |= g[k]            # element-wise max of counts
            refs_max[k] = m
        ref_lens = [L for j, L in enumerate(lens) if j != i]
        for n in range(1, max_n + 1):
            scores[n].append(sentence_bleu(hyp, refs_max, ref_lens, n))
    return sum(sum(v) / len(v) for v in scores.values()) / max_n
