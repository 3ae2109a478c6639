"""The two-level search space: per-slot attention graphs (intra) and conv/attention slots (inter).

An architecture is JSON data, one entry per encoder layer:

    {"slots": [{"type": "conv", "kernel": 65},
               {"type": "att", "graph": {...graph.py format...}}, ...]}

Presets: `vanilla_graph()` (BERT attention), `figure7_graphs()` (the six searched
attentions of AutoBERT-Zero-base transcribed from the paper's Figure 7, spec 3.3) and
`autobert_zero_base()` (6 x [Conv(k) -> Att], k = 65, 9, 3, 7, 7, 3).

Random generation and the mutations used by the searches live here too; every
random choice takes an explicit numpy Generator (the searches checkpoint its state).
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import numpy as np
import torch

from arkbench.models.config import EncoderConfig

from . import graph as G
from .graph import GraphBuilder

KERNELS = (3, 5, 7, 9, 15, 31, 65)       # spec 3.2, recalled [R]
FIG7_KERNELS = (65, 9, 3, 7, 7, 3)


# --- presets ------------------------------------------------------------------------------

def vanilla_graph() -> dict:
    """softmax(Q K^T / sqrt(d)) V."""
    b = GraphBuilder()
    a = b.op("softmax", b.op("scale", b.op("matmul", b.q, b.op("transpose", b.k))))
    return b.build(b.op("matmul", a, b.v))


def _attend(b: GraphBuilder, key: int, value: int, scale_after: bool = True) -> int:
    """softmax(scale(Q key^T)) value."""
    a = b.op("softmax", b.op("scale", b.op("matmul", b.q, b.op("transpose", key))))
    return b.op("matmul", a, value)


def figure7_graphs() -> dict[int, dict]:
    """Layer number (1-based, as in the paper) -> graph, one reading of Figure 7 (spec 3.3).

    2: softmax(Q (-logsig(-K))^T / sqrt d) (Q + K)
    4: softmax(Q (-logsig(logsig(Q) + Q + K))^T / sqrt d) Q
    6, 8: softmax(Q (-logsig(K))^T / sqrt d) Q
    10: softmax(scale(Q [sqrt(K) + (ss(scale(ss(K))) + V)]^T)) V
    12: softmax(scale(Q [sqrt(K) + (V + scale(K))]^T)) V   (the unclear add input read as
        K/sqrt d, as the third-party code does)
    """
    out = {}
    b = GraphBuilder()
    key = b.op("neg", b.op("logsigmoid", b.op("neg", b.k)))
    out[2] = b.build(_attend(b, key, b.op("add", b.q, b.k)))

    b = GraphBuilder()
    s = b.op("add", b.op("add", b.op("logsigmoid", b.q), b.q), b.k)
    out[4] = b.build(_attend(b, b.op("neg", b.op("logsigmoid", s)), b.q))

    for layer in (6, 8):
        b = GraphBuilder()
        out[layer] = b.build(_attend(b, b.op("neg", b.op("logsigmoid", b.k)), b.q))

    b = GraphBuilder()
    inner = b.op("add", b.op("softsign", b.op("scale", b.op("softsign", b.k))), b.v)
    out[10] = b.build(_attend(b, b.op("add", b.op("sqrt", b.k), inner), b.v))

    b = GraphBuilder()
    inner = b.op("add", b.v, b.op("scale", b.k))
    out[12] = b.build(_attend(b, b.op("add", b.op("sqrt", b.k), inner), b.v))
    return out


def autobert_zero_base() -> dict:
    """12 slots: Conv(65) Att2 Conv(9) Att4 Conv(3) Att6 Conv(7) Att8 Conv(7) Att10 Conv(3) Att12."""
    graphs = figure7_graphs()
    slots = []
    for i, k in enumerate(FIG7_KERNELS):
        slots.append({"type": "conv", "kernel": k})
        slots.append({"type": "att", "graph": graphs[2 * i + 2]})
    return {"slots": slots}


def bert_arch(num_layers: int) -> dict:
    return {"slots": [{"type": "att", "graph": vanilla_graph()} for _ in range(num_layers)]}


# --- validity, identity, encoder config -------------------------------------------------------

def check_arch(arch: dict, num_layers: int | None = None, max_nodes: int | None = None,
               kernels: Sequence[int] = KERNELS) -> None:
    slots = arch.get("slots") if isinstance(arch, dict) else None
    if not isinstance(slots, list) or not slots:
        raise G.GraphError(f"an architecture is {{'slots': [...]}}, got {arch!r}")
    if num_layers is not None and len(slots) != num_layers:
        raise G.GraphError(f"architecture has {len(slots)} slots, the model has num_layers={num_layers}")
    for i, s in enumerate(slots):
        if s.get("type") == "att":
            try:
                G.check_structure(s["graph"], max_nodes)
            except G.GraphError as e:
                raise G.GraphError(f"slot {i}: {e}") from None
        elif s.get("type") == "conv":
            if s.get("kernel") not in kernels:
                raise G.GraphError(f"slot {i}: conv kernel {s.get('kernel')!r} not in {tuple(kernels)}")
        else:
            raise G.GraphError(f"slot {i}: type {s.get('type')!r}: allowed 'att' or 'conv'")


def slot_key(slot: dict) -> str:
    return f"conv{slot['kernel']}" if slot["type"] == "conv" else "att:" + G.canonical(slot["graph"])


def arch_hash(arch: dict) -> str:
    """De-duplication key: slot types, kernels and canonical graphs (node order does not matter)."""
    return hashlib.sha256("|".join(slot_key(s) for s in arch["slots"]).encode()).hexdigest()[:16]


def arch_ops(arch: dict) -> list[str]:
    """The 'primitives' the OP priority scores: graph ops of attention slots and conv kernels."""
    ops: list[str] = []
    for s in arch["slots"]:
        ops.extend(G.ops_of(s["graph"]) if s["type"] == "att" else [f"conv{s['kernel']}"])
    return ops


def encoder_config(arch: dict, base: dict, conv_type: str = "light", sqrt_reading: str = "signed") -> EncoderConfig:
    """EncoderConfig(**base) with one mixer per slot."""
    mixers, kwargs = [], []
    for s in arch["slots"]:
        if s["type"] == "att":
            mixers.append("abz_graph")
            kwargs.append({"graph": s["graph"], "sqrt_reading": sqrt_reading})
        else:
            mixers.append("abz_conv")
            kwargs.append({"kernel_size": s["kernel"], "conv_type": conv_type})
    return EncoderConfig(**{**base, "num_layers": len(mixers), "mixers": mixers, "mixer_kwargs": kwargs})


def count_flops(arch: dict, cfg: EncoderConfig, seq_len: int, conv_type: str = "light") -> int:
    """Forward FLOPs (2 x multiply-adds) of the encoder layers on one sequence of seq_len tokens."""
    n, d, h = seq_len, cfg.hidden_size, cfg.num_heads
    lin = lambda i, o: 2 * n * i * o  # noqa: E731
    total = 0
    for s in arch["slots"]:
        total += lin(d, cfg.intermediate_size) + lin(cfg.intermediate_size, d)          # FFN
        if s["type"] == "att":
            total += lin(d, d) * (len(G.used_inputs(s["graph"])) + 1)
            total += h * G.flops_per_head(s["graph"], n, d // h)
        else:
            total += lin(d, 2 * d) + lin(d, d) + 2 * n * d * s["kernel"]
            if conv_type == "dynamic":
                total += lin(d, h * s["kernel"])
    return total


# --- numerical validity ---------------------------------------------------------------------

def numerically_valid(graph: dict, trials: int = 3, n: int = 7, d: int = 5, seed: int = 0) -> tuple[bool, str]:
    """Finite outputs and input gradients on random inputs at several scales, padding included."""
    gen = torch.Generator().manual_seed(seed)
    for t in range(trials):
        scale = (0.1, 1.0, 10.0)[t % 3]
        q, k, v = (torch.randn(2, 2, n, d, generator=gen).mul(scale).requires_grad_() for _ in range(3))
        keep = torch.ones(2, n)
        keep[1, n - 2:] = 0
        bias = torch.zeros(2, 1, 1, n).masked_fill(keep[:, None, None, :] == 0, torch.finfo(torch.float32).min)
        try:
            y = G.evaluate(graph, q, k, v, key_bias=bias, key_keep=keep[:, None, :, None])
        except (RuntimeError, G.GraphError) as e:
            return False, f"raised {e}"
        if y.shape != q.shape:
            return False, f"output shape {tuple(y.shape)} != {tuple(q.shape)}"
        if not torch.isfinite(y).all():
            return False, f"non-finite output at input scale {scale}"
        y.square().mean().backward()
        if not all(torch.isfinite(x.grad).all() for x in (q, k, v) if x.grad is not None):
            return False, f"non-finite gradient at input scale {scale}"
    return True, ""


def valid_arch(arch: dict, max_nodes: int | None, kernels: Sequence[int] = KERNELS,
               require_mixing: bool = False) -> tuple[bool, str]:
    """Structure, then (require_mixing) every attention graph mixes tokens, then finite values."""
    try:
        check_arch(arch, max_nodes=max_nodes, kernels=kernels)
    except G.GraphError as e:
        return False, str(e)
    for i, s in enumerate(arch["slots"]):
        if s["type"] == "att" and require_mixing and not G.mixes_tokens(s["graph"]):
            return False, f"slot {i}: the attention graph does not mix tokens"
    for i, s in enumerate(arch["slots"]):
        if s["type"] == "att":
            ok, why = numerically_valid(s["graph"])
            if not ok:
                return False, f"slot {i}: {why}"
    return True, ""


# --- random generation and mutation -----------------------------------------------------------

def random_graph(rng: np.random.Generator, ops: Sequence[str], max_nodes: int,
                 choose_op: Callable[[Sequence[str]], str] | None = None, tries: int = 200,
                 require_mixing: bool = False) -> dict:
    """A random graph of 1..max_nodes live nodes ending in an [n,d] node (rejection sampling)."""
    choose_op = choose_op or (lambda cand: cand[int(rng.integers(len(cand)))])
    for _ in range(tries):
        if require_mixing and rng.random() < 0.5:
            g = _attention_shaped(rng, ops, choose_op)
            if g is not None and len(g["nodes"]) <= max_nodes:
                return g
            continue
        size = int(rng.integers(2, max_nodes + 1))
        nodes: list[dict] = []
        shapes: list[G.Shape] = [(G.N, G.D)] * 3
        for _ in range(size):
            op = choose_op(ops)
            prim = G.PRIMITIVES[op]
            ins = [int(rng.integers(len(shapes))) for _ in range(prim.arity)]
            if prim.arity == 2 and op in ("matmul", "cosine", "add", "sub", "mul", "max"):
                # bias the second input towards shape-compatible nodes, else most draws fail
                want = {"matmul": lambda s: s[0] == shapes[ins[0]][1],
                        "cosine": lambda s: s[1] == shapes[ins[0]][1]}.get(op, lambda s: s == shapes[ins[0]])
                ok = [j for j, s in enumerate(shapes) if want(s)]
                if not ok:
                    continue
                ins[1] = ok[int(rng.integers(len(ok)))]
            shape = prim.shape(*(shapes[j] for j in ins))
            if shape is None:
                continue
            nodes.append({"op": op, "in": ins})
            shapes.append(shape)
        ends = [i for i in range(3, len(shapes)) if shapes[i] == (G.N, G.D)]
        if not ends:
            continue
        g = G.normalise({"nodes": nodes, "output": ends[-1]})
        if 1 <= len(g["nodes"]) <= max_nodes and (not require_mixing or G.mixes_tokens(g)):
            return g
    raise RuntimeError(f"no valid random graph in {tries} tries (ops={list(ops)}, max_nodes={max_nodes})")


def _attention_shaped(rng, ops, choose_op) -> dict | None:
    """softmax?(scale?(f(x) g(y)^T)) h(z): random element-wise chains f, g, h over Q/K/V inputs
    (a grammar that always mixes tokens, like every Figure-7 layer); None if `ops` lacks
    matmul/transpose."""
    if "matmul" not in ops or "transpose" not in ops:
        return None
    unary = [o for o in ops if G.PRIMITIVES[o].arity == 1 and o != "transpose"]
    elem = [o for o in ops if o in ("add", "sub", "mul", "max")]
    b = GraphBuilder()

    def chain(x: int) -> int:
        for _ in range(int(rng.integers(0, 3))):
            if elem and rng.random() < 0.3:
                x = b.op(choose_op(elem), x, int(rng.integers(3)))
            elif unary:
                x = b.op(choose_op(unary), x)
        return x

    score = b.op("matmul", chain(int(rng.integers(3))), b.op("transpose", chain(int(rng.integers(3)))))
    if "scale" in ops and rng.random() < 0.7:
        score = b.op("scale", score)
    if "softmax" in ops and rng.random() < 0.85:
        score = b.op("softmax", score)
    return G.normalise(b.build(b.op("matmul", score, chain(int(rng.integers(3))))))


def random_slot(rng, ops, max_nodes, kernels=KERNELS, p_conv: float = 0.5, choose_op=None,
                require_mixing: bool = False) -> dict:
    if rng.random() < p_conv:
        return {"type": "conv", "kernel": int(kernels[int(rng.integers(len(kernels)))])}
    return {"type": "att", "graph": random_graph(rng, ops, max_nodes, choose_op, require_mixing=require_mixing)}


def random_arch(rng, num_layers, ops, max_nodes, kernels=KERNELS, p_conv=0.5, choose_op=None,
                require_mixing: bool = False) -> dict:
    return {"slots": [random_slot(rng, ops, max_nodes, kernels, p_conv, choose_op, require_mixing)
                      for _ in range(num_layers)]}


MUTATIONS = ("replace_op", "rewire", "insert_unary", "remove_unary", "swap_type", "kernel")


def mutate(arch: dict, rng: np.random.Generator, ops: Sequence[str], max_nodes: int,
           kernels: Sequence[int] = KERNELS, choose_op: Callable[[Sequence[str]], str] | None = None,
           choose_kernel: Callable[[Sequence[int]], int] | None = None,
           require_mixing: bool = False) -> tuple[dict, str]:
    """One mutation of a random slot: (child, mutation name). The child may be invalid.

    intra-layer (attention slot): replace_op (same arity; op drawn by `choose_op`),
    rewire (one input to another earlier node), insert_unary (on an edge), remove_unary;
    inter-layer: swap_type (att <-> conv; a new attention slot starts from a random graph),
    kernel (conv slot: another kernel size drawn by `choose_kernel`).
    """
    choose_op = choose_op or (lambda cand: cand[int(rng.integers(len(cand)))])
    choose_kernel = choose_kernel or (lambda cand: int(cand[int(rng.integers(len(cand)))]))
    child = json.loads(json.dumps(arch))
    i = int(rng.integers(len(child["slots"])))
    slot = child["slots"][i]
    if slot["type"] == "conv":
        kind = "swap_type" if rng.random() < 0.5 else "kernel"
        if kind == "kernel":
            others = [k for k in kernels if k != slot["kernel"]]
            slot["kernel"] = choose_kernel(others)
        else:
            child["slots"][i] = {"type": "att", "graph": random_graph(rng, ops, max_nodes, choose_op,
                                                                      require_mixing=require_mixing)}
        return child, kind
    kind = ("replace_op", "rewire", "insert_unary", "remove_unary", "swap_type")[int(rng.integers(5))]
    if kind == "swap_type":
        child["slots"][i] = {"type": "conv", "kernel": choose_kernel(list(kernels))}
        return child, kind
    g = slot["graph"]
    nodes = g["nodes"]
    j = int(rng.integers(len(nodes)))
    if kind == "replace_op":
        arity = G.PRIMITIVES[nodes[j]["op"]].arity
        cand = [o for o in ops if G.PRIMITIVES[o].arity == arity and o != nodes[j]["op"]]
        if cand:
            nodes[j]["op"] = choose_op(cand)
    elif kind == "rewire":
        a = int(rng.integers(len(nodes[j]["in"])))
        nodes[j]["in"][a] = int(rng.integers(3 + j))
    elif kind == "insert_unary":
        a = int(rng.integers(len(nodes[j]["in"])))
        src = nodes[j]["in"][a]
        op = choose_op([o for o in ops if G.PRIMITIVES[o].arity == 1])
        # new node placed right before node j: indices >= 3 + j shift by one
        shift = lambda x: x + 1 if x >= 3 + j else x  # noqa: E731
        new_nodes = []
        for t, nd in enumerate(nodes):
            if t == j:
                new_nodes.append({"op": op, "in": [src]})
            new_nodes.append({"op": nd["op"], "in": [shift(x) for x in nd["in"]]})
        new_nodes[j + 1]["in"][a] = 3 + j
        g = {"nodes": new_nodes, "output": shift(g["output"])}
    elif kind == "remove_unary":
        unary = [t for t, nd in enumerate(nodes) if G.PRIMITIVES[nd["op"]].arity == 1]
        if unary:
            t = unary[int(rng.integers(len(unary)))]
            src = nodes[t]["in"][0]
            fix = lambda x: src if x == 3 + t else x  # noqa: E731
            for nd in nodes:
                nd["in"] = [fix(x) for x in nd["in"]]
            g = {"nodes": nodes, "output": fix(g["output"])}
    try:
        g = G.normalise(g)
    except G.GraphError:
        pass
    child["slots"][i] = {"type": "att", "graph": g}
    return child, kind
