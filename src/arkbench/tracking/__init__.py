"""MLflow tracking for arkbench stages.

    tracker = open_tracker(stage="finetune@tiny-cola", section="finetune",
                           profile="smoke", params={...}, matrix={"model": "tiny"})
    tracker.log_metrics({"loss": 0.3}, step=10)   # buffered, sent with log_batch
    tracker.log_artifact("plots/finetune/tiny-cola.json")
    tracker.end("FINISHED")

Where runs go
  * ``ARKBENCH_TRACKING=off``: a no-op tracker (tests, quick local runs).
  * ``MLFLOW_TRACKING_URI`` if set (e.g. a team server), else ``sqlite:///mlflow.db``
    in the current folder (the repo root under ``dvc repro``); ``arkbench ui``
    serves that file.
  * experiment: one per paper/area, see :mod:`arkbench.tracking.experiments`;
  * parent run: one per run group (one ``dvc repro``), see
    :mod:`arkbench.tracking.workspace`; each stage run is nested under it.

If the backend is unreachable or fails, one warning is printed and the stage
carries on untracked; HTTP retries are off and the timeout short by default
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``, ``MLFLOW_HTTP_REQUEST_TIMEOUT=5``;
set them in the environment to override).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from .experiments import EXPERIMENTS, FALLBACK_EXPERIMENT, experiment_description, experiment_for
from .tracker import MlflowTracker, Tracker, clean_key
from .workspace import data_source, dvc_stage_hash, git_commit, run_group_id

__all__ = ["open_tracker", "open_stage_tracker", "Tracker", "MlflowTracker", "EXPERIMENTS", "FALLBACK_EXPERIMENT",
           "experiment_for", "experiment_description", "run_group_id", "tracking_uri", "quiet_mlflow", "clean_key"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

_QUIET_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


def quiet_mlflow() -> None:
    """Short HTTP timeouts, no retries, no telemetry, no INFO chatter from mlflow/alembic."""
    for k, v in _QUIET_ENV.items():
        os.environ.setdefault(k, v)
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.WARNING)


def system_metrics_enabled() -> bool:
    """``ARKBENCH_SYSTEM_METRICS=off`` turns MLflow's system metrics (psutil; pynvml for GPUs) off."""
    return os.environ.get("ARKBENCH_SYSTEM_METRICS", "on").strip().lower() not in ("off", "0", "false", "no")


def tracking_enabled() -> bool:
    return os.environ.get("ARKBENCH_TRACKING", "on").strip().lower() not in ("off", "0", "false", "no")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _raw_params() -> dict[str, Any]:
    from ..config import ParamsError, read_params

    try:
        return read_params()
    except ParamsError:
        return {}


def open_tracker(stage: str, section: str, profile: str, params: dict[str, Any] | None = None,
                 matrix: dict[str, Any] | None = None) -> Tracker:
    """Open the MLflow run for one stage (or a no-op tracker); never raises for backend errors."""
    if not tracking_enabled():
        return Tracker()
    quiet_mlflow()
    from ..config import params_path
    from ..utils import flatten

    matrix = dict(matrix or {})
    uri = tracking_uri()
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # mlflow resets its level on import
    except Exception as e:  # noqa: BLE001
        logging.getLogger("arkbench.tracking").warning(
            "MLflow tracking disabled (%s: %s); metrics are still written to DVC's files.",
            type(e).__name__, e)
        return Tracker()

    raw = _raw_params()
    commit = git_commit()
    source = data_source(raw, profile)
    group = run_group_id(params_path())
    common = {"arkbench.profile": profile, "arkbench.data_source": source,
              "arkbench.params_file": str(params_path())}
    if commit:
        common["mlflow.source.git.commit"] = commit
    tags = {**common, "arkbench.stage": stage, "arkbench.section": section,
            "arkbench.dvc_stage_hash": dvc_stage_hash(stage),
            "mlflow.source.name": f"stages/{section}.py", "mlflow.source.type": "LOCAL",
            **{f"arkbench.matrix.{k}": v for k, v in matrix.items()}}
    experiment = experiment_for(section, stage)
    tracker = MlflowTracker(client, uri, description=experiment_description(experiment),
                            system_metrics=system_metrics_enabled()).start(
        experiment, group, stage, tags, parent_tags=common)
    if tracker.enabled:
        flat = flatten(params or {})
        flat.update({f"matrix/{k}": v for k, v in matrix.items()})
        flat.setdefault("profile", profile)
        tracker.log_params(flat)
    return tracker


def open_stage_tracker(stage: str, section: str, profile: str, params: dict[str, Any] | None = None,
                       matrix: dict[str, Any] | None = None) -> Tracker:
    """What stages use: :func:`open_tracker` run in a worker process beside the stage.

    Returns at once; MLflow's import and the run's creation overlap the stage's own
    start-up on another core (see :mod:`arkbench.tracking.worker`).
    """
    if not tracking_enabled():
        return Tracker()
    from .worker import WorkerTracker

    return WorkerTracker({"stage": stage, "section": section, "profile": profile,
                          "params": params, "matrix": matrix})
