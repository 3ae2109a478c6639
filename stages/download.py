"""DVC stage `download`: materialise every task under data/tasks (see arkbench.data.download)."""
from arkbench.stage import stage_main
from arkbench.data.download import run

if __name__ == "__main__":
    stage_main("download", run, metrics_path="metrics/download.json")
