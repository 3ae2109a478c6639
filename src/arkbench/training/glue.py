"""Sentence(-pair) classification and regression: features, batching, evaluation.

Covers every task whose ``TaskSpec.problem_type`` is ``classification`` or
``regression`` (GLUE, SST-2, MNLI, rotten_tomatoes, SNLI, SICK...). Text fields come
from the spec (one sentence, or a pair encoded as ``[CLS] a [SEP] b [SEP]``), labels
from ``label`` (class index, or a float for regression). Features are unpadded lists;
:func:`collate` pads a batch to its longest row (dynamic padding).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

__all__ = ["encode", "collate", "make_loader", "GlobalBatchSampler", "predict", "predict_by_length", "split_metrics", "MODEL_INPUTS"]

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encode(ds: Any, tokenizer, text_fields: Sequence[str], max_seq_len: int,
           problem_type: str = "classification", with_labels: bool = True,
           chunk: int = 1000) -> list[dict[str, Any]]:
    """Tokenise rows of `ds` (datasets.Dataset or dict of lists) into unpadded features."""
    if not 1 <= len(text_fields) <= 2:
        raise ValueError(f"expected one or two text fields, got {list(text_fields)}")
    cols = [list(ds[f]) for f in text_fields]
    labels = list(ds["label"]) if with_labels else None
    n = len(cols[0])
    feats: list[dict[str, Any]] = []
    for lo in range(0, n, chunk):
        parts = [c[lo:lo + chunk] for c in cols]
        enc = tokenizer(*parts, truncation=True, max_length=max_seq_len, padding=False,
                        return_token_type_ids=True, return_attention_mask=True)
        for i in range(len(parts[0])):
            f = {k: list(enc[k][i]) for k in MODEL_INPUTS}
            if labels is not None:
                y = labels[lo + i]
                f["labels"] = float(y) if problem_type == "regression" else int(y)
            feats.append(f)
    return feats


def collate(batch: Sequence[dict[str, Any]], pad_id: int = 0,
            keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Pad the model inputs of `batch` to its longest row; stack label-like scalars.

    `keys` limits the output (e.g. to :data:`MODEL_INPUTS`); by default every model
    input and every label key present (labels, start_positions, end_positions).
    """
    keys = tuple(keys) if keys is not None else tuple(
        k for k in (*MODEL_INPUTS, "labels", "start_positions", "end_positions") if k in batch[0])
    width = max(len(f["input_ids"]) for f in batch)
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        if k in MODEL_INPUTS:
            pad = pad_id if k == "input_ids" else 0
            out[k] = torch.tensor([f[k] + [pad] * (width - len(f[k])) for f in batch], dtype=torch.long)
        elif k == "labels" and isinstance(batch[0][k], float):
            out[k] = torch.tensor([f[k] for f in batch], dtype=torch.float32)
        else:
            out[k] = torch.tensor([f[k] for f in batch], dtype=torch.long)
    return out


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Shuffled global batches of ``batch_size x world_size`` rows; rank r takes slice r.

    Every epoch is a fresh permutation keyed on (seed, epoch) only, so one process with
    batch B*W and W ranks with batch B see the same global batches in the same order:
    DDP fine-tuning takes the single-process optimiser steps (up to float summation order
    and per-rank dropout). The incomplete last global batch is dropped (it would give
    ranks unequal shares and bias the all-reduced mean gradient).

        sampler = GlobalBatchSampler(n, 16, seed=0, rank=info.rank, world_size=info.world_size)
        DataLoader(features, batch_sampler=sampler, ...)   # call sampler.set_epoch(e) per epoch


    With `lengths` (tokens per row), batches are **length-grouped**: the epoch's
    permutation is cut into chunks of ``GROUP_CHUNK`` global batches, each chunk is
    sorted by length (longest first) and cut into batches, and the batch order is then
    shuffled. Rows of similar length share a batch, so dynamic padding adds few pad
    tokens (SST-2 sentences: 4-60 WordPieces), while every batch stays a random draw
    from a 50-batch window (transformers' ``group_by_length`` does the same).
    """

    GROUP_CHUNK = 50

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 lengths: Sequence[int] | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world_size
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"lengths has {len(lengths)} entries for {n} rows")
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.epoch = 0
        if n < batch_size * world_size:
            raise ValueError(f"{n} training rows cannot fill one global batch of {batch_size} x {world_size} "
                             f"ranks; lower batch_size")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        glob = self.batch_size * self.world
        lo = self.rank * self.batch_size
        batches = [perm[start:start + glob] for start in range(0, len(self) * glob, glob)]
        if self.lengths is not None:
            used = [i for b in batches for i in b]   # the same rows as without grouping
            batches = []
            step = glob * self.GROUP_CHUNK
            for c in range(0, len(used), step):
                chunk = sorted(used[c:c + step], key=lambda i: (-int(self.lengths[i]), i))
                batches += [chunk[k:k + glob] for k in range(0, len(chunk), glob)]
            order = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[k] for k in order]
        for b in batches:
            yield b[lo:lo + self.batch_size]


def make_loader(features: Sequence[dict[str, Any]], batch_size: int = 1, *, shuffle: bool = False,
                seed: int = 0, pad_id: int = 0, keys: Iterable[str] | None = None,
                batch_sampler: GlobalBatchSampler | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over `features`; shuffling is seeded (deterministic order per seed).

    With `batch_sampler` (training), it decides batching and order and `batch_size` /
    `shuffle` / `seed` are unused.
    """
    keys = tuple(keys) if keys is not None else None
    collate_fn = lambda b: collate(b, pad_id, keys)  # noqa: E731
    if batch_sampler is not None:
        return torch.utils.data.DataLoader(list(features), batch_sampler=batch_sampler, num_workers=0,
                                           collate_fn=collate_fn)
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return torch.utils.data.DataLoader(list(features), batch_size=batch_size, shuffle=shuffle, generator=gen,
                                       num_workers=0, collate_fn=collate_fn)


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device,
            autocast_dtype: torch.dtype | None = None) -> np.ndarray:
    """Stacked logits (float32) of `model` over `loader`, in loader order.

    Sequence-level heads give [N, C]; token-level heads ([B, T, ...] per batch) are
    padded along T to the longest batch with -1e9 (never chosen as a span end point).
    """
    model.eval()
    outs = []
    for batch in loader:
        inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(**inputs).logits
        outs.append(logits.float().cpu().numpy())
    if not outs:
        return np.zeros((0, 1), dtype=np.float32)
    if outs[0].ndim >= 3:
        width = max(o.shape[1] for o in outs)
        outs = [np.pad(o, [(0, 0), (0, width - o.shape[1])] + [(0, 0)] * (o.ndim - 2), constant_values=-1e9)
                for o in outs]
    return np.concatenate(outs, axis=0)


