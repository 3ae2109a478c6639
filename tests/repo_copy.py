"""Helpers for tests that run DVC on a copy of this repository (see test_dvc_remote, test_pipeline)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
# A hang guard for one dvc command, not a speed check: the shrunken whole pipeline (41 stages,
# five papers) timed out at 600 s under load 15-40; CI's idle 2 cores need far less.
TIMEOUT = 1800


def env_for(root: Path, tracking: bool = False) -> dict[str, str]:
    """Offline env for running the copy's stages; MLflow off unless `tracking` (then a sqlite store in the copy)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(root / "src"),     # the copy's code, not the editable install's
        ARKBENCH_TRACKING="on" if tracking else "off",
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site-cache"),
        GIT_AUTHOR_NAME="arkbench-test", GIT_AUTHOR_EMAIL="test@arkbench.invalid",
        GIT_COMMITTER_NAME="arkbench-test", GIT_COMMITTER_EMAIL="test@arkbench.invalid",
    )
    # PYTHONDONTWRITEBYTECODE: stages write __pycache__/ into src/ as on any developer's machine,
    # so the round-trip tests exercise .dvcignore (byte-code must not enter dvc.lock's hashes)
    for k in ("ARKBENCH_PARAMS", "MLFLOW_TRACKING_URI", "ARKBENCH_RUN_GROUP", "PYTHONDONTWRITEBYTECODE"):
        env.pop(k, None)
    return env


def run(args: list[str], cwd: Path, tracking: bool = False) -> str:
    p = subprocess.run([str(a) for a in args], cwd=cwd, env=env_for(cwd, tracking), capture_output=True,
                       text=True, timeout=TIMEOUT)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"`{' '.join(map(str, args))}` in {cwd} failed ({p.returncode}):\n{out}"
    return out


def dvc(cwd: Path, *args: str, tracking: bool = False) -> str:
    return run([DVC, *args], cwd, tracking)


def git(cwd: Path, *args: str) -> str:
    return run(["git", *args], cwd)


def copy_repo(dst: Path) -> None:
    """Tracked files plus untracked-but-not-ignored ones: what a commit of the tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    for rel in sorted(set(filter(None, listed.decode().split("\0")))):
        src = REPO / rel
        if src.is_file():            # deleted-but-still-indexed files are skipped
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers the tests start on loopback)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_json(url: str, body: dict, timeout: float) -> dict:
    """POST `body` as JSON to `url` and return the decoded JSON answer."""
    import json
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())
