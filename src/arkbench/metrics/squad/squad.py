"""SQuAD v1.1 exact match and F1, as the official v1.1 evaluation script defines them.

Each prediction is normalised (lower-case, no punctuation, no a/an/the, single
spaces) and scored against every gold answer of its question; the best gold
counts.  Scores are averaged over the *references* (questions) and reported in
percent, like the official script.  A question with no prediction scores 0.

Inputs use the hub ``squad`` metric's format so dataset code can feed it directly:
  predictions: [{"id": str, "prediction_text": str}]
  references:  [{"id": str, "answers": {"text": [str], "answer_start": [int]}}]
"""
from __future__ import annotations

import logging

import datasets
import evaluate

from arkbench.metrics._squad_text import best_over_golds, exact_match, token_f1

logger = logging.getLogger(__name__)

_CITATION = """\
@inproceedings{rajpurkar2016squad,
  title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={EMNLP},
  year={2016}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id", "prediction_text"}.
    references: list of {"id", "answers": {"text": [...], "answer_start": [...]}}.
Returns:
    {"exact_match": float, "f1": float}, both in percent (0-100).
"""


def squad_v1_scores(predictions, references) -> dict[str, float]:
    """Official v1.1 scoring on already-decoded lists of dicts (usable without ``evaluate``)."""
    pred_by_id = {p["id"]: p["prediction_text"] for p in predictions}
    if not references:
        raise ValueError("no references to score")
    em = f1 = 0.0
    missing = 0
    for ref in references:
        golds = list(ref["answers"]["text"])
        if ref["id"] not in pred_by_id:
            missing += 1
            continue
        pred = pred_by_id[ref["id"]]
        em += best_over_golds(exact_match, pred, golds)
        f1 += best_over_golds(token_f1, pred, golds)
    if missing:
        logger.warning("%d question(s) have no prediction and score 0", missing)
    n = len(references)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


@evaluate.utils.file_utils.add_start_docstrings(_CITATION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    """SQuAD v1.1 exact_match / f1 (percent)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
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

    def _compute(self, predictions, references) -> dict[str, float]:
        return squad_v1_scores(predictions, references)
