"""AutoBERT-Zero search space: primitive shape rules, Figure-7 layers vs direct torch
formulas, hash invariance, NaN-op rejection, compiled mixers inside the encoder."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arkbench.models import EncoderConfig, MaskedLM
from arkbench.papers.autobert_zero import graph as G
from arkbench.papers.autobert_zero import space as S
from arkbench.papers.autobert_zero.modules import ConvSlot, GraphAttention

N_, D_ = G.N, G.D


# --- shape rules -------------------------------------------------------------------------

@pytest.mark.parametrize("op", G.UNARY)
def test_unary_shape_rules(op):
    for shape in [(N_, D_), (N_, N_), (D_, N_), (D_, D_)]:
        got = G.PRIMITIVES[op].shape(shape)
        assert got == ((shape[1], shape[0]) if op == "transpose" else shape)


@pytest.mark.parametrize("op", G.BINARY)
def test_binary_shape_rules(op):
    rule = G.PRIMITIVES[op].shape
    shapes = [(N_, D_), (D_, N_), (N_, N_), (D_, D_)]
    for a in shapes:
        for b in shapes:
            got = rule(a, b)
            if op == "matmul":
                want = (a[0], b[1]) if a[1] == b[0] else None
            elif op == "cosine":
                want = (a[0], b[0]) if a[1] == b[1] else None
            else:
                want = a if a == b else None
            assert got == want, (op, a, b)


@pytest.mark.parametrize("op", G.UNARY + G.BINARY)
def test_symbolic_shape_matches_runtime_shape(op):
    """Every primitive, on every compatible input shape, yields the shape inference's shape
    (n=6, d=4 so a swapped axis would show)."""
    n, d = 6, 4
    size = {N_: n, D_: d}
    b = G.GraphBuilder()
    pool = {(N_, D_): b.q, (D_, N_): b.op("transpose", b.k), (N_, N_): b.op("matmul", b.q, b.op("transpose", b.k)),
            (D_, D_): b.op("matmul", b.op("transpose", b.k), b.v)}
    prim = G.PRIMITIVES[op]
    args_list = [[s] for s in pool] if prim.arity == 1 else [[s, t] for s in pool for t in pool]
    checked = 0
    for args in args_list:
        want = prim.shape(*args)
        if want is None:
            continue
        bb = G.GraphBuilder()
        bb.nodes = [dict(x) for x in b.nodes]
        out = bb.op(op, *(pool[s] for s in args))
        g = bb.build(out)
        assert G.infer_shapes(g)[out] == want
        q, k, v = (torch.rand(1, 1, n, d) + 0.5 for _ in range(3))
        y = G.evaluate(g, q, k, v)
        assert tuple(y.shape[-2:]) == (size[want[0]], size[want[1]])
        checked += 1
    assert checked


def test_bad_graphs_are_named():
    with pytest.raises(G.GraphError, match=r"node 3 \(matmul\): incompatible input shapes \[n,d\] x \[n,d\]"):
        G.infer_shapes({"nodes": [{"op": "matmul", "in": [0, 1]}], "output": 3})
    with pytest.raises(G.GraphError, match="node 3: unknown op 'fft'"):
        G.infer_shapes({"nodes": [{"op": "fft", "in": [0]}], "output": 3})
    with pytest.raises(G.GraphError, match="not an earlier node"):
        G.infer_shapes({"nodes": [{"op": "neg", "in": [3]}], "output": 3})
    with pytest.raises(G.GraphError, match=r"output node 4 has shape \[n,n\], needs \[n,d\]"):
        G.check_structure({"nodes": [{"op": "transpose", "in": [1]}, {"op": "matmul", "in": [0, 3]}], "output": 4})
    with pytest.raises(G.GraphError, match="max_nodes=3"):
        G.check_structure(S.vanilla_graph(), max_nodes=3)


# --- Figure 7 and vanilla attention against direct formulas -------------------------------

def _direct(layer: int, q, k, v, d):
    sm = lambda x: x.softmax(-1)  # noqa: E731
    if layer == 2:
        return sm(q @ F.softplus(k).transpose(-1, -2) / math.sqrt(d)) @ (q + k)
    if layer == 4:
        s = F.logsigmoid(q) + q + k
        return sm(q @ (-F.logsigmoid(s)).transpose(-1, -2) / math.sqrt(d)) @ q
    if layer in (6, 8):
        return sm(q @ F.softplus(-k).transpose(-1, -2) / math.sqrt(d)) @ q
    ssqrt = torch.sign(k) * (torch.sqrt(k.abs() + G.SQRT_EPS) - math.sqrt(G.SQRT_EPS))
    if layer == 10:
        key = ssqrt + (F.softsign(F.softsign(k) / math.sqrt(d)) + v)
    else:
        key = ssqrt + (v + k / math.sqrt(d))
    return sm((q @ key.transpose(-1, -2)) / math.sqrt(d)) @ v


@pytest.mark.parametrize("layer", [2, 4, 6, 8, 10, 12])
def test_figure7_layers_compute_transcribed_formulas(layer):
    torch.manual_seed(layer)
    q, k, v = (torch.randn(2, 3, 9, 5, dtype=torch.float64) for _ in range(3))
    g = S.figure7_graphs()[layer]
    got = G.evaluate(g, q, k, v)
    torch.testing.assert_close(got, _direct(layer, q, k, v, 5), rtol=1e-10, atol=1e-10)


def test_figure7_value_sharing_and_vanilla():
    used = {layer: G.used_inputs(g) for layer, g in S.figure7_graphs().items()}
    assert all("v" not in used[layer] for layer in (2, 4, 6, 8))
    assert all("v" in used[layer] for layer in (10, 12))
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 7, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(G.evaluate(S.vanilla_graph(), q, k, v),
                               F.scaled_dot_product_attention(q, k, v), rtol=1e-10, atol=1e-10)


def test_vanilla_graph_mixer_equals_bert_attention():
    """The compiled vanilla graph with the attention mixer's weights gives the same layer output
    (padding included)."""
    from arkbench.models.mixers import MultiHeadSelfAttention
    from arkbench.models.encoder import padding_bias

    cfg = EncoderConfig(hidden_size=16, num_heads=4, num_layers=1, attention_dropout_prob=0.0)
    torch.manual_seed(1)
    ref = MultiHeadSelfAttention(cfg)
    ours = GraphAttention(cfg, graph=S.vanilla_graph())
    ours.load_state_dict(ref.state_dict(), strict=False)
    assert set(ours.state_dict()) == {k for k in ref.state_dict()}
    x = torch.randn(3, 8, 16)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, 5:] = 0
    bias = padding_bias(mask, x.dtype)
    ref.eval()
    torch.testing.assert_close(ours(x, bias)[0], ref(x, bias)[0], rtol=1e-5, atol=1e-6)


def test_shared_v_saves_parameters():
    cfg = EncoderConfig(hidden_size=32, num_heads=4, num_layers=1)
    n_vanilla = sum(p.numel() for p in GraphAttention(cfg, graph=S.vanilla_graph()).parameters())
    n_shared = sum(p.numel() for p in GraphAttention(cfg, graph=S.figure7_graphs()[6]).parameters())
    assert n_vanilla - n_shared == 32 * 32 + 32          # one d x d projection and its bias


def test_autobert_zero_base_preset_builds_and_runs():
    arch = S.autobert_zero_base()
    assert [s["type"] for s in arch["slots"]] == ["conv", "att"] * 6
    assert [s["kernel"] for s in arch["slots"][::2]] == [65, 9, 3, 7, 7, 3]
    cfg = S.encoder_config(arch, dict(vocab_size=100, hidden_size=32, num_heads=4, intermediate_size=64,
                                      max_position_embeddings=80))
    model = MaskedLM(cfg)
    ids = torch.randint(5, 100, (2, 70))
    mask = torch.ones_like(ids)
    mask[0, 60:] = 0
    out = model(ids, attention_mask=mask, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    # a padded position must not change the real tokens' outputs (every mixer masks padding)
    model.eval()
    ids2 = ids.clone()
    ids2[0, 60:] = 7
    h1 = model.encoder(ids, mask).last_hidden_state[0, :60]
    h2 = model.encoder(ids2, mask).last_hidden_state[0, :60]
    torch.testing.assert_close(h1, h2, rtol=1e-5, atol=1e-5)


# --- canonical hash --------------------------------------------------------------------------

def _reorder(graph: dict, rng: random.Random) -> dict:
    """A random other topological order of the same nodes, indices remapped."""
    nodes = graph["nodes"]
    n_in = len(G.INPUTS)
    placed: list[int] = []
    remaining = list(range(len(nodes)))
    while remaining:
        ready = [i for i in remaining if all(j < n_in or (j - n_in) in placed for j in nodes[i]["in"])]
        pick = rng.choice(ready)
        placed.append(pick)
        remaining.remove(pick)
    new_index = {n_in + old: n_in + new for new, old in enumerate(placed)}
    new_index.update({i: i for i in range(n_in)})
    new_nodes = [{"op": nodes[old]["op"], "in": [new_index[j] for j in nodes[old]["in"]]} for old in placed]
    return {"nodes": new_nodes, "output": new_index[graph["output"]]}


def test_hash_invariant_to_node_order_and_commutation():
    rng = random.Random(0)
    graphs = list(S.figure7_graphs().values()) + [S.vanilla_graph()]
    nprng = np.random.default_rng(0)
    graphs += [S.random_graph(nprng, G.UNARY + G.BINARY, 8) for _ in range(20)]
    for g in graphs:
        h = G.graph_hash(g)
        for _ in range(5):
            g2 = _reorder(g, rng)
            assert G.graph_hash(g2) == h
            torch.manual_seed(0)
            q, k, v = (torch.randn(1, 1, 5, 3, dtype=torch.float64) for _ in range(3))
            torch.testing.assert_close(G.evaluate(g2, q, k, v), G.evaluate(g, q, k, v), equal_nan=True)
    # add is commutative, sub is not; double negation cancels
    b1, b2 = G.GraphBuilder(), G.GraphBuilder()
    assert G.graph_hash(b1.build(b1.op("add", 0, 1))) == G.graph_hash(b2.build(b2.op("add", 1, 0)))
    b1, b2 = G.GraphBuilder(), G.GraphBuilder()
    assert G.graph_hash(b1.build(b1.op("sub", 0, 1))) != G.graph_hash(b2.build(b2.op("sub", 1, 0)))
    b1 = G.GraphBuilder()
    assert G.canonical(b1.build(b1.op("add", b1.op("neg", b1.op("neg", 0)), 1))) == "add(k,q)"
    # distinct graphs hash differently
    hashes = {G.graph_hash(g) for g in S.figure7_graphs().values()}
    assert len(hashes) == 5                                   # layers 6 and 8 are the same graph


# --- validity --------------------------------------------------------------------------------

def test_nan_producing_graph_is_rejected():
    b = G.GraphBuilder()
    bad = b.build(b.op("matmul", b.op("softmax", b.op("matmul", b.q, b.op("transpose", b.k))), b.op("log", b.v)))
    ok, why = S.numerically_valid(bad)
    assert not ok and "non-finite" in why
    ok, _ = S.numerically_valid(S.vanilla_graph())
    assert ok
    # the same graph with a safe op in place of log passes: the check looks at values, not names
    b = G.GraphBuilder()
    good = b.build(b.op("matmul", b.op("softmax", b.op("matmul", b.q, b.op("transpose", b.k))), b.op("sqrt", b.v)))
    assert S.numerically_valid(good)[0]
    arch = {"slots": [{"type": "att", "graph": bad}, {"type": "conv", "kernel": 3}]}
    ok, why = S.valid_arch(arch, max_nodes=8)
    assert not ok and why.startswith("slot 0")


def test_random_graphs_and_mutations_stay_well_formed():
    rng = np.random.default_rng(3)
    ops = G.UNARY + G.BINARY
    arch = S.random_arch(rng, 4, ops, 8)
    S.check_arch(arch, num_layers=4, max_nodes=8)
    kinds = set()
    for _ in range(200):
        child, kind = S.mutate(arch, rng, ops, 8)
        kinds.add(kind)
        try:
            S.check_arch(child, max_nodes=8)
        except G.GraphError:
            continue
        arch = child
    assert kinds == set(S.MUTATIONS)


# --- conv slots ------------------------------------------------------------------------------

def test_light_conv_is_softmax_normalised_head_shared_kernel():
    cfg = EncoderConfig(hidden_size=8, num_heads=2, num_layers=1)
    m = ConvSlot(cfg, kernel_size=3, conv_type="light")
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]]))
    x = torch.randn(1, 6, 8)
    g = F.glu(m.glu_in(x), dim=-1)[0]                          # [T, D]
    w = m.weight.softmax(-1)
    gp = F.pad(g, (0, 0, 1, 1))
    want = torch.stack([sum(w[c // 4, j] * gp[t + j, c] for j in range(3)) for t in range(6) for c in range(8)])
    want = m.out(want.view(6, 8))
    torch.testing.assert_close(m(x)[0][0], want, rtol=1e-5, atol=1e-6)


def test_dynamic_conv_matches_light_when_kernels_are_constant():
    cfg = EncoderConfig(hidden_size=8, num_heads=2, num_layers=1)
    light = ConvSlot(cfg, kernel_size=5, conv_type="light")
    dyn = ConvSlot(cfg, kernel_size=5, conv_type="dynamic")
    dyn.glu_in.load_state_dict(light.glu_in.state_dict())
    dyn.out.load_state_dict(light.out.state_dict())
    with torch.no_grad():
        light.weight.normal_()
        dyn.kernel_proj.weight.zero_()
        dyn.kernel_proj.bias.copy_(light.weight.reshape(-1))  # position-independent kernels
    x = torch.randn(2, 11, 8)
    torch.testing.assert_close(dyn(x)[0], light(x)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kernel_size=4 must be a positive odd"):
        ConvSlot(cfg, kernel_size=4)


def test_padding_never_reaches_real_tokens_through_unnormalised_graphs():
    """(Q K^T) V has no softmax to mask: the token-contracting matmul must zero padded rows.
    Checked to fail with that zeroing switched off in graph.evaluate."""
    b = G.GraphBuilder()
    g = b.build(b.op("matmul", b.op("matmul", b.q, b.op("transpose", b.k)), b.v))
    arch = {"slots": [{"type": "att", "graph": g}, {"type": "conv", "kernel": 5},
                      {"type": "att", "graph": S.figure7_graphs()[2]}]}
    cfg = S.encoder_config(arch, dict(vocab_size=50, hidden_size=16, num_heads=2, intermediate_size=32,
                                      max_position_embeddings=16))
    torch.manual_seed(0)
    model = MaskedLM(cfg).eval()
    ids = torch.randint(5, 50, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    ids2 = ids.clone()
    ids2[1, 8:] = 9
    h1 = model.encoder(ids, mask).last_hidden_state[1, :8]
    h2 = model.encoder(ids2, mask).last_hidden_state[1, :8]
    torch.testing.assert_close(h1, h2, rtol=1e-5, atol=1e-5)


def test_token_mixing_rule():
    """Vanilla and every Figure-7 graph mix tokens; a per-token map of V does not and is rejected
    when require_mixing is on (off: accepted)."""
    assert G.mixes_tokens(S.vanilla_graph())
    assert all(G.mixes_tokens(g) for g in S.figure7_graphs().values())
    b = G.GraphBuilder()
    per_token = b.build(b.op("tanh", b.op("scale", b.op("sqrt", b.v))))
    assert not G.mixes_tokens(per_token)
    b = G.GraphBuilder()      # Q (K^T softmax-normalised over tokens): [n,d] x [d,n]... contracts over d,
    # but the softmax over the token axis of K^T already mixes tokens
    assert G.mixes_tokens(b.build(b.op("matmul", b.op("matmul", b.q, b.op("softmax", b.op("transpose", b.k))), b.v)))
    arch = {"slots": [{"type": "att", "graph": per_token}]}
    assert S.valid_arch(arch, 8)[0]
    ok, why = S.valid_arch(arch, 8, require_mixing=True)
    assert not ok and "does not mix tokens" in why
    rng = np.random.default_rng(0)
    assert all(G.mixes_tokens(S.random_graph(rng, G.UNARY + G.BINARY, 8, require_mixing=True)) for _ in range(20))
