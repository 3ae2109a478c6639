"""DVC stages `finetune` (our pre-trained variants) and `finetune_ref` (real checkpoints).

    python stages/finetune.py --model bert --task cola      # init models/pretrain/bert
    python stages/finetune.py --model minilm --task rte     # init the named checkpoint

Both stage groups run this one script (arkbench.training.finetune.run); the model's
origin comes from params (`finetune.models` vs `finetune.ref_models`). The result of
`run_task` (mean / std over `finetune.seeds`, per-seed metrics) is written to
metrics/finetune/<model>-<task>.json.
"""
from arkbench.stage import stage_main
from arkbench.training.finetune import run

if __name__ == "__main__":
    stage_main("finetune", run, metrics_path="metrics/finetune/{model}-{task}.json", distributed=True)
