"""DVC stage oversmoothing_fusion  (matrix: --task <name>); see arkbench.papers.oversmoothing.stages."""
from arkbench.papers.oversmoothing.stages import run_fusion
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("oversmoothing_fusion", run_fusion)
