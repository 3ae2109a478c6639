"""The ``resolve`` stage: what each stage's result depends on, as one key file per stage.

A DVC dependency costs per entry, not per byte: each is an object built twice, hashed and
read-locked several times on every ``dvc status`` / ``dvc repro``. So each stage depends on one
file this stage writes, ``data/resolved/keys/<stage>.json``, beside the data it reads, instead
of the 4-8 entries (seed, params sections, script, code folders) that key stands for. A key is
what would change the stage's result; its parts:

1. **The params sections it runs on, merged with the active profile.** params.yaml holds each
   section's smoke values and each profile's overrides (``<section>.profiles.<profile>``); a stage
   runs on the merge (arkbench.config.effective_section, the one implementation). Depending on
   ``profile`` itself would rerun every stage on a profile switch, even those whose values do not
   change (the theory demo): a key holds merged values, so a switch reruns exactly the stages whose
   values change.
2. **The global seed** (and, for the report, the profile's name: it prints it and judges claims by it).
3. **Its script and the code its family loads.** The sha-256 of ``stages/<stage>.py`` and of every
   file of its code family (:func:`code_families`: the folders and files it loads, whole packages
   where simpler; the core families here, a paper's in its manifest's ``code``), leaving out what
   .dvcignore leaves out (byte-code, editor and OS files). tests/test_dvc_deps.py expands the keys
   and checks they cover every module a stage can load.

Which sections and family a stage's key covers is declared in ``stages/keys.yaml`` (``stage:
{params: [sections], code: family}``, plus ``script:`` when it is not ``stages/<stage>.py`` and
``profile: true`` for the report): DVC refuses dvc.yaml as a dependency, and this stage depends on
the stages/ folder. An edit to params.yaml, stages/ (a script or keys.yaml), src/arkbench or
.dvcignore reruns this stage (~0.3 s), which rewrites exactly the keys whose content changed (a
file is rewritten only then), which rerun exactly the stages that read them.

It also writes:

- ``data/resolved/profile.json``: the active profile's name, which the report reads.
- ``data/resolved/local``: the external data folder. The ``local`` source reads
  ``download.local_dir`` (../shared/data), outside the repository. When the active profile reads
  it, this is a symbolic link to it; otherwise (smoke: generated data only, whatever lies beside the
  checkout) an empty folder. The download stage depends on it; DVC hashes the files behind the link,
  so a changed data file reruns the download stage, and then exactly the stages whose
  ``data/tasks/<task>`` changed. A missing folder gives an empty folder too: the download stage
  then stops with the message naming it (arkbench.data.download.check_local_dir).

It imports only PyYAML, arkbench.config (the merge, ~0.4 s; it lives outside arkbench.data so
`datasets` is not imported) and the papers' manifests (plain data). A bad profile name, or a
malformed stages/keys.yaml entry (an unknown field, section, code family or script) stops it with a
message naming the file, the stage and the key. Its output is not cached (``cache: false``): it is re-derived in 0.3 s, and DVC
must never move the linked data folder into its cache.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GLOBAL_KEYS = ("profile", "seed", "profiles", "vars")

# Shared code a stage family loads, by name: the core families below and each paper's manifest
# (`Paper.code`) list these names, never the paths, so moving a shared module is one edit here.
PAPER_PLUGINS = "<paper plugins>"   # expanded by code_families() into paper_plugin_files()
SHARED_CODE: dict[str, list[str]] = {
    "encoder": ["src/arkbench/data", "src/arkbench/models",
                PAPER_PLUGINS,                  # the model registry imports every paper's plugins
                "src/arkbench/tokenization.py", "src/arkbench/training", "src/arkbench/utils.py"],
    "metrics": ["src/arkbench/metrics"],
    "outputs": ["src/arkbench/outputs.py"],
    "utils": ["src/arkbench/utils.py"],
}
# The core stage families (repo-relative; a folder means every file under it). A paper's stage
# families come from its manifest (arkbench.papers.Paper.code); code_families() joins both.
# stages/keys.yaml names each stage's family; its key file holds the family's file digests.
CORE_CODE: dict[str, list[str]] = {
    "download": ["src/arkbench/data", "src/arkbench/utils.py"],
    "pretrain": SHARED_CODE["encoder"],
    "finetune": [*SHARED_CODE["encoder"], *SHARED_CODE["metrics"]],
    "report": ["src/arkbench/outputs.py",
               "src/arkbench/papers",      # every paper's claims.yaml (found through its manifest)
               "src/arkbench/report", "src/arkbench/utils.py"],
}


def module_file(mod: str, src: Path) -> Path | None:
    """The file of module `mod` under the source root `src` (a module or a package's __init__.py)."""
    base = src.joinpath(*mod.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def imported_modules(file: Path, mod: str, src: Path) -> set[str]:
    """arkbench modules named by any import statement in `file` (module `mod`), function-level ones
    included, that have a file under `src`. tests/test_dvc_deps.py checks this static walk against
    what a real import loads."""
    import ast

    package = mod if file.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "arkbench")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != "arkbench":
                continue
            out.add(target)
            for a in node.names:   # `from pkg import submodule`
                if module_file(f"{target}.{a.name}", src) is not None:
                    out.add(f"{target}.{a.name}")
    return {m for m in out if module_file(m, src) is not None}


def paper_plugin_files(root: Path = Path(".")) -> list[str]:
    """The files of src/arkbench/papers that the model and data registries load, repo-relative and
    sorted: the package's __init__.py; each paper's __init__.py and manifest.py (discovery imports
    them); each module its manifest lists under `plugins` or `tasks`, then every arkbench.papers
    module those import (every `import` statement, function-level ones too, followed
    transitively), with the __init__.py of each package on the way. The rest of a paper's folder
    (its stages, analysis, claims) belongs to its own family only, so an edit there reruns that
    paper's stages and not every stage that builds an encoder. tests/test_dvc_deps.py checks the
    keys still cover every module a stage loads."""
    import arkbench
    from arkbench.papers import papers

    src = Path(arkbench.__file__).resolve().parents[1]
    prefix = "arkbench.papers"
    todo = [prefix]
    for paper in papers().values():
        todo += [f"{prefix}.{paper.name}", f"{prefix}.{paper.name}.manifest", *paper.plugins, *paper.tasks]
    seen: set[str] = set()
    files: set[Path] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or not (mod == prefix or mod.startswith(prefix + ".")):
            continue
        seen.add(mod)
        f = module_file(mod, src)
        if f is None:
            continue
        files.add(f)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(3, len(parts))]   # packages on the way
        todo += imported_modules(f, mod, src)
    rel = Path(root).resolve()
    return sorted(Path(os.path.relpath(f, rel)).as_posix() for f in files)


