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

# Descriptions of experiments that are not a paper's (a paper's comes from its title and
# claims in src/arkbench/report/claims.yaml, see experiment_description).
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
    key = name.split("/", 1)[-1]
    try:
        from pathlib import Path

        import yaml

        claims = yaml.safe_load((Path(__file__).resolve().parents[1] / "report" / "claims.yaml").read_text())
        paper = (claims.get("papers") or {}).get(key) or {}
    except (OSError, ValueError, AttributeError):
        paper = {}
    if not paper:
        return f"arkbench experiment {name}"
    lines = [f"{paper.get('title', key)}", "", "Claims tested here:"]
    lines += [f"- {c.get('text', c.get('id', ''))}" for c in paper.get("claims") or []]
    return "\n".join(lines)


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
