"""Which MLflow experiment a stage's runs go to.

One experiment per paper / area. The mapping is data: a params section maps to
the experiment of the longest key in :data:`EXPERIMENTS` it starts with
(``oversmoothing_theory`` -> ``arkbench/oversmoothing``). A section's module may
override it by defining ``MLFLOW_EXPERIMENT = "arkbench/..."`` next to its
``@section`` schema.
"""
from __future__ import annotations

import sys

EXPERIMENTS: dict[str, str] = {
    "download": "arkbench/core",
    "pretrain": "arkbench/core",
    "finetune": "arkbench/core",
    "oversmoothing": "arkbench/oversmoothing",
    "sparsebert": "arkbench/sparsebert",
    "autobert_zero": "arkbench/autobert_zero",
    "zerogen": "arkbench/zerogen",
    "captioning": "arkbench/captioning",
    "report": "arkbench/report",
}
FALLBACK_EXPERIMENT = "arkbench/misc"


def _module_override(section: str) -> str | None:
    from .. import config

    schema = config._SECTIONS.get(section)  # only modules already imported: no heavy imports here
    mod = sys.modules.get(schema.__module__) if schema is not None else None
    value = getattr(mod, "MLFLOW_EXPERIMENT", None)
    return value if isinstance(value, str) and value else None


def experiment_for(section: str, stage: str | None = None) -> str:
    """The experiment name for params section `section` (falls back to the stage name)."""
    override = _module_override(section)
    if override:
        return override
    for name in (section, (stage or "").split("@")[0]):
        keys = [k for k in EXPERIMENTS if name == k or name.startswith(k)]
        if keys:
            return EXPERIMENTS[max(keys, key=len)]
    return FALLBACK_EXPERIMENT
