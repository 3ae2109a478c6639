"""The span-QA task model of ZeroGen's QA runs: BiDAF (Seo et al. 2017), word-level, and its training.

    res = fit_and_evaluate_qa(train_rows, {"gold": gold_rows}, BidafConfig(), seed=42)
    # train_rows / gold_rows: SQuAD-schema dicts {id, title, context, question, answers: {text, answer_start}}

Model (spec A.8 "BiDAF for QA"), for a context of T tokens and a question of J tokens:

    e_c = Highway^L(Emb(c))  (B, T, E)        e_q = Highway^L(Emb(q))  (B, J, E)
    H = BiLSTM_ctx(e_c)      (B, T, 2d)       U = BiLSTM_ctx(e_q)      (B, J, 2d)   (shared LSTM)
    S_tj = w_s · [h_t; u_j; h_t ∘ u_j]                                 (B, T, J)    similarity
    C2Q:  a_t = softmax_j S_tj,        Ũ_t = Σ_j a_tj u_j               (B, T, 2d)
    Q2C:  b = softmax_t max_j S_tj,    h̃ = Σ_t b_t h_t, tiled over t    (B, T, 2d)
    G = [H; Ũ; H∘Ũ; H∘H̃]                                              (B, T, 8d)   attention flow
    M = BiLSTM_model^2(G)                                              (B, T, 2d)   modelling layer
    p1 = softmax_t w_1 · [G; M]                                        (B, T)       start
    M2 = BiLSTM_out(M);  p2 = softmax_t w_2 · [G; M2]                  (B, T)       end
    loss = −log p1(s*) − log p2(e*);  span = argmax_{s ≤ e < s+L} log p1(s) + log p2(e)

Differences from the spec's BiDAF, said here once: no character CNN (word embeddings only, so
out-of-vocabulary words are one <unk>); tokens are a regex word/punctuation split with character
offsets (spec: NLTK word tokenisation); no EMA of the weights (spec: decay 0.999, meaningless over
the few hundred steps a CPU run takes); selection after every epoch instead of every 250
iterations. Everything else follows the spec: random trainable 100-d embeddings, 2-layer highway,
contextual BiLSTM 100, 2-layer modelling BiLSTM, output BiLSTM, dropout 0.2, Adadelta lr 0.5,
batch 60, 20 epochs, context threshold 400 tokens, max answer length 30, best synthetic-dev F1 kept.

Selection (zero-shot purity): the training rows are split 90/10 *by article title* (seeded), the
epoch with the best F1 on that held-out part is kept; gold rows are only scored at the end. Scores
are the project's SQuAD v1.1 metric (``arkbench.metrics``, EM / F1 in percent).
"""
from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from pydantic import Field
from torch import nn

from ...config import Section
from .tam import BestEpoch, n_params, pad_ids

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


class BidafConfig(Section):
    """Hyper-parameters of the BiDAF TAM (defaults: ZeroGen's lstms/QA settings, spec A.8)."""

    emb_dim: int = Field(100, ge=1)              # word embedding, random init, trainable
    hidden: int = Field(100, ge=1)               # d: every BiLSTM's size per direction
    highway_layers: int = Field(2, ge=0)
    modeling_layers: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    max_vocab: int = Field(50000, ge=10)
    max_context: int = Field(400, ge=8)          # context tokens kept ("context threshold 400")
    max_question: int = Field(60, ge=4)          # question tokens kept
    max_answer_len: int = Field(30, ge=1)        # longest predicted span, tokens
    optimizer: Literal["adadelta", "adam"] = "adadelta"
    lr: float = Field(0.5, gt=0)                 # Adadelta 0.5 (spec); Adam wants ~1e-3
    batch_size: int = Field(60, ge=1)
    epochs: int = Field(20, ge=1)
    patience: int = Field(5, ge=1)               # epochs without a better synthetic-dev F1
    clip: float = Field(10.0, gt=0)
    dev_fraction: float = Field(0.1, gt=0, lt=1)   # held-out share (by article) for selection


