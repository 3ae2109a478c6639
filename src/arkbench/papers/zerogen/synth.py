"""Synthetic data sets: x1 contexts -> per-label x2 texts -> filters -> a saved Dataset.

    rows, stats = synthesize_tc(task, model, tok, SynthConfig(...), seed=42)
    rows, stats = synthesize_nli(task, model, tok, premises, SynthConfig(...), seed=42)
    save_synthetic(rows, "data/zerogen/synthetic/movie", provenance={...})

Text classification (spec A.2/A.4), two steps:

    x1:  c_j ~ P(· | 'Movie: "')                       j = 1..n_contexts (kept after filters)
    x2:  x   ~ P(· | T_y(c_j))   for every label y, ``per_label`` samples each

NLI: c_j are gold *training premises* (labels never read); x2 as above with self-debiasing
against the counter label (λ = ``x2.decay_constant``). One "generation batch" for the
within-batch de-duplication is one context with all its labels and samples, as in ZeroGen
(batch 32 = 1 context x 32 samples).

Rows: {"C": context, "X": text, "Y": label meaning}. The saved set adds ``label`` (the gold
task's class index, via the task's label map) when converted with :func:`to_task_rows`.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import Field

from ...config import Section
from . import filters as F
from .generate import DecodeConfig, sample
from .tasks import ZeroGenTask, check_label_map


class SynthConfig(Section):
    """How much to generate and how to filter it."""

    n_contexts: int = Field(16, ge=1)           # x1 titles (TC) or gold premises (NLI) to use
    x1_samples: int = Field(0, ge=0)            # raw x1 samples drawn (0 = 2 x n_contexts)
    per_label: int = Field(4, ge=1)             # x2 samples per context and label (ZeroGen: 32)
    min_words: int = Field(10, ge=1)            # ZeroGen --min_length 10 (words) for x2
    x1_min_words: int = Field(1, ge=1)          # x1 titles: ZeroGen default 1
    dedup_global: bool = False                  # not ZeroGen: also drop cross-batch duplicates
    answers_per_context: int = Field(0, ge=0)   # QA: NER answers questioned per context (0 = all, ZeroGen)
    one_per_answer: bool = True                 # QA: <= 1 question per (context, answer) (ZeroGen's quirk)
    x1: DecodeConfig = Field(default_factory=lambda: DecodeConfig(max_new_tokens=10, batch_size=64))
    x2: DecodeConfig = Field(default_factory=DecodeConfig)


def _x1_contexts(task: ZeroGenTask, model, tok, cfg: SynthConfig, seed: int,
                 stats: F.FilterStats) -> list[str]:
    n_raw = cfg.x1_samples or 2 * cfg.n_contexts
    raw = sample(model, tok, [task.x1] * n_raw, cfg.x1, seed=seed)
    out: list[str] = []
    seen: set[str] = set()
    for i in range(0, n_raw, cfg.x1.batch_size):   # ZeroGen de-duplicates per generation batch
        seen_batch: set[str] = set()
        for t in raw[i: i + cfg.x1.batch_size]:
            c = F.process_text(t, cfg.x1_min_words, stats=stats)
            if c is None:
                continue
            c = c.strip()
            if c in seen_batch:
                stats.duplicate += 1
                continue
            seen_batch.add(c)
            if c not in seen:       # the same title twice would only repeat x2 prompts
                seen.add(c)
                out.append(c)
    stats.kept = len(out)
    return out[: cfg.n_contexts]


def _x2(task: ZeroGenTask, model, tok, contexts: Sequence[str], cfg: SynthConfig, seed: int,
        stats: F.FilterStats, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    labels = task.label_names
    prompts, counters, meta = [], [], []
    for c in contexts:
        for y in labels:
            for _ in range(cfg.per_label):
                prompts.append(task.x2_prompt(y, c))
                counters.append(task.counter_prompts(y, c))
                meta.append((c, y))
    use_counters = cfg.x2.decay_constant > 0 and all(counters)
    texts = sample(model, tok, prompts, cfg.x2, seed=seed, counters=counters if use_counters else None,
                   progress=progress)
    rows: list[dict] = []
    group: list[dict] = []
    for i, ((c, y), t) in enumerate(zip(meta, texts)):
        x = F.process_text(t, cfg.min_words, question=task.question, stats=stats)
        if x is not None:
            group.append({"C": c, "X": x, "Y": y})
        last = i + 1 == len(meta) or meta[i + 1][0] != c
        if last:
            rows.extend(F.dedup_batch(group, stats))
            group = []
    if cfg.dedup_global:
        rows = F.dedup_global(rows, stats=stats)
    stats.kept = len(rows)
    stats.per_label = {y: sum(r["Y"] == y for r in rows) for y in labels}
    return rows


def synthesize_tc(task: ZeroGenTask, model, tok, cfg: SynthConfig, seed: int = 42,
                  progress=None) -> tuple[list[dict], dict[str, Any]]:
    """Two-step generation for a TC task; returns (rows, {"x1": stats, "x2": stats, "contexts": n})."""
    if task.kind != "tc" or not task.x1:
        raise ValueError(f"task {task.name!r} is not a two-step classification task")
    s1, s2 = F.FilterStats(), F.FilterStats()
    contexts = _x1_contexts(task, model, tok, cfg, seed, s1)
    if not contexts:
        raise RuntimeError(f"task {task.name!r}: x1 produced no usable context ({s1.as_dict()})")
    rows = _x2(task, model, tok, contexts, cfg, seed + 1, s2, progress)
    return rows, {"x1": s1.as_dict(), "x2": s2.as_dict(), "contexts": len(contexts)}


def pick_premises(train_rows: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` distinct gold premises (unlabelled), a seeded sample in file order."""
    uniq = list(dict.fromkeys(p for p in train_rows if p and p.strip()))
    idx = sorted(random.Random(seed).sample(range(len(uniq)), min(n, len(uniq))))
    return [uniq[i] for i in idx]


