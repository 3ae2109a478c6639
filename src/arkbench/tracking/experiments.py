"""Which MLflow experiment a stage's runs go to, and what it is about.

One experiment per paper / area. A paper's sections go to the experiment its manifest
names (``arkbench.papers``: ``oversmoothing_theory`` -> ``arkbench/oversmoothing``),
described by the paper's title and the claims it tests. Core sections map to the
experiment of the longest key in :data:`EXPERIMENTS` they start with; a section named
after a paper (``zerogen_generate``) goes to that paper's. A section's module may
override either by defining ``MLFLOW_EXPERIMENT = "arkbench/..."`` next to its
``@section`` schema.
"""
from __future__ import annotations

import sys

EXPERIMENTS: dict[str, str] = {   # core areas; papers come from their manifests
    "download": "arkbench/core",
    "pretrain": "arkbench/core",
    "finetune": "arkbench/core",
    "report": "arkbench/report",
}
FALLBACK_EXPERIMENT = "arkbench/misc"

# Descriptions of experiments that are not a paper's (a paper's comes from its manifest:
# its title and the claims in its claims.yaml, see experiment_description).
DESCRIPTIONS: dict[str, str] = {
    "arkbench/core": ("Shared pipeline of the benchmark: data download, MLM pre-training of the encoder "
                      "variants, GLUE / SQuAD fine-tuning of our encoders and of a real checkpoint "
                      "(all-MiniLM-L6-v2), and the real-data check. Metrics are compared with the expected "
                      "ranges of the report's core table."),
    "arkbench/report": ("The report stage: every paper's claims beside our numbers "
                        "(reports/index.html, also attached to each `dvc repro`'s parent run)."),
    FALLBACK_EXPERIMENT: "Stages that belong to no paper or area.",
}


def _module_override(section: str) -> str | None:
    from .. import config

    schema = config._SECTIONS.get(section)  # only modules already imported: no heavy imports here
    mod = sys.modules.get(schema.__module__) if schema is not None else None
    value = getattr(mod, "MLFLOW_EXPERIMENT", None)
    return value if isinstance(value, str) and value else None


def experiment_description(name: str) -> str:
    """What the experiment is about: the paper's title and the claims it tests, or DESCRIPTIONS[name]."""
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    from ..papers import papers

    for p in papers().values():
        if p.experiment_name == name:
            return p.experiment_description()
    return f"arkbench experiment {name}"


def experiment_for(section: str, stage: str | None = None) -> str:
    """The experiment name for params section `section` (falls back to the stage name)."""
    override = _module_override(section)
    if override:
        return override
    from ..papers import paper_for_section, papers

    paper = paper_for_section(section)
    if paper is not None:
        return paper.experiment_name
    for name in (section, (stage or "").split("@")[0]):   # a section named after its paper
        hits = [p for p in papers().values() if name == p.name or name.startswith(p.name + "_")]
        if hits:
            return max(hits, key=lambda p: len(p.name)).experiment_name
    for name in (section, (stage or "").split("@")[0]):
        keys = [k for k in EXPERIMENTS if name == k or name.startswith(k)]
        if keys:
            return EXPERIMENTS[max(keys, key=len)]
    return FALLBACK_EXPERIMENT
