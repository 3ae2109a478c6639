"""Manifest of ZeroGen (issue #14): found by arkbench.papers discovery; plain data, no imports."""
from arkbench.papers import Paper

PAPER = Paper(
    name="zerogen",
    title="ZeroGen: Efficient Zero-shot Learning via Dataset Generation (Ye et al., EMNLP 2022)",
    spec="/work/shared/papers/zerogen_unison.md Part A",
    sections={             # params section -> module registering its @section schema
        "zerogen_plm": "arkbench.papers.zerogen.stages",
        "zerogen_synthesize": "arkbench.papers.zerogen.stages",
        "zerogen_train": "arkbench.papers.zerogen.stages",
        "zerogen_analysis": "arkbench.papers.zerogen.stages",
        "zerogen_summary": "arkbench.papers.zerogen.stages",
    },
    plugins=(),            # no encoder plugins: its task models are LSTMs and stock MiniLM
    tasks=(),              # gold data come from the core registry (sst2, rotten_tomatoes, imdb, rte, ...)
    code={"zerogen": ("encoder", "metrics", ".")},   # its stages' code key (arkbench.resolve): + this folder
    tables={"zerogen_table.md": "reports/zerogen_table.md"},   # TC / QA table in the paper's layout
    experiment="arkbench/zerogen",
)
