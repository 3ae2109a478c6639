"""The ``download`` stage: materialise every task under ``data/tasks/``.

    data/tasks/<task>/        DatasetDict.save_to_disk (train + evaluation splits)
    data/tasks/manifest.json  task -> splits -> rows, fingerprints, carved splits, source

The whole folder is written to a temp folder and renamed into place at the end
(:func:`arkbench.utils.atomic_dir`), so a failed run leaves the previous data
intact and the manifest always matches the files. Params are validated (task
names included) before anything is read or written.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..config import Section, section
from ..errors import DataMissingError
from ..progress import progress
from ..utils import atomic_dir, atomic_write_json
from .load import build_task, fingerprint
from .registry import TASKS, get_task
from .splits import CARVE

log = logging.getLogger(__name__)


def _check_task(name: str) -> str:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return name


@section("download")
class DownloadParams(Section):
    """params.yaml ``download:`` section."""

    source: Literal["embedded", "local", "hub"] = "embedded"
    """embedded: generated offline; local: original layouts under local_dir; hub: load_dataset."""
    source_for: dict[str, Literal["embedded", "local", "hub"]] = Field(default_factory=dict)
    """Per-task override of `source` (e.g. captions from local while GLUE comes from hub)."""
    local_dir: str = "../shared/data"
    """Root of the original layouts for source=local (glue_data/, squad/, sick/...)."""
    tasks: list[str] = Field(default_factory=lambda: list(TASKS), min_length=1)
    """Registry task names to materialise (arkbench.data.TASKS)."""
    max_train_examples: PositiveInt | None = None
    """Cap on training rows per task (seeded subset); null = all."""
    max_eval_examples: PositiveInt | None = None
    """Cap on rows of each evaluation split; null = all."""
    eval_split: dict[str, str] = Field(default_factory=dict)
    """task -> where its evaluation data comes from: 'carve' or a raw split name
    (e.g. dev, test). Tasks not listed use the layout's default (carving if missing)."""
    eval_fraction: float = Field(0.1, gt=0.0, le=0.5)
    """Share of the pool each carved evaluation split gets."""
    eval_fraction_for: dict[str, float] = Field(default_factory=dict)
    """Per-task `eval_fraction` (e.g. SQuAD's 12 local articles: 0.25 -> 3 whole articles)."""
    embedded_train_size: PositiveInt = 300
    """source=embedded: rows generated for each training split."""
    embedded_eval_size: PositiveInt = 100
    """source=embedded: rows generated for each evaluation split."""
    seed: int = 0
    """Data seed (generation, carving, capping). Separate from the global seed so that
    re-running training with another seed evaluates on the same data."""
    bad_lines: Literal["task", "error", "skip"] = "task"
    """Malformed input lines: task = the layout's default (QQP skips, others error)."""
    out_dir: str = "data/tasks"
    """Where the tasks and manifest.json go (a DVC output)."""

    @field_validator("tasks")
    @classmethod
    def _known_once(cls, v: list[str]) -> list[str]:
        for t in v:
            _check_task(t)
        dup = sorted({t for t in v if v.count(t) > 1})
        if dup:
            raise ValueError(f"task(s) listed twice: {', '.join(dup)}")
        return v

    @field_validator("eval_split")
    @classmethod
    def _eval_split(cls, v: dict[str, str]) -> dict[str, str]:
        for task, where in v.items():
            spec = get_task(_check_task(task))
            if where != CARVE and len(spec.eval_splits) != 1:
                raise ValueError(f"{task} has {len(spec.eval_splits)} evaluation splits; "
                                 f"only 'carve' can be given for it")
        return v

    @field_validator("source_for")
    @classmethod
    def _known_tasks(cls, v: dict[str, str]) -> dict[str, str]:
        for t in v:
            _check_task(t)
        return v

    @field_validator("eval_fraction_for")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for t, f in v.items():
            _check_task(t)
            if not 0.0 < f <= 0.5:
                raise ValueError(f"eval_fraction_for.{t} = {f}: must be in (0, 0.5]")
        return v

    def source_of(self, task: str) -> str:
        return self.source_for.get(task, self.source)

    @model_validator(mode="after")
    def _sources_exist(self) -> "DownloadParams":
        for t in self.tasks:
            spec, src = TASKS[t], self.source_of(t)
            if src == "hub" and spec.hub is None:
                raise ValueError(f"task {t!r} has no hub counterpart; set source_for.{t} "
                                 f"to local or embedded")
            if src == "local" and spec.local is None:
                raise ValueError(f"task {t!r} has no local layout; set source_for.{t}")
        return self


