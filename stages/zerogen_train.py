"""DVC stage zerogen_train; see arkbench.papers.zerogen.stages."""
from arkbench.papers.zerogen.stages import run_train
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("zerogen_train", run_train, metrics_path="metrics/zerogen/train/{task}.json")
