"""DVC remote round trip on a copy of this repository, with a local-directory remote.

repo copy -> dvc repro <target> -> dvc push -> git commit dvc.lock
          -> git clone -> dvc pull -> dvc status clean, dvc repro runs nothing.

Uses the repository's real dvc.yaml and its `download` stage when they are present and
the stage's dependencies exist; otherwise (early in the project) a minimal two-stage
pipeline of python one-liners, so push / clone / pull is always exercised.
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
TIMEOUT = 600

pytestmark = pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed next to {sys.executable}")

# Minimal stand-in pipeline while the repo has no usable dvc.yaml: two python one-liners.
FALLBACK_STAGES = {
    "make": {
        "cmd": "python -c \"import pathlib; p = pathlib.Path('data'); p.mkdir(exist_ok=True); "
               "(p / 'raw.txt').write_text(' '.join(str(i * i) for i in range(1000)))\"",
        "params": ["seed"],
        "outs": ["data/raw.txt"],
    },
    "total": {
        "cmd": "python -c \"import json, pathlib; n = [int(x) for x in pathlib.Path('data/raw.txt')"
               ".read_text().split()]; pathlib.Path('data/total.json').write_text("
               "json.dumps(dict(n=len(n), sum=sum(n))))\"",
        "deps": ["data/raw.txt"],
        "outs": ["data/total.json"],
    },
}


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(root / "src"),     # the copy's code, not the editable install's
        ARKBENCH_TRACKING="off",
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site-cache"),
        GIT_AUTHOR_NAME="arkbench-test", GIT_AUTHOR_EMAIL="test@arkbench.invalid",
        GIT_COMMITTER_NAME="arkbench-test", GIT_COMMITTER_EMAIL="test@arkbench.invalid",
    )
    env.pop("ARKBENCH_PARAMS", None)
    return env


def _run(args: list[str], cwd: Path) -> str:
    p = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(cwd), capture_output=True,
                       text=True, timeout=TIMEOUT)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"`{' '.join(map(str, args))}` in {cwd} failed ({p.returncode}):\n{out}"
    return out


def _dvc(cwd: Path, *args: str) -> str:
    return _run([DVC, *args], cwd)


def _git(cwd: Path, *args: str) -> str:
    return _run(["git", *args], cwd)


def _copy_repo(dst: Path) -> None:
    """Tracked files plus untracked-but-not-ignored ones: what a commit of the tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    for rel in sorted(set(filter(None, listed.decode().split("\0")))):
        src = REPO / rel
        if src.is_file():            # deleted-but-still-indexed files are skipped
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _real_target(root: Path) -> str | None:
    """'download' if the copy has a dvc.yaml with a download stage whose deps all exist."""
    f = root / "dvc.yaml"
    if not f.is_file():
        return None
    stage = ((yaml.safe_load(f.read_text()) or {}).get("stages") or {}).get("download")
    if not isinstance(stage, dict):
        return None
    if "foreach" in stage:                       # foreach/do group: deps live under `do`
        stage = stage.get("do") or {}
    deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps") or []]
    if not all("${" in str(d) or (root / str(d)).exists() for d in deps):
        return None
    return "download"


def _outs(root: Path) -> list[Path]:
    """Files of the outputs dvc.lock records that exist here (i.e. the stages that ran)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    files: list[Path] = []
    for st in lock["stages"].values():
        for o in st.get("outs") or []:
            p = root / o["path"]
            if p.is_dir():
                files += sorted(q for q in p.rglob("*") if q.is_file())
            elif p.is_file():
                files.append(p)
    return files


def test_push_clone_pull_round_trip(tmp_path: Path) -> None:
    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"
    origin.mkdir()
    _copy_repo(origin)

    target = _real_target(origin)
    if target is None:
        (origin / "dvc.yaml").write_text(yaml.safe_dump({"stages": FALLBACK_STAGES}, sort_keys=False))
        (origin / "dvc.lock").unlink(missing_ok=True)
        target = "total"
    _git(origin, "init", "-q", "-b", "main")
    if not (origin / ".dvc").is_dir():
        _dvc(origin, "init", "-q")
    _dvc(origin, "remote", "add", "--force", "-d", "local", remote)
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "repo copy + local dvc remote")

    _dvc(origin, "repro", target)
    pushed = _dvc(origin, "push", "--with-deps", target)
    assert remote.is_dir() and any(p.is_file() for p in remote.rglob("*")), f"nothing pushed:\n{pushed}"
    _git(origin, "add", "-A")         # dvc.lock and the .gitignore entries for the outs
    _git(origin, "commit", "-q", "-m", f"dvc repro {target}")
    _git(origin, "ls-files", "--error-unmatch", "dvc.lock")
    outs = _outs(origin)
    assert outs, "the stage recorded no outputs in dvc.lock"

    _git(tmp_path, "clone", "-q", origin, clone)
    assert "local" in _dvc(clone, "remote", "list"), "remote config did not travel with git"
    assert not any((clone / o.relative_to(origin)).exists() for o in outs), "outs are in git?"
    _dvc(clone, "pull", "--with-deps", target)   # only the target and its upstream ran
    for o in outs:
        c = clone / o.relative_to(origin)
        assert c.is_file() and filecmp.cmp(o, c, shallow=False), f"{c} differs after dvc pull"

    status = _dvc(clone, "status", "--with-deps", target)
    assert "up to date" in status, status
    repro = _dvc(clone, "repro", target)
    assert re.search(rf"Stage '{target}(@[^']*)?' didn't change", repro), repro
    assert "Running stage" not in repro, f"dvc repro recomputed after dvc pull:\n{repro}"
    assert _git(clone, "status", "--porcelain").strip() == "", "dvc repro changed tracked files"
