"""Length-grouped training batches (FinetuneHP.group_by_length): same rows, far less padding.

The speed itself is measured in benchmarks/bench_finetune.py (against transformers' Trainer);
here the deterministic part: which rows an epoch sees and how many pad tokens dynamic padding
adds. With grouping switched off (lengths=None) the padding check below fails (ratio ~1).
Evaluation batches are sorted by length (glue.predict_by_length) and the logits put back in row
order; without the un-sort step the equality test below fails.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from arkbench.training.glue import MODEL_INPUTS, GlobalBatchSampler, make_loader, predict, predict_by_length


def _lengths(n: int = 4000, seed: int = 0) -> list[int]:
    # SST-2-like: phrases of 3-60 WordPieces, most short (lognormal around ~12)
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(2.4, 0.7, n).astype(int) + 3, 3, 64).tolist()


def _padded_tokens(batches, lengths) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_grouping_keeps_the_rows_and_cuts_padding():
    lengths = _lengths()
    plain = GlobalBatchSampler(len(lengths), 32, seed=3)
    grouped = GlobalBatchSampler(len(lengths), 32, seed=3, lengths=lengths)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        grouped.set_epoch(epoch)
        a, b = list(plain), list(grouped)
        assert len(a) == len(b) == len(plain) and all(len(x) == 32 for x in b)
        assert sorted(i for x in a for i in x) == sorted(i for x in b for i in x)   # same rows per epoch
        real = sum(lengths[i] for x in b for i in x)
        pad_plain = _padded_tokens(a, lengths) - real
        pad_grouped = _padded_tokens(b, lengths) - real
        assert pad_grouped * 5 < pad_plain, (pad_plain, pad_grouped)
    # deterministic in (seed, epoch); batch order is shuffled, not sorted by length
    again = GlobalBatchSampler(len(lengths), 32, seed=3, lengths=lengths)
    again.set_epoch(1)
    assert list(again) == b
    firsts = [max(lengths[i] for i in x) for x in b]
    assert firsts != sorted(firsts, reverse=True)


def test_grouping_under_ddp_splits_each_global_batch():
    lengths = _lengths(640)
    single = list(GlobalBatchSampler(640, 32, seed=1, lengths=lengths))
    ranks = [list(GlobalBatchSampler(640, 16, seed=1, rank=r, world_size=2, lengths=lengths)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == single


class _MeanPool(torch.nn.Module):
    """A stand-in model: masked mean of embeddings ([B, C]) or per-token scores ([B, T, 2]);
    it counts the tokens (padding included) it is fed."""

    def __init__(self, token_level: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 3)
        self.token_level = token_level
        self.tokens_seen = 0

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        self.tokens_seen += input_ids.numel()
        h = self.emb(input_ids)                                     # [B, T, 3]
        if self.token_level:
            return SimpleNamespace(logits=h[..., :2])               # [B, T, 2]
        m = attention_mask.unsqueeze(-1).float()
        return SimpleNamespace(logits=(h * m).sum(1) / m.sum(1))    # [B, 3]


def _features(n: int = 300) -> list[dict]:
    lengths = _lengths(n, seed=5)
    rng = np.random.default_rng(1)
    return [{"input_ids": rng.integers(1, 50, size=k).tolist(), "attention_mask": [1] * k,
             "token_type_ids": [0] * k} for k in lengths]


@pytest.mark.parametrize("token_level", [False, True])
def test_length_sorted_evaluation_returns_logits_in_row_order_with_less_padding(token_level):
    feats = _features()
    cpu = torch.device("cpu")
    plain, by_len = _MeanPool(token_level), _MeanPool(token_level)
    ref = predict(plain, make_loader(feats, 32, keys=MODEL_INPUTS), cpu)
    got = predict_by_length(by_len, feats, 32, cpu)
    assert got.shape == ref.shape
    if token_level:   # widths differ per batch: compare each row's real tokens
        for i, f in enumerate(feats):
            np.testing.assert_allclose(got[i, :len(f["input_ids"])], ref[i, :len(f["input_ids"])], rtol=1e-6)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert by_len.tokens_seen * 2 < plain.tokens_seen, (by_len.tokens_seen, plain.tokens_seen)
