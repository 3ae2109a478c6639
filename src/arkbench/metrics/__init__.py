"""Metric registry: short names -> ``evaluate`` modules shipped inside this package.

Every metric is an ``evaluate.Metric`` script in its own folder here
(``glue/glue.py``, ``squad/squad.py``, ...), the layout ``evaluate.load(path)``
accepts.  We load them by *absolute file path*: ``evaluate`` then goes straight to
its local-script loader and never consults the Hugging Face hub, whatever the
``HF_*_OFFLINE`` variables say (the hub is unreachable where arkbench runs).

    >>> from arkbench import metrics
    >>> metrics.compute("glue/mrpc", predictions=[1, 0, 1], references=[1, 1, 1])
    {'accuracy': 0.666..., 'f1': 0.8}
    >>> metrics.primary_metric("glue/cola")
    'matthews_correlation'

Scales: GLUE and ``classification`` give fractions in [0, 1] (no x100);
``squad`` / ``squad_v2`` give percent, as the official scripts do.

Adding a metric family (e.g. captioning: BLEU, CIDEr): drop ``<family>/<family>.py``
next to the others and add a ``register(...)`` line at the bottom of this file.
``evaluate`` is imported lazily, so importing this package (for ``METRICS`` or
``primary_metric``) stays cheap.
"""
from __future__ import annotations

import difflib
import functools
import numbers
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

__all__ = [
    "METRICS",
    "MetricSpec",
    "UnknownMetricError",
    "compute",
    "load_metric",
    "metric_path",
    "primary_metric",
    "as_percent",
    "register",
]

METRICS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class MetricSpec:
    """Where a registered metric lives and which of its keys selects models.

    module: folder under ``arkbench/metrics`` holding ``<module>.py``.
    config: ``evaluate`` config name (the GLUE task), or None.
    primary: result key used for model selection and the report's headline number.
    """

    module: str
    config: str | None
    primary: str
    percent: bool = False   # True when the module already reports 0-100 (SQuAD), else fractions


class UnknownMetricError(KeyError):
    """Raised for a metric name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0])


_SPECS: dict[str, MetricSpec] = {}

#: Read-only, live view ``name -> MetricSpec`` of every registered metric.
METRICS: Mapping[str, MetricSpec] = MappingProxyType(_SPECS)


def register(name: str, module: str, config: str | None, primary: str, percent: bool = False) -> None:
    """Register ``name`` for the script ``<module>/<module>.py`` with ``config``."""
    if name in _SPECS:
        raise ValueError(f"metric {name!r} is already registered")
    _SPECS[name] = MetricSpec(module, config, primary, percent)


def _spec(name: str) -> MetricSpec:
    try:
        return _SPECS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_SPECS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownMetricError(
            f"unknown metric {name!r}{hint}; known metrics: {', '.join(sorted(_SPECS))}"
        ) from None


def metric_path(name: str) -> Path:
    """Absolute path of the ``evaluate`` script implementing ``name``."""
    spec = _spec(name)
    return METRICS_DIR / spec.module / f"{spec.module}.py"


def as_percent(name: str, value: float) -> float:
    """`value` of metric `name` on a 0-100 scale, so scores of different tasks can be averaged
    (GLUE-style: fractions x 100; SQuAD already reports percent)."""
    return float(value) if _spec(name).percent else 100.0 * float(value)


def primary_metric(name: str) -> str:
    """Result key used for model selection and the report (e.g. cola -> matthews_correlation)."""
    return _spec(name).primary


def load_metric(name: str):
    """The ``evaluate.EvaluationModule`` for ``name``, loaded once per process and cached.

    Loaded from the in-package script with ``keep_in_memory=True`` so computing
    writes no Arrow cache files or locks.
    """
    _spec(name)  # validate first: a bad name must not reach evaluate
    return _load(name)


@functools.cache
def _load(name: str):
    import evaluate  # lazy: importing evaluate costs seconds

    return evaluate.load(str(metric_path(name)), _spec(name).config, keep_in_memory=True)


def _as_floats(result: Mapping[str, Any]) -> dict[str, float]:
    """Plain Python floats; a list value ``k`` becomes ``k_0``, ``k_1``, ... ."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, (list, tuple)):
            out.update({f"{key}_{i}": float(v) for i, v in enumerate(value)})
        elif isinstance(value, numbers.Real) or hasattr(value, "__float__"):
            out[key] = float(value)
        else:
            raise TypeError(f"metric value {key!r} is {type(value).__name__}, not a number")
    return out


def compute(name: str, predictions: Sequence, references: Sequence, **kwargs) -> dict[str, float]:
    """Score ``predictions`` against ``references`` with the metric ``name``.

    Extra keyword arguments go to the metric (e.g. ``no_answer_threshold`` for
    squad_v2).  Returns ``{key: float}``; see the module docstring for scales.
    """
    _spec(name)
    if len(predictions) != len(references):
        raise ValueError(
            f"{name}: got {len(predictions)} predictions but {len(references)} references"
        )
    module = load_metric(name)
    return _as_floats(module.compute(predictions=predictions, references=references, **kwargs))


# --- registry ---------------------------------------------------------------

_GLUE_PRIMARY = {
    "cola": "matthews_correlation",
    "ax": "matthews_correlation",
    "sst2": "accuracy",
    "mnli": "accuracy",
    "mnli_matched": "accuracy",
    "mnli_mismatched": "accuracy",
    "qnli": "accuracy",
    "rte": "accuracy",
    "wnli": "accuracy",
    "hans": "accuracy",
    "mrpc": "f1",
    "qqp": "f1",
    "stsb": "pearson",
}
for _task, _key in _GLUE_PRIMARY.items():
    register(f"glue/{_task}", "glue", _task, _key)
del _task, _key

register("squad", "squad", None, "f1", percent=True)
register("squad_v2", "squad_v2", None, "f1", percent=True)
register("classification", "classification", None, "accuracy")
# Task specs name single-label classification tasks outside GLUE (SICK, SNLI, rotten_tomatoes,
# IMDb, ...) by what they report: accuracy (+ macro F1) from the same module.
register("accuracy", "classification", None, "accuracy")
