"""Extractive QA (SQuAD v1.1 / v2.0): span features and post-processing.

Pre-processing (:func:`prepare_features`) tokenises ``question`` + ``context`` with a
fast tokenizer into windows of at most ``max_seq_len`` tokens. Long contexts are cut
into several overlapping windows: ``doc_stride`` is the number of context tokens two
consecutive windows share (the ``stride`` of Hugging Face tokenizers, as in
transformers' ``run_qa.py``). Questions longer than ``max_query_len`` tokens are cut.

* training features carry ``start_positions`` / ``end_positions``: the token indices
  of the first answer, or the [CLS] index when the answer is not wholly inside the
  window or the question is unanswerable (v2);
* evaluation features carry ``example_index`` and ``offset_mapping`` (character spans
  into the context for context tokens, ``None`` for question / special tokens).

Post-processing (:func:`postprocess`) takes the start/end logits of every feature,
keeps the ``n_best`` start and end indices of each feature, scores every valid pair
(start <= end, length <= ``max_answer_length``, both inside the context) by
``start_logit + end_logit``, maps the best pair over all features of an example back
to a character span of the context. For v2 the null score of an example is the
smallest ``start[CLS] + end[CLS]`` over its features (as in Google's BERT); the
example is predicted unanswerable when ``null - best_non_null > null_threshold``.

Outputs are in :mod:`arkbench.metrics`' format: predictions ``[{id, prediction_text}]``
(+ ``no_answer_probability`` = sigmoid(null - best_non_null) for v2), references
``[{id, answers}]``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["prepare_features", "postprocess", "references", "truncate_questions"]


def _column(examples: Any, name: str) -> list:
    """A column of a datasets.Dataset, a dict of lists or a list of dicts."""
    if isinstance(examples, Mapping):
        return list(examples[name])
    if hasattr(examples, "column_names"):
        return list(examples[name])
    return [ex[name] for ex in examples]


def truncate_questions(tokenizer, questions: Sequence[str], max_query_len: int) -> list[str]:
    """Cut each question to its first `max_query_len` tokens (on a token boundary)."""
    out = []
    enc = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    for q, offs in zip(questions, enc["offset_mapping"]):
        out.append(q[: offs[max_query_len - 1][1]] if len(offs) > max_query_len else q)
    return out


def prepare_features(examples: Any, tokenizer, *, max_seq_len: int = 384, doc_stride: int = 128,
                     max_query_len: int = 64, train: bool = True) -> list[dict[str, Any]]:
    """Window features of SQuAD-schema `examples` (see the module docstring)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("SQuAD features need a fast tokenizer (offset mappings)")
    questions = [q.lstrip() for q in _column(examples, "question")]
    contexts = _column(examples, "context")
    ids = _column(examples, "id")
    answers = _column(examples, "answers") if train else None
    if not questions:
        return []
    questions = truncate_questions(tokenizer, questions, max_query_len)
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_seq_len,
                    stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    return_token_type_ids=True, padding=False)
    sample_map = enc["overflow_to_sample_mapping"]
    cls_id = tokenizer.cls_token_id
    feats: list[dict[str, Any]] = []
    for i, input_ids in enumerate(enc["input_ids"]):
        ex = int(sample_map[i])
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        cls_index = input_ids.index(cls_id) if cls_id in input_ids else 0
        f: dict[str, Any] = {
            "input_ids": list(input_ids),
            "attention_mask": list(enc["attention_mask"][i]),
            "token_type_ids": list(enc["token_type_ids"][i]),
            "example_index": ex,
            "example_id": ids[ex],
            "cls_index": cls_index,
        }
        ctx_tokens = [k for k, s in enumerate(seq_ids) if s == 1]
        if train:
            start = end = cls_index
            ans = answers[ex]
            if ans["text"] and ctx_tokens:
                s_char = int(ans["answer_start"][0])
                e_char = s_char + len(ans["text"][0])
                c0, c1 = ctx_tokens[0], ctx_tokens[-1]
                if offsets[c0][0] <= s_char and offsets[c1][1] >= e_char:
                    t = c0
                    while t <= c1 and offsets[t][0] <= s_char:
                        t += 1
                    start = t - 1
                    t = c1
                    while t >= c0 and offsets[t][1] >= e_char:
                        t -= 1
                    end = t + 1
            f["start_positions"] = start
            f["end_positions"] = end
        else:
            f["offset_mapping"] = [tuple(o) if seq_ids[k] == 1 else None for k, o in enumerate(offsets)]
        feats.append(f)
    return feats


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def postprocess(examples: Any, features: Sequence[Mapping[str, Any]],
                start_logits: Sequence[Sequence[float]], end_logits: Sequence[Sequence[float]], *,
                n_best: int = 20, max_answer_length: int = 30, version_2: bool = False,
                null_threshold: float = 0.0) -> list[dict[str, Any]]:
    """Predictions in the metrics module's format, one per example, in example order.

    `features` are :func:`prepare_features` (train=False) outputs of `examples`;
    `start_logits[i]` / `end_logits[i]` are feature i's logits (any length >= the
    feature's; padding positions are ignored).
    """
    if len(features) != len(start_logits) or len(features) != len(end_logits):
        raise ValueError(f"{len(features)} features but {len(start_logits)} start / "
                         f"{len(end_logits)} end logit rows")
    contexts = _column(examples, "context")
    ids = _column(examples, "id")
    by_example: dict[int, list[int]] = defaultdict(list)
    for fi, f in enumerate(features):
        by_example[int(f["example_index"])].append(fi)
    preds: list[dict[str, Any]] = []
    for ei, (qid, context) in enumerate(zip(ids, contexts)):
        best: tuple[float, int, int] | None = None
        min_null: float | None = None
        for fi in by_example.get(ei, []):
            offsets = features[fi]["offset_mapping"]
            n = len(offsets)
            s = np.asarray(start_logits[fi], dtype=np.float64)[:n]
            e = np.asarray(end_logits[fi], dtype=np.float64)[:n]
            cls = int(features[fi].get("cls_index", 0))
            null = float(s[cls] + e[cls])
            if min_null is None or null < min_null:
                min_null = null
            # stable sort: ties resolved by position, so results are deterministic
            s_top = np.argsort(-s, kind="stable")[:n_best]
            e_top = np.argsort(-e, kind="stable")[:n_best]
            for a in s_top:
                if offsets[a] is None:
                    continue
                for b in e_top:
                    if offsets[b] is None or b < a or b - a + 1 > max_answer_length:
                        continue
                    score = float(s[a] + e[b])
                    if best is None or score > best[0]:
                        best = (score, offsets[a][0], offsets[b][1])
        text = context[best[1]:best[2]] if best is not None else ""
        pred: dict[str, Any] = {"id": qid, "prediction_text": text}
        if version_2:
            if best is None:
                pred["prediction_text"] = ""
                pred["no_answer_probability"] = 1.0
            else:
                diff = (min_null if min_null is not None else -math.inf) - best[0]
                if diff > null_threshold:
                    pred["prediction_text"] = ""
                pred["no_answer_probability"] = _sigmoid(diff) if math.isfinite(diff) else 0.0
        preds.append(pred)
    return preds


def references(examples: Any) -> list[dict[str, Any]]:
    """``[{id, answers: {text, answer_start}}]`` for the metrics module."""
    return [{"id": i, "answers": {"text": list(a["text"]), "answer_start": [int(x) for x in a["answer_start"]]}}
            for i, a in zip(_column(examples, "id"), _column(examples, "answers"))]
