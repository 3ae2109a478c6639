"""MLM data: tokenise a corpus, pack it into fixed-length blocks, mask them BERT-style.

    ids = tokenize_texts(texts, tokenizer)                   # list of token-id lists
    blocks = pack_blocks(ids, seq_len, cls_id, sep_id)       # LongTensor [N, seq_len]
    masker = Masker.from_tokenizer(tokenizer, mlm_probability=0.15)
    inputs, labels = masker(blocks[idx], masker.generator(seed, step))

Packing (RoBERTa's FULL-SENTENCES style): every document's tokens are concatenated
into one stream with [SEP] between documents, the stream is cut into chunks of
`seq_len - 2` tokens and each chunk becomes `[CLS] chunk [SEP]`. Every block is
exactly `seq_len` long, so there is no padding (and no attention mask) at all; the
tail shorter than one chunk is dropped.

Masking (BERT): each non-special token is selected with probability
`mlm_probability`; a selected token becomes [MASK] 80% of the time, a random
non-special token 10%, and stays unchanged 10%. Labels are the original ids at
selected positions and -100 elsewhere. Special tokens ([CLS], [SEP], [PAD], ...)
are never selected.

Determinism: masking takes an explicit `torch.Generator`; :func:`step_generator`
derives it from (seed, step, stream) with no state carried between steps, so a
resumed run recomputes exactly the same masks. :class:`BlockSampler` likewise maps a
global sample position to a block index through a per-epoch permutation seeded by
(seed, epoch): the data position is a pure function of the step.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

IGNORE_INDEX = -100


def tokenize_texts(texts: Iterable[str], tokenizer, batch_size: int = 1000) -> list[list[int]]:
    """Token ids per non-empty text, without special tokens (the packer adds them)."""
    out: list[list[int]] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            enc = tokenizer(buf, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
            out.extend(e for e in enc if e)
            buf.clear()

    for t in texts:
        if t and t.strip():
            buf.append(t)
            if len(buf) >= batch_size:
                flush()
    flush()
    return out


def pack_blocks(docs: Sequence[Sequence[int]], seq_len: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """Concatenate `docs` ([SEP] between documents) into `[CLS] ... [SEP]` blocks of `seq_len`."""
    if seq_len < 3:
        raise ValueError(f"seq_len={seq_len} must be >= 3 ([CLS] token [SEP])")
    body = seq_len - 2
    lengths = [len(d) for d in docs if len(d)]
    if not lengths:
        raise ValueError("cannot pack an empty corpus")
    stream = np.empty(sum(lengths) + len(lengths) - 1, dtype=np.int64)
    pos = 0
    first = True
    for d in docs:
        if not len(d):
            continue
        if not first:
            stream[pos] = sep_id
            pos += 1
        stream[pos:pos + len(d)] = d
        pos += len(d)
        first = False
    n = len(stream) // body
    if n == 0:
        raise ValueError(f"corpus has {len(stream)} tokens: fewer than one block of seq_len={seq_len}")
    blocks = np.empty((n, seq_len), dtype=np.int64)
    blocks[:, 0] = cls_id
    blocks[:, 1:-1] = stream[: n * body].reshape(n, body)
    blocks[:, -1] = sep_id
    return torch.from_numpy(blocks)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (numpy SeedSequence), order-sensitive."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


# stream ids for step_generator: separate random streams for separate purposes
TRAIN_MASK, VAL_MASK, DROPOUT, ORDER = 0, 1, 2, 3


def step_generator(seed: int, step: int, stream: int = TRAIN_MASK, rank: int = 0) -> torch.Generator:
    """A fresh CPU generator for (seed, step, stream, rank): no state survives a step."""
    return torch.Generator().manual_seed(derive_seed(seed, step, stream, rank))


class Masker:
    """BERT's 80/10/10 masking over a batch of token ids [B, T]."""

    def __init__(self, vocab_size: int, mask_id: int, special_ids: Iterable[int],
                 mlm_probability: float = 0.15, mask_ratio: float = 0.8, random_ratio: float = 0.1):
        if not 0 < mlm_probability < 1:
            raise ValueError(f"mlm_probability={mlm_probability} must be in (0, 1)")
        if mask_ratio < 0 or random_ratio < 0 or mask_ratio + random_ratio > 1:
            raise ValueError(f"mask_ratio={mask_ratio} + random_ratio={random_ratio} must be within [0, 1]")
        self.vocab_size, self.mask_id, self.p = vocab_size, mask_id, mlm_probability
        self.mask_ratio, self.random_ratio = mask_ratio, random_ratio
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[torch.tensor(sorted(set(special_ids)), dtype=torch.long)] = True
        self.is_special = special                              # [V] lookup table
        self.normal_ids = torch.nonzero(~special).squeeze(1)   # random replacements come from here

    @classmethod
    def from_tokenizer(cls, tokenizer, mlm_probability: float = 0.15) -> "Masker":
        return cls(len(tokenizer), tokenizer.mask_token_id, tokenizer.all_special_ids, mlm_probability)

    def __call__(self, ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) for `ids` [B, T]; `ids` is not modified."""
        ids = ids.long()
        can = ~self.is_special[ids]
        u = torch.rand(ids.shape, generator=generator)            # selection
        v = torch.rand(ids.shape, generator=generator)            # what to do with a selected token
        rnd = torch.randint(len(self.normal_ids), ids.shape, generator=generator)
        selected = (u < self.p) & can
        labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
        inputs = ids.clone()
        to_mask = selected & (v < self.mask_ratio)
        to_rand = selected & (v >= self.mask_ratio) & (v < self.mask_ratio + self.random_ratio)
        inputs[to_mask] = self.mask_id
        inputs[to_rand] = self.normal_ids[rnd[to_rand]]
        return inputs, labels


class BlockSampler:
    """Global sample position -> block index: a fresh permutation of the blocks per epoch.

    Position p (0-based count of blocks consumed since the start of training) is
    block `perm[p // n][p % n]` where `perm[e]` is seeded by (seed, e). So the batch
    of global step s is positions [s*G, (s+1)*G) whatever the world size -- resume
    and DDP need no sampler state.
    """

    def __init__(self, num_blocks: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = num_blocks, seed, shuffle
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.clear()
            self._cache[epoch] = (torch.randperm(self.n, generator=step_generator(self.seed, epoch, ORDER))
                                  if self.shuffle else torch.arange(self.n))
        return self._cache[epoch]

    def indices(self, start: int, count: int) -> torch.Tensor:
        pos = torch.arange(start, start + count)
        out = torch.empty(count, dtype=torch.long)
        epochs = pos // self.n
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._perm(e)[pos[sel] % self.n]
        return out


def global_batch(blocks: torch.Tensor, sampler: BlockSampler, masker: Masker, seed: int, step: int,
                 global_batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked global batch of optimizer step `step`: (inputs, labels), each [G, T].

    Every rank builds the whole global batch (cheap: G*T random numbers) and takes its
    slice with :func:`shard`, so the masks and the masked-token count do not depend on
    the world size or the accumulation split.
    """
    idx = sampler.indices(step * global_batch_size, global_batch_size)
    return masker(blocks[idx], step_generator(seed, step, TRAIN_MASK))


def shard(x: torch.Tensor, micro: int, rank: int, world_size: int, micro_batch: int) -> torch.Tensor:
    """Rows of micro-batch `micro` for `rank`: contiguous slice (micro * world + rank) of the global batch."""
    start = (micro * world_size + rank) * micro_batch
    return x[start:start + micro_batch]
