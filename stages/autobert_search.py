"""DVC stage autobert_search; see arkbench.papers.autobert_zero.stages."""
from arkbench.papers.autobert_zero.stages import run_search
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("autobert_search", run_search)
