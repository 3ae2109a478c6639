"""Tracker objects: a no-op base and the MLflow implementation.

Every backend call goes through :meth:`MlflowTracker._guard`: the first error
prints ONE warning and switches the tracker off for the rest of the process, so
a dead tracking server never fails or slows a stage (its metrics stay in DVC's
files). Params, tags and metrics go through ``MlflowClient.log_batch`` within
MLflow's per-request limits; metrics are buffered and flushed at ``end`` or when
the buffer holds a full batch.
"""
from __future__ import annotations

import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("arkbench.tracking")

MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")

PARENT_TAG = "arkbench.run_group"
IS_PARENT_TAG = "arkbench.is_parent"
# MLflow 3's UI opens an experiment without a kind as a GenAI (traces) experiment; this
# value (what the UI writes for "Model training") makes it open on the runs table
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"   # the experiment's description in the UI
MAX_INPUTS_PER_CALL = 100


def clean_key(key: str) -> str:
    """MLflow keys allow letters, digits, _ - . space /; replace anything else by _."""
    return _BAD_KEY.sub("_", str(key))[:250] or "_"


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


class Tracker:
    """No-op tracker (``ARKBENCH_TRACKING=off``); the interface stages rely on."""

    enabled = False
    run_id: str | None = None
    parent_run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None,
                    timestamp_ms: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_inputs(self, datasets: list[dict[str, Any]]) -> None: ...
    def log_group_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def flush(self) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.end("FINISHED" if exc_type is None else "FAILED")
        return False


