"""The ``resolve`` stage: what the active profile means, as files DVC can track.

Two things a stage reads are invisible to DVC's own params/deps tracking:

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

The stage depends on params.yaml only, imports only PyYAML and arkbench.config (whose
merge, ``<section>.profiles.<profile>`` over the section, it shares with every stage; ~0.4 s;
it lives outside arkbench.data so `datasets` is not imported) and rewrites a file only when
its content changes. A bad profile name stops it with the message naming the key. Its output is not cached (``cache: false``): it is
re-derived in 0.2 s, and DVC must never move the linked data folder into its cache.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GLOBAL_KEYS = ("profile", "seed", "profiles", "vars")


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
    """Write params/<section>.json for every section (dropping stale ones), seed.json and the `local` link."""
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
    linked = link_local(effective_section(raw, "download"), out / "local")
    return {"sections": names, "local": linked}
