"""Manifest of paper (b), SparseBERT (found by arkbench.papers discovery; plain data, no imports)."""
from arkbench.papers import Paper

PAPER = Paper(
    name="sparsebert",
    title="SparseBERT: Rethinking the Importance Analysis in Self-attention (Shi et al., ICML 2021)",
    spec="/work/shared/papers/bert_variants.md §2",
    sections={     # params section -> module registering its @section schema (arkbench.papers discovery)
        "sparsebert_grid": "arkbench.papers.sparsebert.stages",
        "sparsebert_summary": "arkbench.papers.sparsebert.summary",
    },
    plugins=("arkbench.papers.sparsebert.masks",),   # registers the sparse_pattern / dam_u / dam_s biases
    experiment="arkbench/sparsebert",
)
