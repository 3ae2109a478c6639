"""Facts about the workspace a stage runs in: git commit, run group, DVC lock hash.

Run group (one MLflow parent run per ``dvc repro``)
---------------------------------------------------
Stages are separate processes, so they agree on a group id derived from inputs
that a ``dvc repro`` does not change while it runs:

* ``$ARKBENCH_RUN_GROUP`` if set (use it to force a fresh group, or to join one);
* otherwise the first 12 hex digits of sha256 over
  - ``git rev-parse HEAD`` ("nogit" without git),
  - the bytes of params.yaml and of dvc.yaml,
  - ``git diff HEAD`` of tracked files except dvc.lock (uncommitted code edits),
  - ``$DVC_EXP_NAME`` (set by ``dvc exp run``; each experiment gets its own group).

dvc.lock, metrics/, plots/ and outputs are deliberately excluded: they change
between the stages of one repro. Consequence: re-running the same, unchanged
workspace (``dvc repro -f``) nests the new stage runs under the same parent;
set ARKBENCH_RUN_GROUP to separate them.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode(errors="replace")


def git_commit() -> str | None:
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else None


def _file_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def run_group_id(params_file: str | os.PathLike = "params.yaml") -> str:
    env = os.environ.get("ARKBENCH_RUN_GROUP")
    if env:
        return env
    h = hashlib.sha256()
    for part in (
        (git_commit() or "nogit").encode(),
        _file_bytes(params_file),
        _file_bytes("dvc.yaml"),
        (_git("diff", "HEAD", "--no-ext-diff", "--", ".", ":(exclude)dvc.lock") or "").encode(),
        os.environ.get("DVC_EXP_NAME", "").encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def dvc_stage_hash(stage: str, lock_file: str | os.PathLike = "dvc.lock") -> str:
    """The stage's md5 in dvc.lock, or "unlocked".

    dvc.lock (schema 2.0) stores no per-stage md5, only cmd/deps/params/outs with
    their hashes; we use an explicit ``md5`` if present, else the md5 of the
    stage's lock entry as canonical JSON. It is read when the stage starts, so it
    identifies the previously locked run of this stage (DVC rewrites the entry
    after the command succeeds).
    """
    try:
        lock = yaml.load(Path(lock_file).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError):
        return "unlocked"
    entry = (lock.get("stages") or {}).get(stage) if isinstance(lock, dict) else None
    if not isinstance(entry, dict):
        return "unlocked"
    if isinstance(entry.get("md5"), str):
        return entry["md5"]
    return hashlib.md5(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def data_source(raw_params: dict[str, Any], profile: str) -> str:
    """``download.source`` with the active profile's override applied."""
    from ..config import ParamsError, effective_section

    try:
        value = effective_section(raw_params, "download", profile).get("source")
    except ParamsError:
        value = None
    return str(value) if value is not None else "unknown"
