"""DVC stage sparsebert_grid  (matrix: --family <name>); see arkbench.papers.sparsebert.stages."""
from arkbench.papers.sparsebert.stages import run_grid
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("sparsebert_grid", run_grid)
