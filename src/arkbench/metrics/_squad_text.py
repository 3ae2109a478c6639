"""Answer normalisation and token-overlap scores shared by the SQuAD metrics.

SQuAD v1.1 and v2.0 score a prediction against each gold answer after the same
normalisation (lower-case, strip ASCII punctuation, drop the articles a/an/the,
collapse whitespace), then keep the best gold.  The two versions differ only in
how an *empty* answer is scored, which is why ``token_f1`` takes ``empty_match``:

* v1.1: no common token -> 0 (there are no empty golds in v1.1);
* v2.0: if either side is empty, F1 is 1 when both are empty, else 0, so a
  correct "no answer" scores 1 and a spurious one scores 0.

Kept in one place so the two metric modules cannot drift apart.
"""
from __future__ import annotations

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation, drop articles, collapse whitespace (official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """Whitespace tokens of the normalised answer ([] for an empty answer)."""
    return normalize_answer(text).split()


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are identical, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str, *, empty_match: bool = False) -> float:
    """Bag-of-tokens F1 = 2PR/(P+R) over normalised tokens.

    ``empty_match=True`` gives the SQuAD v2.0 rule for empty answers (see module doc).
    """
    pred_toks, gold_toks = answer_tokens(prediction), answer_tokens(gold)
    if empty_match and (not pred_toks or not gold_toks):
        return float(pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_toks)
    recall = same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(score_fn, prediction: str, golds: list[str]) -> float:
    """Max of ``score_fn(prediction, gold)`` over the gold answers (0.0 if there are none)."""
    return max((score_fn(prediction, g) for g in golds), default=0.0)
