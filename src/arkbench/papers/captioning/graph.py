"""One scene-graph schema for image graphs and sentence graphs (spec §B.3).

    G = (O, A, R)
      objects     O = [o_0, ..., o_{n-1}]            English node words ("dog", "traffic light")
      attributes  A = [[a_00, a_01, ...], ...]       one list per object ("red", "small")
      relations   R = [(s_k, r_k, o_k), ...]         subject index, predicate words, object index
      boxes       optional [x0, y0, x1, y1] per object (image graphs; pixels)
      scores      optional detector confidence per object

Node words are lowercase English (lemmas) so image graphs and sentence graphs share one
symbolic space; the cross-lingual step happens in the encoder (dictionary-mapped
embeddings), never in the graph. `to_dict`/`from_dict` round-trip through JSON lines;
`from_dict` checks every field and raises :class:`GraphError` naming the key, the index
and the value.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from arkbench.utils import atomic_write_text


class GraphError(ValueError):
    """A scene graph (or a graphs file) is malformed; the message names where and what."""


@dataclass
class SceneGraph:
    objects: list[str] = field(default_factory=list)
    attributes: list[list[str]] = field(default_factory=list)
    relations: list[tuple[int, str, int]] = field(default_factory=list)
    boxes: list[list[float]] | None = None
    scores: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.attributes:
            self.attributes = [[] for _ in self.objects]
        self.relations = [(int(s), str(r), int(o)) for s, r, o in self.relations]
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, where: str = "graph") -> None:
        n = len(self.objects)
        for i, o in enumerate(self.objects):
            if not isinstance(o, str) or not o.strip():
                raise GraphError(f"{where}: objects[{i}] = {o!r}: expected a non-empty string")
        if len(self.attributes) != n:
            raise GraphError(f"{where}: attributes has {len(self.attributes)} lists for {n} objects")
        for i, attrs in enumerate(self.attributes):
            if not isinstance(attrs, list) or not all(isinstance(a, str) and a for a in attrs):
                raise GraphError(f"{where}: attributes[{i}] = {attrs!r}: expected a list of strings")
        for k, (s, r, o) in enumerate(self.relations):
            if not (0 <= s < n and 0 <= o < n):
                raise GraphError(f"{where}: relations[{k}] = {(s, r, o)!r}: index out of range "
                                 f"for {n} objects")
            if not r.strip():
                raise GraphError(f"{where}: relations[{k}]: empty predicate")
        for name, seq, width in (("boxes", self.boxes, 4), ("scores", self.scores, None)):
            if seq is None:
                continue
            if len(seq) != n:
                raise GraphError(f"{where}: {name} has {len(seq)} entries for {n} objects")
            if width and any(len(b) != width for b in seq):
                raise GraphError(f"{where}: every {name} entry must have {width} numbers")

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"objects": list(self.objects),
                             "attributes": [list(a) for a in self.attributes],
                             "relations": [[s, r, o] for s, r, o in self.relations]}
        if self.boxes is not None:
            d["boxes"] = [[round(float(x), 2) for x in b] for b in self.boxes]
        if self.scores is not None:
            d["scores"] = [round(float(x), 4) for x in self.scores]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "graph") -> "SceneGraph":
        if not isinstance(d, dict):
            raise GraphError(f"{where}: expected a mapping, got {type(d).__name__}")
        unknown = set(d) - {"objects", "attributes", "relations", "boxes", "scores"}
        if unknown:
            raise GraphError(f"{where}: unknown key(s) {sorted(unknown)}")
        if not isinstance(d.get("objects"), list):
            raise GraphError(f"{where}: 'objects' must be a list, got {d.get('objects')!r}")
        rels = d.get("relations", [])
        if not isinstance(rels, list) or any(not isinstance(r, (list, tuple)) or len(r) != 3 for r in rels):
            raise GraphError(f"{where}: 'relations' must be a list of [subject, predicate, object]")
        try:
            return cls(objects=list(d["objects"]), attributes=list(d.get("attributes") or []),
                       relations=[tuple(r) for r in rels], boxes=d.get("boxes"), scores=d.get("scores"))
        except GraphError as e:
            raise GraphError(str(e).replace("graph:", f"{where}:", 1)) from None
        except (TypeError, ValueError) as e:
            raise GraphError(f"{where}: {e}") from None

    # ------------------------------------------------------------------ views
    def words(self) -> Iterator[str]:
        yield from self.objects
        for attrs in self.attributes:
            yield from attrs
        for _, r, _ in self.relations:
            yield r

    def __len__(self) -> int:
        return len(self.objects)


# ---------------------------------------------------------------------- files
def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Rows (each with a "graph" SceneGraph or dict) to JSON lines, atomically."""
    lines = []
    for row in rows:
        row = dict(row)
        if isinstance(row.get("graph"), SceneGraph):
            row["graph"] = row["graph"].to_dict()
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """JSON lines back; every "graph" becomes a SceneGraph (errors name file:line)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: graphs file not found (run the build-graphs stage first)")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise GraphError(f"{p}:{n}: not JSON: {e}") from None
        if "graph" in row:
            row["graph"] = SceneGraph.from_dict(row["graph"], where=f"{p}:{n}")
        rows.append(row)
    return rows