class MlflowTracker(Tracker):
    """One MLflow run for one stage, nested under its run group's parent run."""

    def __init__(self, client, tracking_uri: str, description: str = "", system_metrics: bool = False):
        self.client = client
        self.tracking_uri = tracking_uri
        self.description = description
        self.system_metrics = system_metrics
        self.enabled = True
        self._buffer: list = []
        self._ended = False
        self._warned = False
        self._monitor = None
        self._group: str | None = None

    # -- error handling -------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any backend failure must not fail the stage
            self.enabled = False
            self._buffer.clear()
            if not self._warned:
                self._warned = True
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                log.warning("MLflow tracking disabled for this stage (%s failed at %s: %s: %s); "
                            "metrics are still written to DVC's files.",
                            what, self.tracking_uri, type(e).__name__, first)
            return None

    # -- run setup --------------------------------------------------------------
    def start(self, experiment: str, group: str, run_name: str, tags: dict[str, Any],
              parent_tags: dict[str, Any]) -> "MlflowTracker":
        def go():
            exp_id = self._experiment_id(experiment)
            self.parent_run_id = self._parent_run(exp_id, group, parent_tags)
            all_tags = {**tags, "mlflow.runName": run_name, PARENT_TAG: group,
                        "mlflow.parentRunId": self.parent_run_id}
            run = self.client.create_run(exp_id, run_name=run_name,
                                         tags={k: _str(v, MAX_TAG_VALUE) for k, v in all_tags.items()})
            self.run_id = run.info.run_id
            self.experiment_id = exp_id
            self._group = group
        self._guard("starting the run", go)
        if self.system_metrics and self.run_id is not None:
            self._start_system_metrics()
        return self

    def _experiment_tags(self) -> dict[str, str]:
        tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        if self.description:
            tags[DESCRIPTION_TAG] = _str(self.description, MAX_TAG_VALUE)
        return tags

    def _experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name, tags=self._experiment_tags())
            except Exception:  # created concurrently by another stage
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        # experiments created before these tags existed (or by hand) get them once;
        # a description someone edited in the UI is kept
        for k, v in self._experiment_tags().items():
            if k not in (exp.tags or {}) or (k == EXPERIMENT_KIND_TAG and exp.tags[k] != v):
                self.client.set_experiment_tag(exp.experiment_id, k, v)
        return exp.experiment_id

    # -- system metrics (CPU, memory, disk, network; NVIDIA GPU when pynvml finds one) --------
    def _start_system_metrics(self) -> None:
        try:
            import psutil
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            psutil.cpu_percent(None)   # prime: the first call measures since the last one
            mon = SystemMetricsMonitor(self.run_id, sampling_interval=10, samples_before_logging=1,
                                       tracking_uri=self.tracking_uri)
            mon.start()
            self._monitor = mon
        except Exception as e:  # noqa: BLE001 - psutil missing, unsupported platform ...
            log.debug("system metrics not logged: %s: %s", type(e).__name__, e)

    def _stop_system_metrics(self) -> None:
        mon, self._monitor = self._monitor, None
        if mon is None:
            return
        try:
            mon._shutdown_event.set()
            if mon._process is not None:
                mon._process.join(timeout=30)
            # MLflow's loop drops the window it was in when stopped; stages are often shorter
            # than one sampling interval, so log what was sampled plus one last sample
            mon.collect_metrics()
            mon.publish_metrics(mon.aggregate_metrics())
            mon.mlflow_logger.flush()
        except Exception as e:  # noqa: BLE001
            log.debug("system metrics: final sample not logged: %s: %s", type(e).__name__, e)

    def _find_parents(self, exp_id: str, group: str) -> list:
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{group}' and tags.`{IS_PARENT_TAG}` = 'true'",
            max_results=50)
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def _parent_run(self, exp_id: str, group: str, parent_tags: dict[str, Any]) -> str:
        found = self._find_parents(exp_id, group)
        if found:
            if found[0].info.status != "FAILED":
                self.client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
        tags = {**parent_tags, PARENT_TAG: group, IS_PARENT_TAG: "true"}
        mine = self.client.create_run(exp_id, run_name=f"repro-{group}",
                                      tags={k: _str(v, MAX_TAG_VALUE) for k, v in tags.items()})
        # Two stages racing may both create a parent: keep the oldest, drop ours.
        found = self._find_parents(exp_id, group)
        if found and found[0].info.run_id != mine.info.run_id:
            self.client.delete_run(mine.info.run_id)
            return found[0].info.run_id
        return mine.info.run_id

    # -- logging ------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(clean_key(k), _str(v, MAX_PARAM_VALUE)) for k, v in params.items()]
        for chunk in _chunks(items, MAX_PARAMS_PER_BATCH):
            self._guard("logging params", lambda c=chunk: self.client.log_batch(self.run_id, params=c))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(clean_key(k), _str(v, MAX_TAG_VALUE)) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_TAGS_PER_BATCH):
            self._guard("setting tags", lambda c=chunk: self.client.log_batch(self.run_id, tags=c))

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None,
                    timestamp_ms: int | None = None) -> None:
        if not self.enabled or self.run_id is None:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        for k, v in metrics.items():
            if isinstance(v, bool):
                v = float(v)
            if not isinstance(v, (int, float)):
                continue
            v = float(v)
            if math.isinf(v):  # NaN is stored as NaN; +-inf cannot round-trip every store
                v = math.copysign(sys.float_info.max, v)
            self._buffer.append(Metric(clean_key(k), v, ts, int(step or 0)))
        if len(self._buffer) >= MAX_METRICS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        while self._buffer and self.enabled:
            chunk, self._buffer = self._buffer[:MAX_METRICS_PER_BATCH], self._buffer[MAX_METRICS_PER_BATCH:]
            self._guard("logging metrics", lambda c=chunk: self.client.log_batch(self.run_id, metrics=c))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if not self.enabled or self.run_id is None:
            return
        if not p.exists():
            log.debug("artifact %s does not exist; not logged", p)
            return
        if p.is_dir():
            self._guard("logging artifacts", lambda: self.client.log_artifacts(
                self.run_id, str(p), artifact_path=artifact_path or p.name))
        else:
            self._guard("logging an artifact", lambda: self.client.log_artifact(
                self.run_id, str(p), artifact_path=artifact_path))

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        """Log data sets as MLflow run inputs (the runs table's Dataset column).

        Each dict: name, digest, source, source_type, context (split role, e.g. "train"
        or "eval"), optional split, num_rows, schema (str), profile (str).
        """
        if not self.enabled or self.run_id is None or not datasets:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        items = []
        for d in datasets:
            ds = Dataset(name=_str(d["name"], 500), digest=_str(d.get("digest") or "unknown", 36),
                         source_type=str(d.get("source_type") or "local"), source=_str(d.get("source") or "", 8000),
                         schema=d.get("schema"),
                         profile=d.get("profile") or (json_dumps({"num_rows": d["num_rows"]})
                                                      if d.get("num_rows") is not None else None))
            tags = [InputTag("mlflow.data.context", str(d.get("context") or "train"))]
            if d.get("split"):
                tags.append(InputTag("arkbench.split", str(d["split"])))
            items.append(DatasetInput(ds, tags=tags))
        for chunk in _chunks(items, MAX_INPUTS_PER_CALL):
            self._guard("logging data sets", lambda c=chunk: self.client.log_inputs(self.run_id, datasets=c))

    def log_group_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Attach a file to the parent run of this run group in EVERY experiment (e.g. the report)."""
        p = Path(path)
        if not self.enabled or self.run_id is None or self._group is None or not p.is_file():
            return

        def go():
            for exp in self.client.search_experiments(max_results=1000):
                for r in self._find_parents(exp.experiment_id, self._group)[:1]:
                    self.client.log_artifact(r.info.run_id, str(p), artifact_path=artifact_path)
        self._guard("attaching an artifact to the parent runs", go)

    def end(self, status: str = "FINISHED") -> None:
        if self._ended:
            return
        self._ended = True
        if self.run_id is None:
            return
        self._stop_system_metrics()
        self.flush()
        self._guard("ending the run", lambda: self.client.set_terminated(self.run_id, status))
        if self.parent_run_id:
            def parent():
                current = self.client.get_run(self.parent_run_id).info.status
                if status != "FINISHED" or current != "FAILED":  # a failed stage keeps the group FAILED
                    self.client.set_terminated(self.parent_run_id, status)
            self._guard("updating the parent run", parent)


def json_dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def _str(v: Any, limit: int) -> str:
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."
