"""AutoBERT-Zero (Gao et al., AAAI 2022): OP-NAS over primitive-operation attention graphs.

    graph.py      the attention DAG: primitives, shape inference, canonical hash, evaluation
    modules.py    encoder mixers: searched-graph attention ("abz_graph"), conv slots ("abz_conv")
    space.py      architectures (slots), Figure-7 presets, random generation, mutations
    proxy.py      the proxy: short MLM (+ optional GLUE) training of a candidate
    search.py     OP evolution, regularized evolution, random search; checkpointed state
    executors.py  in-process and Ray candidate evaluation
    biws.py       bi-branch weight-sharing super-net and the ranking study
    stages.py     the DVC stages' logic
"""
from . import modules  # noqa: F401  (registers the mixers)
