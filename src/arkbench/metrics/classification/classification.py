"""Accuracy and macro-F1 for single-label classification (NLI, sentiment, topic).

Macro-F1 is the unweighted mean of the per-class F1 = 2TP / (2TP + FP + FN),
over every label that occurs in the references or the predictions, so a class
the model never predicts still counts (with F1 0) and a class it invents counts
too.  Fractions in [0, 1].  Labels are integer ids.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids (int).
    references: gold label ids (int).
Returns:
    {"accuracy": float, "macro_f1": float}, both in [0, 1].
Example:
    >>> m = evaluate.load("src/arkbench/metrics/classification")
    >>> m.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    {'accuracy': 0.75, 'macro_f1': 0.777...}
"""


def classification_scores(predictions, references) -> dict[str, float]:
    """Accuracy and macro-F1 of integer label arrays."""
    preds, refs = np.asarray(predictions), np.asarray(references)
    if preds.shape != refs.shape:
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if len(refs) == 0:
        raise ValueError("no examples to score")
    f1s = []
    for label in np.union1d(preds, refs):
        tp = np.sum((preds == label) & (refs == label))
        wrong = np.sum((preds == label) != (refs == label))  # FP + FN
        f1s.append(2 * tp / (2 * tp + wrong))
    return {"accuracy": float((preds == refs).mean()), "macro_f1": float(np.mean(f1s))}


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    """Accuracy + macro-F1."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        return classification_scores(predictions, references)
