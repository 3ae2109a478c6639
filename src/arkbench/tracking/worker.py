"""The tracking worker: a child process that owns one stage's MLflow run.

Importing mlflow and opening its store cost ~2 s of single-threaded Python per
process. A stage's own start-up (torch, transformers, evaluate) is single-threaded
Python too, so a thread cannot overlap the two (the GIL); a second process can, on
the second core. :class:`WorkerTracker` (the stage side) starts

    python -m arkbench.tracking.worker

and writes one JSON line per call to its stdin:

    {"op": "open", "kwargs": {stage, section, profile, params, matrix}}   first line
    {"op": "log_metrics", "args": [{...}], "kwargs": {"step": 10, "timestamp_ms": ...}}
    {"op": "end", "args": ["FINISHED"]}                                       last line

The worker replays them on :func:`arkbench.tracking.open_tracker`'s tracker (same
batching and one-warning-then-off error handling). If stdin closes without an
"end" (the stage was killed), the run is ended as KILLED instead of staying
RUNNING forever.

When mlflow is already imported (a stage started warm, see :mod:`arkbench.warm`)
and the stage has no other thread yet, the worker is a fork of the stage instead of
a new interpreter: the same loop on a pipe, without paying mlflow's import again.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .tracker import Tracker

log = logging.getLogger("arkbench.tracking")

_OPS = {"log_params", "set_tags", "log_metrics", "log_artifact", "log_inputs", "log_group_artifact", "flush"}


class WorkerTracker(Tracker):
    """Stage side: forwards every call to a tracking worker process (see module doc)."""

    enabled = True

    def __init__(self, open_kwargs: dict[str, Any], end_timeout: float = 120.0):
        self.end_timeout = end_timeout
        self._ended = False
        if "mlflow" in sys.modules and hasattr(os, "fork") and threading.active_count() == 1:
            self._proc: Any = _ForkedWorker()
        else:
            self._proc = subprocess.Popen([sys.executable, "-m", "arkbench.tracking.worker"],
                                          stdin=subprocess.PIPE, text=True, encoding="utf-8")
        self._send("open", **open_kwargs)

    def _send(self, op: str, *args: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        line = json.dumps({"op": op, "args": list(args), "kwargs": kwargs}, default=str)
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as e:
            self.enabled = False
            log.warning("MLflow tracking worker exited (%s: %s); metrics are still written to DVC's files.",
                        type(e).__name__, e)

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("set_tags", tags)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None,
                    timestamp_ms: int | None = None) -> None:
        ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        self._send("log_metrics", metrics, step=step, timestamp_ms=ts)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._send("log_artifact", str(Path(path).resolve()), artifact_path=artifact_path)

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        self._send("log_inputs", datasets)

    def log_group_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._send("log_group_artifact", str(Path(path).resolve()), artifact_path=artifact_path)

    def flush(self) -> None:
        self._send("flush")

    def end(self, status: str = "FINISHED") -> None:
        """Send the last call and wait for the worker to finish writing the run."""
        if self._ended:
            return
        self._ended = True
        self._send("end", status)
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=self.end_timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            log.warning("MLflow tracking worker did not finish within %.0f s; killed it", self.end_timeout)


class _ForkedWorker:
    """The worker as a fork of this process reading a pipe; the slice of Popen's API that WorkerTracker uses."""

    def __init__(self) -> None:
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:   # the worker
            code = 1
            try:
                os.close(w)
                sys.stdin = os.fdopen(r, "r", encoding="utf-8")
                code = main()
            finally:
                for f in (sys.stdout, sys.stderr):
                    f.flush()
                os._exit(code)
        os.close(r)
        self.stdin = os.fdopen(w, "w", encoding="utf-8")
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("tracking worker", timeout)
            else:
                time.sleep(0.02)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        self.wait()


def main() -> int:
    from . import Tracker as NoOp, open_tracker

    tracker: Tracker = NoOp()
    status = "KILLED"   # stdin closed without "end": the stage died
    broken = False
    for raw in sys.stdin:
        try:
            msg = json.loads(raw)
            op, args, kwargs = msg["op"], msg.get("args", []), msg.get("kwargs", {})
            if op == "open":
                tracker = open_tracker(**kwargs)
            elif op == "end":
                status = args[0] if args else "FINISHED"
                break
            elif op in _OPS and not broken:
                getattr(tracker, op)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - never block or fail the stage; keep draining stdin
            if not broken:
                broken = True
                print(f"WARNING arkbench.tracking: MLflow tracking worker failed ({type(e).__name__}: {e}); "
                      "metrics are still written to DVC's files.", file=sys.stderr, flush=True)
    try:
        tracker.end(status)
    except Exception as e:  # noqa: BLE001
        print(f"WARNING arkbench.tracking: ending the MLflow run failed ({type(e).__name__}: {e})",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("ARKBENCH_LOG", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
