"""DVC stage captioning_phase1; see arkbench.papers.captioning.stages."""
from arkbench.papers.captioning.stages import run_phase1
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("captioning_phase1", run_phase1)
