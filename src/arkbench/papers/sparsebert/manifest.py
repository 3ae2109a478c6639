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
    code={   # stage family -> the code its stages load (arkbench.resolve code keys)
        "sparsebert_grid": ("encoder", "metrics", "outputs", "."),   # + this folder
        # the summary reads the grid's outputs only: no encoder, so a model edit does not rerun it
        "sparsebert_summary": ("summary.py", "table.py", "patterns.py", "outputs", "utils"),
    },
    tables={"sparsebert_table.md": "plots/sparsebert/summary/table.md"},   # masks x tasks beside the paper's
    experiment="arkbench/sparsebert",
)
