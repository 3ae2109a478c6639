"""Turning a source's raw splits into a task's output splits.

Sources deliver *raw* splits named as on disk / on the hub (``train``, ``dev``,
``dev_matched``, ``all``...). ``split_map`` says which raw split feeds each output
split. When a raw split is missing (SST-2 here has no dev, QQP only dev, SICK one
file), the output splits that lack data are **carved** from a pool with a fixed
seed: each carved evaluation split gets ``eval_fraction`` of the pool and the
training split keeps the rest. With ``group_by`` whole groups (a SQuAD article,
a photo) go to one side, so no context leaks from train into evaluation.

``eval_split`` overrides where evaluation data comes from:

* ``None``          -- the defaults of ``split_map``;
* ``"carve"``       -- ignore the source's evaluation files, carve from training data
  (keeps an official dev set untouched);
* a raw split name  -- e.g. ``"test"``, for a task with one evaluation split;
* a mapping         -- output split -> raw split name or ``"carve"``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from datasets import Dataset

from ..errors import DataMissingError

CARVE = "carve"
DEFAULT_EVAL_FRACTION = 0.1


def resolve_split_map(split_map: Mapping[str, str], eval_splits: tuple[str, ...],
                      eval_split: str | Mapping[str, str] | None, task: str) -> dict[str, str]:
    """Apply the ``eval_split`` override to a default ``split_map``."""
    out = dict(split_map)
    if eval_split is None:
        return out
    if isinstance(eval_split, str):
        if eval_split != CARVE and len(eval_splits) != 1:
            raise ValueError(f"task {task!r} has {len(eval_splits)} evaluation splits "
                             f"{list(eval_splits)}; give eval_split as a mapping "
                             f"split -> raw split (or 'carve')")
        eval_split = {s: eval_split for s in eval_splits}
    for split, raw in eval_split.items():
        if split not in eval_splits:
            raise ValueError(f"task {task!r}: eval_split names {split!r}, which is not one of "
                             f"its evaluation splits {list(eval_splits)}")
        out[split] = "\0carve" if raw == CARVE else raw
    return out


def _group_ids(ds: Dataset, group_by: str | None) -> np.ndarray:
    if not group_by:
        return np.arange(len(ds))
    keys = ds[group_by]
    first: dict[str, int] = {}
    return np.array([first.setdefault(k, len(first)) for k in keys])


def carve(pool: Dataset, sizes: Mapping[str, float], rest: str, seed: int,
          group_by: str | None = None) -> dict[str, Dataset]:
    """Split `pool` into ``sizes`` (name -> fraction) plus `rest`, deterministically.

    Rows keep their original order inside each part (only membership is random).
    """
    groups = _group_ids(pool, group_by)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    order = np.random.default_rng(seed).permutation(n_groups)
    parts: dict[str, np.ndarray] = {}
    start = 0
    for name, frac in sizes.items():
        n = max(1, int(round(frac * n_groups))) if n_groups > len(sizes) else 0
        parts[name] = order[start:start + n]
        start += n
    parts[rest] = order[start:]
    out = {}
    for name, chosen in parts.items():
        mask = np.isin(groups, chosen)
        out[name] = pool.select(np.flatnonzero(mask).tolist())
    return out


def assemble(raw: Mapping[str, Dataset], split_map: Mapping[str, str], *, task: str,
             seed: int, eval_fraction: float = DEFAULT_EVAL_FRACTION,
             group_by: str | None = None, required: tuple[str, ...] = (),
             where: str = "") -> tuple[dict[str, Dataset], list[str]]:
    """Output splits from raw splits; returns (splits, names of the carved ones).

    `required` lists output splits whose raw split was asked for explicitly: those
    must exist (an error lists what does), the others are carved when missing.
    """
    for s in required:
        r = split_map[s]
        if not r.startswith("\0") and r not in raw:
            raise DataMissingError(f"task {task!r}: eval_split asks for raw split {r!r}{where}, "
                                    f"which does not exist; available: {sorted(raw)}")
    if not raw:
        raise DataMissingError(f"task {task!r}: no data found{where}")
    train = next(iter(split_map))
    out = {s: raw[r] for s, r in split_map.items() if r in raw}
    missing = [s for s in split_map if s not in out]
    if not missing:
        return out, []
    pool_name = split_map[train] if split_map[train] in raw else max(raw, key=lambda k: len(raw[k]))
    # every output split fed by the pool, or with no data of its own, shares the pool
    sharing = [s for s, r in split_map.items() if r == pool_name or s in missing]
    rest = train if train in sharing else sharing[0]
    sizes = {s: eval_fraction for s in sharing if s != rest}
    out.update(carve(raw[pool_name], sizes, rest=rest, seed=seed, group_by=group_by))
    return out, sorted(set(missing) | set(sizes))


def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """At most `n` rows, a seeded random subset kept in original order."""
    if n is None or len(ds) <= n:
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    return ds.select(idx.tolist())

