"""Throughput of our MaskedLM vs transformers' BertForMaskedLM, same config, same run.

    .venv/bin/python benchmarks/bench_encoder.py                       # CPU, BERT-small-ish
    .venv/bin/python benchmarks/bench_encoder.py --batch 16 --seq 128 --repeats 7
    python benchmarks/bench_encoder.py --device cuda --bf16            # BERT-base, seq 128, + MFU

Train step = forward with MLM labels (15% of tokens), backward, AdamW step, zero_grad.
Eval = forward without labels (full [B, T, V] logits), under no_grad, eval mode.
Both models get identical weights (ours converted to transformers names) and the
same inputs; every measurement is the median of `--repeats` timings of `--iters`
steps after `--warmup` steps, and models alternate per repeat so machine-load
drift hits both equally. Prints tokens/s and the ratio ours / HF (goal >= 1.0x).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SHAPES = {  # name -> EncoderConfig fields
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}


def build(shape: str, device: torch.device):
    from transformers import BertConfig, BertForMaskedLM

    from arkbench.models import EncoderConfig, MaskedLM
    from arkbench.models.loading import ours_to_hf

    cfg = EncoderConfig(**SHAPES[shape])
    torch.manual_seed(0)
    ours = MaskedLM(cfg)
    hf = BertForMaskedLM(BertConfig(**cfg.to_hf(), attn_implementation="sdpa"))
    state = {("bert." + k if not k.startswith("cls.") else k): v for k, v in ours_to_hf(ours.state_dict()).items()
             if not k.startswith("pooler.")}
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    hf.tie_weights()
    return cfg, ours.to(device), hf.to(device)


def make_batch(cfg, batch: int, seq: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, cfg.vocab_size, (batch, seq), generator=g)
    labels = torch.full_like(ids, -100)
    sel = torch.rand(ids.shape, generator=g) < 0.15
    labels[sel] = ids[sel]
    return ids.to(device), torch.ones_like(ids).to(device), labels.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, iters: int, device) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t) / iters


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: small on CPU, base on CUDA")
    ap.add_argument("--batch", type=int, default=None, help="default: 4 on CPU, 64 on CUDA")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    shape = a.shape or ("base" if device.type == "cuda" else "small")
    batch = a.batch or (64 if device.type == "cuda" else 4)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    amp_ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if a.bf16 else nullcontext

    from arkbench.training.loop import mfu

    cfg, ours, hf = build(shape, device)
    ids, mask, labels = make_batch(cfg, batch, a.seq, device)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in (("ours", ours), ("hf", hf))}
    models = {"ours": ours, "hf": hf}

    def train_step(name):
        m, opt = models[name], opts[name]
        m.train()
        with amp_ctx():
            loss = m(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def eval_step(name):
        m = models[name]
        m.eval()
        with torch.no_grad(), amp_ctx():
            m(input_ids=ids, attention_mask=mask).logits

    n_tokens = batch * a.seq
    n_params = sum(p.numel() for p in ours.parameters())
    emb = ours.encoder.embeddings
    flops_per_token = 6 * (n_params - emb.word.weight.numel() - emb.position.weight.numel()
                           - emb.token_type.weight.numel())
    results = {}
    print(f"device={device} shape={shape} ({cfg.num_layers}x{cfg.hidden_size}, {n_params / 1e6:.1f}M params) "
          f"batch={batch} seq={a.seq} bf16={a.bf16} threads={torch.get_num_threads()} "
          f"repeats={a.repeats}x{a.iters} (warm-up {a.warmup})", flush=True)
    for kind, fn in (("train", train_step), ("eval", eval_step)):
        for name in models:
            for _ in range(a.warmup):
                fn(name)
        times = {name: [] for name in models}
        for _ in range(a.repeats):
            for name in models:          # alternate: load drift hits both
                times[name].append(timed(lambda: fn(name), a.iters, device))
        row = {}
        for name in models:
            tps = n_tokens / statistics.median(times[name])
            row[name] = tps
            u = mfu(flops_per_token if kind == "train" else flops_per_token / 3, tps, device)
            extra = f"  MFU {u:.1%}" if u is not None else ""
            print(f"  {kind:5s} {name:4s}: {tps:10.0f} tokens/s  (median {statistics.median(times[name]) * 1e3:7.1f} ms"
                  f"/step, spread {min(times[name]) * 1e3:.1f}-{max(times[name]) * 1e3:.1f}){extra}")
        row["ratio"] = row["ours"] / row["hf"]
        print(f"  {kind:5s} ratio ours/HF: {row['ratio']:.2f}x", flush=True)
        results[kind] = row
    return results


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    main()
