"""Task models = Encoder + fusion + head. One class per head type, any encoder variant.

    MaskedLM            : tied-embedding MLM head (pre-training)
    SequenceClassifier  : [CLS] pooler -> classifier (num_labels=1 -> regression, STS-B)
    SpanExtractor       : start/end logits per token (SQuAD v1.1 / v2.0)

`fusion` names an entry of FUSIONS that turns all hidden states into the sequence
the head reads: "last" is plain BERT; the over-smoothing paper adds concat/max/gate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig
from .encoder import ACT, Encoder, EncoderOutput, collect_aux_losses
from .registry import FUSIONS, lookup, register_fusion


@dataclass
class ModelOutput:
    loss: torch.Tensor | None                         # the task / MLM loss only (what is reported)
    logits: torch.Tensor                              # MLM [B,T,V] | cls [B,C] | span [B,T,2]
    encoder: EncoderOutput
    fused: torch.Tensor | None = None                 # [B,T,D] what the head read
    extras: dict | None = None                        # fusion diagnostics (e.g. gate weights)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)   # e.g. a mask's L1 penalty

    @property
    def total_loss(self) -> torch.Tensor | None:
        """What training back-propagates: loss + every auxiliary loss."""
        if self.loss is None:
            return None
        return self.loss + sum(self.aux_losses.values()) if self.aux_losses else self.loss


def training_loss(out) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss to back-propagate, aux losses) of any model output: `.loss` plus `.aux_losses` if present.

    Lets training accept any nn.Module task model whose output has a `.loss`.
    """
    aux = dict(getattr(out, "aux_losses", None) or {})
    return (out.loss + sum(aux.values()) if aux else out.loss), aux


@register_fusion("last")
class LastLayer(nn.Module):
    """Plain BERT: the last layer's output."""

    def __init__(self, config: EncoderConfig, **_):
        super().__init__()

    def forward(self, hidden_states, attention_mask):
        return hidden_states[-1], None


def build_fusion(config: EncoderConfig, name: str = "last", **kwargs) -> nn.Module:
    return lookup(FUSIONS, name, "fusion")(config, **kwargs)


class _WithEncoder(nn.Module):
    def __init__(self, config: EncoderConfig, fusion: str = "last", fusion_kwargs: dict | None = None):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.fusion_name = fusion
        self.fusion_kwargs = dict(fusion_kwargs or {})
        self.fusion = build_fusion(config, fusion, **self.fusion_kwargs)

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions=False):
        enc = self.encoder(input_ids, attention_mask, token_type_ids, output_attentions)
        fused, extras = self.fusion(enc.hidden_states, enc.attention_mask)
        return enc, fused, extras

    def _output(self, loss, logits, enc, fused, extras) -> ModelOutput:
        return ModelOutput(loss, logits, enc, fused, extras, aux_losses=collect_aux_losses(self))

    def _init_new(self) -> None:
        self.apply(self.encoder._init_weights)


class MaskedLM(_WithEncoder):
    def __init__(self, config: EncoderConfig, fusion: str = "last", fusion_kwargs: dict | None = None):
        super().__init__(config, fusion, fusion_kwargs)
        d = config.hidden_size
        self.transform = nn.Linear(d, d)
        self.act = ACT[config.hidden_act]
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        for m in (self.transform, self.norm):
            m.apply(self.encoder._init_weights)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_attentions=False) -> ModelOutput:
        enc, fused, extras = self.encode(input_ids, attention_mask, token_type_ids, output_attentions)
        h = self.norm(self.act(self.transform(fused)))
        if labels is not None:  # only score the masked positions: [N, D] instead of [B, T, D]
            sel = labels != -100
            logits = F.linear(h[sel], self.encoder.embeddings.word.weight, self.bias)   # [N,V]
            loss = F.cross_entropy(logits.float(), labels[sel]) if sel.any() else h.sum() * 0
            return self._output(loss, logits, enc, fused, extras)
        logits = F.linear(h, self.encoder.embeddings.word.weight, self.bias)           # [B,T,V]
        return self._output(None, logits, enc, fused, extras)


class SequenceClassifier(_WithEncoder):
    """num_labels=1 is regression (MSE), else single-label classification (CE).

    pooling="cls": BERT's pooler, tanh(W h_[CLS]); pooling="mean": the mean over real
    tokens, as sentence-embedding checkpoints (all-MiniLM-L6-v2) were trained, whose
    [CLS] vector and pooler never were.
    """

    def __init__(self, config: EncoderConfig, num_labels: int, fusion: str = "last",
                 fusion_kwargs: dict | None = None, classifier_dropout: float | None = None,
                 pooling: str = "cls"):
        super().__init__(config, fusion, fusion_kwargs)
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling={pooling!r}: allowed 'cls' or 'mean'")
        self.num_labels = num_labels
        self.pooling = pooling
        d = config.hidden_size
        self.pooler = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout)
        self.classifier = nn.Linear(d, num_labels)
        for m in (self.pooler, self.classifier):
            m.apply(self.encoder._init_weights)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_attentions=False) -> ModelOutput:
        enc, fused, extras = self.encode(input_ids, attention_mask, token_type_ids, output_attentions)
        if self.pooling == "cls":
            pooled = torch.tanh(self.pooler(fused[:, 0]))             # [B,D] from [CLS]
        else:
            m = enc.attention_mask.unsqueeze(-1).to(fused.dtype)       # [B,T,1]
            pooled = (fused * m).sum(1) / m.sum(1).clamp_min(1.0)      # [B,D] mean of real tokens
        logits = self.classifier(self.dropout(pooled))                 # [B,C]
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.long())
        return self._output(loss, logits, enc, fused, extras)


class SpanExtractor(_WithEncoder):
    def __init__(self, config: EncoderConfig, fusion: str = "last", fusion_kwargs: dict | None = None):
        super().__init__(config, fusion, fusion_kwargs)
        self.qa = nn.Linear(config.hidden_size, 2)
        self.qa.apply(self.encoder._init_weights)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None, output_attentions=False) -> ModelOutput:
        enc, fused, extras = self.encode(input_ids, attention_mask, token_type_ids, output_attentions)
        logits = self.qa(fused)                                        # [B,T,2]
        loss = None
        if start_positions is not None and end_positions is not None:
            s, e = logits.float().unbind(-1)
            loss = (F.cross_entropy(s, start_positions) + F.cross_entropy(e, end_positions)) / 2
        return self._output(loss, logits, enc, fused, extras)