def code_families(root: Path = Path(".")) -> dict[str, list[str]]:
    """Stage family -> the repo-relative code paths its key hashes: CORE_CODE, then every paper's
    `Paper.code` with shared names expanded (SHARED_CODE; the encoder's paper plugins into
    paper_plugin_files()) and its own paths made repo-relative (they are relative to the paper's
    folder; "." is the whole folder). A family named twice, or a paper entry that names no shared
    code and no file of the paper, is an error naming the manifest and the entry."""
    from arkbench.papers import papers

    families = {name: list(paths) for name, paths in CORE_CODE.items()}
    for paper in papers().values():
        manifest = Path(paper.folder) / "manifest.py"
        for family, entries in paper.code.items():
            if family in families:
                raise ValueError(f"{manifest}: code family {family!r} is already defined "
                                 "(by arkbench.resolve.CORE_CODE or another paper)")
            paths: list[str] = []
            for entry in entries:
                if entry in SHARED_CODE:
                    paths += SHARED_CODE[entry]
                    continue
                own = Path(paper.folder) / entry
                if not own.exists():
                    raise FileNotFoundError(
                        f"{manifest}: code[{family!r}] lists {entry!r}: neither a shared code name "
                        f"({', '.join(SHARED_CODE)}) nor a path under {paper.folder}")
                paths.append(Path(os.path.relpath(own.resolve(), Path(root).resolve())).as_posix())
            families[family] = paths
    plugins = paper_plugin_files(root)
    return {name: [f for p in paths for f in (plugins if p == PAPER_PLUGINS else [p])]
            for name, paths in families.items()}


def section_names(raw: dict[str, Any]) -> list[str]:
    return [k for k in raw if k not in GLOBAL_KEYS and isinstance(raw[k], dict)]


def effective_section(raw: dict[str, Any], name: str, profile: str | None = None) -> dict[str, Any]:
    """Section `name` with `profile`'s overrides (default: the active profile) merged: the values
    its stage runs on. One implementation: arkbench.config.effective_section (which also checks the
    profile names); arkbench.config validates the values when the stage starts."""
    from arkbench.config import effective_section as merge

    return merge(raw, name, profile if profile is not None else raw.get("profile", "smoke"))


def reads_local(download: dict[str, Any]) -> bool:
    """Whether any task of a (merged) download section reads the local source."""
    source = download.get("source", "embedded")
    per_task = download.get("source_for") or {}
    tasks = download.get("tasks") or []
    return any(per_task.get(t, source) == "local" for t in tasks) or (not tasks and source == "local")


