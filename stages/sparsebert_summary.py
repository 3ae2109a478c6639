"""DVC stage sparsebert_summary; see arkbench.papers.sparsebert.summary."""
from arkbench.papers.sparsebert.summary import run_summary
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("sparsebert_summary", run_summary)
