"""What a run trained and evaluated on, as MLflow dataset inputs (the runs table's Dataset column).

Every helper returns a list of plain dicts for ``ctx.log_inputs`` (see
:meth:`arkbench.tracking.tracker.MlflowTracker.log_inputs`):

    {"name": "rte/train", "digest": "3f0c...", "source": "data/tasks/rte (local: ../shared/data)",
     "source_type": "local", "context": "train", "split": "train", "num_rows": 2490}

* :func:`prepared_inputs` reads ``<data_root>/manifest.json`` written by the download
  stage: the digest is the manifest's content fingerprint of the split (schema + rows).
* :func:`dataset_inputs` fingerprints a DatasetDict a stage loaded itself.
* :func:`rows_inputs` hashes plain rows (sentences a stage sampled).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import DataError, read_json

Role = Callable[[str], str]


def split_role(task: str) -> Role:
    """split -> "train" for the task's training split, "eval" otherwise."""
    try:
        from ..data.registry import get_task

        train = get_task(task).train_split
    except (KeyError, ValueError, ImportError):
        train = "train"
    return lambda split: "train" if split == train else "eval"


def prepared_inputs(task: str, data_root: str | Path = "data/tasks", splits: Iterable[str] | None = None,
                    role: Role | None = None) -> list[dict[str, Any]]:
    """Inputs for `task` as the download stage saved it; [] when the manifest does not list it."""
    root = Path(data_root)
    try:
        manifest = read_json(root / "manifest.json")
        entry = manifest["tasks"][task]
    except (DataError, KeyError, TypeError):
        return []
    role = role or split_role(task)
    wanted = set(splits) if splits is not None else None
    source = entry.get("source") or manifest.get("source") or "unknown"
    where = f"{root / task} ({source}" + (f": {manifest.get('local_dir')})" if source == "local" else ")")
    out = []
    for split, n in (entry.get("splits") or {}).items():
        if wanted is not None and split not in wanted:
            continue
        out.append({"name": f"{task}/{split}", "digest": (entry.get("fingerprint") or {}).get(split, "unknown"),
                    "source": where, "source_type": source, "context": role(split), "split": split,
                    "num_rows": n})
    return out


def dataset_inputs(task: str, data: Any, source: str, location: str | Path | None = None,
                   role: Role | None = None) -> list[dict[str, Any]]:
    """Inputs for a DatasetDict `data` of `task` loaded from `source` (at `location`)."""
    from ..data import fingerprint

    role = role or split_role(task)
    where = f"{source}: {location}" if location else source
    return [{"name": f"{task}/{split}", "digest": fingerprint(ds), "source": f"{task} ({where})",
             "source_type": source, "context": role(split), "split": split, "num_rows": len(ds)}
            for split, ds in data.items()]


def rows_inputs(name: str, rows: list, source: str, location: str | Path | None = None,
                context: str = "eval") -> list[dict[str, Any]]:
    """One input for plain rows (e.g. sampled sentences): digest = sha256 of their JSON, 16 hex digits."""
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
    where = f"{source}: {location}" if location else source
    return [{"name": name, "digest": digest, "source": f"{name} ({where})", "source_type": source,
             "context": context, "num_rows": len(rows)}]


def log_inputs(ctx: Any, inputs: Callable[[], list[dict[str, Any]]]) -> None:
    """``ctx.log_inputs(inputs())`` when `ctx` tracks (a StageContext); never fails the stage."""
    fn = getattr(ctx, "log_inputs", None)
    tracker = getattr(ctx, "tracker", None)
    if fn is None or tracker is None or not getattr(tracker, "enabled", False):
        return
    try:
        fn(inputs())
    except DataError:
        return
