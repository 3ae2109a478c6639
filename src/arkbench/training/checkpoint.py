"""Training checkpoints: atomic writes, keep-last-K, RNG capture, exact resume.

    from arkbench.training import checkpoint as ckpt
    state = ckpt.training_state(model, optimizer, scheduler, scaler, step=step, extra={...})
    ckpt.save(folder, step, state, keep_last=3)          # folder/step_00000100.pt
    path = ckpt.latest(folder)                           # None when nothing to resume
    if path:
        step, extra = ckpt.restore(ckpt.load(path), model, optimizer, scheduler, scaler)

A checkpoint is one `torch.save` file written to a temp file in the same folder
(`.step_XXXXXXXX.pt.<random>.tmp`), fsynced, then renamed: a process killed mid-write
leaves only a temp file, which :func:`latest` ignores and :func:`clean_temp` removes.
A file named `step_*.pt` is therefore always complete.

Fingerprints (resume only what the same setup wrote):

    fp = ckpt.fingerprint({"params": ..., "seed": 0}, model=model, code=("arkbench.training",))
    start, extra = ckpt.resume(folder, fp, model, optimizer, scheduler, scaler)

:func:`code_digest` hashes the source of every arkbench package a model is built
from -- the package folder of each submodule's class (arkbench/models/, a paper's
folder under arkbench/papers/) -- plus the packages named in `code`; so an edit to a
paper's mixer or mask changes the fingerprint and a stale checkpoint is never resumed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

_NAME = re.compile(r"^step_(\d{8,})\.pt$")
_ROOT = Path(__file__).resolve().parents[1]          # src/arkbench
log = logging.getLogger("arkbench.checkpoint")


def path_for(folder: str | os.PathLike, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints in `folder`, oldest first (temp files are ignored)."""
    d = Path(folder)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest(folder: str | os.PathLike) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def clean_temp(folder: str | os.PathLike) -> int:
    """Remove temp files left by a killed write; returns how many."""
    d = Path(folder)
    n = 0
    if d.is_dir():
        for p in d.glob(".step_*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def save(folder: str | os.PathLike, step: int, state: dict[str, Any], keep_last: int | None = 3) -> Path:
    """Write `state` as folder/step_<step>.pt atomically; keep only the newest `keep_last`."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    final = path_for(d, step)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - e.g. filesystems without directory fsync
        pass
    if keep_last:
        for _, old in list_checkpoints(d)[:-keep_last]:
            old.unlink(missing_ok=True)
    return final


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # our own files: optimizer states hold python scalars, RNG states numpy tuples
    return torch.load(path, map_location=map_location, weights_only=False)


# --- RNG ---------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (if present) CUDA generator states."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"].cpu())
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


# --- whole training state --------------------------------------------------------------

def training_state(model: torch.nn.Module, optimizer=None, scheduler=None, scaler=None, *, step: int,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to continue training exactly (model must be unwrapped from DDP)."""
    return {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(),
        "extra": extra or {},
    }


def restore(state: dict[str, Any], model: torch.nn.Module, optimizer=None, scheduler=None,
            scaler=None) -> tuple[int, dict[str, Any]]:
    """Load a :func:`training_state` dict into the objects; returns (step, extra)."""
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if state.get("rng") is not None:
        set_rng_state(state["rng"])
    return int(state["step"]), dict(state.get("extra") or {})


# --- fingerprints ------------------------------------------------------------------------

def _source_files(module_name: str) -> list[Path]:
    """The .py files of `module_name`'s package folder (a module of arkbench), or its own file."""
    mod = sys.modules.get(module_name)
    if mod is not None:
        f = getattr(mod, "__file__", None)
    else:   # locate without importing (arkbench.tokenization would import transformers: seconds)
        import importlib.util

        spec = importlib.util.find_spec(module_name)
        f = spec.origin if spec is not None else None
    if not f:
        return []
    f = Path(f).resolve()
    if f.name == "__init__.py" or f.parent != _ROOT:
        return sorted(f.parent.rglob("*.py"))         # the whole package: helpers a class uses count too
    return [f]                                         # a top-level module (arkbench/tokenization.py)


def model_modules(model: torch.nn.Module) -> list[str]:
    """Names of the arkbench modules that define the classes inside `model` (sorted)."""
    names = {type(m).__module__ for m in model.modules()}
    return sorted(n for n in names if n == "arkbench" or n.startswith("arkbench."))


def code_digest(model: torch.nn.Module | None = None, code: Iterable[str] = ()) -> str:
    """Hash of the source files `model` is built from plus the modules/packages in `code`."""
    files: set[Path] = set()
    for name in [*(model_modules(model) if model is not None else []), *code]:
        files.update(_source_files(name))
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(_ROOT).as_posix().encode() if f.is_relative_to(_ROOT) else f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(setup: dict[str, Any], model: torch.nn.Module | None = None, code: Iterable[str] = (),
                digest: Callable[..., str] | None = None) -> str:
    """Hash of `setup` (JSON-able: params, seed, ...) and :func:`code_digest` of model + code."""
    d = (digest or code_digest)(model, tuple(code))
    blob = json.dumps({"setup": setup, "code": d}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resume(folder: str | os.PathLike, fp: str, model: torch.nn.Module, optimizer=None, scheduler=None,
           scaler=None, *, map_location: str | torch.device = "cpu", is_main: bool = True,
           barrier: Callable[[], None] = lambda: None, name: str = "run") -> tuple[int, dict[str, Any]]:
    """Restore the newest checkpoint in `folder` whose extra["fingerprint"] == fp.

    `name` (e.g. "pretrain bert") goes into the log line "resuming <name> from <path> (step N)".

    Returns (step, extra); (0, {}) when there is none. Checkpoints written under another
    fingerprint (other params or code) are deleted by the main process, never resumed.
    """
    if is_main:
        clean_temp(folder)
    last = latest(folder)
    start, extra = 0, {}
    if last is not None:
        state = load(last, map_location=map_location)
        if state.get("extra", {}).get("fingerprint") == fp:
            start, extra = restore(state, model, optimizer, scheduler, scaler)
            log.info("resuming %s from %s (step %d)", name, last, start)
        else:
            log.warning("ignoring checkpoints in %s: params or code changed since they were written", folder)
            barrier()
            if is_main:
                for _, old in list_checkpoints(folder):
                    old.unlink(missing_ok=True)
        del state
    barrier()
    return start, extra
