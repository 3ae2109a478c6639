"""DVC stage zerogen_plm; see arkbench.papers.zerogen.stages."""
from arkbench.papers.zerogen.stages import run_plm
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("zerogen_plm", run_plm, metrics_path="metrics/zerogen/plm.json")
