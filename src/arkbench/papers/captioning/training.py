"""Phase 1 / phase 2 / evaluation drivers behind the captioning stages (files in, files out).

Saved artefacts (torch.save, written to a temp folder and renamed):
    phase1/  model.pt {zh: state, en: state|None, mt: state|None, cfg_*: dicts}, vocab_{zh,en,nodes}.json,
             dictionary.json (English node word -> Chinese word), curve.json
    phase2/  mappers.pt {full: state, adv_only: state, dim}, curve.json
Metrics: metrics/captioning/eval.json (claims read full.cider, no_map.cider, oracle.cider,
adv_only.cider, mapped.domain_acc, unmapped.domain_acc) and table.md (the paper's layout).
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from arkbench.utils import atomic_dir, atomic_write_json, atomic_write_text

from .gan import CycleMapper, GanConfig, train_cycle
from .graph import SceneGraph, read_jsonl
from .model import Captioner, Decoder, ModelConfig
from .phase1 import TrainConfig, decode_all, encode_all, pad_tokens, train_phase1
from .text import PAD, Vocab, en_tokens, zh_tokens

log = logging.getLogger(__name__)


def _threads() -> None:
    """One intra-op thread unless ARKBENCH_TORCH_THREADS says otherwise.

    These models are small (LSTM cells of 64-256 units on batches of 50): on 2 shared
    cores a second torch thread made a phase-1 epoch 10x slower in CPU time (measured
    3.6 s vs 55 s for 500 pairs under load 15), and never faster.
    """
    import os

    torch.set_num_threads(int(os.environ.get("ARKBENCH_TORCH_THREADS", "1")))

# Cross2StrA Table 3 (spec §B.7): UNISON*† on COCO-CN test, the unpaired setting
PAPER_ROW = {"bleu1": 63.4, "bleu2": 43.2, "bleu3": 29.5, "bleu4": 17.9, "meteor": 24.5, "rouge_l": 45.1,
             "cider": 53.5}
ROWS = (("no_map", "No mapping (image graph features decoded directly)"),
        ("adv_only", "Adversarial mapping only (lambda_cyc = 0)"),
        ("full", "UNISON: full cycle mapping"),
        ("pivot", "Pivot: English captioner + MT trained on the same bitext"),
        ("oracle", "Oracle graphs (parsed from a reference caption; uses paired data)"))


# --------------------------------------------------------------------------- pivot MT
class Translator(nn.Module):
    """English tokens -> Chinese tokens: GRU encoder, its last state as the decoder's three features."""

    def __init__(self, cfg: ModelConfig, en_vocab: int):
        super().__init__()
        self.cfg = cfg
        self.src_emb = nn.Embedding(en_vocab, cfg.emb_dim, padding_idx=PAD)
        self.rnn = nn.GRU(cfg.emb_dim, cfg.dim, batch_first=True)
        self.word_emb = nn.Embedding(cfg.word_vocab, cfg.emb_dim, padding_idx=PAD)
        self.decoder = Decoder(cfg, self.word_emb)

    def feats(self, src: torch.Tensor):
        lengths = (src != PAD).sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.src_emb(src), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.rnn(packed)
        return h[0], h[0], h[0]

    def loss(self, src, tgt):
        lp = self.decoder(self.decoder.context(self.feats(src)), tgt)
        return nn.functional.nll_loss(lp.reshape(-1, lp.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=PAD)


def train_mt(src: list[list[int]], tgt: list[list[int]], cfg: ModelConfig, en_vocab: int, tc: TrainConfig) -> Translator:
    torch.manual_seed(tc.seed + 7)
    m = Translator(cfg, en_vocab)
    opt = torch.optim.Adam(m.parameters(), lr=tc.lr)
    rng = random.Random(tc.seed + 7)
    order = list(range(len(src)))
    for _ in range(tc.epochs):
        m.train()
        rng.shuffle(order)
        for s in range(0, len(order), tc.batch_size):
            idx = order[s:s + tc.batch_size]
            loss = m.loss(pad_tokens([src[i] for i in idx]), pad_tokens([tgt[i] for i in idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(m.parameters(), tc.clip)
            opt.step()
    m.eval()
    return m


# --------------------------------------------------------------------------- phase 1
def fit_phase1(p, graphs_dir: Path, out_dir: Path, ctx=None) -> dict:
    _threads()
    from .lexicon import en2zh

    t0 = time.time()
    bitext = read_jsonl(graphs_dir / "bitext.jsonl")
    images = read_jsonl(graphs_dir / "images.jsonl")
    if not bitext:
        raise ValueError(f"{graphs_dir / 'bitext.jsonl'}: no bitext rows with a parsed graph")
    zh_tok = [zh_tokens(r["zh"]) for r in bitext]
    en_tok = [en_tokens(r["en"]) for r in bitext]
    zh_vocab = Vocab.build(zh_tok, p.min_count)
    en_vocab = Vocab.build(en_tok, p.min_count)
    extra = [w for r in images for w in r["graph"].words()]
    extra += [w for r in images if "oracle_graph" in r for w in SceneGraph.from_dict(r["oracle_graph"]).words()]
    nodes = Vocab.build([list(r["graph"].words()) for r in bitext], p.node_min_count, extra=sorted(set(extra)))
    dictionary: dict[str, str] = {}
    node2word = torch.full((len(nodes),), -1, dtype=torch.long)
    if p.dictionary == "cedict":
        counts = Counter(t for toks in zh_tok for t in toks if t in zh_vocab)
        dictionary = en2zh(nodes.itos[4:], counts)
        for w, z in dictionary.items():
            node2word[nodes.id(w)] = zh_vocab.id(z)
    zh_ids = [zh_vocab.encode(t, p.max_len) for t in zh_tok]
    en_ids = [en_vocab.encode(t, p.max_len) for t in en_tok]
    graphs = [r["graph"] for r in bitext]
    mk = lambda V, hgm: ModelConfig(node_vocab=len(nodes), word_vocab=len(V), emb_dim=p.emb_dim,  # noqa: E731
                                    dim=p.dim, rnn_size=p.rnn_size, dropout=p.dropout, hgm=hgm)
    zh_cfg, en_cfg = mk(zh_vocab, p.hgm), mk(en_vocab, False)
    tc = TrainConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, lr_decay=p.lr_decay,
                     decay_every=p.decay_every, clip=p.clip, joint=True, kl_weight=p.kl_weight,
                     seed=ctx.seed if ctx else 0)
    # the English model is needed by the pivot baseline even when the coupling is off
    tc_joint = TrainConfig(**{**asdict(tc), "kl_weight": p.kl_weight if p.joint else 0.0})
    on_epoch = (lambda e, row: ctx.log_metrics({f"phase1/{k}": v for k, v in row.items() if k != "epoch"},
                                               step=e + 1)) if ctx else None
    zh_model, en_model, curve = train_phase1(graphs, zh_ids, en_ids, nodes, zh_cfg, en_cfg, tc_joint, node2word,
                                             on_epoch=on_epoch)
    mt = None
    if p.mt_epochs:
        mt_cfg = ModelConfig(node_vocab=1, word_vocab=len(zh_vocab), emb_dim=p.emb_dim, dim=p.dim,
                             rnn_size=p.rnn_size, dropout=p.dropout, hgm=False)
        mt = train_mt(en_ids, zh_ids, mt_cfg, len(en_vocab),
                      TrainConfig(**{**asdict(tc), "epochs": p.mt_epochs}))
    with atomic_dir(out_dir) as tmp:
        torch.save({"zh": zh_model.state_dict(), "en": en_model.state_dict() if en_model else None,
                    "mt": mt.state_dict() if mt else None, "cfg_zh": asdict(zh_cfg), "cfg_en": asdict(en_cfg),
                    "cfg_mt": asdict(mt.cfg) if mt else None, "en_vocab_size": len(en_vocab)}, tmp / "model.pt")
        zh_vocab.save(tmp / "vocab_zh.json")
        en_vocab.save(tmp / "vocab_en.json")
        nodes.save(tmp / "vocab_nodes.json")
        atomic_write_text(tmp / "dictionary.json", json.dumps(dictionary, ensure_ascii=False, indent=1, sort_keys=True))
        atomic_write_json(tmp / "curve.json", curve)
    node_words = nodes.itos[4:]
    return {"bitext": len(bitext), "zh_vocab": len(zh_vocab), "en_vocab": len(en_vocab), "node_vocab": len(nodes),
            "dictionary_coverage": len(dictionary) / max(1, len(node_words)),
            "final_ce_zh": curve[-1]["ce_zh"], "final_ce_en": curve[-1]["ce_en"], "final_kl": curve[-1]["kl"],
            "seconds": round(time.time() - t0, 1)}


def load_phase1(d: Path) -> dict[str, Any]:
    ck = torch.load(d / "model.pt", weights_only=False)
    nodes = Vocab.load(d / "vocab_nodes.json")
    zh = Captioner(ModelConfig(**ck["cfg_zh"]))
    zh.load_state_dict(ck["zh"])
    out = {"zh": zh.eval(), "nodes": nodes, "zh_vocab": Vocab.load(d / "vocab_zh.json"),
           "en_vocab": Vocab.load(d / "vocab_en.json"), "en": None, "mt": None}
    if ck["en"] is not None:
        en = Captioner(ModelConfig(**ck["cfg_en"]))
        en.load_state_dict(ck["en"])
        out["en"] = en.eval()
    if ck["mt"] is not None:
        mt = Translator(ModelConfig(**ck["cfg_mt"]), ck["en_vocab_size"])
        mt.load_state_dict(ck["mt"])
        out["mt"] = mt.eval()
    return out


# --------------------------------------------------------------------------- phase 2
def _domains(graphs_dir: Path, m1: dict, n_text: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    bitext = read_jsonl(graphs_dir / "bitext.jsonl")
    images = read_jsonl(graphs_dir / "images.jsonl")
    rng = random.Random(seed)
    text_graphs = [r["graph"] for r in rng.sample(bitext, min(n_text, len(bitext)))]
    a = encode_all(m1["zh"], [r["graph"] for r in images if r["split"] == "gan"], m1["nodes"])
    b = encode_all(m1["zh"], text_graphs, m1["nodes"])
    return a, b, images


def fit_phase2(p, graphs_dir: Path, phase1_dir: Path, out_dir: Path, ctx=None) -> dict:
    _threads()
    t0 = time.time()
    m1 = load_phase1(phase1_dir)
    seed = ctx.seed if ctx else 0
    a, b, _ = _domains(graphs_dir, m1, p.n_text, seed)
    base = GanConfig(iters=p.iters, batch_size=p.batch_size, lr=p.lr, lambda_cyc=p.lambda_cyc,
                     lambda_idt=p.lambda_idt, pool_size=p.pool_size, seed=seed)
    log_every = max(1, p.iters // 20)
    full, curve_full = train_cycle(a, b, base, log_every)
    adv, curve_adv = train_cycle(a, b, GanConfig(**{**asdict(base), "lambda_cyc": 0.0}), log_every)
    with atomic_dir(out_dir) as tmp:
        torch.save({"full": full.state_dict(), "adv_only": adv.state_dict(), "dim": a.shape[-1]}, tmp / "mappers.pt")
        atomic_write_json(tmp / "curve.json", {"full": curve_full, "adv_only": curve_adv})
    if ctx:
        for row in curve_full:
            ctx.log_metrics({"phase2/full_loss_g": row["loss_g"], "phase2/full_loss_d": row["loss_d"]}, step=row["iter"])
    return {"image_features": len(a), "text_features": len(b), "full_loss_g": curve_full[-1]["loss_g"],
            "full_loss_d": curve_full[-1]["loss_d"], "adv_only_loss_g": curve_adv[-1]["loss_g"],
            "seconds": round(time.time() - t0, 1)}


# --------------------------------------------------------------------------- evaluation
def _seg(s: str) -> str:
    return " ".join(zh_tokens(s))


def evaluate_all(p, graphs_dir: Path, phase1_dir: Path, phase2_dir: Path, metrics_dir: Path, ctx=None,
                 n_text: int = 5000) -> dict:
    _threads()
    from .evaluate import METRICS, caption_scores, domain_accuracy, mmd2

    t0 = time.time()
    m1 = load_phase1(phase1_dir)
    ck = torch.load(phase2_dir / "mappers.pt", weights_only=False)
    mappers = {}
    for k in ("full", "adv_only"):
        mappers[k] = CycleMapper(ck["dim"])
        mappers[k].load_state_dict(ck[k])
        mappers[k].eval()
    seed = ctx.seed if ctx else 0
    a_gan, b, images = _domains(graphs_dir, m1, n_text, seed)
    ev = [r for r in images if r["split"] == "eval"]
    refs = [[_seg(s) for s in r["refs_zh"]] for r in ev]
    nodes, zv = m1["nodes"], m1["zh_vocab"]
    f_img = encode_all(m1["zh"], [r["graph"] for r in ev], nodes)
    feats = {"no_map": f_img, "adv_only": mappers["adv_only"].map_a(f_img), "full": mappers["full"].map_a(f_img),
             "oracle": encode_all(m1["zh"], [SceneGraph.from_dict(r["oracle_graph"]) for r in ev], nodes)}
    hyps = {k: [" ".join(t) for t in decode_all(m1["zh"], f, zv, beam_size=p.beam_size)] for k, f in feats.items()}
    if m1["en"] is not None and m1["mt"] is not None:
        en_caps = decode_all(m1["en"], encode_all(m1["en"], [r["graph"] for r in ev], nodes), m1["en_vocab"],
                             beam_size=p.beam_size)
        src = pad_tokens([m1["en_vocab"].encode(t, 16) for t in en_caps])
        with torch.no_grad():
            ids = m1["mt"].decoder.generate(m1["mt"].decoder.context(m1["mt"].feats(src)), 16, p.beam_size)
        hyps["pivot"] = [" ".join(zv.decode(x)) for x in ids]
    results: dict[str, Any] = {}
    meteor = False
    if p.meteor:
        import shutil

        if shutil.which("java"):
            from pycocoevalcap.meteor.meteor import Meteor

            meteor = Meteor()            # one JVM for every row
    for key, _ in ROWS:
        if key in hyps:
            s = caption_scores(hyps[key], refs, meteor=meteor)
            results[key] = {m: round(100 * v, 2) for m, v in s.items()}
            results[key]["distinct_captions"] = len(set(hyps[key])) / max(1, len(hyps[key]))
    del meteor
    # domain gap on all image graphs (gan + eval) vs sentence graphs
    a_all = torch.cat([a_gan, f_img]).numpy()
    mapped = mappers["full"].map_a(torch.cat([a_gan, f_img])).numpy()
    adv_mapped = mappers["adv_only"].map_a(torch.cat([a_gan, f_img])).numpy()
    bn = b.numpy()
    results["unmapped"] = {"domain_acc": domain_accuracy(a_all, bn, seed), "mmd2": mmd2(a_all, bn, seed)}
    results["mapped"] = {"domain_acc": domain_accuracy(mapped, bn, seed), "mmd2": mmd2(mapped, bn, seed)}
    results["adv_mapped"] = {"domain_acc": domain_accuracy(adv_mapped, bn, seed), "mmd2": mmd2(adv_mapped, bn, seed)}
    results["verdicts"] = {
        "mapping_beats_no_mapping": bool(results["full"]["cider"] > results["no_map"]["cider"]),
        "oracle_bounds_mapping": bool(results["oracle"]["cider"] >= results["full"]["cider"]),
        "cycle_beats_adversarial_only": bool(results["full"]["cider"] > results["adv_only"]["cider"]),
        "domain_gap_shrinks": bool(results["mapped"]["domain_acc"] < results["unmapped"]["domain_acc"]),
    }
    results["n_eval_images"] = len(ev)
    world = json.loads((graphs_dir / "meta.json").read_text()).get("world", "synthetic")
    results["world"] = world
    results["data_source"] = "local" if world == "flickr8k" else "embedded"
    if ctx is not None:
        results["profile"] = ctx.profile
    results["examples"] = [{"id": r["id"], "refs": r["refs_zh"][:2], **{k: hyps[k][i] for k in hyps}}
                           for i, r in enumerate(ev[:p.n_examples])]
    results["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(metrics_dir / "eval.json", results)
    atomic_write_text(metrics_dir / "table.md", table_markdown(results, METRICS))
    flat = {f"{k}.{m}": v for k, _ in ROWS if k in results for m, v in results[k].items()}
    flat.update({f"{k}.{m}": v for k in ("unmapped", "mapped") for m, v in results[k].items()})
    return flat


def table_markdown(results: dict, metrics: tuple[str, ...]) -> str:
    head = "| method | " + " | ".join(m.replace("_", "-").upper() for m in metrics) + " |"
    lines = [head, "|" + " --- |" * (len(metrics) + 1)]
    lines.append("| paper: UNISON*† on COCO-CN test (Cross2StrA Table 3) | "
                 + " | ".join(f"{PAPER_ROW[m]:.1f}" for m in metrics) + " |")
    for key, name in ROWS:
        if key in results:
            lines.append(f"| ours: {name} | " + " | ".join(f"{results[key][m]:.1f}" for m in metrics) + " |")
    lines.append("")
    lines.append(f"Ours: {results['n_eval_images']} evaluation images; scores x100 (CIDEr too). SPICE: not "
                 "computed (needs CoreNLP downloads and an English parser; not available offline).")
    lines.append(f"Domain classifier accuracy image vs sentence features: unmapped "
                 f"{results['unmapped']['domain_acc']:.3f}, mapped {results['mapped']['domain_acc']:.3f}.")
    return "\n".join(lines) + "\n"
