"""The BERT-family encoder: embeddings -> N x (mixer -> FFN) with post-LN.

    Y = LN(X + Mixer(X))        # mixer = attention / conv / searched op graph
    Z = LN(Y + FFN(Y))

It returns every hidden state (embeddings + each layer: the over-smoothing
measurements and fusion heads need them) and, on request, attention probabilities.
`norm_position="pre"` gives the pre-LN variant used in the theory demo.

Each mixer gets the padding twice: as an additive bias [B,1,1,T] (softmax attention)
and as a boolean key_padding_mask [B,T] (True = padding) for mixers that are not a
softmax. :func:`collect_aux_losses` gathers the auxiliary losses of every submodule.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig
from .mixers import build_mixer

ACT = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh")}


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor                  # [B, T, D]
    hidden_states: tuple[torch.Tensor, ...]          # L+1 tensors [B, T, D]: embeddings, layer 1..L
    attentions: tuple[torch.Tensor, ...] | None      # L tensors [B, H, T, T] (None for non-attention mixers)
    attention_mask: torch.Tensor                     # [B, T] 1 = token, 0 = padding


class Embeddings(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        B, T = input_ids.shape
        if T > self.position.num_embeddings:
            raise ValueError(f"sequence length {T} > max_position_embeddings={self.position.num_embeddings}")
        pos = torch.arange(T, device=input_ids.device).unsqueeze(0)           # [1,T]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))                                     # [B,T,D]


class FeedForward(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = ACT[config.hidden_act]

    def forward(self, x):
        return self.down(self.act(self.up(x)))


class Layer(nn.Module):
    def __init__(self, config: EncoderConfig, index: int):
        super().__init__()
        self.mixer = build_mixer(config, index)
        self.mixer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.pre_ln = config.norm_position == "pre"

    def forward(self, x, attn_bias=None, output_attentions=False, key_padding_mask=None):
        if self.pre_ln:
            y, probs = self.mixer(self.mixer_norm(x), attn_bias, output_attentions, key_padding_mask=key_padding_mask)
            x = x + self.dropout(y)
            return x + self.dropout(self.ffn(self.ffn_norm(x))), probs
        y, probs = self.mixer(x, attn_bias, output_attentions, key_padding_mask=key_padding_mask)
        x = self.mixer_norm(x + self.dropout(y))
        return self.ffn_norm(x + self.dropout(self.ffn(x))), probs


def padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B,T] 1/0 mask -> additive [B,1,1,T] bias (0 keep, dtype-min drop)."""
    keep = attention_mask[:, None, None, :].to(torch.bool)
    return torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device).masked_fill(~keep, torch.finfo(dtype).min)


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config, i) for i in range(config.num_layers))
        # pre-LN stacks end with a final LayerNorm; post-LN stacks already end normalised
        self.final_norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
                           if config.norm_position == "pre" else nn.Identity())
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                output_attentions: bool = False) -> EncoderOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        bias = padding_bias(attention_mask, x.dtype)                           # [B,1,1,T] additive
        pad = attention_mask == 0                                              # [B,T] True = padding
        hidden, attns = [x], []
        for layer in self.layers:
            x, probs = layer(x, bias, output_attentions, pad)
            hidden.append(x)
            attns.append(probs)
        x = self.final_norm(x)
        hidden[-1] = x
        return EncoderOutput(
            last_hidden_state=x, hidden_states=tuple(hidden),
            attentions=tuple(attns) if output_attentions else None,
            attention_mask=attention_mask,
        )

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        params = self.layers.parameters() if exclude_embeddings else self.parameters()
        return sum(p.numel() for p in params)


def collect_aux_losses(model: nn.Module) -> dict[str, torch.Tensor]:
    """{name: loss} from every submodule defining ``aux_losses()``; equal names are summed.

    A learned mask's L1 penalty, a gate's entropy: training adds them to the loss it
    back-propagates and logs each under its name; the reported task loss excludes them.
    """
    out: dict[str, torch.Tensor] = {}
    for m in model.modules():
        fn = getattr(m, "aux_losses", None)
        if m is model or not callable(fn):
            continue
        for name, value in (fn() or {}).items():
            out[name] = out[name] + value if name in out else value
    return out
