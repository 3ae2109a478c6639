"""DVC stage oversmoothing_theory; see arkbench.papers.oversmoothing.stages."""
from arkbench.papers.oversmoothing.stages import run_theory
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("oversmoothing_theory", run_theory)
