"""The one entry point every DVC stage script goes through.

    # stages/pretrain.py
    from arkbench.stage import stage_main
    from arkbench.training.pretrain import run
    stage_main("pretrain", run)

`stage_main` validates the stage's params section (failing before any work),
seeds everything, opens an MLflow run tagged with stage / profile / data source /
git commit / DVC stage hash (grouped under one parent run per `dvc repro`), calls
`run(params, ctx, **matrix)`, writes the returned metrics where DVC expects them
(atomically), logs them to MLflow in one batch, and prints one summary line.
Matrix values from dvc.yaml arrive as `--key value` arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import ParamsError, globals_, params_path, read_params, stage_params
from .errors import DataError
from .utils import atomic_write_text, flatten

log = logging.getLogger("arkbench")

# Third-party libraries must stay quiet and offline unless the user opts in.
ENV_DEFAULTS = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
                "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                "GIT_PYTHON_REFRESH": "quiet",
                # OpenMP threads that wait sleep instead of spinning: on a busy 2-core machine (the test
                # suite, the warm server starting, the tracking worker) spinning threads took the core the
                # working thread needed: a smoke fine-tuning stage ran 21-38 s at load 4.5, 13.6 s with
                # PASSIVE. Only effective when set before torch is imported (see arkbench.warm).
                "OMP_WAIT_POLICY": "PASSIVE"}


def apply_env_defaults() -> None:
    """Set ENV_DEFAULTS where the environment does not (at import; again in a warm child, see arkbench.warm)."""
    for k, v in ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


apply_env_defaults()


@dataclass
class StageContext:
    """What a stage's `run` receives besides its params."""

    stage: str                      # dvc stage name, e.g. "finetune@tiny-cola"
    section: str                    # params section, e.g. "finetune"
    profile: str
    seed: int
    matrix: dict[str, str] = field(default_factory=dict)
    tracker: Any = None             # arkbench.tracking.Tracker (no-op when tracking is off)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.tracker is not None:
            self.tracker.log_metrics(flatten(metrics), step=step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        if self.tracker is not None:
            self.tracker.log_artifact(path)

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        """Data sets this run reads, as MLflow inputs; build them with arkbench.tracking.datasets."""
        if self.tracker is not None and datasets:
            self.tracker.log_inputs(datasets)

    def log_group_artifact(self, path: str | os.PathLike) -> None:
        """Attach a file to the parent run of this `dvc repro` (in every experiment)."""
        if self.tracker is not None:
            self.tracker.log_group_artifact(path)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def seed_everything(seed: int) -> None:
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def _parse_matrix(argv: list[str]) -> tuple[dict[str, str], argparse.Namespace]:
    ap = argparse.ArgumentParser(add_help=True)
    ap.add_argument("--params-file", default=None)
    ap.add_argument("--stage-name", default=None)
    ns, rest = ap.parse_known_args(argv)
    matrix: dict[str, str] = {}
    it = iter(rest)
    for tok in it:
        if not tok.startswith("--"):
            raise SystemExit(f"unexpected argument {tok!r}: matrix values come as --key value")
        key = tok[2:].replace("-", "_")
        try:
            matrix[key] = next(it)
        except StopIteration:
            raise SystemExit(f"argument {tok} needs a value") from None
    return matrix, ns


def _relaunch_under_torchrun(argv: list[str]) -> None:
    """With ARKBENCH_NPROC_PER_NODE=N>1, re-run this stage script under torchrun.

    torchrun (torch.distributed.run) starts N processes with RANK/WORLD_SIZE set;
    training code picks them up in arkbench.training.distributed.init(). Multi-node
    runs call torchrun themselves (--nnodes, --rdzv-endpoint) and skip this.
    """
    n = int(os.environ.get("ARKBENCH_NPROC_PER_NODE", "1") or 1)
    if n <= 1 or "LOCAL_RANK" in os.environ:
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           sys.argv[0], *argv]
    os.execv(sys.executable, cmd)


def stage_main(section: str, run: Callable[..., dict | None], argv: list[str] | None = None,
               metrics_path: str | None = None, distributed: bool = False, stage: str | None = None) -> dict:
    """Run one DVC stage; see the module docstring. Returns the metrics.

    `stage` is the DVC stage name when it is not the section's (default: section, plus
    "@<matrix values>"). `distributed=True` marks stages whose `run` supports torchrun (pre-training and
    fine-tuning): they are relaunched under torchrun when ARKBENCH_NPROC_PER_NODE > 1.
    """
    logging.basicConfig(level=os.environ.get("ARKBENCH_LOG", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    if distributed and argv is None:
        _relaunch_under_torchrun(args)
    matrix, ns = _parse_matrix(args)
    stage = ns.stage_name or stage or section + ("@" + "-".join(matrix.values()) if matrix else "")
    try:
        params = stage_params(section, ns.params_file)
        g = globals_(read_params(ns.params_file), params_path(ns.params_file))
    except ParamsError as e:
        print(f"[{stage}] bad params:\n{e}", file=sys.stderr)
        raise SystemExit(2) from None
    seed_everything(g.seed)

    from .tracking import Tracker, open_stage_tracker

    t0 = time.time()
    is_main = int(os.environ.get("RANK", "0")) == 0   # under torchrun only rank 0 reports
    # a worker process opens the MLflow run while this one imports and works
    tracker = (open_stage_tracker(stage=stage, section=section, profile=g.profile,
                                  params=params.model_dump(mode="json"), matrix=matrix)
               if is_main else Tracker())
    ctx = StageContext(stage=stage, section=section, profile=g.profile, seed=g.seed,
                       matrix=matrix, tracker=tracker)
    status = "FAILED"
    try:
        metrics = run(params, ctx, **matrix) or {}
        status = "FINISHED"
    except DataError as e:
        # same contract as bad params: one line naming the file, exit 2; outputs are written
        # atomically (temp path + rename), so nothing half-written is left behind
        print(f"[{stage}] data error: {_one_line(e)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    finally:
        if status != "FINISHED":
            tracker.end(status)
    flat = {k: v for k, v in flatten(metrics).items() if isinstance(v, (int, float))}
    if not is_main:
        return metrics
    if metrics_path:  # may name matrix values: "metrics/finetune/{model}-{task}.json"
        atomic_write_text(metrics_path.format(**matrix), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tracker.log_metrics(flat)
    tracker.end(status)
    dt = time.time() - t0
    shown = ", ".join(f"{k}={v:.4g}" for k, v in list(flat.items())[:6])
    print(f"[{stage}] done in {dt:.1f}s ({g.profile}){': ' + shown if shown else ''}", flush=True)
    return metrics
