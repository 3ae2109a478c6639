"""EncoderConfig: one config object that flows into every module of the encoder.

Defaults are BERT-base. A paper changes the encoder by naming a different token
mixer per layer (`mixers`) and passing its options (`mixer_kwargs`), never by
forking the model code.

`mixer_kwargs` has exactly three forms (anything else is an error, never dropped):

    {}                                      no options
    {"attention": {...}, "conv": {...}}     per mixer name: every key names a mixer
    {"kernel_size": 5, "graph": {...}}      shared: no key names a mixer; every layer gets it
    [{...}, {...}, ...]                     per layer: exactly num_layers dicts

Values may be anything JSON can hold (an op graph is a dict). A key is a "mixer
name" when it is registered in MIXERS or named in `mixers`; a dict mixing mixer
names and option names is rejected, naming the keys.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EncoderConfig:
    vocab_size: int = 30522              # bert-base-uncased WordPiece
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072        # FFN width, 4 * hidden in BERT
    hidden_act: str = "gelu"             # "gelu" (erf, as BERT) | "relu" | "gelu_new"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12        # BERT's value; matters for the 1e-5 match with HF
    hidden_dropout_prob: float = 0.1
    attention_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    pad_token_id: int = 0
    # Token mixer per layer: one name for all layers, or a list of num_layers names
    # from arkbench.models.registry.MIXERS ("attention", "conv", ...).
    mixers: str | list[str] = "attention"
    # Options of the mixers: per mixer name, shared, or per layer (see the module doc).
    mixer_kwargs: dict[str, Any] | list[dict[str, Any]] = field(default_factory=dict)
    # Post-LN (BERT, the default) or pre-LN (used by the over-smoothing theory demo).
    norm_position: str = "post"          # "post" | "pre"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if isinstance(self.mixers, list) and len(self.mixers) != self.num_layers:
            raise ValueError(f"mixers lists {len(self.mixers)} layers but num_layers={self.num_layers}")
        if self.norm_position not in ("post", "pre"):
            raise ValueError(f"norm_position={self.norm_position!r}: allowed 'post' or 'pre'")
        kw = self.mixer_kwargs
        if isinstance(kw, list):
            if len(kw) != self.num_layers:
                raise ValueError(f"mixer_kwargs lists {len(kw)} layers but num_layers={self.num_layers}")
            bad = [i for i, d in enumerate(kw) if not isinstance(d, dict)]
            if bad:
                raise ValueError(f"mixer_kwargs[{bad[0]}] = {kw[bad[0]]!r}: each layer's options must be a mapping")
        elif not isinstance(kw, dict):
            raise ValueError(f"mixer_kwargs = {kw!r}: a mapping (per mixer name or shared) or a list of "
                             f"num_layers mappings")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def mixer_names(self) -> list[str]:
        """The mixer name of every layer."""
        return list(self.mixers) if isinstance(self.mixers, list) else [self.mixers] * self.num_layers

    def mixer_for(self, layer: int, known: set[str] | frozenset[str] = frozenset()) -> tuple[str, dict[str, Any]]:
        """(mixer name, its kwargs) of `layer`; `known`: registered mixer names.

        Raises ValueError for a mapping that mixes mixer names and option names, or a
        per-name entry that is not a mapping (see the module doc for the three forms).
        """
        names = self.mixer_names()
        name = names[layer]
        kw = self.mixer_kwargs
        if isinstance(kw, list):
            return name, dict(kw[layer])
        mixer_keys = [k for k in kw if k in known or k in names]
        if not mixer_keys:
            return name, dict(kw)                         # shared by every layer
        other = [k for k in kw if k not in mixer_keys]
        if other:
            raise ValueError(f"mixer_kwargs mixes mixer names {mixer_keys} with option names {other}: "
                             f"write {{<mixer>: {{options}}}} per mixer, or the options alone for every layer")
        bad = [k for k in mixer_keys if not isinstance(kw[k], dict)]
        if bad:
            raise ValueError(f"mixer_kwargs.{bad[0]} = {kw[bad[0]]!r}: per-mixer options must be a mapping")
        return name, dict(kw.get(name) or {})

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EncoderConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown EncoderConfig keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "EncoderConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "EncoderConfig":
        """From a transformers BertConfig dict (config.json of a BERT checkpoint)."""
        return cls(
            vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"], hidden_act=hf.get("hidden_act", "gelu"),
            max_position_embeddings=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            hidden_dropout_prob=hf.get("hidden_dropout_prob", 0.1),
            attention_dropout_prob=hf.get("attention_probs_dropout_prob", 0.1),
            initializer_range=hf.get("initializer_range", 0.02),
            pad_token_id=hf.get("pad_token_id", 0) or 0,
        )

    def to_hf(self) -> dict[str, Any]:
        """The transformers BertConfig kwargs for the same shapes (vanilla mixers only)."""
        return dict(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size, layer_norm_eps=self.layer_norm_eps,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_dropout_prob,
            initializer_range=self.initializer_range, pad_token_id=self.pad_token_id,
        )
