"""Manifest of AutoBERT-Zero (issue #12): found by arkbench.papers discovery; plain data."""
from arkbench.papers import Paper

PAPER = Paper(
    name="autobert_zero",
    title="AutoBERT-Zero: Evolving BERT Backbone from Scratch (Gao et al., AAAI 2022)",
    spec="/work/shared/papers/bert_variants.md §3",
    sections={             # params section -> module registering its @section schema
        "autobert_supernet": "arkbench.papers.autobert_zero.stages",
        "autobert_search": "arkbench.papers.autobert_zero.stages",
        "autobert_ranking": "arkbench.papers.autobert_zero.stages",
        "autobert_final": "arkbench.papers.autobert_zero.stages",
    },
    plugins=(              # modules registering mixers (abz_graph, abz_conv, abz_biws)
        "arkbench.papers.autobert_zero.modules",
        "arkbench.papers.autobert_zero.biws",
    ),
    tasks=(),              # modules registering data tasks
    code={"autobert": ("encoder", ".")},   # its stages' code key (arkbench.resolve): the encoder stack + this folder
    experiment="arkbench/autobert_zero",
)
