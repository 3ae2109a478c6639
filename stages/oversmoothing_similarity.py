"""DVC stage oversmoothing_similarity; see arkbench.papers.oversmoothing.stages."""
from arkbench.papers.oversmoothing.stages import run_similarity
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("oversmoothing_similarity", run_similarity)