# ----------------------------------------------------------------------------- tokens and vocabulary
def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words and punctuation with their character spans: ("Paris, 1900" -> [paris , 1900])."""
    toks, spans = [], []
    for m in _TOKEN.finditer(text):
        toks.append(m.group().lower())
        spans.append(m.span())
    return toks, spans


@dataclass
class Vocab:
    itos: list[str]

    @classmethod
    def build(cls, texts: Sequence[str], max_size: int) -> "Vocab":
        counts = Counter(w for t in texts for w in tokenize(t)[0])
        return cls([PAD, UNK, *sorted(counts, key=lambda w: (-counts[w], w))[:max_size]])

    def __post_init__(self):
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def ids(self, toks: Sequence[str]) -> list[int]:
        return [self.stoi.get(w, 1) for w in toks] or [1]


@dataclass
class Encoded:
    """One QA example as ids: context tokens (≤ max_context) with char spans, question ids,
    and the gold token span (None when the answer is cut off or absent)."""

    row: dict
    c: list[int]
    spans: list[tuple[int, int]]
    q: list[int]
    start: int | None
    end: int | None


def answer_token_span(spans: Sequence[tuple[int, int]], a_start: int, a_text: str) -> tuple[int, int] | None:
    """First and last token overlapping the answer's characters [a_start, a_start + len)."""
    a_end = a_start + len(a_text)
    hit = [i for i, (s, e) in enumerate(spans) if e > a_start and s < a_end]
    return (hit[0], hit[-1]) if hit and a_text.strip() else None


def encode(rows: Sequence[dict], vocab: Vocab, cfg: BidafConfig) -> list[Encoded]:
    out = []
    for r in rows:
        toks, spans = tokenize(r["context"])
        toks, spans = toks[: cfg.max_context], spans[: cfg.max_context]
        q = vocab.ids(tokenize(r["question"])[0][: cfg.max_question])
        ans = r.get("answers") or {"text": [], "answer_start": []}
        span = (answer_token_span(spans, int(ans["answer_start"][0]), ans["text"][0])
                if ans["text"] else None)
        out.append(Encoded(r, vocab.ids(toks), spans or [(0, 0)], q, *(span or (None, None))))
    return out


# ----------------------------------------------------------------------------- model
class Highway(nn.Module):
    """x <- g ∘ relu(W_h x) + (1 − g) ∘ x,  g = σ(W_g x), per layer. (…, E) -> (…, E)."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.h = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.g = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x):
        for h, g in zip(self.h, self.g):
            gate = torch.sigmoid(g(x))
            x = gate * torch.relu(h(x)) + (1 - gate) * x
        return x


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first lengths[b] positions reversed, its padding left in place. (B, T, D)."""
    t = torch.arange(x.shape[1])[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)       # (B, T)
    return x.gather(1, idx[:, :, None].expand_as(x))


