"""DVC stage sparsebert_warm: the tokenizer and dense warm start of the SparseBERT grid; see
arkbench.papers.sparsebert.stages (it reads the sparsebert_grid section)."""
from arkbench.papers.sparsebert.stages import run_warm
from arkbench.stage import stage_main

if __name__ == "__main__":
    stage_main("sparsebert_grid", run_warm, stage="sparsebert_warm")
