"""Real-data check of the Transformer core: a real checkpoint fine-tuned on real GLUE.

Stage `finetune_realdata`: all-MiniLM-L6-v2 (offline) on SST-2, CoLA, MRPC, STS-B and
RTE read from their original layouts (`local` source, ../shared/data by default),
through the same `run_task` path as every other model. SST-2 has no dev set there:
its evaluation split is carved from train with a fixed seed (the data layer's rule).
Each task writes metrics/finetune_realdata/<model>-<task>.json in run_task's format
plus its budget and source; the report puts them beside the expected ranges. When the
folder is absent the stage records "not run" instead of failing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..config import Section, section
from ..utils import atomic_write_json


@section("finetune_realdata")
class RealDataParams(Section):
    model: str = "minilm"                          # a named checkpoint or a folder
    local_dir: str = "../shared/data"               # original layouts (glue_data/<TASK>/*.tsv)
    tasks: list[str] = Field(default_factory=lambda: ["sst2", "cola", "mrpc", "stsb", "rte"])
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    data_seed: int = 0                              # which rows are kept / carved (fixed)
    max_eval_examples: int | None = Field(None, ge=1)
    hp: dict[str, Any] = Field(default_factory=dict)          # FinetuneHP defaults for every task
    budgets: dict[str, dict[str, Any]] = Field(default_factory=dict)   # per task: FinetuneHP + max_train_examples
    out_dir: str = "metrics/finetune_realdata"

    @field_validator("tasks")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from .finetune import check_task

        return [check_task(t) for t in v]

    def hp_for(self, task: str) -> tuple[int | None, dict[str, Any]]:
        budget = dict(self.budgets.get(task) or {})
        cap = budget.pop("max_train_examples", None)
        return cap, {**self.hp, **budget}


def run(params: RealDataParams, ctx=None) -> dict[str, Any]:
    from ..data import load_task
    from .finetune import FinetuneHP, run_task

    out = Path(params.out_dir)
    unknown = sorted(set(params.budgets) - set(params.tasks))
    if unknown:
        raise ValueError(f"finetune_realdata.budgets names tasks not in finetune_realdata.tasks: {unknown}")
    # validate every task's hyper-parameters before the first (minutes-long) run
    plans = {t: params.hp_for(t) for t in params.tasks}
    for t, (_, hp) in plans.items():
        try:
            FinetuneHP.model_validate(hp)
        except Exception as e:  # pydantic's message names the field
            raise ValueError(f"finetune_realdata: bad hyper-parameters for task {t!r}: {e}") from None
    summary: dict[str, Any] = {}
    local = Path(params.local_dir)
    for task, (cap, hp) in plans.items():
        path = out / f"{Path(params.model).name}-{task}.json"
        if not local.is_dir():
            res = {"task": task, "status": f"not run: {local} not found (the local data source)"}
        else:
            data = load_task(task, "local", local_dir=local, max_examples=cap,
                             max_eval_examples=params.max_eval_examples, seed=params.data_seed)
            from ..tracking.datasets import dataset_inputs, log_inputs

            log_inputs(ctx, lambda: dataset_inputs(task, data, "local", local))
            res = run_task(task, params.model, hp, params.seeds, data=data, ctx=ctx,
                           model_name=Path(params.model).name)
            res.update(data_source="local", budget={"max_train_examples": cap, **hp},
                       sizes={k: len(v) for k, v in data.items()})
            summary[task] = res["mean"]
        atomic_write_json(path, res)
    return {"tasks_run": len(summary), **{f"{t}/mean": v for t, v in summary.items()}}
