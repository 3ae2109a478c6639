"""Registries that make encoder variants data, not forks.

- MIXERS: token mixers, one per layer (attention, conv, searched graphs...).
  A mixer is an nn.Module built as `cls(config, **kwargs)` whose forward is
  `(x [B,T,D], attn_bias [B|1, H|1, T, T] additive, output_attentions) -> (y [B,T,D], probs|None)`.
- FUSIONS: maps the tuple of hidden states (embeddings + every layer) to the one
  sequence [B,T,D] that task heads read ("last" = plain BERT).
- ATTENTION_BIASES: additive attention-logit hooks (fixed or learned masks).
"""
from __future__ import annotations

from typing import Callable

MIXERS: dict[str, type] = {}
FUSIONS: dict[str, type] = {}
ATTENTION_BIASES: dict[str, type] = {}


def _register(table: dict[str, type], kind: str) -> Callable[[str], Callable[[type], type]]:
    def register(name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in table and table[name] is not cls:
                raise RuntimeError(f"{kind} {name!r} registered twice")
            table[name] = cls
            return cls

        return deco

    return register


register_mixer = _register(MIXERS, "mixer")
register_fusion = _register(FUSIONS, "fusion")
register_attention_bias = _register(ATTENTION_BIASES, "attention bias")


def lookup(table: dict[str, type], name: str, kind: str) -> type:
    _load_plugins()
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None


def _load_plugins() -> None:
    # Paper packages register their modules on import; importing them here means a
    # config that names "gate" fusion works without the caller importing the paper.
    import importlib

    for mod in ("arkbench.papers.oversmoothing.fusion",):
        importlib.import_module(mod)
