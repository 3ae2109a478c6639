"""DVC stage `pretrain@<variant>`: MLM pre-training of one encoder variant.

    python stages/pretrain.py --variant bert
    torchrun --nproc_per_node 2 stages/pretrain.py --variant bert

Metrics go to metrics/pretrain/<variant>.json (dvc.yaml). Under torchrun only rank 0
tracks to MLflow and writes metrics; the other ranks train silently.
"""
from arkbench.stage import stage_main
from arkbench.training.pretrain import run

if __name__ == "__main__":
    # stage_main formats the path with the matrix value, relaunches under torchrun when
    # ARKBENCH_NPROC_PER_NODE > 1, and lets only rank 0 write metrics and log to MLflow
    stage_main("pretrain", run, metrics_path="metrics/pretrain/{variant}.json", distributed=True)
