"""DVC stage `finetune_realdata`: a real checkpoint fine-tuned on real GLUE data (see arkbench.training.realdata)."""
from arkbench.stage import stage_main
from arkbench.training.realdata import run

if __name__ == "__main__":
    stage_main("finetune_realdata", run, distributed=True)
