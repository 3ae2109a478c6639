"""ZeroGen's post-processing of generated text, exactly as the official code does it (spec A.5).

Text classification / NLI (``cut_text`` then ``keep_text``), in this order:

    1. QNLI only: keep the text up to and including the first "?"; no "?" -> discard.
    2. otherwise: text before the first '"'; else before the first newline;
       else drop what follows the last "." (whole sentences only); else discard.
    3. keep only if it has >= min_words whitespace-separated words.
    4. within one generation batch: drop X == C, drop exact duplicates of (C, X, Y).

QA questions (``cut_question``):

    must contain "?" (cut after the first one); discard if it contains the answer
    (case-insensitive); keep if >= min_words words; exact duplicates within a batch dropped;
    ``one_per_answer``: at most one question per (context, answer), the first kept -- the effect
    of ZeroGen mutating one example dict for both samples of an input (quirk A.13.4).

PROMPTING answers for QA (``cut_answer``): before the first '"'; else before the first ".";
else empty.

``FilterStats`` counts why each raw generation was dropped, for the provenance record.
Cross-batch de-duplication is *not* ZeroGen's behaviour (quirk A.13.3); ``dedup_global``
offers it as an option.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class FilterStats:
    """Counts of raw generations and why they were dropped."""

    raw: int = 0
    no_cut: int = 0          # no quote / newline / "." (QNLI and QA: no "?")
    too_short: int = 0       # fewer than min_words words
    copies_context: int = 0  # X == C
    contains_answer: int = 0  # QA: question contains the answer
    duplicate: int = 0       # exact duplicate within its batch
    duplicate_global: int = 0  # duplicate of an earlier batch's example (optional de-dup)
    extra_per_answer: int = 0  # QA: a second question for the same (context, answer) (ZeroGen quirk)
    too_long: int = 0        # prompt + max_new_tokens exceed the PLM's positions: not generated
    kept: int = 0
    per_label: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}

    def add(self, other: "FilterStats") -> "FilterStats":
        for k, v in other.__dict__.items():
            if isinstance(v, dict):
                for lk, lv in v.items():
                    self.per_label[lk] = self.per_label.get(lk, 0) + lv
            else:
                setattr(self, k, getattr(self, k) + v)
        return self


def cut_text(text: str, question: bool = False) -> str | None:
    """Rules 1-2: the kept part of one generated text, or None to discard it."""
    if question:
        return text[: text.index("?") + 1] if "?" in text else None
    if '"' in text:
        return text[: text.index('"')]
    if "\n" in text:
        return text[: text.index("\n")]
    if "." in text:
        return text[: text.rindex(".") + 1]
    return None


def keep_text(text: str, min_words: int) -> bool:
    """Rule 3: at least `min_words` whitespace-separated words."""
    return len(text.split()) >= min_words


def process_text(text: str, min_words: int, question: bool = False,
                 stats: FilterStats | None = None) -> str | None:
    """Rules 1-3 for one generation; None when discarded (the reason counted in `stats`)."""
    if stats is not None:
        stats.raw += 1
    out = cut_text(text, question)
    if out is None:
        if stats is not None:
            stats.no_cut += 1
        return None
    if not keep_text(out, min_words):
        if stats is not None:
            stats.too_short += 1
        return None
    return out


def dedup_batch(examples: Iterable[dict], stats: FilterStats | None = None,
                context_key: str = "C", text_key: str = "X") -> list[dict]:
    """Rule 4 on one batch: drop X == C and exact duplicates of the JSON-serialised example."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        if ex.get(context_key) is not None and ex[text_key] == ex[context_key]:
            if stats is not None:
                stats.copies_context += 1
            continue
        key = json.dumps(ex, sort_keys=True)
        if key in seen:
            if stats is not None:
                stats.duplicate += 1
            continue
        seen.add(key)
        out.append(ex)
    return out


def dedup_global(examples: Iterable[dict], keys: tuple[str, ...] = ("C", "X", "Y"),
                 stats: FilterStats | None = None) -> list[dict]:
    """Optional (not ZeroGen's): drop examples whose `keys` equal an earlier example's."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        key = json.dumps([ex.get(k) for k in keys])
        if key in seen:
            if stats is not None:
                stats.duplicate_global += 1
            continue
        seen.add(key)
        out.append(ex)
    return out


def cut_question(text: str, answer: str, min_words: int, stats: FilterStats | None = None) -> str | None:
    """QA question rules: needs "?", cut after the first one; no answer inside; >= min_words."""
    if stats is not None:
        stats.raw += 1
    if "?" not in text:
        if stats is not None:
            stats.no_cut += 1
        return None
    q = text[: text.index("?") + 1]
    if answer.lower() in q.lower():
        if stats is not None:
            stats.contains_answer += 1
        return None
    if not keep_text(q, min_words):
        if stats is not None:
            stats.too_short += 1
        return None
    return q


def cut_answer(text: str) -> str:
    """PROMPTING's QA answer: before the first '"'; else before the first "."; else ""."""
    if '"' in text:
        return text[: text.index('"')]
    if "." in text:
        return text[: text.index(".")]
    return ""


def one_per_answer(rows: Iterable[dict], stats: FilterStats | None = None) -> list[dict]:
    """QA: keep the first question of each (C, Y) pair; later ones are counted and dropped."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        key = (r["C"], r["Y"])
        if key in seen:
            if stats is not None:
                stats.extra_per_answer += 1
            continue
        seen.add(key)
        out.append(r)
    return out
