"""DVC stage captioning_detect; see arkbench.papers.captioning.stages."""
from arkbench.papers.captioning.stages import run_detect
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("captioning_detect", run_detect)
