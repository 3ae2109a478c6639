"""DVC stage autobert_final; see arkbench.papers.autobert_zero.stages."""
from arkbench.papers.autobert_zero.stages import run_final
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("autobert_final", run_final)
