"""Manifest of UNISON cross-lingual captioning (issue #13): found by arkbench.papers discovery; plain data."""
from arkbench.papers import Paper

PAPER = Paper(
    name="captioning",
    title="Unsupervised Cross-lingual Image Captioning / UNISON (AAAI 2022)",
    spec="/work/shared/papers/zerogen_unison.md Part B",
    sections={             # params section -> module registering its @section schema
        "captioning_detect": "arkbench.papers.captioning.stages",
        "captioning_graphs": "arkbench.papers.captioning.stages",
        "captioning_phase1": "arkbench.papers.captioning.stages",
        "captioning_phase2": "arkbench.papers.captioning.stages",
        "captioning_evaluate": "arkbench.papers.captioning.stages",
    },
    plugins=(),            # no encoder plugins: graph conv + LSTM models of its own (model.py)
    tasks=(),              # its data (Flickr8k, Flickr8k-CN, Tatoeba) are read by worlds.py, not the task registry
    code={"captioning": (".", "utils")},   # its stages load this folder and arkbench.utils only (no encoder)
    tables={"captioning_table.md": "metrics/captioning/table.md"},   # each method x BLEU..CIDEr beside the paper's
    experiment="arkbench/captioning",
)
