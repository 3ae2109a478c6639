"""The proxy: train a candidate briefly, score it (the search's fitness).

    data = build_proxy_data(texts_train, texts_val, glue=(train_rows, dev_rows), ...)
    result = evaluate_candidate(arch, data, ProxyConfig(...), seed, init_state=None)

MLM proxy: `steps` AdamW steps of BERT masking on packed blocks of the proxy corpus,
then the masked-token loss on fixed validation batches (masks from a fixed stream).
GLUE proxy (optional, as the paper's "evaluated on the proxy task (GLUE)"): the MLM
encoder + a fresh classifier fine-tuned `glue_steps` steps on a sentence-pair task,
accuracy on its dev rows.

fitness = -mlm_val_loss ("mlm") or the GLUE dev accuracy ("glue"). A candidate whose
loss turns non-finite gets `DIVERGED` as fitness (it is evaluated, counted, and loses).

Determinism: one intra-op thread during a candidate (so a Ray worker and the
in-process executor add up floats in the same order), all randomness from
(seed, candidate hash) through explicit generators: same arch + seed -> same score.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from arkbench.models import MaskedLM, SequenceClassifier
from arkbench.training.mlm import (VAL_MASK, BlockSampler, Masker, derive_seed, global_batch,
                                   step_generator)

from . import space as S

DIVERGED = -20.0


@dataclass
class ProxyConfig:
    model: dict[str, Any] = field(default_factory=lambda: dict(
        hidden_size=32, num_heads=2, intermediate_size=64, max_position_embeddings=64))
    num_layers: int = 2
    steps: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 5
    eval_batches: int = 2
    fitness: str = "mlm"                 # mlm | glue
    glue_steps: int = 0
    glue_lr: float = 1e-3
    conv_type: str = "light"
    sqrt_reading: str = "signed"

    def __post_init__(self):
        if self.fitness not in ("mlm", "glue"):
            raise ValueError(f"proxy.fitness={self.fitness!r}: allowed 'mlm' or 'glue'")
        if self.fitness == "glue" and self.glue_steps < 1:
            raise ValueError("proxy.fitness='glue' needs proxy.glue_steps >= 1")

    def base(self, vocab_size: int) -> dict[str, Any]:
        return {**self.model, "vocab_size": vocab_size, "hidden_dropout_prob": 0.0,
                "attention_dropout_prob": 0.0}


@dataclass
class ProxyData:
    train: torch.Tensor                  # [N, T] packed MLM blocks
    val: torch.Tensor                    # [M, T]
    vocab_size: int
    mask_id: int
    special_ids: list[int]
    glue_train: dict[str, torch.Tensor] | None = None   # input_ids, attention_mask, token_type_ids, labels
    glue_dev: dict[str, torch.Tensor] | None = None
    num_labels: int = 2

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])


def build_model(arch: dict, data: ProxyData, cfg: ProxyConfig) -> MaskedLM:
    enc = S.encoder_config(arch, cfg.base(data.vocab_size), cfg.conv_type, cfg.sqrt_reading)
    return MaskedLM(enc)


def _lr_at(step: int, cfg: ProxyConfig, total: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * max(0.0, (total - step) / max(1, total - cfg.warmup))


def train_mlm(model: MaskedLM, data: ProxyData, cfg: ProxyConfig, seed: int, steps: int) -> bool:
    """`steps` MLM steps in place; False if the loss became non-finite."""
    masker = Masker(data.vocab_size, data.mask_id, data.special_ids)
    sampler = BlockSampler(len(data.train), seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    model.train()
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = _lr_at(step, cfg, steps)
        inputs, labels = global_batch(data.train, sampler, masker, seed, step, cfg.batch_size)
        loss = model(inputs, labels=labels).loss
        if not torch.isfinite(loss):
            return False
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return True


@torch.no_grad()
def mlm_val_loss(model: MaskedLM, data: ProxyData, cfg: ProxyConfig) -> float:
    masker = Masker(data.vocab_size, data.mask_id, data.special_ids)
    model.eval()
    total, count = 0.0, 0
    bs = cfg.batch_size
    for b in range(min(cfg.eval_batches, math.ceil(len(data.val) / bs))):
        ids = data.val[b * bs:(b + 1) * bs]
        inputs, labels = masker(ids, step_generator(0, b, VAL_MASK))
        out = model(inputs, labels=labels)
        n = int((labels != -100).sum())
        total += float(out.loss) * n
        count += n
    return total / max(count, 1)


def glue_accuracy(model: MaskedLM, data: ProxyData, cfg: ProxyConfig, seed: int) -> float:
    """Fine-tune a classifier on the encoder for cfg.glue_steps; dev accuracy."""
    clf = SequenceClassifier(model.config, data.num_labels, pooling="mean")
    clf.encoder.load_state_dict(model.encoder.state_dict())
    opt = torch.optim.AdamW(clf.parameters(), lr=cfg.glue_lr, weight_decay=0.01)
    tr, dev = data.glue_train, data.glue_dev
    gen = torch.Generator().manual_seed(derive_seed(seed, 7))
    clf.train()
    for step in range(cfg.glue_steps):
        idx = torch.randint(len(tr["labels"]), (cfg.batch_size,), generator=gen)
        out = clf(**{k: v[idx] for k, v in tr.items()})
        if not torch.isfinite(out.loss):
            return 0.0
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(clf.parameters(), 1.0)
        opt.step()
    clf.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(dev["labels"]), 64):
            batch = {k: v[s:s + 64] for k, v in dev.items() if k != "labels"}
            correct += int((clf(**batch).logits.argmax(-1) == dev["labels"][s:s + 64]).sum())
    return correct / len(dev["labels"])


def evaluate_candidate(arch: dict, data: ProxyData, cfg: ProxyConfig, seed: int,
                       init_state: dict[str, torch.Tensor] | None = None, steps: int | None = None) -> dict[str, Any]:
    """Train and score one candidate: {score, mlm_loss, glue_acc, params, flops, diverged, eval_s}."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cseed = derive_seed(seed, int(S.arch_hash(arch), 16) & 0xFFFFFFFF)
        torch.manual_seed(cseed)
        model = build_model(arch, data, cfg)
        if init_state is not None:
            model.load_state_dict(init_state)
        ok = train_mlm(model, data, cfg, cseed, cfg.steps if steps is None else steps)
        loss = mlm_val_loss(model, data, cfg) if ok else float("nan")
        diverged = not (ok and math.isfinite(loss))
        glue = None
        if not diverged and cfg.glue_steps and data.glue_train is not None:
            glue = glue_accuracy(model, data, cfg, cseed)
        if diverged:
            score = DIVERGED
        else:
            score = -loss if cfg.fitness == "mlm" else float(glue)
        return {"score": float(score), "mlm_loss": None if diverged else float(loss), "glue_acc": glue,
                "diverged": diverged, "params": sum(p.numel() for p in model.encoder.layers.parameters()),
                "flops": S.count_flops(arch, model.config, data.seq_len, cfg.conv_type),
                "eval_s": time.perf_counter() - t0}
    finally:
        torch.set_num_threads(threads)


