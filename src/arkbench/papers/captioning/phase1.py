"""Phase 1: cross-lingual auto-encoding on bitext (spec §B.4).

Input: the scene graph of the English sentence; output: the Chinese sentence (the
Chinese model), and in joint training also the English sentence (the English model),
with loss

    L = CE_zh + CE_en + sum_c exp(KL(pi^en_c || pi^zh_c)),   c in {obj, rel, att}

Adam (0.9, 0.999, 1e-8), gradient value clipping at +-clip, learning rate decayed x
`lr_decay` every `decay_every` epochs, as in the official joint run (scaled down).
Scheduled sampling and beam-5 validation by CIDEr are not used at these sizes: the
last epoch's model is kept.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .graph import SceneGraph
from .model import Captioner, ModelConfig, kl_coupling
from .text import PAD, Vocab

log = logging.getLogger(__name__)


@dataclass
class GraphLimits:
    max_objects: int = 10
    max_relations: int = 12
    max_attributes: int = 3


def collate(graphs: Sequence[SceneGraph], nodes: Vocab, lim: GraphLimits = GraphLimits()) -> dict[str, torch.Tensor]:
    """Pad a list of graphs into the encoder's batch tensors (see model.py)."""
    B = len(graphs)
    No = max(1, min(lim.max_objects, max((len(g.objects) for g in graphs), default=1)))
    rels = [[r for r in g.relations if r[0] < No and r[2] < No][:lim.max_relations] for g in graphs]
    Nr = max(1, max((len(r) for r in rels), default=1))
    Na = max(1, min(lim.max_attributes, max((len(a) for g in graphs for a in g.attributes[:No]), default=1)))
    obj = torch.zeros(B, No, dtype=torch.long)
    rel = torch.zeros(B, Nr, 3, dtype=torch.long)
    att = torch.zeros(B, No, Na, dtype=torch.long)
    for b, g in enumerate(graphs):
        for i, o in enumerate(g.objects[:No]):
            obj[b, i] = nodes.id(o)
            for j, a in enumerate(g.attributes[i][:Na]):
                att[b, i, j] = nodes.id(a)
        for k, (s, p, o) in enumerate(rels[b]):
            rel[b, k] = torch.tensor([s, o, nodes.id(p)])
    obj_m = obj != PAD
    return {"obj": obj, "rel": rel, "att": att, "obj_m": obj_m,
            "rel_m": torch.tensor([[k < len(r) for k in range(Nr)] for r in rels]),
            "att_m": att != PAD}


def pad_tokens(seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 50
    lr: float = 5e-4
    lr_decay: float = 0.8
    decay_every: int = 5
    clip: float = 0.1
    joint: bool = True            # train the English model too, with the exp-KL coupling
    kl_weight: float = 1.0
    seed: int = 0


def train_phase1(graphs: Sequence[SceneGraph], zh: Sequence[list[int]], en: Sequence[list[int]] | None,
                 nodes: Vocab, zh_cfg: ModelConfig, en_cfg: ModelConfig | None, tc: TrainConfig,
                 node2word: torch.Tensor | None, lim: GraphLimits = GraphLimits(),
                 on_epoch: Callable[[int, dict], None] | None = None) -> tuple[Captioner, Captioner | None, list[dict]]:
    """Train the Chinese captioner (and the English one when `tc.joint`); returns them and the loss curve."""
    torch.manual_seed(tc.seed)
    zh_model = Captioner(zh_cfg, node2word)
    en_model = Captioner(en_cfg) if (tc.joint and en_cfg is not None and en is not None) else None
    params = list(zh_model.parameters()) + (list(en_model.parameters()) if en_model else [])
    opt = torch.optim.Adam(params, lr=tc.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tc.decay_every, gamma=tc.lr_decay)
    rng = random.Random(tc.seed)
    order = list(range(len(graphs)))
    curve = []
    for epoch in range(tc.epochs):
        zh_model.train()
        if en_model:
            en_model.train()
        rng.shuffle(order)
        tot = {"ce_zh": 0.0, "ce_en": 0.0, "kl": 0.0}
        nb = 0
        for s in range(0, len(order), tc.batch_size):
            idx = order[s:s + tc.batch_size]
            batch = collate([graphs[i] for i in idx], nodes, lim)
            fz = zh_model.encode(batch)
            loss = ce_zh = zh_model.loss(fz, pad_tokens([zh[i] for i in idx]))
            tot["ce_zh"] += float(ce_zh.detach())
            if en_model:
                fe = en_model.encode(batch)
                ce_en = en_model.loss(fe, pad_tokens([en[i] for i in idx]))
                kl = kl_coupling(en_model.projections(fe), zh_model.projections(fz))
                loss = loss + ce_en + tc.kl_weight * kl
                tot["ce_en"] += float(ce_en.detach())
                tot["kl"] += float(kl.detach())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(params, tc.clip)
            opt.step()
            nb += 1
        sched.step()
        row = {"epoch": epoch + 1, **{k: v / max(nb, 1) for k, v in tot.items()}}
        curve.append(row)
        log.info("phase1 epoch %d: %s", epoch + 1, row)
        if on_epoch:
            on_epoch(epoch, row)
    zh_model.eval()
    if en_model:
        en_model.eval()
    return zh_model, en_model, curve


@torch.no_grad()
def encode_all(model: Captioner, graphs: Sequence[SceneGraph], nodes: Vocab, lim: GraphLimits = GraphLimits(),
               batch_size: int = 256) -> torch.Tensor:
    """Frozen encoder features [N, 3, d] (obj, rel, att) of every graph."""
    model.eval()
    out = []
    for s in range(0, len(graphs), batch_size):
        f = model.encode(collate(graphs[s:s + batch_size], nodes, lim))
        out.append(torch.stack(f, 1))
    return torch.cat(out) if out else torch.zeros(0, 3, model.cfg.dim)


@torch.no_grad()
def decode_all(model: Captioner, feats: torch.Tensor, vocab: Vocab, max_len: int = 16, beam_size: int = 1,
               batch_size: int = 256) -> list[list[str]]:
    """Features [N, 3, d] -> token lists."""
    model.eval()
    out: list[list[str]] = []
    for s in range(0, feats.shape[0], batch_size):
        f = feats[s:s + batch_size]
        ids = model.generate((f[:, 0], f[:, 1], f[:, 2]), max_len, beam_size)
        out += [vocab.decode(x) for x in ids]
    return out
