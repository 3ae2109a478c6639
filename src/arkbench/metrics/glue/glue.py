"""GLUE scores, one ``evaluate`` config per task.

Why a local module: the hub ``glue`` metric needs the network, and arkbench runs
offline.  Scores are fractions in [0, 1] (no x100), as the GLUE papers' tables
are produced from these by the report stage.

Task -> keys:
  cola, ax                                  -> matthews_correlation
  sst2, mnli, mnli_matched, mnli_mismatched,
  qnli, rte, wnli, hans                     -> accuracy
  mrpc, qqp                                 -> accuracy, f1 (positive class 1)
  stsb                                      -> pearson, spearmanr

``ax`` (the diagnostic set) is scored like CoLA with the (multi-class) Matthews
correlation, the R3 statistic of the GLUE paper.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy import stats

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={ICLR},
  year={2019}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (int) for classification tasks, scores (float) for stsb.
    references: gold labels (int), or gold similarity scores (float) for stsb.
Returns:
    dict of floats in [0, 1] (pearson/spearmanr/matthews_correlation in [-1, 1]); see module doc.
Example:
    >>> m = evaluate.load("src/arkbench/metrics/glue", "mrpc")
    >>> m.compute(predictions=[1, 0, 1], references=[1, 1, 1])
    {'accuracy': 0.666..., 'f1': 0.8}
"""

TASK_KEYS: dict[str, tuple[str, ...]] = {
    "cola": ("matthews_correlation",),
    "ax": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mnli": ("accuracy",),
    "mnli_matched": ("accuracy",),
    "mnli_mismatched": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
    "hans": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearmanr"),
}


def accuracy(preds: np.ndarray, refs: np.ndarray) -> float:
    """Fraction of exact label matches."""
    return float((preds == refs).mean())


def binary_f1(preds: np.ndarray, refs: np.ndarray, pos_label: int = 1) -> float:
    """F1 of the positive class: 2TP / (2TP + FP + FN); 0.0 when TP = 0."""
    tp = int(np.sum((preds == pos_label) & (refs == pos_label)))
    fp = int(np.sum((preds == pos_label) & (refs != pos_label)))
    fn = int(np.sum((preds != pos_label) & (refs == pos_label)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def matthews_correlation(preds: np.ndarray, refs: np.ndarray) -> float:
    """Matthews correlation from the confusion matrix (Gorodkin's multi-class form).

    MCC = (c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2)),
    with c correct, s total, p_k / t_k predicted / true counts of class k.
    For two classes this is (TP*TN - FP*FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    A zero denominator (a constant prediction or reference) gives 0.0.
    """
    labels, inv = np.unique(np.concatenate([refs, preds]), return_inverse=True)
    t_idx, p_idx = inv[: len(refs)], inv[len(refs):]
    t_k = np.bincount(t_idx, minlength=len(labels)).astype(np.float64)
    p_k = np.bincount(p_idx, minlength=len(labels)).astype(np.float64)
    s = float(len(refs))
    c = float(np.sum(t_idx == p_idx))
    num = c * s - float(p_k @ t_k)
    den = np.sqrt((s * s - float(p_k @ p_k)) * (s * s - float(t_k @ t_k)))
    return 0.0 if den == 0 else float(num / den)


def pearson(preds: np.ndarray, refs: np.ndarray) -> float:
    """Pearson's r between predicted and gold scores."""
    return float(stats.pearsonr(preds, refs)[0])


def spearman(preds: np.ndarray, refs: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties get their average rank)."""
    return float(stats.spearmanr(preds, refs)[0])


_SCORERS = {
    "accuracy": accuracy,
    "f1": binary_f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearman,
}


@evaluate.utils.file_utils.add_start_docstrings(_CITATION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    """GLUE task metric; the config name is the task."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in TASK_KEYS:
            raise KeyError(
                f"unknown GLUE task {self.config_name!r}; choose one of {sorted(TASK_KEYS)}"
            )
        dtype = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}
            ),
            reference_urls=["https://gluebenchmark.com/"],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        preds, refs = np.asarray(predictions), np.asarray(references)
        if preds.shape != refs.shape:
            raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
        if len(refs) == 0:
            raise ValueError("no examples to score")
        return {key: _SCORERS[key](preds, refs) for key in TASK_KEYS[self.config_name]}