def synthesize_nli(task: ZeroGenTask, model, tok, premises: Sequence[str], cfg: SynthConfig, seed: int = 42,
                   progress=None) -> tuple[list[dict], dict[str, Any]]:
    """Hypotheses for gold premises (labels unread), self-debiased when decay_constant > 0."""
    if task.kind != "nli":
        raise ValueError(f"task {task.name!r} is not an NLI task")
    s2 = F.FilterStats()
    rows = _x2(task, model, tok, list(premises)[: cfg.n_contexts], cfg, seed + 1, s2, progress)
    return rows, {"x2": s2.as_dict(), "contexts": min(len(premises), cfg.n_contexts)}


# ----------------------------------------------------------------------------- storage
def to_task_rows(task: ZeroGenTask, rows: Sequence[dict], data_task_fields: Sequence[str]) -> list[dict]:
    """Synthetic rows in the gold task's columns (text fields + ``label`` index)."""
    lab = check_label_map(task)
    out = []
    for r in rows:
        row: dict[str, Any] = {}
        if task.kind == "tc":
            row[task.text_field] = r["X"]
        else:
            row[task.context_field] = r["C"]
            row[task.text_field] = r["X"]
        row["label"] = lab[r["Y"]]
        out.append({k: row.get(k, "") for k in (*data_task_fields, "label")})
    return out


def save_synthetic(rows: Sequence[dict], out_dir: str | Path, provenance: dict) -> Path:
    """Save rows (C, X, Y, plus QA's answer_start and title) as a ``datasets`` Dataset plus
    provenance.json, atomically."""
    import datasets
    from datasets import Dataset, Features, Value

    from ...utils import atomic_dir

    cols = {"C": "string", "X": "string", "Y": "string"}
    extra = {"answer_start": "int32", "title": "string"}
    cols.update({k: v for k, v in extra.items() if rows and k in rows[0]})
    feats = Features({k: Value(v) for k, v in cols.items()})
    ds = Dataset.from_dict({k: [r[k] for r in rows] for k in cols}, features=feats)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with atomic_dir(out_dir) as tmp:
            ds.save_to_disk(str(tmp / "dataset"))
            (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
    finally:
        if bars:
            datasets.enable_progress_bars()
    return Path(out_dir)


def load_synthetic(path: str | Path) -> tuple[list[dict], dict]:
    """(rows, provenance) of a set saved by :func:`save_synthetic`."""
    from datasets import load_from_disk

    p = Path(path)
    if not (p / "provenance.json").is_file():
        raise FileNotFoundError(f"{p}: no synthetic data set here (run the zerogen_synthesize stage)")
    ds = load_from_disk(str(p / "dataset"))
    return ds.to_list(), json.loads((p / "provenance.json").read_text())
