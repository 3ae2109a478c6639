"""Scene-graph encoder, hierarchical graph mapping and LSTM decoder (spec §B.3, §B.4).

Batch tensors (B graphs, No objects, Nr relations, Na attributes per object, padded):
    obj [B, No]  rel [B, Nr, 3] = (subject idx, object idx, predicate id)  att [B, No, Na]
    masks obj_m [B, No], rel_m [B, Nr], att_m [B, No, Na]

Node embedding (word level, "RCSLS" in the code): an English node word w with a
dictionary Chinese word z(w) in the decoder vocabulary takes the decoder's own
embedding E_zh[z(w)], else a learned English vector E_en[w]; then x = W_m e (de -> d).

Graph convolution, every f = Linear -> ReLU -> Dropout (output d):
    t_k = [x_{s_k}; x_{o_k}; x_{r_k}]                                    [B, Nr, 3d]
    h_i = (f_oo(x_i) + sum_{k: s_k = i} f_sbj(t_k) + sum_{k: o_k = i} f_obj(t_k)) / (1 + deg_i)
    g_k = f_rel(t_k)
    u_i = mean_j f_att([x_{o_i}; x_{a_ij}])
Attention pooling per node set: v = sum_i softmax_i(w2^T ReLU(W1 h_i)) h_i  (W1: d -> 64).

Hierarchical graph mapping (HGM, `hgm: true`), three object-level views:
    word      v^w_obj from the word-level h_i above
    sub-graph x^s_i = (f_init(e_en(o_i)) + sum_k incident f_agg([e_en(s_k); e_en(o_k)])) / (1 + deg_i),
              then en2zh = Linear -> ReLU -> Dropout, pooled -> v^s_obj
    global    a = softmax_i(w^T tanh(W e_en(o_i))), x^g = W_g sum_i a_i e_en(o_i) broadcast to every
              node, message passing as above -> pooled -> v^g_obj
    self-gate beta = softmax(MLP(v^w_obj)) (d -> 512 -> 64 -> 3), v_obj = sum_l beta_l v^l_obj

Decoder (2-layer LSTM, the same context at every step):
    c = ReLU(W_c [v_obj; v_rel; v_att]);  h1_t = LSTM1(E y_{t-1});  h2_t = LSTM2([c; h1_t])  (nn.LSTM layers)
    p(y_t) = softmax(W_o Dropout(h2_t))
Joint training projects (v_obj, v_rel, v_att) with Linear(d -> 100) + softmax per
component for the exp-KL coupling of :func:`kl_coupling`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .text import BOS, EOS, PAD


@dataclass
class ModelConfig:
    node_vocab: int
    word_vocab: int                 # decoder (target-language) vocabulary
    emb_dim: int = 64               # de: node/word embedding size (300 in the paper)
    dim: int = 128                  # d: graph feature size (1000 in the paper)
    rnn_size: int = 128             # LSTM hidden size (1000)
    att_hidden: int = 64            # pooling attention W1 (64 in the paper)
    dropout: float = 0.5
    hgm: bool = True                # hierarchical graph mapping + self-gate
    proj_dim: int = 100             # KL-coupling projection


def _f(i: int, o: int, p: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Dropout(p))


class AttPool(nn.Module):
    """v = sum_i softmax_i(w2^T ReLU(W1 h_i)) h_i over valid nodes; zeros when none."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1, self.w2 = nn.Linear(dim, hidden), nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:   # h [B,N,d], m [B,N]
        if h.shape[1] == 0:
            return h.new_zeros(h.shape[0], h.shape[2])
        s = self.w2(F.relu(self.w1(h))).squeeze(-1).masked_fill(~m, -1e9)
        a = torch.softmax(s, -1) * m
        return torch.einsum("bn,bnd->bd", a, h)


