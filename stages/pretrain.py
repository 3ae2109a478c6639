"""DVC stage `pretrain@<variant>`: MLM pre-training of one encoder variant.

    python stages/pretrain.py --variant bert
    torchrun --nproc_per_node 2 stages/pretrain.py --variant bert

Metrics go to metrics/pretrain/<variant>.json (dvc.yaml). Under torchrun only rank 0
tracks to MLflow and writes metrics; the other ranks train silently.
"""
import os
import sys

from arkbench.stage import stage_main
from arkbench.training.pretrain import run


def _variant(argv: list[str]) -> str | None:
    return argv[argv.index("--variant") + 1] if "--variant" in argv[:-1] else None


if __name__ == "__main__":
    main_rank = os.environ.get("RANK", "0") == "0"
    if not main_rank:
        os.environ["ARKBENCH_TRACKING"] = "off"
    v = _variant(sys.argv[1:])
    stage_main("pretrain", run, metrics_path=f"metrics/pretrain/{v}.json" if v and main_rank else None)
