"""Length-grouped training batches (FinetuneHP.group_by_length): same rows, far less padding.

The speed itself is measured in benchmarks/bench_finetune.py (against transformers' Trainer);
here the deterministic part: which rows an epoch sees and how many pad tokens dynamic padding
adds. With grouping switched off (lengths=None) the padding check below fails (ratio ~1).
"""
from __future__ import annotations

import numpy as np

from arkbench.training.glue import GlobalBatchSampler


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