class GraphConv(nn.Module):
    """Message passing of spec §B.3 over objects, relations and attributes."""

    def __init__(self, d: int, p: float):
        super().__init__()
        self.f_oo, self.f_sbj, self.f_obj = _f(d, d, p), _f(3 * d, d, p), _f(3 * d, d, p)
        self.f_rel, self.f_att = _f(3 * d, d, p), _f(2 * d, d, p)

    @staticmethod
    def incidence(rel: torch.Tensor, rel_m: torch.Tensor, n_obj: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot subject / object incidence [B, Nr, No] (zero rows for padded relations)."""
        S = F.one_hot(rel[..., 0], n_obj).float() * rel_m[..., None]
        O = F.one_hot(rel[..., 1], n_obj).float() * rel_m[..., None]
        return S, O

    def triplets(self, x_obj, x_pred, rel):
        idx = lambda j: rel[..., j, None].expand(-1, -1, x_obj.shape[-1])   # noqa: E731
        return torch.cat([x_obj.gather(1, idx(0)), x_obj.gather(1, idx(1)), x_pred], -1)

    def objects(self, x_obj, t, S, O):
        agg = self.f_oo(x_obj) + S.transpose(1, 2) @ self.f_sbj(t) + O.transpose(1, 2) @ self.f_obj(t)
        deg = S.sum(1) + O.sum(1)                                           # [B, No]
        return agg / (1 + deg)[..., None]

    def forward(self, x_obj, x_pred, x_att, rel, rel_m, att_m):
        """x_obj [B,No,d], x_pred [B,Nr,d], x_att [B,No,Na,d] -> h [B,No,d], g [B,Nr,d], u [B,No,d]."""
        S, O = self.incidence(rel, rel_m, x_obj.shape[1])
        t = self.triplets(x_obj, x_pred, rel)
        h = self.objects(x_obj, t, S, O)
        g = self.f_rel(t)
        pair = torch.cat([x_obj[:, :, None].expand_as(x_att), x_att], -1)
        fa = self.f_att(pair) * att_m[..., None]
        u = fa.sum(2) / att_m.sum(2, keepdim=True).clamp(min=1)
        return h, g, u


class GraphEncoder(nn.Module):
    """Scene graph -> (v_obj, v_rel, v_att), each [B, d]."""

    def __init__(self, cfg: ModelConfig, word_emb: nn.Embedding, node2word: torch.Tensor | None):
        super().__init__()
        self.cfg = cfg
        d, de, p = cfg.dim, cfg.emb_dim, cfg.dropout
        self.word_emb = word_emb                           # shared with the decoder
        self.en_emb = nn.Embedding(cfg.node_vocab, de, padding_idx=PAD)
        # node id -> decoder word id of its dictionary translation (-1: none)
        self.register_buffer("node2word", node2word if node2word is not None
                             else torch.full((cfg.node_vocab,), -1, dtype=torch.long))
        self.map_emb = nn.Linear(de, d)
        self.gconv = GraphConv(d, p)
        self.pool_obj, self.pool_rel, self.pool_att = (AttPool(d, cfg.att_hidden) for _ in range(3))
        if cfg.hgm:
            self.f_init, self.f_agg = _f(de, d, p), _f(2 * de, d, p)
            self.en2zh = _f(d, d, p)
            self.glob_att = nn.Sequential(nn.Linear(de, de), nn.Tanh(), nn.Linear(de, 1))
            self.glob_proj = nn.Linear(de, d)
            self.gconv_g = GraphConv(d, p)
            self.pool_s, self.pool_g = AttPool(d, cfg.att_hidden), AttPool(d, cfg.att_hidden)
            self.gate = nn.Sequential(nn.Linear(d, 512), nn.ReLU(), nn.Linear(512, 64), nn.ReLU(),
                                      nn.Linear(64, 3))

    def node_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Word-level embedding: the dictionary Chinese word's vector, else the English one."""
        zh = self.node2word[ids]
        e = self.en_emb(ids)
        has = zh >= 0
        if has.any():
            e = torch.where(has[..., None], self.word_emb(zh.clamp(min=0)), e)
        return e

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obj, rel, att = batch["obj"], batch["rel"], batch["att"]
        obj_m, rel_m, att_m = batch["obj_m"], batch["rel_m"], batch["att_m"]
        x_obj = self.map_emb(self.node_vectors(obj))
        x_pred = self.map_emb(self.node_vectors(rel[..., 2]))
        x_att = self.map_emb(self.node_vectors(att))
        h, g, u = self.gconv(x_obj, x_pred, x_att, rel, rel_m, att_m)
        v_obj = self.pool_obj(h, obj_m)
        v_rel = self.pool_rel(g, rel_m)
        v_att = self.pool_att(u, att_m.any(-1))
        if self.cfg.hgm:
            v_obj = self._hgm(v_obj, obj, rel, obj_m, rel_m, x_pred)
        return v_obj, v_rel, v_att

    def _hgm(self, v_w, obj, rel, obj_m, rel_m, x_pred):
        e_en = self.en_emb(obj)                                             # [B, No, de]
        S, O = GraphConv.incidence(rel, rel_m, obj.shape[1])
        # sub-graph level: raw English vectors of subject and object per relation
        idx = lambda j: rel[..., j, None].expand(-1, -1, e_en.shape[-1])   # noqa: E731
        pair = self.f_agg(torch.cat([e_en.gather(1, idx(0)), e_en.gather(1, idx(1))], -1))
        deg = S.sum(1) + O.sum(1)
        xs = (self.f_init(e_en) + (S + O).transpose(1, 2) @ pair) / (1 + deg)[..., None]
        v_s = self.pool_s(self.en2zh(xs), obj_m)
        # global level: attention-pooled English object vectors broadcast to every node
        a = self.glob_att(e_en).squeeze(-1).masked_fill(~obj_m, -1e9).softmax(-1) * obj_m
        glob = self.glob_proj(torch.einsum("bn,bnd->bd", a, e_en))
        xg = glob[:, None].expand(-1, obj.shape[1], -1)
        t = self.gconv_g.triplets(xg, x_pred, rel)
        v_g = self.pool_g(self.gconv_g.objects(xg, t, S, O), obj_m)
        beta = torch.softmax(self.gate(v_w), -1)                            # [B, 3]
        return beta[:, 0:1] * v_w + beta[:, 1:2] * v_s + beta[:, 2:3] * v_g


class Decoder(nn.Module):
    """Teacher forcing runs each LSTM layer over the whole sequence at once (layer 1 sees only
    the previous words; layer 2 sees [c; h1_t]), which is the same computation as stepping."""

    def __init__(self, cfg: ModelConfig, word_emb: nn.Embedding):
        super().__init__()
        d, r = cfg.dim, cfg.rnn_size
        self.word_emb = word_emb
        self.ctx = nn.Linear(3 * d, d)
        self.lstm1 = nn.LSTM(cfg.emb_dim, r, batch_first=True)
        self.lstm2 = nn.LSTM(d + r, r, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(r, cfg.word_vocab)

    def context(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.relu(self.ctx(torch.cat(feats, -1)))

    def init_state(self, B: int, ref: torch.Tensor):
        return None, None

    def step(self, y_prev, c, state):
        s1, s2 = state
        h1, s1 = self.lstm1(self.word_emb(y_prev)[:, None], s1)
        h2, s2 = self.lstm2(torch.cat([c[:, None], h1], -1), s2)
        return F.log_softmax(self.out(self.drop(h2[:, 0])), -1), (s1, s2)

    def forward(self, c: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens [B, T] (BOS ... EOS PAD) -> log-probs [B, T-1, V]."""
        h1, _ = self.lstm1(self.word_emb(tokens[:, :-1]))
        h2, _ = self.lstm2(torch.cat([c[:, None].expand(-1, h1.shape[1], -1), h1], -1))
        return F.log_softmax(self.out(self.drop(h2)), -1)

    @torch.no_grad()
    def generate(self, c: torch.Tensor, max_len: int = 16, beam_size: int = 1) -> list[list[int]]:
        """Greedy (beam_size 1) or beam search; token ids without BOS/EOS."""
        if beam_size > 1:
            return [self._beam(c[i:i + 1], max_len, beam_size) for i in range(c.shape[0])]
        B = c.shape[0]
        y = torch.full((B,), BOS, dtype=torch.long, device=c.device)
        state = self.init_state(B, c)
        out = torch.zeros(B, max_len + 1, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for t in range(max_len + 1):
            lp, state = self.step(y, c, state)
            y = lp.argmax(-1)
            out[:, t] = y
            done |= y == EOS
            if done.all():
                break
        res = []
        for row in out.tolist():
            res.append(row[:row.index(EOS)] if EOS in row else row[:max_len])
        return res

    def _beam(self, c: torch.Tensor, max_len: int, k: int) -> list[int]:
        beams = [(0.0, [BOS], self.init_state(1, c))]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len + 1):
            cand = []
            for score, seq, state in beams:
                lp, st = self.step(torch.tensor([seq[-1]]), c, state)
                top = lp[0].topk(k)
                for v, i in zip(top.values.tolist(), top.indices.tolist()):
                    cand.append((score + v, seq + [i], st))
            cand.sort(key=lambda x: -x[0])
            beams = []
            for score, seq, st in cand:
                if seq[-1] == EOS:
                    finished.append((score / (len(seq) - 1), seq[1:-1]))
                elif len(beams) < k:
                    beams.append((score, seq, st))
                if len(beams) >= k and len(finished) >= k:
                    break
            if not beams:
                break
        if not finished:
            finished = [(s / len(q), q[1:]) for s, q, _ in beams]
        return max(finished, key=lambda x: x[0])[1][:max_len]


class Captioner(nn.Module):
    """Scene graph -> sentence in one language: encoder + decoder sharing word embeddings."""

    def __init__(self, cfg: ModelConfig, node2word: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.word_emb = nn.Embedding(cfg.word_vocab, cfg.emb_dim, padding_idx=PAD)
        self.encoder = GraphEncoder(cfg, self.word_emb, node2word)
        self.decoder = Decoder(cfg, self.word_emb)
        self.proj = nn.ModuleList(nn.Linear(cfg.dim, cfg.proj_dim) for _ in range(3))

    def encode(self, batch):
        return self.encoder(batch)

    def loss(self, feats, tokens: torch.Tensor) -> torch.Tensor:
        lp = self.decoder(self.decoder.context(feats), tokens)
        return F.nll_loss(lp.reshape(-1, lp.shape[-1]), tokens[:, 1:].reshape(-1), ignore_index=PAD)

    def projections(self, feats) -> list[torch.Tensor]:
        return [torch.softmax(p(v), -1) for p, v in zip(self.proj, feats)]

    def generate(self, feats, max_len: int = 16, beam_size: int = 1) -> list[list[int]]:
        return self.decoder.generate(self.decoder.context(feats), max_len, beam_size)


def kl_coupling(p_en: list[torch.Tensor], p_zh: list[torch.Tensor]) -> torch.Tensor:
    """sum_c exp(KL(pi^en_c || pi^zh_c)), KL summed over the batch as F.kl_div(log pi^zh, pi^en, 'sum').

    The exponent of the batch-summed KL is the code's (spec §B.4); it is kept, with the
    KL divided by the batch size so the exponent stays finite at small widths.
    """
    total = p_en[0].new_zeros(())
    for pe, pz in zip(p_en, p_zh):
        kl = F.kl_div(pz.clamp_min(1e-9).log(), pe, reduction="sum") / pe.shape[0]
        total = total + torch.exp(kl)
    return total
