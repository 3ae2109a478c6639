"""DVC stage captioning_graphs; see arkbench.papers.captioning.stages."""
from arkbench.papers.captioning.stages import run_graphs
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("captioning_graphs", run_graphs)