def link_local(download: dict[str, Any], link: Path) -> str | None:
    """Make `link` a symlink to the local data folder when it is read and exists, else an
    empty folder. Returns the link's target (None for the empty folder)."""
    target = None
    if reads_local(download):
        folder = Path(str(download.get("local_dir", "../shared/data")))
        if folder.is_dir():
            target = os.path.relpath(folder.resolve(), link.parent.resolve())
    if link.is_symlink():
        if target is not None and os.readlink(link) == target:
            return target
        link.unlink()
    elif link.is_dir():
        if target is None and not any(link.iterdir()):
            return None
        for p in sorted(link.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        link.rmdir()
    link.parent.mkdir(parents=True, exist_ok=True)
    if target is None:
        link.mkdir()
    else:
        link.symlink_to(target, target_is_directory=True)
    return target


def _write_if_changed(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True) + "\n"
    if path.is_file() and path.read_text() == text:   # same content: file untouched
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


KEYS_FILE = "stages/keys.yaml"
SCRIPT = re.compile(r"stages/[\w/-]+\.py")
KEY_FIELDS = {"params", "code", "script", "profile"}   # what a stages/keys.yaml entry may hold


@dataclass(frozen=True)
class KeySpec:
    """What the key of DVC stage `stage` covers (its stages/keys.yaml entry)."""

    stage: str
    script: str               # stages/<stage>.py unless the entry names another
    params: tuple[str, ...]   # params sections, each merged with the active profile
    code: str                 # code family (code_families())
    profile: bool = False     # the active profile's name (the report only)


def key_specs(keys_file: str | Path = KEYS_FILE) -> dict[str, KeySpec]:
    """Every entry of `keys_file` as a KeySpec. A malformed entry is an error naming the file and the
    stage: an unknown field, params that are not a non-empty list of names, a code family that is not
    a name, a script that is not a stages/*.py file."""
    import yaml

    keys_file = Path(keys_file)
    raw = yaml.safe_load(keys_file.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{keys_file}: expected a mapping of stage name -> {{params, code}}")
    specs: dict[str, KeySpec] = {}
    for name, entry in raw.items():
        where = f"{keys_file}: stage {name!r}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected {{params: [<section>, ...], code: <family>}}, got {entry!r}")
        unknown = set(entry) - KEY_FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: {sorted(KEY_FIELDS)})")
        params = entry.get("params")
        if not (isinstance(params, list) and params and all(isinstance(p, str) for p in params)):
            raise ValueError(f"{where}: params must be a non-empty list of params sections, got {params!r}")
        if not isinstance(entry.get("code"), str):
            raise ValueError(f"{where}: code must name a code family, got {entry.get('code')!r}")
        script = entry.get("script", f"stages/{name}.py")
        if not (isinstance(script, str) and SCRIPT.fullmatch(script)):
            raise ValueError(f"{where}: script must be a stages/*.py file, got {script!r}")
        specs[name] = KeySpec(name, script, tuple(params), entry["code"], bool(entry.get("profile", False)))
    return specs


def stage_key(spec: KeySpec, raw: dict[str, Any], families: dict[str, list[str]], root: Path = Path("."),
              patterns: list[str] | None = None, digests: dict[str, str] | None = None,
              keys_file: str | Path = KEYS_FILE) -> dict[str, Any]:
    """The content of data/resolved/keys/<stage>.json: everything but data that changes the stage's result."""
    where = f"{keys_file}: stage {spec.stage!r}:"
    sections = section_names(raw)
    for s in spec.params:
        if s not in sections:
            raise ValueError(f"{where} params names {s!r}, which is not a section of params.yaml "
                             f"(sections: {', '.join(sections)})")
    if spec.code not in families:
        raise ValueError(f"{where} code names {spec.code!r}, which is not a code family "
                         f"(arkbench.resolve.code_families: {', '.join(families)})")
    if not (Path(root) / spec.script).is_file():
        raise ValueError(f"{where} script {spec.script!r} does not exist")
    script = code_key([spec.script], root, patterns, digests)["files"]
    key: dict[str, Any] = {"stage": spec.stage, "seed": raw.get("seed", 0)}
    if spec.profile:
        key["profile"] = raw.get("profile", "smoke")
    key["params"] = {s: effective_section(raw, s) for s in spec.params}
    key["script"] = script
    key["code"] = {"family": spec.code, **code_key(families[spec.code], root, patterns, digests)}
    return key


