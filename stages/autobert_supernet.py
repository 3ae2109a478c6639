"""DVC stage autobert_supernet; see arkbench.papers.autobert_zero.stages."""
from arkbench.papers.autobert_zero.stages import run_supernet
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("autobert_supernet", run_supernet)
