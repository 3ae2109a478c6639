"""DVC stage autobert_ranking; see arkbench.papers.autobert_zero.stages."""
from arkbench.papers.autobert_zero.stages import run_ranking
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("autobert_ranking", run_ranking)
