"""Paper packages, found by discovery: each folder under arkbench/papers/ with a manifest.py.

    src/arkbench/papers/<paper>/
        manifest.py     PAPER = Paper(...)   (light: imports nothing but this module)
        claims.yaml     the paper's claims rows (see arkbench/report/claims.yaml for the fields)
        *.py            its code: params sections, mixers/biases/fusions, stage run functions

No central list names a paper. :func:`papers` imports every ``arkbench.papers.<name>.manifest``
(a few ms: manifests are plain data) and the rest of the package asks it:

    config          which module owns params section S     Paper.sections[S]
    models          which modules register encoder plugins Paper.plugins
    data            which modules register tasks           Paper.tasks
    tracking        the MLflow experiment of section S     Paper.experiment + experiment_description()
    resolve         the code in its DVC stages' keys       Paper.code
    report          the claims of every paper              Paper.claims_file()

A paper is also found on any extra path appended to ``arkbench.papers.__path__`` (the
tests add a temporary toy paper that way); :func:`refresh` forgets the cache.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Paper", "papers", "get_paper", "paper_for_section", "section_owners", "import_plugins",
           "import_tasks", "refresh"]


@dataclass(frozen=True)
class Paper:
    """One paper's manifest: what the rest of arkbench needs to know about it, as data."""

    name: str                                   # folder name = claims key = metrics/<name>/, plots/<name>/
    title: str                                  # the paper's title (report, MLflow experiment description)
    sections: dict[str, str] = field(default_factory=dict)   # params section -> module that registers its schema
    plugins: tuple[str, ...] = ()               # modules registering mixers / attention biases / fusions
    tasks: tuple[str, ...] = ()                 # modules registering data tasks (arkbench.data.register_task)
    code: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ^ DVC stage family -> the code its stages load, hashed by the resolve stage into the key of each
    #   stage of the family (data/resolved/keys/<stage>.json; stages/keys.yaml): shared code by name
    #   (arkbench.resolve.SHARED_CODE: encoder, metrics, outputs, utils) or paths relative to this
    #   folder ("." = all of it)
    tables: dict[str, str] = field(default_factory=dict)
    # ^ the paper's own result tables (its layout, ours beside the paper's numbers): file name in a results
    #   snapshot (docs/results/<profile>/, scripts/snapshot_results.py) -> the DVC output that holds it
    experiment: str = ""                        # MLflow experiment; default "arkbench/<name>"
    claims: str = "claims.yaml"                 # claims file, relative to the paper's folder
    spec: str = ""                              # where the spec lives (/work/shared/papers/...)
    folder: str = ""                            # filled by discovery: the package folder

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"arkbench/{self.name}"

    def claims_file(self) -> Path:
        return Path(self.folder) / self.claims

    def load_claims(self) -> dict[str, Any]:
        """{"title", "spec", "claims": [...]} from the paper's claims file (empty claims if absent)."""
        import yaml

        f = self.claims_file()
        doc = (yaml.safe_load(f.read_text()) or {}) if f.is_file() else {}
        if not isinstance(doc, dict):
            raise ValueError(f"{f}: top level must be a mapping with a 'claims' list")
        return {"title": doc.get("title", self.title), "spec": doc.get("spec", self.spec),
                "claims": doc.get("claims") or [], "file": str(f)}

    def experiment_description(self) -> str:
        """The MLflow experiment description: the title and the claims this paper's stages test."""
        try:
            rows = self.load_claims()["claims"]
        except Exception:  # noqa: BLE001 - a broken claims file is reported by the report stage
            rows = []
        lines = [self.title, "", "Claims tested here:"] + [f"- {r.get('text', r.get('id', ''))}" for r in rows
                                                            if isinstance(r, dict)]
        return "\n".join(lines if rows else lines[:1])


_CACHE: dict[str, Paper] | None = None


def refresh() -> None:
    """Forget discovered papers (after a paper folder was added or removed at run time)."""
    global _CACHE
    _CACHE = None


def papers() -> dict[str, Paper]:
    """Every paper under arkbench.papers.*, by name (sorted), from its manifest.PAPER."""
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    found: dict[str, Paper] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        folder = Path(info.module_finder.path) / info.name
        if not (folder / "manifest.py").is_file():
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}.manifest")
        paper = getattr(mod, "PAPER", None)
        if not isinstance(paper, Paper):
            raise TypeError(f"{folder / 'manifest.py'}: defines no PAPER = arkbench.papers.Paper(...)")
        if paper.name != info.name:
            raise ValueError(f"{folder / 'manifest.py'}: PAPER.name = {paper.name!r}, but the folder is "
                             f"{info.name!r} (they must match)")
        found[paper.name] = Paper(**{**paper.__dict__, "folder": str(folder)})
    owners: dict[str, str] = {}
    for p in found.values():
        for s in p.sections:
            if s in owners:
                raise ValueError(f"params section {s!r} is claimed by papers {owners[s]!r} and {p.name!r}")
            owners[s] = p.name
    _CACHE = found
    return found


def get_paper(name: str) -> Paper:
    ps = papers()
    if name not in ps:
        raise KeyError(f"unknown paper {name!r}; found: {', '.join(ps) or 'none'}")
    return ps[name]


def paper_for_section(section: str) -> Paper | None:
    """The paper whose manifest lists params section `section`, or None (a core section)."""
    return next((p for p in papers().values() if section in p.sections), None)


def section_owners() -> dict[str, str]:
    """params section -> module registering its schema, over every paper."""
    return {s: mod for p in papers().values() for s, mod in p.sections.items()}


def import_plugins() -> None:
    """Import every paper's encoder plugin modules (they register mixers, biases, fusions)."""
    for p in papers().values():
        for mod in p.plugins:
            importlib.import_module(mod)


def import_tasks() -> None:
    """Import every paper's task modules (they register data tasks)."""
    for p in papers().values():
        for mod in p.tasks:
            importlib.import_module(mod)
