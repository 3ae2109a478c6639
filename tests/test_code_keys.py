"""The stage keys (arkbench.resolve: code_key, key_specs, write_stage_keys): the one file each stage
depends on instead of its seed, params sections, script and code folders (data/resolved/keys/<stage>.json,
declared in stages/keys.yaml).

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

from arkbench.resolve import code_families, code_key, ignore_patterns, key_specs, write_stage_keys

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


TOY_KEYS = """sa: {params: [a], code: pkg}
sb: {params: [a, b], code: one, profile: true, script: stages/sb_main.py}
"""
TOY_RAW = {"profile": "smoke", "profiles": ["smoke", "cpu"], "seed": 7,
           "a": {"x": 1, "profiles": {"cpu": {"x": 2}}}, "b": {"y": 1}}


def _stages(root: Path) -> None:
    (root / "stages").mkdir()
    for name in ("sa", "sb_main"):
        (root / "stages" / f"{name}.py").write_text(f"print({name!r})\n")
    (root / "stages/keys.yaml").write_text(TOY_KEYS)


def test_a_stage_key_holds_seed_merged_params_script_and_code(tmp_path):
    """One file per stages/keys.yaml entry (a foreach/matrix stage's items share one): the seed, each
    section it names merged with the active profile, its script (stages/<stage>.py unless named) and
    its code family, hashed; the profile's name only where the entry asks for it."""
    _tree(tmp_path)
    _stages(tmp_path)
    code = {"pkg": ["pkg"], "one": ["one.py"]}
    out = tmp_path / "data/resolved"
    assert write_stage_keys(TOY_RAW, str(out), tmp_path, code) == ["sa", "sb"]
    sa = json.loads((out / "keys/sa.json").read_text())
    assert sa["stage"] == "sa" and sa["seed"] == 7 and "profile" not in sa
    assert sa["params"] == {"a": {"x": 1}}
    assert list(sa["script"]) == ["stages/sa.py"]
    assert sa["code"]["family"] == "pkg" and sa["code"]["files"] == code_key(["pkg"], tmp_path)["files"]
    sb = json.loads((out / "keys/sb.json").read_text())
    assert sb["profile"] == "smoke" and sb["params"] == {"a": {"x": 1}, "b": {"y": 1}}
    assert list(sb["script"]) == ["stages/sb_main.py"]
    cpu = {**TOY_RAW, "profile": "cpu"}
    write_stage_keys(cpu, str(out), tmp_path, code)
    assert json.loads((out / "keys/sa.json").read_text())["params"] == {"a": {"x": 2}}


def test_write_stage_keys_rewrites_only_what_changed(tmp_path):
    """A key file is rewritten only when its content changes (DVC then sees no change in the others),
    and a stage gone from stages/keys.yaml loses its key."""
    _tree(tmp_path)
    _stages(tmp_path)
    code = {"pkg": ["pkg"], "one": ["one.py"]}
    out = tmp_path / "data/resolved"
    write_stage_keys(TOY_RAW, str(out), tmp_path, code)
    (out / "keys/stale.json").write_text("{}")
    mtime_sa = (out / "keys/sa.json").stat().st_mtime_ns
    (tmp_path / "one.py").write_text("Y = 4\n")            # sb's code
    write_stage_keys(TOY_RAW, str(out), tmp_path, code)
    assert (out / "keys/sa.json").stat().st_mtime_ns == mtime_sa      # untouched
    assert json.loads((out / "keys/sb.json").read_text())["code"]["files"] == code_key(["one.py"], tmp_path)["files"]
    assert not (out / "keys/stale.json").exists()
    (tmp_path / "stages/sa.py").write_text("print('edited')\n")   # a script edit changes its stage's key only
    write_stage_keys(TOY_RAW, str(out), tmp_path, code)
    assert (out / "keys/sa.json").stat().st_mtime_ns != mtime_sa


@pytest.mark.parametrize("entry, message", [
    ("[a]", r"stage 'sa': expected \{params"),
    ("{params: [a], code: pkg, extra: 1}", r"stage 'sa': unknown field\(s\) \['extra'\]"),
    ("{params: [], code: pkg}", r"stage 'sa': params must be a non-empty list"),
    ("{params: [nope], code: pkg}", r"stage 'sa': params names 'nope', which is not a section"),
    ("{params: [a], code: nope}", r"stage 'sa': code names 'nope', which is not a code family"),
    ("{params: [a], code: pkg, script: run.sh}", r"stage 'sa': script must be a stages/\*.py file"),
    ("{params: [a], code: pkg, script: stages/gone.py}", r"stage 'sa': script 'stages/gone.py' does not exist"),
])
def test_a_bad_entry_is_an_error_naming_the_file_and_stage_and_nothing_is_written(tmp_path, entry, message):
    _tree(tmp_path)
    _stages(tmp_path)
    (tmp_path / "stages/keys.yaml").write_text(TOY_KEYS.replace("{params: [a], code: pkg}", entry))
    out = tmp_path / "data/resolved"
    with pytest.raises(ValueError, match=r"stages/keys.yaml: " + message):
        write_stage_keys(TOY_RAW, str(out), tmp_path, {"pkg": ["pkg"], "one": ["one.py"]})
    assert not (out / "keys").exists()       # every key is built before any is written


def test_stages_keys_yaml_matches_the_pipeline():
    """stages/keys.yaml against dvc.yaml: an entry for every stage but resolve (and none for a stage
    that is gone), each stage depending on its own key first, and each cmd running its entry's script.
    (Switched off: with finetune_ref's `script:` dropped this named stages/finetune_ref.py.)"""
    import re

    import yaml

    specs = key_specs(REPO / "stages/keys.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(specs) == set(stages) - {"resolve"}
    for name, spec in specs.items():
        body = stages[name].get("do", stages[name])
        assert body["deps"][0] == f"data/resolved/keys/{name}.json", name
        assert re.findall(r"stages/\S+\.py", body["cmd"]) == [spec.script], (name, spec.script, body["cmd"])
    assert [n for n, s in specs.items() if s.profile] == ["report"]


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
    from arkbench.resolve import CORE_CODE, PAPER_PLUGINS, SHARED_CODE, paper_plugin_files

    fams = code_families(REPO)
    assert fams["captioning"] == ["src/arkbench/papers/captioning", "src/arkbench/utils.py"]
    assert fams["sparsebert_summary"][:1] == ["src/arkbench/papers/sparsebert/summary.py"]
    encoder = [f for e in SHARED_CODE["encoder"] for f in (paper_plugin_files(REPO) if e == PAPER_PLUGINS else [e])]
    assert fams["zerogen"] == [*encoder, *SHARED_CODE["metrics"], "src/arkbench/papers/zerogen"]
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


def test_a_papers_stage_code_keys_only_its_own_stages():
    """The encoder family holds every paper's plugin modules (the model registry imports them) and
    what they import, not whole paper folders: an edit to a paper's stage code reruns that paper's
    stages (and the report, which reads every paper's folder), while an edit to a plugin, or to a
    module a plugin imports, reruns every stage that builds an encoder. Checked failing first with
    the encoder family holding all of src/arkbench/papers (pretrain keyed on zerogen/stages.py)."""
    fams = code_families(REPO)
    specs = key_specs(REPO / "stages/keys.yaml")   # key name (a dvc.yaml stage or matrix) -> what it covers
    files = {fam: set(code_key(paths, REPO)["files"]) for fam, paths in fams.items()}

    def rerun(path: str) -> set[str]:
        return {name for name, spec in specs.items() if spec.code and path in files[spec.code]}

    everything = set(specs)
    zerogen = {s for s in everything if s.startswith("zerogen_")}
    autobert = {s for s in everything if s.startswith("autobert_")}
    assert rerun("src/arkbench/papers/zerogen/stages.py") == zerogen | {"report"}
    assert rerun("src/arkbench/papers/autobert_zero/search.py") == autobert | {"report"}
    encoder = rerun("src/arkbench/papers/oversmoothing/fusion.py")   # a plugin: registers the fusions
    assert {"pretrain", "finetune", "finetune_ref", "oversmoothing_fusion", "zerogen_train",
            "autobert_supernet", "sparsebert_grid", "report"} <= encoder
    assert not encoder & {"download", "captioning_phase1", "sparsebert_summary"}
    # autobert_zero.modules (a plugin) imports graph.py, which its manifest does not name
    assert rerun("src/arkbench/papers/autobert_zero/graph.py") == encoder
