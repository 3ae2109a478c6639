"""SQuAD v2.0 exact / F1 with unanswerable questions, as the official v2.0 script.

A question whose gold answers are all empty (after normalisation) is
unanswerable: the only right prediction is the empty string.  Per question the
raw score is the best over golds, with the v2 rule that an empty answer matches
only an empty answer.  Results, in percent:

  exact, f1, total                 over all questions
  HasAns_exact, HasAns_f1, HasAns_total   answerable subset  (when present)
  NoAns_exact, NoAns_f1, NoAns_total      unanswerable subset (when present)

No-answer probability (optional): each prediction may carry
``no_answer_probability``; a question whose probability exceeds
``no_answer_threshold`` (compute kwarg, default 1.0, i.e. never) is treated as
answered "no answer".  When any probability is non-zero, the threshold that
maximises each score is searched as well (``best_exact``, ``best_exact_thresh``,
``best_f1``, ``best_f1_thresh``), as the official script does with a
``--na-prob-file``.

Inputs (hub ``squad_v2`` format):
  predictions: [{"id", "prediction_text", "no_answer_probability"?}]
  references:  [{"id", "answers": {"text": [str], "answer_start": [int]}}]
"""
from __future__ import annotations

import datasets
import evaluate

from arkbench.metrics._squad_text import best_over_golds, exact_match, normalize_answer, token_f1

_CITATION = """\
@inproceedings{rajpurkar2018know,
  title={Know What You Don't Know: Unanswerable Questions for {SQuAD}},
  author={Rajpurkar, Pranav and Jia, Robin and Liang, Percy},
  booktitle={ACL},
  year={2018}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id", "prediction_text", "no_answer_probability" (optional, float)}.
    references: list of {"id", "answers": {"text": [...], "answer_start": [...]}}.
    no_answer_threshold: predict "no answer" where no_answer_probability > this (default 1.0).
Returns:
    dict of floats: exact, f1, total, HasAns_*/NoAns_* breakdowns, best_* when probabilities are given.
"""


def _v2_f1(prediction: str, gold: str) -> float:
    return token_f1(prediction, gold, empty_match=True)


def _best_threshold(scores, na_probs, has_ans, preds) -> tuple[float, float]:
    """Best score (percent) and threshold when sweeping the no-answer threshold.

    Start from "everything is no-answer" (correct exactly on unanswerable
    questions), then admit the predictions one by one in order of increasing
    no-answer probability, tracking the running score.
    """
    current = best = float(sum(1 for q in scores if not has_ans[q]))
    best_thresh = 0.0
    for qid in sorted(scores, key=lambda q: na_probs[q]):
        if has_ans[qid]:
            current += scores[qid]
        elif preds[qid]:  # answering an unanswerable question loses its point
            current -= 1
        if current > best:
            best, best_thresh = current, na_probs[qid]
    return 100.0 * best / len(scores), float(best_thresh)


def _with_na_prob(predictions):
    """Copy of ``predictions`` with ``no_answer_probability`` defaulting to 0.0 (the feature is required)."""
    if predictions is None:
        return None
    return [p if p.get("no_answer_probability") is not None else {**p, "no_answer_probability": 0.0} for p in predictions]


def squad_v2_scores(predictions, references, no_answer_threshold: float = 1.0) -> dict[str, float]:
    """Official v2.0 scoring on already-decoded lists of dicts (usable without ``evaluate``)."""
    if not references:
        raise ValueError("no references to score")
    given = {p["id"]: p for p in predictions}
    preds, na_probs, has_ans, raw_exact, raw_f1 = {}, {}, {}, {}, {}
    for ref in references:
        qid = ref["id"]
        golds = [t for t in ref["answers"]["text"] if normalize_answer(t)] or [""]
        has_ans[qid] = golds != [""]
        pred = given.get(qid, {})  # a missing prediction counts as "no answer"
        preds[qid] = pred.get("prediction_text") or ""
        na_probs[qid] = float(pred.get("no_answer_probability") or 0.0)
        raw_exact[qid] = best_over_golds(exact_match, preds[qid], golds)
        raw_f1[qid] = best_over_golds(_v2_f1, preds[qid], golds)

    def thresholded(raw):
        return {q: float(not has_ans[q]) if na_probs[q] > no_answer_threshold else s for q, s in raw.items()}

    exact, f1 = thresholded(raw_exact), thresholded(raw_f1)

    def summary(qids, prefix=""):
        n = len(qids)
        return {
            f"{prefix}exact": 100.0 * sum(exact[q] for q in qids) / n,
            f"{prefix}f1": 100.0 * sum(f1[q] for q in qids) / n,
            f"{prefix}total": float(n),
        }

    out = summary(list(exact))
    answerable = [q for q in exact if has_ans[q]]
    unanswerable = [q for q in exact if not has_ans[q]]
    if answerable:
        out.update(summary(answerable, "HasAns_"))
    if unanswerable:
        out.update(summary(unanswerable, "NoAns_"))
    if any(na_probs.values()):
        # the sweep starts from the raw (un-thresholded) scores, as the official script
        out["best_exact"], out["best_exact_thresh"] = _best_threshold(raw_exact, na_probs, has_ans, preds)
        out["best_f1"], out["best_f1_thresh"] = _best_threshold(raw_f1, na_probs, has_ans, preds)
    return out


@evaluate.utils.file_utils.add_start_docstrings(_CITATION, _KWARGS_DESCRIPTION)
class SquadV2(evaluate.Metric):
    """SQuAD v2.0 exact / f1 with HasAns/NoAns breakdown (percent)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                        "no_answer_probability": datasets.Value("float64"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """As ``evaluate.Metric.compute``; ``no_answer_probability`` may be left out (means 0.0)."""
        return super().compute(predictions=_with_na_prob(predictions), references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """As ``evaluate.Metric.add_batch``, filling a missing ``no_answer_probability`` with 0.0."""
        return super().add_batch(predictions=_with_na_prob(predictions), references=references, **kwargs)

    def _compute(self, predictions, references, no_answer_threshold: float = 1.0) -> dict[str, float]:
        return squad_v2_scores(predictions, references, no_answer_threshold)
