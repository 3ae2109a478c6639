"""The ``hub`` source: ``datasets.load_dataset`` normalised to the registry schema.

Only used when a user asks for it (``download.source: hub``). The stage keeps the
HF_*_OFFLINE variables set otherwise, so nothing here can hang on the network.
Normalisation: rename columns (``HubSource.rename``), apply an optional row
transform, keep exactly ``spec.features``' columns, drop unlabelled rows where
asked, and cast to ``spec.features`` (so ClassLabel names and int32 idx match).
"""
from __future__ import annotations

from typing import Any, Callable

import datasets
from datasets import Dataset, DatasetDict

from .registry import TaskSpec


def _tatoeba_mt(row: dict[str, Any]) -> dict[str, Any]:
    """Helsinki-NLP/tatoeba_mt rows (sourceString/targetString) -> translation{en, zh}."""
    return {"id": str(row.get("id", "")),
            "translation": {"en": row["sourceString"], "zh": row["targetString"]}}


TRANSFORMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"tatoeba_mt": _tatoeba_mt}


def normalise(ds: Dataset, spec: TaskSpec) -> Dataset:
    """One hub split -> exactly ``spec.features``."""
    hub = spec.hub
    assert hub is not None
    ren = {k: v for k, v in hub.rename.items() if k in ds.column_names}
    if ren:
        ds = ds.rename_columns(ren)
    if hub.transform:
        fn = TRANSFORMS[hub.transform]
        ds = ds.map(fn, remove_columns=ds.column_names, features=spec.features)
    missing = [c for c in spec.features if c not in ds.column_names]
    if missing:
        raise ValueError(f"hub data set {hub.id!r} ({hub.config}) lacks column(s) {missing} "
                         f"needed by task {spec.name!r}; it has {ds.column_names}")
    ds = ds.select_columns(list(spec.features))
    if hub.drop_unlabelled and "label" in ds.column_names:
        ds = ds.filter(lambda lab: [x != -1 for x in lab], input_columns="label", batched=True)
    return ds.cast(spec.features)


def read_hub(spec: TaskSpec, splits: set[str] | None = None, **kwargs: Any) -> dict[str, Dataset]:
    """Raw hub splits of `spec` (those named in `splits`, default: its split_map), normalised."""
    if spec.hub is None:
        raise ValueError(f"task {spec.name!r} has no hub counterpart; use source 'local' or 'embedded'")
    dd = datasets.load_dataset(spec.hub.id, spec.hub.config, **kwargs)
    if not isinstance(dd, DatasetDict):
        dd = DatasetDict({"train": dd})
    wanted = splits if splits is not None else set(spec.hub.split_map.values())
    return {name: normalise(ds, spec) for name, ds in dd.items() if name in wanted}
