"""Manifest of paper (a), over-smoothing (found by arkbench.papers discovery; plain data, no imports)."""
from arkbench.papers import Paper

PAPER = Paper(
    name="oversmoothing",
    title="Revisiting Over-smoothing in BERT from the Perspective of Graph (Shi et al., ICLR 2022)",
    spec="/work/shared/papers/bert_variants.md §1",
    sections={   # params section -> the module whose @section class validates it
        "oversmoothing_similarity": "arkbench.papers.oversmoothing.stages",
        "oversmoothing_probe": "arkbench.papers.oversmoothing.stages",
        "oversmoothing_theory": "arkbench.papers.oversmoothing.stages",
        "oversmoothing_fusion": "arkbench.papers.oversmoothing.stages",
    },
    plugins=("arkbench.papers.oversmoothing.fusion",),   # registers the concat / max / gate fusions
    code={"oversmoothing": ("encoder", "metrics", "outputs", ".")},   # its stages' code key (arkbench.resolve)
    experiment="arkbench/oversmoothing",
)
