"""Tiny task models (TAMs) and their training with model selection on synthetic data only.

    tam = build_tam("lstm", task_kind="tc", vocab=Vocab.build(texts), n_classes=2, cfg=TamConfig())
    res = fit_and_evaluate("lstm", task, train_rows, gold_eval_rows, TamConfig(), seed=42)

Models (spec A.8):

* ``lstm`` for TC -- embeddings (100, random, U(±√(3/100))) -> 1-layer BiLSTM (150 per
  direction) -> [h_fwd_last; h_bwd_last] (300) -> dropout 0.5 -> Linear(300, C).
  Xavier-normal weights, zero biases, forget-gate bias 1.
* ``lstm`` for NLI -- one *shared* 2-layer BiLSTM (300 per direction, dropout 0.5 between
  layers) encodes premise p and hypothesis h; mean over time (600 each);
  features [p; h; |p−h|; p⊙h] (2400) -> 300 -> 300 (ReLU, dropout) -> C.
* ``minilm`` -- the transformer TAM: all-MiniLM-L6-v2 (offline, 22.7M) with arkbench's
  SequenceClassifier head (the DistilBERT of the paper is not available offline).

Selection (zero-shot purity, spec A.8/A.9): the synthetic set is split 90/10 with a fixed
seed; the LSTM trains up to ``epochs`` with early stopping (``patience``) on accuracy of
the *synthetic* 10%, keeping the best state; the transformer keeps its best epoch on the
same split. Gold data are touched only by the final evaluation. Loss: plain cross-entropy.
"""
from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from pydantic import Field
from torch import nn

from ...config import Section

PAD, UNK = "<pad>", "<unk>"


