"""DVC stage oversmoothing_probe; see arkbench.papers.oversmoothing.stages."""
from arkbench.papers.oversmoothing.stages import run_probe
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("oversmoothing_probe", run_probe)
