"""DVC stage zerogen_analysis; see arkbench.papers.zerogen.stages."""
from arkbench.papers.zerogen.stages import run_analysis
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("zerogen_analysis", run_analysis, metrics_path="metrics/zerogen/analysis.json")
