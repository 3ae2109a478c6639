"""Registries that make encoder variants data, not forks.

- MIXERS: token mixers, one per layer (attention, conv, searched graphs...).
  A mixer is an nn.Module built as `cls(config, layer, **kwargs)` (layer = its index)
  whose forward is
      forward(x [B,T,D], attn_bias=None, output_attentions=False, *, key_padding_mask=None)
          -> (y [B,T,D], probs [B,H,T,T] | None)
  attn_bias: additive float [B,1,1,T] (0 keep, dtype-min drop) for softmax attention;
  key_padding_mask: bool [B,T], True at padding (torch's key_padding_mask convention)
  for mixers that are not a softmax (convolutions, attention graphs).
- FUSIONS: maps the tuple of hidden states (embeddings + every layer) to the one
  sequence [B,T,D] that task heads read ("last" = plain BERT); `cls(config, **kwargs)`.
- ATTENTION_BIASES: additive attention-logit hooks (fixed or learned masks), built as
  `cls(config, layer, **kwargs)`; see arkbench.models.mixers.AttentionBias.

Any module inside a model may define `aux_losses() -> dict[str, Tensor]` (a mask's L1
penalty, say): the heads return them in `ModelOutput.aux_losses`, training adds them to
the loss it back-propagates and logs each under its own name; the reported task/MLM
loss never includes them.
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
    # Paper packages register their modules on import; importing every paper's `plugins`
    # (its manifest, arkbench.papers) means a config that names "gate" fusion works
    # without the caller importing the paper.
    from ..papers import import_plugins

    import_plugins()
