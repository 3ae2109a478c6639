"""The ``resolve`` stage: what the active profile means, as files DVC can track.

Two things a stage reads are invisible to DVC's own params/deps tracking, and a third is costly to track:

1. **Its effective params section.** params.yaml holds each section's smoke values and each
   profile's overrides; a stage runs on the section merged with the active profile's
   overrides. Depending on ``profile`` itself would rerun every stage on a profile switch,
   even those whose values do not change (the theory demo). So this stage writes each
   section's merged values to ``data/resolved/params/<section>.json``, and each stage depends
   on its own file: a switch reruns exactly the stages whose values change.
2. **The external data folder.** The ``local`` source reads ``download.local_dir``
   (../shared/data), outside the repository. When the active profile reads it,
   ``data/resolved/local`` is a symbolic link to it; otherwise (smoke: generated data only,
   whatever lies beside the checkout) an empty folder. The download stage depends on
   ``data/resolved/local``; DVC hashes the files behind the link, so a changed data file
   reruns the download stage, and then exactly the stages whose ``data/tasks/<task>``
   changed. A missing folder gives an empty folder too: the download stage then stops with
   the message naming it (arkbench.data.download.check_local_dir).
3. **The code a stage runs, as one file.** DVC's cost of a dependency is mostly per entry, not
   per byte: each dep is an object built twice, hashed (a folder: a tree of its files) and
   read-locked several times on every `dvc status` / `dvc repro`. With 5-8 code folders and
   files listed in each of ~45 stages, that was a quarter of a no-op repro's CPU time. So this
   stage hashes each stage family's code (:func:`code_families`: the folders and files it loads,
   whole packages where simpler; the core families here, a paper's in its manifest's ``code``) into ``data/resolved/code/<family>.json`` (sha-256 per file,
   leaving out what .dvcignore leaves out: byte-code, editor and OS files), and each stage
   depends on its family's file: an edit reruns this stage (it depends on all of src/arkbench),
   which rewrites exactly the key files whose code changed, which rerun exactly the stages that
   load it. tests/test_dvc_deps.py expands the keys and checks they cover every module a stage
   can load.

The stage depends on params.yaml, src/arkbench and .dvcignore only, imports only PyYAML, arkbench.config (whose
merge, ``<section>.profiles.<profile>`` over the section, it shares with every stage; ~0.4 s;
it lives outside arkbench.data so `datasets` is not imported) and the papers' manifests (plain
data: each paper's stage families), and rewrites a file only when
its content changes. A bad profile name stops it with the message naming the key. Its output is not cached (``cache: false``): it is
re-derived in 0.2 s, and DVC must never move the linked data folder into its cache.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any

GLOBAL_KEYS = ("profile", "seed", "profiles", "vars")

# Shared code a stage family loads, by name: the core families below and each paper's manifest
# (`Paper.code`) list these names, never the paths, so moving a shared module is one edit here.
SHARED_CODE: dict[str, list[str]] = {
    "encoder": ["src/arkbench/data", "src/arkbench/models",
                "src/arkbench/papers",          # the model registry imports every paper's plugins
                "src/arkbench/tokenization.py", "src/arkbench/training", "src/arkbench/utils.py"],
    "metrics": ["src/arkbench/metrics"],
    "outputs": ["src/arkbench/outputs.py"],
    "utils": ["src/arkbench/utils.py"],
}
# The core stage families (repo-relative; a folder means every file under it). A paper's stage
# families come from its manifest (arkbench.papers.Paper.code); code_families() joins both.
# dvc.yaml: each stage depends on data/resolved/code/<family>.json instead of these paths.
CORE_CODE: dict[str, list[str]] = {
    "download": ["src/arkbench/data", "src/arkbench/utils.py"],
    "pretrain": SHARED_CODE["encoder"],
    "finetune": [*SHARED_CODE["encoder"], *SHARED_CODE["metrics"]],
    "report": ["src/arkbench/outputs.py",
               "src/arkbench/papers",      # every paper's claims.yaml (found through its manifest)
               "src/arkbench/report", "src/arkbench/utils.py"],
}


def code_families(root: Path = Path(".")) -> dict[str, list[str]]:
    """Stage family -> the repo-relative code paths its key hashes: CORE_CODE, then every paper's
    `Paper.code` with shared names expanded (SHARED_CODE) and its own paths made repo-relative
    (they are relative to the paper's folder; "." is the whole folder). A family named twice, or
    a paper entry that names no shared code and no file of the paper, is an error naming the
    manifest and the entry."""
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
    return families


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


def run(params_file: str = "params.yaml", out_dir: str = "data/resolved") -> dict[str, Any]:
    """Write params/<section>.json for every section (dropping stale ones), seed.json, profile.json and
    the `local` link."""
    from arkbench.config import globals_, read_params

    raw = read_params(params_file)
    globals_(raw, params_file)   # the active profile is one of the declared `profiles`
    out = Path(out_dir)
    names = section_names(raw)
    for name in names:
        _write_if_changed(out / "params" / f"{name}.json", effective_section(raw, name))
    for stale in (out / "params").glob("*.json"):
        if stale.stem not in names:
            stale.unlink()
    # the global seed every stage reads, as a file dep: a `params: [seed]` entry per stage made
    # DVC parse the whole params.yaml once per stage (~45 parses, most of a no-op `dvc repro`)
    _write_if_changed(out / "seed.json", {"seed": raw.get("seed", 0)})
    # the active profile's name, for the report (which prints it and judges claims by it): the same
    # one parse of params.yaml fewer on every `dvc repro` as a `params: [profile]` entry would cost
    _write_if_changed(out / "profile.json", {"profile": raw.get("profile", "smoke")})
    linked = link_local(effective_section(raw, "download"), out / "local")
    return {"sections": names, "local": linked}


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


def write_code_keys(out_dir: str = "data/resolved", code: dict[str, list[str]] | None = None,
                    root: Path = Path(".")) -> list[str]:
    """Write code/<family>.json for every family of `code` (default code_families()), dropping stale
    ones; a file is rewritten only when its content changes. Returns the families."""
    code = code_families(root) if code is None else code
    patterns = ignore_patterns(root / ".dvcignore")
    out = Path(out_dir) / "code"
    digests: dict[str, str] = {}   # shared: the encoder's files appear in seven families
    for family, paths in code.items():
        _write_if_changed(out / f"{family}.json", code_key(paths, root, patterns, digests))
    for stale in out.glob("*.json"):
        if stale.stem not in code:
            stale.unlink()
    return list(code)