class BiLSTM(nn.Module):
    """Bidirectional LSTM over right-padded (B, T, D_in) -> (B, T, 2d), padding-invariant without
    packing: the forward LSTM never sees the padding after a real token, and the backward LSTM reads
    each row's real tokens reversed (reverse_padded), so a real position's output does not depend
    on how much padding follows. (PyTorch's packed sequences give the same invariance but their
    backward pass was 4-6x slower on CPU: 66-73 vs 12-17 ms for 16 x 80 x 32, one thread.)
    Outputs at padding positions are junk; every consumer masks them."""

    def __init__(self, d_in: int, d: int, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        dims = [d_in] + [2 * d] * (layers - 1)
        self.fw = nn.ModuleList(nn.LSTM(k, d, batch_first=True) for k in dims)
        self.bw = nn.ModuleList(nn.LSTM(k, d, batch_first=True) for k in dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, lengths):
        for i, (f, b) in enumerate(zip(self.fw, self.bw)):
            if i:
                x = self.drop(x)                                               # between layers
            hf, _ = f(x)                                                       # (B, T, d)
            hb, _ = b(reverse_padded(x, lengths))                              # (B, T, d), reversed
            x = torch.cat([hf, reverse_padded(hb, lengths)], -1)               # (B, T, 2d)
        return x


class BiDAF(nn.Module):
    """c (B, T), c_len (B,), q (B, J), q_len (B,) -> log p_start (B, T), log p_end (B, T)."""

    def __init__(self, vocab_size: int, cfg: BidafConfig):
        super().__init__()
        d, e = cfg.hidden, cfg.emb_dim
        self.emb = nn.Embedding(vocab_size, e, padding_idx=0)
        b = math.sqrt(3.0 / e)
        nn.init.uniform_(self.emb.weight, -b, b)
        self.highway = Highway(e, cfg.highway_layers)
        self.ctx = BiLSTM(e, d)
        self.att_w = nn.Linear(6 * d, 1)                      # w_s over [h; u; h∘u]
        self.model = BiLSTM(8 * d, d, cfg.modeling_layers, cfg.dropout)
        self.out_lstm = BiLSTM(2 * d, d)
        self.p1 = nn.Linear(10 * d, 1)
        self.p2 = nn.Linear(10 * d, 1)
        self.drop = nn.Dropout(cfg.dropout)

    def similarity(self, h, u):
        """S_tj = w · [h_t; u_j; h_t∘u_j], computed without the (B, T, J, 6d) tensor. (B, T, J)."""
        d2 = h.shape[-1]
        w_h, w_u, w_hu = self.att_w.weight[0, :d2], self.att_w.weight[0, d2: 2 * d2], self.att_w.weight[0, 2 * d2:]
        return ((h @ w_h)[:, :, None] + (u @ w_u)[:, None, :]
                + torch.einsum("btd,bjd->btj", h * w_hu, u) + self.att_w.bias)

    def forward(self, c, c_len, q, q_len):
        cm = torch.arange(c.shape[1])[None, :] < c_len[:, None]              # (B, T) real tokens
        qm = torch.arange(q.shape[1])[None, :] < q_len[:, None]              # (B, J)
        h = self.drop(self.ctx(self.drop(self.highway(self.emb(c))), c_len))   # (B, T, 2d)
        u = self.drop(self.ctx(self.drop(self.highway(self.emb(q))), q_len))   # (B, J, 2d)
        s = self.similarity(h, u)                                            # (B, T, J)
        neg = torch.finfo(s.dtype).min
        a = s.masked_fill(~qm[:, None, :], neg).softmax(-1)                  # C2Q weights (B, T, J)
        u_tilde = a @ u                                                      # (B, T, 2d)
        bt = s.masked_fill(~qm[:, None, :], neg).amax(-1).masked_fill(~cm, neg).softmax(-1)   # Q2C (B, T)
        h_tilde = (bt[:, :, None] * h).sum(1, keepdim=True).expand_as(h)    # (B, T, 2d)
        g = torch.cat([h, u_tilde, h * u_tilde, h * h_tilde], -1)           # (B, T, 8d)
        m = self.drop(self.model(g, c_len))                                  # (B, T, 2d)
        m2 = self.drop(self.out_lstm(m, c_len))                              # (B, T, 2d)
        l1 = self.p1(torch.cat([g, m], -1)).squeeze(-1).masked_fill(~cm, neg)   # (B, T)
        l2 = self.p2(torch.cat([g, m2], -1)).squeeze(-1).masked_fill(~cm, neg)
        return l1.log_softmax(-1), l2.log_softmax(-1)


def best_spans(lp1: torch.Tensor, lp2: torch.Tensor, max_len: int) -> list[tuple[int, int]]:
    """argmax over s ≤ e < s + max_len of lp1[s] + lp2[e], per row. lp1, lp2: (B, T)."""
    t = lp1.shape[1]
    score = lp1[:, :, None] + lp2[:, None, :]                               # (B, T, T)
    i = torch.arange(t)
    band = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_len)   # (T, T)
    flat = score.masked_fill(~band, float("-inf")).flatten(1).argmax(-1)
    return [(int(k) // t, int(k) % t) for k in flat]


# ----------------------------------------------------------------------------- data helpers
def split_by_title(rows: Sequence[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded split by whole articles (title): dev gets whole titles until it holds ≥ fraction of
    the rows (at least one title). One title only: a seeded row split instead."""
    titles = sorted({r.get("title", "") for r in rows})
    if len(titles) < 2:
        idx = list(range(len(rows)))
        random.Random(seed).shuffle(idx)
        n_dev = max(1, int(round(fraction * len(rows)))) if len(rows) > 1 else 0
        dev_i = set(idx[:n_dev])
        return [r for i, r in enumerate(rows) if i not in dev_i], [r for i, r in enumerate(rows) if i in dev_i]
    random.Random(seed).shuffle(titles)
    dev_t: set[str] = set()
    n = 0
    for t in titles[:-1]:
        if dev_t and n >= fraction * len(rows):
            break
        dev_t.add(t)
        n += sum(r.get("title", "") == t for r in rows)
    return [r for r in rows if r.get("title", "") not in dev_t], [r for r in rows if r.get("title", "") in dev_t]


def _batches(exs: Sequence[Encoded], bs: int, shuffle: bool, g: random.Random):
    order = list(range(len(exs)))
    if shuffle:
        g.shuffle(order)
    for s in range(0, len(order), bs):
        chunk = [exs[i] for i in order[s: s + bs]]
        c, lc = pad_ids([e.c for e in chunk])
        q, lq = pad_ids([e.q for e in chunk])
        yield chunk, c, lc, q, lq


@torch.no_grad()
def predict(model: BiDAF, exs: Sequence[Encoded], cfg: BidafConfig) -> dict[str, str]:
    """id -> predicted answer text (the context's characters under the best span)."""
    model.eval()
    out = {}
    for chunk, c, lc, q, lq in _batches(exs, max(cfg.batch_size, 64), False, random.Random(0)):
        lp1, lp2 = model(c, lc, q, lq)
        for e, (s, t) in zip(chunk, best_spans(lp1, lp2, cfg.max_answer_len)):
            t = min(t, len(e.spans) - 1)
            s = min(s, t)
            out[e.row["id"]] = e.row["context"][e.spans[s][0]: e.spans[t][1]]
    return out


def squad_scores(preds: dict[str, str], rows: Sequence[dict]) -> dict[str, float]:
    """EM / F1 (percent) of `preds` (id -> text) with the project's SQuAD v1.1 metric."""
    from ... import metrics

    if not rows:
        return {"exact_match": float("nan"), "f1": float("nan")}
    refs = [{"id": r["id"], "answers": {"text": list(r["answers"]["text"]),
                                        "answer_start": [int(x) for x in r["answers"]["answer_start"]]}}
            for r in rows]
    pr = [{"id": r["id"], "prediction_text": preds.get(r["id"], "")} for r in rows]
    return metrics.compute("squad", predictions=pr, references=refs)


# ----------------------------------------------------------------------------- training
def train_bidaf(train: Sequence[dict], dev: Sequence[dict], cfg: BidafConfig, seed: int
                ) -> tuple[BiDAF, Vocab, dict[str, Any]]:
    """Train on `train` (rows whose answer is cut off are skipped), keep the epoch with the best
    F1 on `dev` (the held-out synthetic split; every epoch when `dev` is empty)."""
    t0 = time.time()
    torch.manual_seed(seed)
    g = random.Random(seed)
    vocab = Vocab.build([r["context"] for r in train] + [r["question"] for r in train], cfg.max_vocab)
    enc = [e for e in encode(train, vocab, cfg) if e.start is not None]
    if not enc:
        raise ValueError(f"no trainable QA example among {len(train)} rows (every answer is cut off or empty)")
    dev_enc = encode(dev, vocab, cfg)
    model = BiDAF(len(vocab), cfg)
    opt = (torch.optim.Adadelta(model.parameters(), lr=cfg.lr) if cfg.optimizer == "adadelta"
           else torch.optim.Adam(model.parameters(), lr=cfg.lr))
    sel, epoch = BestEpoch(model, cfg.patience), 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for chunk, c, lc, q, lq in _batches(enc, cfg.batch_size, True, g):
            lp1, lp2 = model(c, lc, q, lq)
            s = torch.tensor([e.start for e in chunk])
            t = torch.tensor([e.end for e in chunk])
            loss = -(lp1.gather(1, s[:, None]) + lp2.gather(1, t[:, None])).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
        if sel.update(model, epoch, squad_scores(predict(model, dev_enc, cfg), dev)["f1"] if dev_enc else None):
            break
    sel.restore(model)
    return model, vocab, {"best_epoch": sel.epoch, "dev_f1": sel.score, "epochs_run": epoch, "params": n_params(model),
                          "n_train": len(enc), "skipped": len(train) - len(enc), "seconds": time.time() - t0}


def fit_and_evaluate_qa(rows: Sequence[dict], evals: dict[str, Sequence[dict]], cfg: BidafConfig,
                        seed: int) -> dict[str, Any]:
    """Split `rows` by article (seeded), train selecting on the held-out part, score `evals`:
    {"<name>_exact_match", "<name>_f1", "dev_f1", "best_epoch", "params", ...}."""
    train, dev = split_by_title(rows, cfg.dev_fraction, seed)
    model, vocab, info = train_bidaf(train, dev, cfg, seed)
    out: dict[str, Any] = {}
    for name, ev in evals.items():
        sc = squad_scores(predict(model, encode(ev, vocab, cfg), cfg), ev)
        out[f"{name}_exact_match"], out[f"{name}_f1"] = sc["exact_match"], sc["f1"]
    out.update(info, vocab=len(vocab), n_dev=len(dev))
    return out