class LocalDataMissing(DataMissingError):
    """The `local` source's folder is not there (raised before any work; stage_main prints it
    as one line and exits 2)."""


def check_local_dir(params: DownloadParams) -> None:
    """Stop at once when a task reads the `local` source and ``local_dir`` is absent."""
    local = [t for t in params.tasks if params.source_of(t) == "local"]
    folder = Path(params.local_dir)
    if local and not folder.is_dir():
        raise LocalDataMissing(
            f"download.local_dir: data folder {params.local_dir!r} ({folder.resolve()}) not found, and "
            f"{len(local)} task(s) read it through the local source ({', '.join(local[:6])}"
            f"{', ...' if len(local) > 6 else ''}). Put the data sets there in their original layouts "
            f"(glue_data/<TASK>/*.tsv, squad/*.json, sick/SICK.txt, wikitext-2/*.txt; README: 'Scales and "
            f"data sources'), point download.local_dir at them, or fetch from the hub instead: "
            f"dvc exp run -S download.source=hub")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def run(params: DownloadParams, ctx=None) -> dict:
    """Write every task of ``params.tasks`` and the manifest; return row counts."""
    check_local_dir(params)   # before the (seconds-long) datasets import
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    manifest: dict = {"source": params.source, "seed": params.seed, "tasks": {},
                      "local_dir": params.local_dir}
    rows: dict[str, dict[str, int]] = {}
    try:
        with atomic_dir(params.out_dir) as tmp:
            for name in progress(params.tasks, desc="download", unit="task"):
                dd, info = build_task(
                    name, params.source_of(name), local_dir=params.local_dir,
                    max_examples=params.max_train_examples,
                    max_eval_examples=params.max_eval_examples, seed=params.seed,
                    eval_split=params.eval_split.get(name),
                    eval_fraction=params.eval_fraction_for.get(name, params.eval_fraction),
                    embedded_sizes=(params.embedded_train_size, params.embedded_eval_size),
                    bad_lines=None if params.bad_lines == "task" else params.bad_lines)
                prints = {}
                for split, ds in dd.items():
                    ds = ds.flatten_indices() if ds._indices is not None else ds
                    prints[split] = ds._fingerprint = fingerprint(ds)  # stable state.json
                    dd[split] = ds
                dd.save_to_disk(str(Path(tmp) / name))
                rows[name] = {s: len(ds) for s, ds in dd.items()}
                spec = TASKS[name]
                manifest["tasks"][name] = {
                    "source": params.source_of(name), "splits": rows[name], "fingerprint": prints, "carved": info["carved"],
                    "files": info["files"], "skipped_lines": info["skipped_lines"],
                    # content hashes of what was read: provenance beside the rows it produced
                    "file_sha256": {f: _file_digest(Path(params.local_dir) / f) for f in info["files"]
                                    if (Path(params.local_dir) / f).is_file()},
                    "family": spec.family, "metric": spec.metric,
                }
            atomic_write_json(Path(tmp) / "manifest.json", manifest)
    finally:
        if bars:
            datasets.enable_progress_bars()
    if ctx is not None:
        from ..tracking.datasets import log_inputs, prepared_inputs

        ctx.log_artifact(Path(params.out_dir) / "manifest.json")
        log_inputs(ctx, lambda: [i for t in params.tasks for i in prepared_inputs(t, params.out_dir)])
    return {"rows": rows, "total_rows": sum(sum(r.values()) for r in rows.values()),
            "tasks": len(rows)}  # no wall time: same params => same metrics file
