"""Profiles: a switch reruns exactly the stages whose values change; external data is tracked.

The mechanism (arkbench.resolve, dvc.yaml's `resolve` stage): each stage's key file,
data/resolved/keys/<stage>.json, holds the params sections its meta.key names merged with the
active profile's overrides, and the stage depends on it instead of on `profile`;
data/resolved/local links to the external data folder when the profile reads it, so DVC hashes
the files a stage reads.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from repo_copy import DVC, REPO, dvc, git

from arkbench.config import (deep_merge, profile_names, read_params, registered_sections, split_section,
                             stage_params, validate_section)
from arkbench.resolve import effective_section, key_specs, run as resolve

STAGE_SECTIONS = {  # dvc.yaml stage (name before @) -> the params section it runs on
    "download": "download", "pretrain": "pretrain", "finetune": "finetune", "finetune_ref": "finetune",
    "oversmoothing_theory": "oversmoothing_theory", "oversmoothing_similarity": "oversmoothing_similarity",
    "oversmoothing_probe": "oversmoothing_probe", "oversmoothing_fusion": "oversmoothing_fusion",
    "oversmoothing_fusion_summary": "oversmoothing_fusion", "report": "report",
}


def _dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _body(stage: dict) -> dict:
    return stage.get("do", stage)


def test_no_stage_depends_on_the_profile_name():
    """Listing `profile` (or `profiles.${profile}.x`) as a params dep reruns the stage on every switch;
    each stage depends on its resolved section instead. (The dvc.yaml before this change listed both
    in every stage: this test failed on each of them.)"""
    for name, stage in _dvc_stages().items():
        body = _body(stage)
        params = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
        # the report reads the name from data/resolved/profile.json
        assert "profile" not in params, name
        assert not any(str(p).startswith("profiles.") for p in params), name
    specs = key_specs(REPO / "stages/keys.yaml")
    for name, section in STAGE_SECTIONS.items():
        assert section in specs[name].params, name
        assert f"data/resolved/keys/{name}.json" in _body(_dvc_stages()[name])["deps"], name
    # only the report's key holds the profile's name
    assert [n for n, spec in specs.items() if spec.profile] == ["report"]


def test_stages_track_params_through_their_keys_only():
    """A `params:` entry makes DVC parse all of params.yaml for that stage on every `dvc status` /
    `dvc repro` (no cache across stages): with `params: [seed]` in each of 45 stages a no-op repro
    spent ~14 of its 16 CPU-seconds in ruamel.yaml. So no stage lists params: each depends on its key
    (seed, sections, script, code in one file), resolve depends on the whole params.yaml, and
    `dvc exp show` reads dvc.yaml's top-level `params:` (not parsed by `dvc repro`). A key dep per
    seed, section, script and code family was 424 dep entries for 54 stages; one key per stage is 262.
    (Checked failing against the dvc.yaml before: 22 stages listed `seed`; then 53 listed seed.json.)"""
    assert "params.yaml" in _body(_dvc_stages()["resolve"])["deps"]
    assert yaml.safe_load((REPO / "dvc.yaml").read_text()).get("params") == ["params.yaml"]
    for name, stage in _dvc_stages().items():
        body = _body(stage)
        assert not body.get("params"), f"{name}: params {body.get('params')}: list the section in stages/keys.yaml"
        resolved = [d for d in body.get("deps", []) if str(d).startswith("data/resolved/")]
        if name not in ("resolve", "download"):
            assert resolved == [f"data/resolved/keys/{name}.json"], (name, resolved)
    assert _body(_dvc_stages()["download"])["deps"][:2] == ["data/resolved/keys/download.json",
                                                            "data/resolved/local"]


def test_resolve_always_runs_instead_of_being_restored():
    """DVC's run cache restores a stage whose deps it has seen before instead of running it; for
    `resolve` that brought back data/resolved's files but not the empty `local` folder, so `download`
    saw its dep deleted, removed data/tasks and failed (seen on a copy of a completed smoke run after
    a code edit was reverted; with `persist: true` resolve ran and nothing else did). A persistent
    output turns the run cache off for the stage."""
    outs = _body(_dvc_stages()["resolve"])["outs"]
    (entry,) = [o for o in outs if isinstance(o, dict) and "data/resolved" in o]
    assert entry["data/resolved"].get("persist") is True and entry["data/resolved"].get("cache") is False


def test_resolved_sections_equal_what_stages_validate(tmp_path, monkeypatch):
    """What DVC tracks (the params in each stage's key, data/resolved/keys/<stage>.json) is what a
    stage runs on (arkbench.config.stage_params' merge), for every section under every declared
    profile, and every section is in some stage's key. One merge implementation serves both
    (arkbench.resolve calls arkbench.config.effective_section); switching resolve back to its own
    pre-#8 merge (overrides read from `profiles.<profile>.<section>`) failed this test at once (it
    takes the top-level `profiles` list for a mapping)."""
    raw = read_params(REPO / "params.yaml")
    names = profile_names(raw)
    assert set(names) >= {"smoke", "cpu", "small", "paper"}
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    for d in ("stages", "src"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    monkeypatch.chdir(tmp_path)
    for prof in names:
        Path("params.yaml").write_text(yaml.safe_dump({**raw, "profile": prof}, sort_keys=False))
        doc = resolve()
        assert json.loads(Path("data/resolved/profile.json").read_text()) == {"profile": prof}
        assert set(doc["sections"]) == {k for k in raw if isinstance(raw[k], dict)}, prof
        assert set(doc["sections"]) <= set(registered_sections()), prof   # each one has a schema
        seen = set()
        for stage in doc["stages"]:
            key = json.loads(Path(f"data/resolved/keys/{stage}.json").read_text())
            assert key["seed"] == raw["seed"]
            assert ("profile" in key) == (stage == "report") and key.get("profile", prof) == prof
            for name, written in key["params"].items():
                seen.add(name)
                assert written == effective_section(raw, name, prof), (prof, name)
                base, over = split_section(raw, name)
                assert written == deep_merge(base, over.get(prof) or {}), (prof, name)
                # the stage validates exactly these values
                assert stage_params(name, "params.yaml").model_dump() == \
                    validate_section(name, written).model_dump(), (prof, name)
        assert seen == set(doc["sections"]), f"sections no stage's key covers: {set(doc['sections']) - seen}"


def test_smoke_to_cpu_changes_every_section_but_the_theory_demo():
    raw = read_params(REPO / "params.yaml")
    changed = set()
    for name in STAGE_SECTIONS.values():
        raw["profile"] = "smoke"
        smoke = effective_section(raw, name)
        raw["profile"] = "cpu"
        if effective_section(raw, name) != smoke:
            changed.add(name)
    assert changed == {"download", "pretrain", "finetune", "oversmoothing_similarity", "oversmoothing_probe",
                       "oversmoothing_fusion"}


TOY_PARAMS = """profile: smoke
profiles: [smoke, cpu]
seed: 0
download: {source: embedded, local_dir: ext, tasks: [t], profiles: {cpu: {source: local}}}
a: {x: 1, profiles: {cpu: {x: 2}}}
b: {y: 1}
"""


def _toy_files(root: Path) -> None:
    (root / "ext").mkdir()
    (root / "ext" / "f.txt").write_text("one\n")
    (root / "params.yaml").write_text(TOY_PARAMS)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "stages").mkdir()
    shutil.copy(REPO / "stages" / "resolve.py", root / "stages" / "resolve.py")
    # each toy stage copies its key's params (a script file per stage, as the real ones: the key hashes it)
    for name, section in (("download", "download"), ("sa", "a"), ("sb", "b")):
        (root / "stages" / f"{name}.py").write_text(
            "import json, sys\n"
            f"key = json.load(open('data/resolved/keys/{name}.json'))\n"
            f"open(sys.argv[1], 'w').write(json.dumps(key['params'][{section!r}]))\n")
    stages = {
        "resolve": {"cmd": "python stages/resolve.py", "deps": ["params.yaml", "stages", "src"],
                    "outs": [{"data/resolved": {"cache": False}}]},
        "download": {"cmd": "python stages/download.py dl.txt; ls data/resolved/local >> dl.txt",
                     "deps": ["data/resolved/keys/download.json", "data/resolved/local"], "outs": ["dl.txt"]},
        "sa": {"cmd": "python stages/sa.py a.txt", "deps": ["data/resolved/keys/sa.json"], "outs": ["a.txt"]},
        "sb": {"cmd": "python stages/sb.py b.txt", "deps": ["data/resolved/keys/sb.json"], "outs": ["b.txt"]},
    }
    (root / "stages" / "keys.yaml").write_text(
        "download: {params: [download], code: download}\nsa: {params: [a], code: download}\n"
        "sb: {params: [b], code: download}\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))


def _toy(root: Path) -> None:
    _toy_files(root)
    git(root, "init", "-q", "-b", "main")
    dvc(root, "init", "-q")


def _ran(out: str) -> set[str]:
    import re

    return set(re.findall(r"Running stage '([^']+)'", out))


@pytest.mark.skipif(not DVC.exists(), reason=f"dvc not installed at {DVC}")
def test_profile_switch_and_data_change_rerun_exactly_what_reads_them(tmp_path):
    """A DVC project wired like dvc.yaml: switching the profile reruns only the stages whose merged
    section changed (sb's does not), a second repro runs nothing, and editing a file of the external
    folder reruns only the stage that reads it -- and only under a profile that reads it."""
    _toy(tmp_path)
    assert _ran(dvc(tmp_path, "repro")) == {"resolve", "download", "sa", "sb"}
    assert not _ran(dvc(tmp_path, "repro"))
    (tmp_path / "ext" / "f.txt").write_text("two\n")               # smoke reads no local data
    assert not _ran(dvc(tmp_path, "repro"))
    (tmp_path / "params.yaml").write_text(TOY_PARAMS.replace("profile: smoke", "profile: cpu"))
    assert _ran(dvc(tmp_path, "repro")) == {"resolve", "download", "sa"}
    assert (tmp_path / "data/resolved/local").is_symlink()
    assert json.loads((tmp_path / "a.txt").read_text()) == {"x": 2}
    assert not _ran(dvc(tmp_path, "repro"))
    (tmp_path / "ext" / "f.txt").write_text("three\n")             # cpu reads it: download reruns
    assert _ran(dvc(tmp_path, "repro")) == {"download"}
    (tmp_path / "params.yaml").write_text(TOY_PARAMS)                # back to smoke: DVC's run cache
    back = dvc(tmp_path, "repro")                                    # restores download's and sa's outputs
    assert _ran(back) == {"resolve"} and "Stage 'sa' is cached" in back and "Stage 'sb' is cached" not in back
    assert json.loads((tmp_path / "a.txt").read_text()) == {"x": 1}
    assert not (tmp_path / "data/resolved/local").is_symlink()


def test_resolve_links_only_what_the_profile_reads(tmp_path, monkeypatch):
    _toy_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert resolve()["local"] is None and Path("data/resolved/local").is_dir()
    Path("params.yaml").write_text(TOY_PARAMS.replace("profile: smoke", "profile: cpu"))
    doc = resolve()
    assert doc["local"] == "../../ext" and Path("data/resolved/local").resolve() == (tmp_path / "ext").resolve()
    assert json.loads(Path("data/resolved/keys/sa.json").read_text())["params"] == {"a": {"x": 2}}
    # cpu with the folder missing: an empty folder, so the download stage runs and names what is missing
    shutil.rmtree("ext")
    assert resolve()["local"] is None and not Path("data/resolved/local").is_symlink()
