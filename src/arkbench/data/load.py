"""One loader for every task and source: :func:`load_task` / :func:`build_task`.

    source rows / hub splits  ->  raw splits (Datasets with spec.features)
                              ->  output splits (split_map, eval_split, carving)
                              ->  caps (max_examples)  ->  schema check  ->  DatasetDict
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
from datasets import Dataset, DatasetDict, load_from_disk

from ..errors import DataFormatError, DataMissingError
from . import embedded, hub, local
from .registry import TaskSpec, get_task
from .splits import DEFAULT_EVAL_FRACTION, assemble, resolve_split_map, subsample

SOURCES = ("embedded", "local", "hub")
DEFAULT_LOCAL_DIR = "../shared/data"
DEFAULT_EMBEDDED_SIZES = (400, 200)   # rows in the training split, in each evaluation split


def to_dataset(rows: list[dict[str, Any]], spec: TaskSpec) -> Dataset:
    return Dataset.from_list(rows, features=spec.features)


def check_schema(dd: DatasetDict, spec: TaskSpec, where: str = "") -> None:
    """Raise unless `dd` has exactly the task's splits and features."""
    if list(dd) != list(spec.splits):
        raise ValueError(f"task {spec.name!r}{where}: splits {list(dd)} != {list(spec.splits)}")
    for split, ds in dd.items():
        if ds.features != spec.features:
            raise ValueError(f"task {spec.name!r}{where}, split {split!r}: features\n  {ds.features}\n"
                             f"differ from the registry's\n  {spec.features}")


def build_task(name: str, source: str = "embedded", *, local_dir: str | Path | None = None,
               max_examples: int | None = None, max_eval_examples: int | None = None,
               seed: int = 0, eval_split: str | Mapping[str, str] | None = None,
               eval_fraction: float = DEFAULT_EVAL_FRACTION,
               embedded_sizes: tuple[int, int] | None = None,
               bad_lines: str | None = None) -> tuple[DatasetDict, dict[str, Any]]:
    """:func:`load_task` plus provenance (carved splits, files read, lines skipped)."""
    spec = get_task(name)
    info: dict[str, Any] = {"source": source, "carved": [], "files": [], "skipped_lines": 0}
    where = ""
    if source == "embedded":
        n_train, n_eval = embedded_sizes or DEFAULT_EMBEDDED_SIZES
        sizes = {s: n_train if s == spec.train_split else n_eval for s in spec.splits}
        raw = {s: to_dataset(rows, spec) for s, rows in embedded.generate(spec, sizes, seed).items()}
        default_map = {s: s for s in spec.splits}
    elif source == "local":
        if spec.local is None:
            raise ValueError(f"task {name!r} has no local layout")
        root = Path(local_dir or DEFAULT_LOCAL_DIR)
        rows, rep = local.read_local(spec, root, bad_lines)
        raw = {k: to_dataset(v, spec) for k, v in rows.items()}
        default_map = dict(spec.local.split_map)
        where = f" under {root / spec.local.path}"
        info.update(files=[str(Path(f).relative_to(root)) if Path(f).is_relative_to(root) else f
                           for f in rep.files], skipped_lines=len(rep.skipped))
    elif source == "hub":
        if spec.hub is None:
            raise ValueError(f"task {name!r} has no hub counterpart; use source 'local' or 'embedded'")
        default_map = dict(spec.hub.split_map)
        wanted = resolve_split_map(default_map, spec.eval_splits, eval_split, name)
        raw = hub.read_hub(spec, splits={r for r in wanted.values() if not r.startswith("\0")})
        where = f" on the hub ({spec.hub.id})"
    else:
        raise ValueError(f"unknown data source {source!r}; allowed: {', '.join(SOURCES)}")

    split_map = resolve_split_map(default_map, spec.eval_splits, eval_split, name)
    required = tuple(s for s in spec.eval_splits if split_map[s] != default_map[s])
    out, carved = assemble(raw, split_map, task=name, seed=seed, eval_fraction=eval_fraction,
                           group_by=spec.group_by, required=required, where=where,
                           rule=spec.carve_rule, text_field=spec.text_fields[0])
    caps = {s: (max_examples if s == spec.train_split or max_eval_examples is None else max_eval_examples)
            for s in spec.splits}
    dd = DatasetDict({s: subsample(out[s], caps[s], seed) for s in spec.splits})
    check_schema(dd, spec, f" from {source}")
    info["carved"] = carved
    return dd, info


def load_task(name: str, source: str = "embedded", *, local_dir: str | Path | None = None,
              max_examples: int | None = None, seed: int = 0,
              eval_split: str | Mapping[str, str] | None = None, **kwargs: Any) -> DatasetDict:
    """Task `name` from `source` as a DatasetDict in its hub schema.

    source:       "embedded" (generated, offline), "local" (original layouts under
                  `local_dir`, default ../shared/data) or "hub" (datasets.load_dataset).
    max_examples: cap on rows per split (seeded random subset, original order kept);
                  ``max_eval_examples=`` caps the evaluation splits separately.
    seed:         drives generation, carving and capping; same seed -> same data.
    eval_split:   where evaluation data comes from; see :mod:`arkbench.data.splits`.
    Other keywords: eval_fraction, embedded_sizes=(train, eval), bad_lines ("error"|"skip").
    """
    return build_task(name, source, local_dir=local_dir, max_examples=max_examples, seed=seed,
                      eval_split=eval_split, **kwargs)[0]


def load_prepared(name: str, root: str | Path = "data/tasks") -> DatasetDict:
    """A task as the download stage saved it under ``<root>/<name>``."""
    path = Path(root) / name
    if not (path / "dataset_dict.json").is_file():
        raise DataMissingError(f"{path}: task {name!r} has not been prepared; "
                               f"add it to download.tasks in params.yaml and run `dvc repro download`")
    try:
        dd = load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - truncated arrow file, bad JSON, missing split folder ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise DataFormatError(f"{path}: cannot read the saved task ({type(e).__name__}: {first}); "
                              f"re-run `dvc repro download` (or `dvc checkout {path}`)") from None
    try:
        check_schema(dd, get_task(name), f" at {path} (stale? re-run the download stage)")
    except ValueError as e:
        raise DataFormatError(str(e).replace("\n", " ")) from None
    return dd


def prepared_source(name: str, root: str | Path = "data/tasks") -> str:
    """Which source the download stage read task `name` from ("unknown" without a manifest)."""
    import json

    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
        return str(manifest["tasks"][name]["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def fingerprint(ds: Dataset) -> str:
    """A content hash of one split (schema + rows), stable across runs and machines."""
    h = hashlib.sha256()
    table = ds.flatten_indices().data.table if ds._indices is not None else ds.data.table
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table.combine_chunks())
    h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()[:16]