def predict_by_length(model: torch.nn.Module, features: Sequence[dict[str, Any]], batch_size: int,
                      device: torch.device, *, pad_id: int = 0, autocast_dtype: torch.dtype | None = None,
                      desc: str | None = None) -> np.ndarray:
    """:func:`predict` over batches of similar length, returned in `features`' order.

    Evaluation sets mix short and long rows; batching them in order pads every batch to its
    longest row. Sorting by length first (stable, so ties keep their order) cuts the padded
    tokens, and the inverse permutation puts the logits back: row i of the result is
    features[i]'s logits, as with an unsorted loader (up to float rounding of batch shapes).
    """
    from ..progress import progress

    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))   # [N] short -> long
    loader = make_loader([features[i] for i in order], batch_size, pad_id=pad_id, keys=MODEL_INPUTS)
    logits = predict(model, progress(loader, desc=desc, unit="batch") if desc else loader, device, autocast_dtype)
    out = np.empty_like(logits)
    out[np.asarray(order, dtype=np.int64)] = logits   # un-sort: out[order[k]] = logits[k]
    return out


def split_metrics(metric_name: str, logits: np.ndarray, references: Sequence,
                  problem_type: str) -> dict[str, float]:
    """The official metric of one evaluation split from the model's logits."""
    from .. import metrics

    if problem_type == "regression":
        preds = [float(x) for x in logits.reshape(len(logits), -1)[:, 0]]
        refs = [float(x) for x in references]
    else:
        preds = [int(x) for x in logits.argmax(-1)]
        refs = [int(x) for x in references]
    return metrics.compute(metric_name, predictions=preds, references=refs)
