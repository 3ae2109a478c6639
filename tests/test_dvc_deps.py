"""dvc.yaml deps cannot drift from the code a stage runs.

For each stage, the arkbench modules it can load are: the modules its script imports,
followed through every `import` statement in them (function-level lazy imports
included), plus the modules loaded by name -- every paper's encoder plugins once the
model registry is used, every paper's task modules once the data registry is. Each of
those files must sit under one of the stage's deps (a file, or a folder: whole packages
are fine). Infrastructure that cannot change a stage's numbers is exempt: the stage
runner, params loading, MLflow tracking, progress output, error types, paper discovery and
the manifests.

A second check imports every stage script for real (in a subprocess) and asserts that
the static walk saw every arkbench module the import loaded.

`test_a_missing_dep_is_reported` removes one dep and watches the check fail.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arkbench import resolve

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# infrastructure: loaded by every stage, changes no number a stage writes
EXEMPT_PREFIXES = ("arkbench.tracking", "arkbench.cli")
EXEMPT = {"arkbench", "arkbench.stage", "arkbench.config", "arkbench.papers",
          "arkbench.progress", "arkbench.errors"}   # progress lines; error types and messages


def _exempt(mod: str) -> bool:
    # discovery imports every paper's package (its __init__.py, kept light) and manifest.py
    paper_meta = mod.startswith("arkbench.papers.") and (mod.endswith(".manifest") or mod.count(".") == 2)
    return mod in EXEMPT or mod.startswith(EXEMPT_PREFIXES) or paper_meta


def module_file(mod: str) -> Path | None:
    return resolve.module_file(mod, SRC)


def _imports(file: Path, mod: str) -> set[str]:
    """arkbench modules named by any import statement in `file` (module `mod`): the library's static
    walk (arkbench.resolve.imported_modules, which also keys the encoder's paper plugins); the last
    test checks it against a real import."""
    return resolve.imported_modules(file, mod, SRC)


def _parents(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _by_name() -> dict[str, set[str]]:
    """Modules imported by name (importlib) once a registry is used."""
    sys.path.insert(0, str(SRC))
    from arkbench import papers

    papers.refresh()
    ps = papers.papers().values()
    return {"arkbench.models.registry": {m for p in ps for m in p.plugins},
            "arkbench.data.registry": {m for p in ps for m in p.tasks},
            "arkbench.data": {m for p in ps for m in p.tasks}}


def closure(script: Path) -> set[str]:
    """Every non-exempt arkbench module `script` can load."""
    by_name = _by_name()
    todo = list(_imports(script, "__main__"))
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo += _parents(mod)                           # importing a.b.c runs a/__init__, a/b/__init__
        if _exempt(mod):
            continue
        todo += _imports(module_file(mod), mod)
        todo += by_name.get(mod, ())
    return {m for m in seen if not _exempt(m)}


KEY = "data/resolved/keys/"


def expand_keys(deps: list[str]) -> list[str]:
    """A stage's deps with its data/resolved/keys/<stage>.json replaced by the files the `resolve`
    stage hashes into it: the stage's script and its code family's paths (arkbench.resolve.key_specs,
    code_families)."""
    from arkbench.resolve import code_families, key_specs

    code = code_families(REPO)
    specs = key_specs(REPO / "stages/keys.yaml")
    out = []
    for d in deps:
        if d.startswith(KEY):
            stage = d[len(KEY):].removesuffix(".json")
            assert stage in specs, f"{d}: no stage {stage!r} in stages/keys.yaml"
            assert specs[stage].code in code, f"{d}: no family {specs[stage].code!r} in code_families()"
            out += [specs[stage].script, *code[specs[stage].code]]
        else:
            out.append(d)
    return out


def stage_scripts(dvc: dict) -> dict[str, tuple[Path, list[str]]]:
    """stage name -> (its script, its deps as written with its key expanded, ${...} paths dropped)."""
    out = {}
    for name, st in dvc["stages"].items():
        body = st.get("do", st)
        cmd = body["cmd"]
        script = next(tok for tok in cmd.split() if tok.endswith(".py"))
        deps = expand_keys([d for d in body.get("deps", []) if "${" not in d])
        out[name] = (REPO / script, deps)
    return out


def uncovered(script: Path, deps: list[str]) -> list[str]:
    """Files of modules `script` loads that no dep covers (repo-relative)."""
    dep_paths = [REPO / d for d in deps]
    missing = []
    for mod in sorted(closure(script)):
        f = module_file(mod).relative_to(REPO)
        files = [f] if f.name != "__init__.py" else [f]
        for rel in files:
            p = REPO / rel
            if not any(p == d or d in p.parents for d in dep_paths):
                missing.append(rel.as_posix())
    if not any(REPO / d == script or REPO / d in script.parents for d in deps):
        missing.append(script.relative_to(REPO).as_posix())
    return missing


@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_the_code_it_loads(dvc):
    problems = {name: miss for name, (script, deps) in stage_scripts(dvc).items()
                if (miss := uncovered(script, deps))}
    assert problems == {}, ("dvc.yaml deps miss code the stage loads (add the file or its package "
                            f"folder to the stage's deps): {json.dumps(problems, indent=1)}")


def test_keys_are_rewritten_whenever_what_they_cover_changes(dvc):
    """A stage depending on data/resolved/keys/<stage>.json reruns on an edit only if `resolve` reruns
    (and rewrites the key) first: resolve must depend on every path of every code family, on every
    stage script and stages/keys.yaml (what each key covers), on params.yaml, and be upstream of each
    key's reader (it writes data/resolved). Switched off once: with `src/arkbench/papers` in a family
    but resolve depending on `src/arkbench/models` only, this failed naming the path."""
    from arkbench.resolve import code_families, key_specs

    resolve = dvc["stages"]["resolve"]
    dep_paths = [REPO / d for d in resolve["deps"]]
    specs = key_specs(REPO / "stages/keys.yaml")
    covered = {(f"family {family!r}", rel) for family, paths in code_families(REPO).items() for rel in paths}
    covered |= {(f"stage {s.stage!r}'s script", s.script) for s in specs.values()}
    covered.add(("what each key covers", "stages/keys.yaml"))
    for what, rel in sorted(covered):
        p = REPO / rel
        assert p.exists(), f"{what} names {rel}, which does not exist"
        assert any(p == d or d in p.parents for d in dep_paths), (
            f"resolve does not depend on {rel} ({what}): an edit there would leave a key stale")
    for f in ("params.yaml", ".dvcignore"):   # .dvcignore: what the keys leave out
        assert f in resolve["deps"], f
    outs = [o if isinstance(o, str) else next(iter(o)) for o in resolve["outs"]]
    assert any(KEY.startswith(o.rstrip("/") + "/") for o in outs), outs
    for name, st in dvc["stages"].items():
        if name != "resolve":
            keys = [d for d in st.get("do", st).get("deps", []) if d.startswith(KEY)]
            assert keys == [f"{KEY}{name}.json"], f"{name}: depends on {keys}, not on its own key"
    used = {s.code for s in specs.values()}
    assert used == set(code_families(REPO)), "a code family no stage uses, or a key with no family"


def test_report_depends_on_every_papers_claims(dvc):
    from arkbench import papers

    _, deps = stage_scripts(dvc)["report"]
    dep_paths = [REPO / d for d in deps]
    for p in papers.papers().values():
        f = p.claims_file().resolve()
        assert any(f == d or d in f.parents for d in dep_paths), f"report does not depend on {f}"


def test_a_missing_dep_is_reported(dvc):
    """Switch a dep off: the check names the file the stage loads but no longer depends on."""
    script, deps = stage_scripts(dvc)["oversmoothing_fusion"]
    assert "src/arkbench/training" in deps or "src/arkbench/training/loop.py" in deps
    fewer = [d for d in deps if d not in ("src/arkbench/training", "src/arkbench/training/loop.py")]
    assert "src/arkbench/training/loop.py" in uncovered(script, fewer)
    # and a paper's plugin modules count for every stage that builds a model
    script, deps = stage_scripts(dvc)["finetune"]
    assert "arkbench.papers.oversmoothing.fusion" in closure(script)


def test_static_walk_sees_everything_an_import_loads(dvc):
    """Import each stage script (not run: __name__ != "__main__") and compare sys.modules."""
    scripts = {name: str(script) for name, (script, _) in stage_scripts(dvc).items()}
    code = (
        "import json, runpy, sys\n"
        f"sys.path.insert(0, {str(SRC)!r})\n"
        "out = {}\n"
        f"for name, script in {json.dumps(scripts)}.items():\n"
        "    before = set(sys.modules)\n"
        "    runpy.run_path(script, run_name='__dvc_deps__')\n"
        "    out[name] = sorted(m for m in sys.modules if m.startswith('arkbench'))\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "ARKBENCH_TRACKING": "off", "HF_HUB_OFFLINE": "1",
                               "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    static = set().union(*(closure(Path(s)) for s in scripts.values()))
    runtime = {m for mods in loaded.values() for m in mods if not _exempt(m) and module_file(m) is not None}
    assert runtime <= static, f"imported but not seen by the static walk: {sorted(runtime - static)}"
