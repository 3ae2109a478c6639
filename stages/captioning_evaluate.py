"""DVC stage captioning_evaluate; see arkbench.papers.captioning.stages."""
from arkbench.papers.captioning.stages import run_evaluate
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("captioning_evaluate", run_evaluate)