def config_dict(cfg: ProxyConfig) -> dict[str, Any]:
    return asdict(cfg)


# --- data -------------------------------------------------------------------------------------

def encode_pairs(tokenizer, rows: list[dict], fields: tuple[str, str], max_len: int,
                 label_field: str = "label") -> dict[str, torch.Tensor]:
    enc = tokenizer([r[fields[0]] for r in rows], [r[fields[1]] for r in rows], truncation=True,
                    max_length=max_len, padding="max_length", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "token_type_ids": enc["token_type_ids"],
            "labels": torch.tensor([int(r[label_field]) for r in rows])}


def build_proxy_data(tokenizer, train_texts: list[str], val_texts: list[str], seq_len: int,
                     glue: tuple[list[dict], list[dict], tuple[str, str]] | None = None,
                     num_labels: int = 2) -> ProxyData:
    from arkbench.training.mlm import pack_blocks, tokenize_texts

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    train = pack_blocks(tokenize_texts(train_texts, tokenizer), seq_len, cls_id, sep_id)
    val = pack_blocks(tokenize_texts(val_texts, tokenizer), seq_len, cls_id, sep_id)
    data = ProxyData(train=train, val=val, vocab_size=len(tokenizer), mask_id=tokenizer.mask_token_id,
                     special_ids=list(tokenizer.all_special_ids), num_labels=num_labels)
    if glue is not None:
        tr, dev, fields = glue
        data.glue_train = encode_pairs(tokenizer, tr, fields, seq_len)
        data.glue_dev = encode_pairs(tokenizer, dev, fields, seq_len)
    return data


def candidate_task(context: dict, arch: dict) -> dict[str, Any]:
    """Executor entry point: context = {data, cfg (ProxyConfig), seed, supernet (BIWS state) | None}."""
    init = None
    if context.get("supernet") is not None:
        from .biws import inherit

        init = inherit(context["supernet"], arch, context["cfg"], context["data"])
    return evaluate_candidate(arch, context["data"], context["cfg"], context["seed"], init_state=init)


def synthetic_data(seed: int = 0, vocab_size: int = 64, seq_len: int = 16, n_train: int = 256,
                   n_val: int = 32) -> ProxyData:
    """A learnable toy corpus for tests: a sparse first-order Markov chain over tokens 5..V-1
    (ids 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK]); each block is [CLS] chain [SEP]."""
    gen = torch.Generator().manual_seed(seed)
    v = vocab_size - 5
    nxt = torch.randint(v, (v, 3), generator=gen)            # each token has 3 likely successors

    def blocks(n: int) -> torch.Tensor:
        out = torch.empty(n, seq_len, dtype=torch.long)
        tok = torch.randint(v, (n,), generator=gen)
        for t in range(1, seq_len - 1):
            out[:, t] = tok + 5
            tok = nxt[tok, torch.randint(3, (n,), generator=gen)]
        out[:, 0], out[:, -1] = 2, 3
        return out

    return ProxyData(train=blocks(n_train), val=blocks(n_val), vocab_size=vocab_size, mask_id=4,
                     special_ids=[0, 1, 2, 3, 4])
