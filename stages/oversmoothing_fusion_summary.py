"""DVC stage oversmoothing_fusion_summary; see arkbench.papers.oversmoothing.stages."""
from arkbench.papers.oversmoothing.stages import run_fusion_summary
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("oversmoothing_fusion", run_fusion_summary, stage="oversmoothing_fusion_summary")