class TamConfig(Section):
    """Hyper-parameters of the TAMs (defaults: ZeroGen's LSTM scripts, spec A.8)."""

    emb_dim: int = Field(100, ge=1)
    hidden: int = Field(300, ge=2)              # TC: total over both directions; NLI: per direction
    nli_layers: int = Field(2, ge=1)
    mlp_hidden: int = Field(300, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    max_vocab: int = Field(50000, ge=10)
    max_len: int = Field(128, ge=4)             # tokens per text (ZeroGen transformer: 128)
    lr: float = Field(1e-4, gt=0)               # LSTM: Adam 1e-4
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(20, ge=1)
    patience: int = Field(5, ge=1)
    clip: float = Field(10.0, gt=0)
    dev_fraction: float = Field(0.1, gt=0, lt=1)   # synthetic held-out split for selection
    # transformer TAM (HF Trainer settings of ZeroGen, with MiniLM for DistilBERT)
    tf_lr: float = Field(2e-5, gt=0)
    tf_epochs: int = Field(3, ge=1)
    tf_weight_decay: float = Field(0.01, ge=0)
    tf_max_train: int | None = Field(None, ge=1)   # cap on synthetic rows for the transformer (CPU time)


# ----------------------------------------------------------------------------- vocabulary
@dataclass
class Vocab:
    """Lower-cased whitespace tokens (torchtext ``Field(lower=True)``); index 0 pad, 1 unk."""

    itos: list[str]

    @classmethod
    def build(cls, texts: Sequence[str], max_size: int = 50000) -> "Vocab":
        counts = Counter(w for t in texts for w in t.lower().split())
        words = sorted(counts, key=lambda w: (-counts[w], w))[:max_size]
        return cls([PAD, UNK, *words])

    def __post_init__(self):
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        ids = [self.stoi.get(w, 1) for w in text.lower().split()][:max_len]
        return ids or [1]


def pad_ids(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with 0 (PAD): (ids [B, T_max], lengths [B]); shared with the BiDAF TAM."""
    n = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
    return x, torch.tensor([len(s) for s in seqs])


# ----------------------------------------------------------------------------- models
def _init_lstm(lstm: nn.LSTM) -> None:
    for name, p in lstm.named_parameters():
        if "weight" in name:
            nn.init.xavier_normal_(p)
        else:
            nn.init.zeros_(p)
            h = p.shape[0] // 4
            p.data[h: 2 * h] = 1.0          # forget gate (PyTorch gate order i, f, g, o)


class BiLSTMClassifier(nn.Module):
    """x (B, T) ids, lengths (B,) -> logits (B, C)."""

    def __init__(self, vocab_size: int, n_classes: int, emb_dim: int = 100, hidden: int = 300,
                 dropout: float = 0.5):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        b = math.sqrt(3.0 / emb_dim)
        nn.init.uniform_(self.emb.weight, -b, b)
        self.lstm = nn.LSTM(emb_dim, hidden // 2, batch_first=True, bidirectional=True)
        _init_lstm(self.lstm)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden // 2 * 2, n_classes)
        nn.init.xavier_normal_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, lengths, x2=None, lengths2=None):
        e = self.emb(x)                                                    # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)                                      # h: (2, B, H/2)
        return self.out(self.drop(torch.cat([h[-2], h[-1]], -1)))         # (B, C)


class BiLSTMNLI(nn.Module):
    """Shared encoder for premise and hypothesis; [p; h; |p−h|; p⊙h] -> MLP -> logits (B, C)."""

    def __init__(self, vocab_size: int, n_classes: int, emb_dim: int = 100, hidden: int = 300,
                 layers: int = 2, mlp_hidden: int = 300, dropout: float = 0.5):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        b = math.sqrt(3.0 / emb_dim)
        nn.init.uniform_(self.emb.weight, -b, b)
        self.lstm = nn.LSTM(emb_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        _init_lstm(self.lstm)
        d = 2 * hidden
        self.mlp = nn.Sequential(nn.Linear(4 * d, mlp_hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_hidden, mlp_hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_hidden, n_classes))

    def encode(self, x, lengths):
        e = self.emb(x)
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, 2H)
        m = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).float()[..., None]
        return (out * m).sum(1) / lengths[:, None].float()                 # mean over time (B, 2H)

    def forward(self, x, lengths, x2=None, lengths2=None):
        p, h = self.encode(x, lengths), self.encode(x2, lengths2)
        return self.mlp(torch.cat([p, h, (p - h).abs(), p * h], -1))


def build_tam(kind: Literal["tc", "nli"], vocab_size: int, n_classes: int, cfg: TamConfig) -> nn.Module:
    if kind == "tc":
        return BiLSTMClassifier(vocab_size, n_classes, cfg.emb_dim, cfg.hidden, cfg.dropout)
    if kind == "nli":
        return BiLSTMNLI(vocab_size, n_classes, cfg.emb_dim, cfg.hidden, cfg.nli_layers, cfg.mlp_hidden,
                         cfg.dropout)
    raise ValueError(f"no LSTM TAM for task kind {kind!r} (tc, nli)")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- data
Example = tuple[str, str | None, int]   # (text or premise, hypothesis or None, label)


def split_synthetic(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list, list]:
    """Seeded 90/10 split of the synthetic set (train, dev); dev has at least one example."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_dev = max(1, int(round(fraction * len(examples)))) if len(examples) > 1 else 0
    dev = sorted(idx[:n_dev])
    train = sorted(idx[n_dev:])
    return [examples[i] for i in train], [examples[i] for i in dev]


def _batches(examples: Sequence[Example], vocab: Vocab, cfg: TamConfig, shuffle: bool, g: random.Random):
    order = list(range(len(examples)))
    if shuffle:
        g.shuffle(order)
    for s in range(0, len(order), cfg.batch_size):
        chunk = [examples[i] for i in order[s: s + cfg.batch_size]]
        x, lx = pad_ids([vocab.encode(a, cfg.max_len) for a, _, _ in chunk])
        if chunk[0][1] is not None:
            x2, lx2 = pad_ids([vocab.encode(b, cfg.max_len) for _, b, _ in chunk])
        else:
            x2 = lx2 = None
        yield x, lx, x2, lx2, torch.tensor([y for _, _, y in chunk])


@torch.no_grad()
def accuracy(model: nn.Module, examples: Sequence[Example], vocab: Vocab, cfg: TamConfig) -> float:
    if not examples:
        return float("nan")
    model.eval()
    right = 0
    for x, lx, x2, lx2, y in _batches(examples, vocab, cfg, False, random.Random(0)):
        right += int((model(x, lx, x2, lx2).argmax(-1) == y).sum())
    return right / len(examples)


class BestEpoch:
    """Model selection on a held-out score (higher is better), shared by every TAM's training loop.

    Keeps the weights of the best epoch so far and says when `patience` epochs in a row brought
    no gain (early stopping). Without a score (no held-out rows) every epoch is the best one.
    """

    def __init__(self, model: nn.Module, patience: int):
        self.state, self.score, self.epoch = copy.deepcopy(model.state_dict()), -1.0, 0
        self.bad, self.patience = 0, patience

    def update(self, model: nn.Module, epoch: int, score: float | None) -> bool:
        """Record `epoch` with its held-out `score`; True when training should stop."""
        if score is None:
            self.state, self.epoch = copy.deepcopy(model.state_dict()), epoch
            return False
        if score > self.score:
            self.state, self.score, self.epoch, self.bad = copy.deepcopy(model.state_dict()), score, epoch, 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into `model` and put it in eval mode."""
        model.load_state_dict(self.state)
        model.eval()



def train_lstm(kind: str, train: Sequence[Example], n_classes: int, cfg: TamConfig, seed: int,
               dev: Sequence[Example] | None = None) -> tuple[nn.Module, Vocab, dict[str, Any]]:
    """Train with Adam + clipping; early stopping on `dev` accuracy (the synthetic held-out split).

    Returns (best model, vocab, {"best_epoch", "dev_acc", "epochs_run", "params", "seconds"}).
    """
    t0 = time.time()
    torch.manual_seed(seed)
    g = random.Random(seed)
    texts = [a for a, _, _ in train] + [b for _, b, _ in train if b is not None]
    vocab = Vocab.build(texts, cfg.max_vocab)
    model = build_tam(kind, len(vocab), n_classes, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    sel = BestEpoch(model, cfg.patience)
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for x, lx, x2, lx2, y in _batches(train, vocab, cfg, True, g):
            loss = loss_fn(model(x, lx, x2, lx2), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
        if sel.update(model, epoch, accuracy(model, dev, vocab, cfg) if dev else None):
            break
    sel.restore(model)
    return model, vocab, {"best_epoch": sel.epoch, "dev_acc": sel.score, "epochs_run": epoch,
                          "params": n_params(model), "seconds": time.time() - t0}


# ----------------------------------------------------------------------------- transformer TAM
def train_transformer(train: Sequence[Example], dev: Sequence[Example], evals: dict[str, Sequence[Example]],
                      n_classes: int, cfg: TamConfig, seed: int, init: str = "minilm") -> dict[str, Any]:
    """Fine-tune MiniLM (arkbench's SequenceClassifier, mean pooling) with AdamW + linear decay;
    keep the epoch with the best accuracy on the synthetic `dev`; return accuracies on `evals`."""
    from ...models import SequenceClassifier, from_pretrained
    from ...tokenization import load_tokenizer
    from ...training.optim import build_optimizer, build_scheduler

    t0 = time.time()
    torch.manual_seed(seed)
    tok = load_tokenizer(init)
    model = from_pretrained(SequenceClassifier, init, num_labels=n_classes, pooling="mean")
    if cfg.tf_max_train and len(train) > cfg.tf_max_train:
        train = [train[i] for i in sorted(random.Random(seed).sample(range(len(train)), cfg.tf_max_train))]

    def enc(chunk):
        a = [x for x, _, _ in chunk]
        b = [h for _, h, _ in chunk] if chunk[0][1] is not None else None
        t = tok(a, b, truncation=True, max_length=cfg.max_len, padding=True, return_tensors="pt")
        return {k: v for k, v in t.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def acc(exs):
        if not exs:
            return float("nan")
        model.eval()
        right = 0
        with torch.no_grad():
            for s in range(0, len(exs), 64):
                chunk = exs[s: s + 64]
                logits = model(**enc(chunk)).logits
                right += int((logits.argmax(-1) == torch.tensor([y for _, _, y in chunk])).sum())
        return right / len(exs)

    steps = cfg.tf_epochs * math.ceil(len(train) / cfg.batch_size)
    opt = build_optimizer(model, "adamw", lr=cfg.tf_lr, weight_decay=cfg.tf_weight_decay)
    sched = build_scheduler(opt, 0, steps, "linear")
    g = random.Random(seed)
    best, best_acc, best_epoch = None, -1.0, 0
    for epoch in range(1, cfg.tf_epochs + 1):
        model.train()
        order = list(range(len(train)))
        g.shuffle(order)
        for s in range(0, len(order), cfg.batch_size):
            chunk = [train[i] for i in order[s: s + cfg.batch_size]]
            out = model(**enc(chunk), labels=torch.tensor([y for _, _, y in chunk]))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        a = acc(dev)
        if a > best_acc:
            best, best_acc, best_epoch = copy.deepcopy(model.state_dict()), a, epoch
    model.load_state_dict(best)
    res = {f"{k}_acc": acc(v) for k, v in evals.items()}
    res.update(dev_acc=best_acc, best_epoch=best_epoch, params=n_params(model), seconds=time.time() - t0)
    return res


def fit_and_evaluate(model_name: str, kind: str, train_all: Sequence[Example], evals: dict[str, Sequence[Example]],
                     n_classes: int, cfg: TamConfig, seed: int) -> dict[str, Any]:
    """Split `train_all` 90/10 (seeded), train `model_name` selecting on the 10%, report `evals`."""
    train, dev = split_synthetic(train_all, cfg.dev_fraction, seed)
    if model_name == "lstm":
        model, vocab, info = train_lstm(kind, train, n_classes, cfg, seed, dev)
        out = {f"{k}_acc": accuracy(model, v, vocab, cfg) for k, v in evals.items()}
        out.update(info)
        out["vocab"] = len(vocab)
        return out
    if model_name == "minilm":
        return train_transformer(train, dev, evals, n_classes, cfg, seed)
    raise ValueError(f"unknown TAM {model_name!r}; allowed: lstm, minilm")
