"""DVC stage zerogen_synthesize; see arkbench.papers.zerogen.stages."""
from arkbench.papers.zerogen.stages import run_synthesize
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("zerogen_synthesize", run_synthesize, metrics_path="metrics/zerogen/synthetic/{set}.json")