def write_stage_keys(raw: dict[str, Any], out_dir: str = "data/resolved", root: Path = Path("."),
                     code: dict[str, list[str]] | None = None) -> list[str]:
    """Write keys/<stage>.json for every entry of `root`/stages/keys.yaml (dropping stale ones); a file
    is rewritten only when its content changes. Every key is built before any is written, so a bad
    entry leaves the old keys as they were. Returns the stage names."""
    keys_file = Path(root) / KEYS_FILE
    specs = key_specs(keys_file)
    families = code_families(root) if code is None else code
    patterns = ignore_patterns(Path(root) / ".dvcignore")
    digests: dict[str, str] = {}   # shared: the encoder's files appear in most keys
    keys = {name: stage_key(spec, raw, families, Path(root), patterns, digests, keys_file)
            for name, spec in specs.items()}
    out = Path(out_dir) / "keys"
    for name, key in keys.items():
        _write_if_changed(out / f"{name}.json", key)
    for stale in out.glob("*.json"):
        if stale.stem not in keys:
            stale.unlink()
    return list(keys)


# what earlier layouts of data/resolved held (one dep per params section, per code family, the seed):
# data/resolved is persistent, so resolve removes them itself
_FORMER = ("params", "code", "seed.json")


def run(params_file: str = "params.yaml", out_dir: str = "data/resolved", root: str = ".") -> dict[str, Any]:
    """Write keys/<stage>.json for every entry of stages/keys.yaml, profile.json and the `local` link."""
    import shutil

    from arkbench.config import globals_, read_params

    raw = read_params(params_file)
    globals_(raw, params_file)   # the active profile is one of the declared `profiles`
    out = Path(out_dir)
    stages = write_stage_keys(raw, out_dir, Path(root))
    for former in _FORMER:
        p = out / former
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    # the active profile's name, for the report (which prints it and judges claims by it)
    _write_if_changed(out / "profile.json", {"profile": raw.get("profile", "smoke")})
    linked = link_local(effective_section(raw, "download"), out / "local")
    return {"sections": section_names(raw), "stages": stages, "local": linked}


def ignore_patterns(dvcignore: Path) -> list[str]:
    """The name patterns of a .dvcignore (`name` or `name/`, shell wildcards): what DVC leaves out of
    a folder's hash, left out of the code keys too, so a fresh clone and a machine that ran the
    stages (byte-code, editor backups) get the same keys. A pattern this reader cannot apply the
    way DVC does (a path, a negation) is an error naming the file and line."""
    out = []
    if not dvcignore.is_file():
        return out
    for no, line in enumerate(dvcignore.read_text().splitlines(), 1):
        pat = line.strip()
        if not pat or pat.startswith("#"):
            continue
        if pat.startswith("!") or "/" in pat.rstrip("/") or "**" in pat:
            raise ValueError(f"{dvcignore}:{no}: {pat!r}: the code keys (arkbench.resolve.code_key) "
                             "only apply name patterns (`name`, `name/`, shell wildcards)")
        out.append(pat)
    return out


def _ignored(name: str, is_dir: bool, patterns: list[str]) -> bool:
    for pat in patterns:
        if pat.endswith("/"):
            if is_dir and fnmatch.fnmatchcase(name, pat[:-1]):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def code_key(paths: list[str], root: Path = Path("."), patterns: list[str] | None = None,
             digests: dict[str, str] | None = None) -> dict[str, Any]:
    """{"paths": paths, "files": {repo-relative file: sha256}} over every file under `paths`,
    leaving out names that match `patterns` (default: `root`/.dvcignore's). A missing path is
    an error naming it. `digests` (file -> sha256) is reused and filled, so families that share
    folders read and hash each file once."""
    patterns = ignore_patterns(root / ".dvcignore") if patterns is None else patterns
    digests = {} if digests is None else digests
    files: dict[str, str] = {}
    for rel in paths:
        top = root / rel
        if top.is_file():
            found = [top]
        elif top.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if not _ignored(d, True, patterns))
                found += [Path(dirpath) / f for f in filenames if not _ignored(f, False, patterns)]
        else:
            raise FileNotFoundError(f"a stage family's code (arkbench.resolve.code_families) lists {rel!r}, "
                                    f"which is not in {root.resolve()}")
        for f in found:
            rel_f = f.relative_to(root).as_posix()
            if rel_f not in digests:
                digests[rel_f] = hashlib.sha256(f.read_bytes()).hexdigest()
            files[rel_f] = digests[rel_f]
    return {"paths": list(paths), "files": dict(sorted(files.items()))}
