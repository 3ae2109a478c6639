"""The code keys (arkbench.resolve.code_key / write_code_keys): what each stage depends on instead of
its code folders (dvc.yaml, data/resolved/code/<family>.json).

A key must change whenever a file of its code changes, and must not change for what DVC itself leaves
out of a folder's hash (.dvcignore: byte-code, editor and OS files), or a fresh clone and a machine that
ran the stages would disagree and rerun everything. The last test compares the files a key covers with
DVC's own walk of the same folder under the repository's .dvcignore.
"""
from __future__ import annotations

import compileall
import json
import shutil
from pathlib import Path

import pytest

from arkbench.resolve import code_families, code_key, ignore_patterns, write_code_keys

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> None:
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    (root / "pkg/sub").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("X = 1\n")
    (root / "pkg/sub/mod.py").write_text("def f():\n    return 2\n")
    (root / "pkg/sub/table.yaml").write_text("a: 1\n")   # not code, still read by path: hashed
    (root / "one.py").write_text("Y = 3\n")


def test_key_follows_code_not_machine_local_files(tmp_path):
    """Byte-code, editor backups and OS files leave the key alone; an edit, a new file or a deleted
    file changes it. With the .dvcignore patterns switched off (patterns=[]) the byte-code changes
    the key: the patterns are what keeps it stable."""
    _tree(tmp_path)
    paths = ["pkg", "one.py"]
    before = code_key(paths, tmp_path)
    assert set(before["files"]) == {"pkg/__init__.py", "pkg/sub/mod.py", "pkg/sub/table.yaml", "one.py"}
    assert compileall.compile_dir(str(tmp_path / "pkg"), quiet=1)
    assert list((tmp_path / "pkg/sub/__pycache__").glob("*.pyc"))
    (tmp_path / "pkg/.DS_Store").write_bytes(b"\0")
    (tmp_path / "pkg/sub/mod.py~").write_text("backup")
    (tmp_path / "pkg/sub/.#mod.py").write_text("lock")
    (tmp_path / "pkg/sub/mod.py.swp").write_text("swap")
    assert code_key(paths, tmp_path) == before
    assert code_key(paths, tmp_path, patterns=[]) != before          # the switch-off
    (tmp_path / "pkg/sub/mod.py").write_text("def f():\n    return 3\n")
    edited = code_key(paths, tmp_path)
    assert edited != before and edited["files"]["pkg/sub/mod.py"] != before["files"]["pkg/sub/mod.py"]
    (tmp_path / "pkg/sub/new.py").write_text("")
    assert "pkg/sub/new.py" in code_key(paths, tmp_path)["files"]
    (tmp_path / "one.py").unlink()
    with pytest.raises(FileNotFoundError, match="'one.py'"):
        code_key(paths, tmp_path)


def test_write_code_keys_rewrites_only_what_changed(tmp_path):
    _tree(tmp_path)
    out = tmp_path / "data/resolved"
    code = {"a": ["pkg"], "b": ["one.py"]}
    assert write_code_keys(str(out), code, tmp_path) == ["a", "b"]
    (out / "code/stale.json").write_text("{}")
    mtime_a = (out / "code/a.json").stat().st_mtime_ns
    (tmp_path / "one.py").write_text("Y = 4\n")
    write_code_keys(str(out), code, tmp_path)
    assert (out / "code/a.json").stat().st_mtime_ns == mtime_a      # untouched: DVC sees no change
    assert json.loads((out / "code/b.json").read_text()) == code_key(["one.py"], tmp_path)
    assert not (out / "code/stale.json").exists()


def test_a_dvcignore_pattern_the_keys_cannot_apply_is_an_error(tmp_path):
    (tmp_path / ".dvcignore").write_text("# comment\n*.pyc\n/data/raw\n")
    with pytest.raises(ValueError, match=r"\.dvcignore:3: '/data/raw'"):
        ignore_patterns(tmp_path / ".dvcignore")
    assert ignore_patterns(REPO / ".dvcignore")     # the repository's own patterns all apply


def test_keys_cover_the_files_dvc_hashes(tmp_path):
    """For every path of every code family: the files a key hashes are the files DVC hashes for that path as a dep
    (DVC's own walk under .dvcignore), after byte-code and an editor backup were written next to them.
    (With the patterns switched off, the key of src/arkbench/data held 16 files against DVC's 8.)"""
    from dvc.repo import Repo

    root = tmp_path / "repo"
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    compileall.compile_dir(str(root / "src"), quiet=1)
    (root / "src/arkbench/models/encoder.py~").write_text("backup")
    repo = Repo.init(str(root), no_scm=True)
    try:
        for rel in sorted({p for paths in code_families(REPO).values() for p in paths}):
            ours = set(code_key([rel], root)["files"])
            top = root / rel
            if top.is_file():
                theirs = {rel}
            else:
                theirs = {Path(r, f).relative_to(root).as_posix()
                          for r, _, files in repo.dvcignore.walk(repo.fs, str(top)) for f in files}
            assert ours == theirs, (rel, sorted(ours ^ theirs))
    finally:
        repo.close()


def test_paper_code_families_come_from_the_manifests(monkeypatch):
    """A paper's stage families are declared in its manifest (Paper.code), not in a central list:
    shared names expand to the shared paths, the paper's own entries become repo-relative paths,
    and a bad entry or a family defined twice is an error naming the manifest and the entry."""
    import arkbench.papers as papers_mod
    from arkbench.papers import Paper
    from arkbench.resolve import CORE_CODE, SHARED_CODE

    fams = code_families(REPO)
    assert fams["captioning"] == ["src/arkbench/papers/captioning", "src/arkbench/utils.py"]
    assert fams["sparsebert_summary"][:1] == ["src/arkbench/papers/sparsebert/summary.py"]
    assert fams["zerogen"] == [*SHARED_CODE["encoder"], *SHARED_CODE["metrics"]]
    declared = {f for p in papers_mod.papers().values() for f in p.code}
    assert set(fams) == set(CORE_CODE) | declared and not set(CORE_CODE) & declared

    folder = str(REPO / "src/arkbench/papers/zerogen")
    bad = Paper(name="zerogen", title="t", code={"zerogen": ("encoder", "no_such.py")}, folder=folder)
    monkeypatch.setattr(papers_mod, "papers", lambda: {"zerogen": bad})
    with pytest.raises(FileNotFoundError, match=r"zerogen/manifest.py: code\['zerogen'\] lists 'no_such.py'"):
        code_families(REPO)
    twice = Paper(name="zerogen", title="t", code={"pretrain": ("encoder",)}, folder=folder)
    monkeypatch.setattr(papers_mod, "papers", lambda: {"zerogen": twice})
    with pytest.raises(ValueError, match="zerogen/manifest.py: code family 'pretrain' is already defined"):
        code_families(REPO)
