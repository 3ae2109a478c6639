"""Turning a source's raw splits into a task's output splits.

Sources deliver *raw* splits named as on disk / on the hub (``train``, ``dev``,
``dev_matched``, ``all``...). ``split_map`` says which raw split feeds each output
split. When a raw split is missing (SST-2 here has no dev, QQP only dev, SICK one
file), the output splits that lack data are **carved** from a pool with a fixed
seed: each carved evaluation split gets ``eval_fraction`` of the pool and the
training split keeps the rest. With ``group_by`` whole groups (a SQuAD article,
a photo) go to one side, so no context leaks from train into evaluation.

A task may name a **carve rule** (``TaskSpec.carve_rule``) for when its evaluation
rows must look like the official ones rather than like a random slice of the pool:

* ``whole_sentences`` -- SST-2's train file mixes every phrase of each review sentence
  with the sentence itself (67k rows, ~6.9k sentences), while the official dev set
  holds whole sentences only. Sentences are the rows that are no other row's
  token span (found longest first); evaluation splits get whole sentences, the
  training split keeps only rows that are spans of its own sentences (phrases found
  only inside an evaluation sentence are dropped, as in the official split).
* ``articles`` -- WikiText: a line ``" = Title = "`` starts an article; whole articles
  go to one side.

``eval_split`` overrides where evaluation data comes from:

* ``None``          -- the defaults of ``split_map``;
* ``"carve"``       -- ignore the source's evaluation files, carve from training data
  (keeps an official dev set untouched);
* a raw split name  -- e.g. ``"test"``, for a task with one evaluation split;
* a mapping         -- output split -> raw split name or ``"carve"``.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

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


def _shares(n_groups: int, sizes: Mapping[str, float], rest: str, seed: int) -> dict[str, np.ndarray]:
    """Group ids of each part: a seeded permutation cut into ``sizes`` + `rest`."""
    order = np.random.default_rng(seed).permutation(n_groups)
    parts: dict[str, np.ndarray] = {}
    start = 0
    for name, frac in sizes.items():
        n = max(1, int(round(frac * n_groups))) if n_groups > len(sizes) else 0
        parts[name] = order[start:start + n]
        start += n
    parts[rest] = order[start:]
    return parts


def _article_ids(ds: Dataset, text_field: str) -> np.ndarray:
    """WikiText: a new group at each top-level heading line `` = Title = ``."""
    heading = re.compile(r"^ = [^=].* = $")
    ids, cur = [], 0
    for i, line in enumerate(ds[text_field]):
        if heading.match(line) and i > 0:
            cur += 1
        ids.append(cur)
    return np.array(ids, dtype=np.int64)


def carve_whole_sentences(pool: Dataset, sizes: Mapping[str, float], rest: str, seed: int,
                          text_field: str) -> dict[str, Dataset]:
    """SST-2-style carve: evaluation splits get whole sentences only (see module docstring).

    A row's text is a *sentence* when it is no other row's token span. Sentences are
    shuffled with `seed` and cut by ``sizes``; the `rest` split keeps every row that is
    a span of one of its own sentences. Cost: one pass over the spans of each sentence
    (~1.3M lookups for SST-2's 6.9k sentences, ~2 s).
    """
    texts = [" ".join(t.split()) for t in pool[text_field]]
    known = set(texts)
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i].split()), i))
    inside: set[str] = set()
    roots: list[str] = []
    seen: set[str] = set()
    for i in order:
        t = texts[i]
        if t in inside or t in seen:
            continue
        seen.add(t)
        roots.append(t)
        toks = t.split()
        for a in range(len(toks)):
            for b in range(a + 1, len(toks) + 1):
                if b - a < len(toks):
                    span = " ".join(toks[a:b])
                    if span in known:
                        inside.add(span)
    parts = _shares(len(roots), sizes, rest, seed)
    keep: dict[str, list[int]] = {}
    owner: dict[str, str] = {}
    for name, idx in parts.items():
        if name != rest:
            for j in idx:
                owner[roots[j]] = name
    covered: set[str] = set()
    for j in parts[rest]:
        toks = roots[j].split()
        for a in range(len(toks)):
            for b in range(a + 1, len(toks) + 1):
                span = " ".join(toks[a:b])
                if span in known:
                    covered.add(span)
    taken: set[str] = set()
    for i, t in enumerate(texts):
        if t in owner:
            if t not in taken:            # one row per evaluation sentence (the file repeats a few)
                taken.add(t)
                keep.setdefault(owner[t], []).append(i)
        elif t in covered:
            keep.setdefault(rest, []).append(i)
    return {name: pool.select(keep.get(name, [])) for name in parts}


CARVE_RULES: dict[str, str] = {"whole_sentences": "rows", "articles": "groups"}
"""Carve rules a TaskSpec may name: ``groups`` rules assign group ids, ``rows`` rules
decide membership row by row (and may drop rows)."""


def carve(pool: Dataset, sizes: Mapping[str, float], rest: str, seed: int,
          group_by: str | None = None, rule: str | None = None,
          text_field: str | None = None) -> dict[str, Dataset]:
    """Split `pool` into ``sizes`` (name -> fraction) plus `rest`, deterministically.

    Rows keep their original order inside each part (only membership is random).
    `rule` (with the `text_field` it reads) is one of :data:`CARVE_RULES`.
    """
    if rule is not None and rule not in CARVE_RULES:
        raise ValueError(f"unknown carve rule {rule!r}; known: {', '.join(CARVE_RULES)}")
    if rule == "whole_sentences":
        return carve_whole_sentences(pool, sizes, rest, seed, text_field or "sentence")
    groups = _article_ids(pool, text_field or "text") if rule == "articles" else _group_ids(pool, group_by)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    parts = _shares(n_groups, sizes, rest, seed)
    out = {}
    for name, chosen in parts.items():
        mask = np.isin(groups, chosen)
        out[name] = pool.select(np.flatnonzero(mask).tolist())
    return out


def assemble(raw: Mapping[str, Dataset], split_map: Mapping[str, str], *, task: str,
             seed: int, eval_fraction: float = DEFAULT_EVAL_FRACTION,
             group_by: str | None = None, required: tuple[str, ...] = (),
             where: str = "", rule: str | None = None,
             text_field: str | None = None) -> tuple[dict[str, Dataset], list[str]]:
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
    out.update(carve(raw[pool_name], sizes, rest=rest, seed=seed, group_by=group_by, rule=rule,
                     text_field=text_field))
    return out, sorted(set(missing) | set(sizes))


def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """At most `n` rows, a seeded random subset kept in original order."""
    if n is None or len(ds) <= n:
        return ds
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    return ds.select(idx.tolist())

