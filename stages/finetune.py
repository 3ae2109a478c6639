"""DVC stages `finetune` (our pre-trained variants) and `finetune_ref` (real checkpoints).

    python stages/finetune.py --model bert --task cola      # init models/pretrain/bert
    python stages/finetune.py --model minilm --task rte     # init the named checkpoint

Both stage groups run this one script (arkbench.training.finetune.run); the model's
origin comes from params (`finetune.models` vs `finetune.ref_models`). The result of
`run_task` (mean / std over `finetune.seeds`, per-seed metrics) is written to
metrics/finetune/<model>-<task>.json.
"""
import sys

from arkbench.stage import stage_main
from arkbench.training.finetune import metrics_path, run


def _arg(name: str) -> str:
    argv = sys.argv[1:]
    flag = f"--{name}"
    if flag not in argv or argv.index(flag) + 1 >= len(argv):
        raise SystemExit(f"usage: stages/finetune.py --model <name> --task <task> (missing {flag})")
    return argv[argv.index(flag) + 1]


if __name__ == "__main__":
    stage_main("finetune", run, metrics_path=metrics_path("metrics/finetune", _arg("model"), _arg("task")))
