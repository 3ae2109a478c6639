"""DVC stage captioning_phase2; see arkbench.papers.captioning.stages."""
from arkbench.papers.captioning.stages import run_phase2
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("captioning_phase2", run_phase2)
