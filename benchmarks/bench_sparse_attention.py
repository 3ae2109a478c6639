"""One attention training step with a ~90 %-sparse fixed pattern vs dense attention, seq 512.

    nice -n 10 python benchmarks/bench_sparse_attention.py                 # CPU
    python benchmarks/bench_sparse_attention.py --device cuda              # a GPU: FlexAttention trains

Step = q/k/v/out projections + attention over [B, H, T, T] + backward (what a
SparseBERT layer adds to a training step; the FFN is the same for every mask and
left out). Pattern: a sliding window |i - j| <= w (Longformer without its global
token), w chosen for ~90 % sparsity at T = 512 (w = 25: 90.2 %). Backends, all
timed in the same run, models alternating per repeat so load drift hits each:

    dense       F.scaled_dot_product_attention without a mask (the baseline)
    additive    SDPA with the pattern as an additive [T, T] mask: SparseBERT's path in
                arkbench.models (masked entries still computed: no saving expected)
    flex        FlexAttention with a BlockMask (torch.compile): skips empty blocks. torch
                2.13 has no FlexAttention backward on CPU, so on CPU it is timed forward-only
                (inference) and the training step falls back to `additive`
    block       block-gather attention (pure PyTorch, trains anywhere): keys/values gathered
                per query block for the blocks the band touches; cost ~ kept blocks / all

Prints ms per step, the ratio dense / backend (> 1 = faster than dense), which backend
the training step used, and the load average (timings on a shared machine are
inflated; the ratios within one run are what to read).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


def band(T: int, w: int) -> torch.Tensor:
    i = torch.arange(T)
    return (i[:, None] - i[None, :]).abs() <= w                      # [T,T] True = attend


class Attn(nn.Module):
    """Projections around an attention function attn(q, k, v) -> [B, H, T, Dh]."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.h = h
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x, attn):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)   # 3 x [B,H,T,Dh]
        return self.out(attn(q, k, v).transpose(1, 2).reshape(B, T, D))


def block_gather_attention(allowed: torch.Tensor, bs: int):
    """attn(q, k, v) computing only the key blocks a query block touches (padded to the max count)."""
    T = allowed.shape[0]
    nb = T // bs
    blk = allowed.view(nb, bs, nb, bs).any(3).any(1)                                 # [nb, nb]
    kmax = int(blk.sum(1).max())
    order = torch.argsort((~blk).int(), dim=1, stable=True)[:, :kmax]                 # kept blocks first
    valid = torch.gather(blk, 1, order)                                               # [nb, kmax]
    key_idx = (order[:, :, None] * bs + torch.arange(bs)).reshape(nb, kmax * bs)      # [nb, kmax*bs]
    rows = torch.arange(T).view(nb, bs, 1)
    elem = allowed[rows, key_idx[:, None, :]] & valid.repeat_interleave(bs, 1)[:, None, :]   # [nb, bs, kmax*bs]
    bias = torch.zeros(elem.shape).masked_fill(~elem, float("-inf"))

    def attn(q, k, v):
        B, H, _, Dh = q.shape
        qb = q.view(B, H, nb, bs, Dh)
        kb = k[:, :, key_idx]                                                        # [B,H,nb,kmax*bs,Dh]
        vb = v[:, :, key_idx]
        s = qb @ kb.transpose(-1, -2) / Dh ** 0.5 + bias.to(q.dtype)                 # [B,H,nb,bs,kmax*bs]
        return (s.softmax(-1) @ vb).view(B, H, T, Dh)
    return attn, kmax / nb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--window", type=int, default=25)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    T = a.seq
    allowed = band(T, a.window).to(dev)
    sparsity = 100 * (1 - allowed.float().mean().item())
    add_mask = torch.zeros(T, T, device=dev).masked_fill(~allowed, float("-inf"))
    torch.manual_seed(0)
    model = Attn(a.hidden, a.heads).to(dev)
    x = torch.randn(a.batch, T, a.hidden, device=dev)

    fns = {"dense": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
           "additive": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=add_mask)}
    blk_fn, blk_frac = block_gather_attention(allowed.cpu(), a.block)   # index tensors on the CPU
    fns["block"] = blk_fn

    flex_note, flex_train = "", False
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        w = a.window
        bm = create_block_mask(lambda b, h, q, k: (q - k).abs() <= w, None, None, T, T, device=str(dev),
                               BLOCK_SIZE=a.block if dev.type == "cpu" else 128)
        flex = torch.compile(flex_attention)
        fns["flex"] = lambda q, k, v: flex(q, k, v, block_mask=bm)
        q0 = torch.randn(1, a.heads, T, a.hidden // a.heads, device=dev, requires_grad=True)
        try:
            flex(q0, q0, q0, block_mask=bm).sum().backward()
            flex_train = True
        except NotImplementedError as e:
            flex_note = f"FlexAttention trains not on {dev.type} here: {str(e).splitlines()[0]}"
    except Exception as e:  # noqa: BLE001 - an unsupported torch: report and go on
        flex_note = f"FlexAttention unavailable: {type(e).__name__}: {e}"

    def step(fn, train: bool):
        if train:
            y = model(x, fn)
            y.float().pow(2).mean().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x, fn)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    modes = [(n, True) for n in ("dense", "additive", "block")] + ([("flex", True)] if flex_train else [])
    modes += [("dense", False), ("additive", False)] + ([("flex", False)] if "flex" in fns else [])
    times: dict[tuple[str, bool], list[float]] = {m: [] for m in modes}
    for m in modes:                      # warm-up (and compile)
        step(fns[m[0]], m[1])
    for _ in range(a.repeats):
        for m in modes:
            t0 = time.perf_counter()
            for _ in range(a.iters):
                step(fns[m[0]], m[1])
            times[m].append((time.perf_counter() - t0) / a.iters * 1e3)
    med = {m: statistics.median(v) for m, v in times.items()}
    load = os.getloadavg()
    print(f"torch {torch.__version__} on {dev}; threads {torch.get_num_threads()}; batch {a.batch}, seq {T}, "
          f"hidden {a.hidden}, heads {a.heads}; pattern: band |i-j| <= {a.window}, sparsity {sparsity:.1f} %; "
          f"block {a.block}: {blk_frac:.1%} of key blocks computed")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for train in (True, False):
        print("training step (fwd + bwd):" if train else "inference (fwd only):")
        for n in ("dense", "additive", "block", "flex"):
            if (n, train) in med:
                ratio = med[("dense", train)] / med[(n, train)]
                print(f"  {n:9s} {med[(n, train)]:9.1f} ms   dense/{n} = {ratio:.2f}x")
    sparse_train = "flex" if flex_train else "additive"
    print(f"SparseBERT training path: {sparse_train} -> dense/{sparse_train} = "
          f"{med[('dense', True)] / med[(sparse_train, True)]:.2f}x (goal >= 2x); "
          f"block-gather: {med[('dense', True)] / med[('block', True)]:.2f}x")
    if flex_note:
        print("note:", flex_note)


if __name__ == "__main__":
    main()
