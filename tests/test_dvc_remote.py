"""DVC remote round trip on a copy of this repository, with a local-directory remote.

repo copy -> dvc repro <target> -> dvc push -> git commit dvc.lock
          -> git clone -> dvc pull -> dvc status clean, dvc repro runs nothing.

Uses the repository's real dvc.yaml and its `download` stage (seconds on embedded data);
tests/test_pipeline.py does the same round trip for the whole pipeline.
"""
from __future__ import annotations

import filecmp
import re
from pathlib import Path

import pytest
import yaml
from repo_copy import DVC, copy_repo as _copy_repo, dvc as _dvc, git as _git

pytestmark = pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed at {DVC}")
TARGET = "download"

def _outs(root: Path) -> list[Path]:
    """Files of the outputs dvc.lock records that exist here (i.e. the stages that ran)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    files: list[Path] = []
    for name, st in lock["stages"].items():
        if name == "resolve":   # not cached (re-derived from params.yaml in 0.2 s): never pushed or pulled
            continue
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

    target = TARGET
    (origin / "dvc.lock").unlink(missing_ok=True)
    _git(origin, "init", "-q", "-b", "main")
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

    repro = _dvc(clone, "repro", target)
    assert re.search(rf"Stage '{target}(@[^']*)?' didn't change", repro), repro
    # only `resolve` runs (0.2 s): its output is not cached (it may link the external data folder)
    assert set(re.findall(r"Running stage '([^']+)'", repro)) <= {"resolve"}, \
        f"dvc repro recomputed after dvc pull:\n{repro}"
    status = _dvc(clone, "status", "--with-deps", target)
    assert "up to date" in status, status
    assert _git(clone, "status", "--porcelain").strip() == "", "dvc repro changed tracked files"
