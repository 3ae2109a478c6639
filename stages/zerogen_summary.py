"""DVC stage zerogen_summary; see arkbench.papers.zerogen.stages."""
from arkbench.papers.zerogen.stages import run_summary
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("zerogen_summary", run_summary, metrics_path="metrics/zerogen/summary.json")
