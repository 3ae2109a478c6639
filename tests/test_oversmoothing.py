"""Over-smoothing measures, fusion heads and theory demo on hand-made cases."""
from __future__ import annotations

import math

import pytest
import torch

from arkbench.models import EncoderConfig, FUSIONS, MaskedLM, SequenceClassifier, SpanExtractor
from arkbench.papers.oversmoothing import measures as M
from arkbench.papers.oversmoothing.fusion import ConcatFusion, GateFusion, MaxFusion
from arkbench.papers.oversmoothing.theory import random_stack, run_stack


# --------------------------------------------------------------------------- cosine / d_M
def test_identical_tokens_cos_one_dm_zero():
    H = torch.tensor([[1.0, 2.0, -3.0]]).repeat(5, 1)
    assert M.token_cosine(H).item() == pytest.approx(1.0, abs=1e-6)
    assert M.d_M(H).item() == pytest.approx(0.0, abs=1e-6)
    assert M.rel_d_M(H).item() == pytest.approx(0.0, abs=1e-6)


def test_orthogonal_tokens_cos_zero():
    H = torch.eye(4) * torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    assert M.token_cosine(H).item() == pytest.approx(0.0, abs=1e-7)
    # d_M of e_i-scaled rows: ||H - mean||_F computed by hand
    mean = H.mean(0)
    assert M.d_M(H).item() == pytest.approx(float((H - mean).norm()), rel=1e-6)


def test_hand_computed_pairwise_mean():
    # three tokens: a, a, b with cos(a, b) = 0.6 -> ordered pairs i != j: 2*(1 + .6 + .6)/6
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.6, 0.8])
    H = torch.stack([a, a, b])
    assert M.token_cosine(H).item() == pytest.approx(2 * (1 + 0.6 + 0.6) / 6, abs=1e-6)


def test_padding_excluded_changes_nothing():
    torch.manual_seed(0)
    H = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    Hp = H.clone()
    Hp[0, 3:] = 1e3 * torch.randn(2, 8)          # garbage in the padding
    for f in (M.token_cosine, M.d_M, M.rel_d_M):
        assert torch.allclose(f(H, mask), f(Hp, mask))
        assert f(H[0, :3]).item() == pytest.approx(f(Hp, mask)[0].item(), rel=1e-5)


def test_centred_vs_raw_by_hand():
    # tokens (1, 1) and (1, -1): raw cos 0; the corpus mean is (1, 0), so centred they are
    # (0, 1) and (0, -1): cos -1
    H = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    assert M.token_cosine(H).item() == pytest.approx(0.0, abs=1e-7)
    c = M.corpus_mean(H)
    assert torch.allclose(c, torch.tensor([1.0, 0.0]))
    assert M.token_cosine(H, center=c).item() == pytest.approx(-1.0, abs=1e-6)


def test_content_mask_drops_specials():
    ids = torch.tensor([[101, 7, 8, 102, 0]])
    am = torch.tensor([[1, 1, 1, 1, 0]])
    assert M.content_mask(ids, am, [101, 102]).tolist() == [[False, True, True, False, False]]


# --------------------------------------------------------------------------- attention lambda
def test_lambda_uniform_zero_identity_one():
    n = 6
    uniform = torch.full((1, 2, n, n), 1.0 / n)
    eye = torch.eye(n).expand(1, 2, n, n)
    assert torch.allclose(M.attention_lambda(uniform), torch.zeros(1, 2), atol=1e-6)
    assert torch.allclose(M.attention_lambda(eye), torch.ones(1, 2), atol=1e-5)


def test_lambda_bounds_dm_of_attention():
    torch.manual_seed(1)
    A = torch.randn(3, 7, 7).mul(2).softmax(-1)
    X = torch.randn(7, 5)
    lam = M.attention_lambda(A.unsqueeze(0))[0]
    for k in range(3):
        assert M.d_M(A[k] @ X).item() <= math.sqrt(lam[k]) * M.d_M(X).item() + 1e-5


def test_lambda_matches_eigen_solve_on_random_matrices():
    """lambda = lambda_max(A^T (I - J) A) against numpy's eigen-solve of that very matrix.

    Random row-stochastic A of several sizes (temperature varied so lambda spans (0, 1)
    and beyond); checked against a switched-off feature: returning sqrt(lambda) fails here
    (the fixed points 0 and 1 alone cannot tell lambda from its square root).
    """
    import numpy as np

    rng = np.random.default_rng(0)
    seen = []
    for n, temp in [(2, 1.0), (5, 0.5), (7, 2.0), (9, 4.0), (16, 1.0)]:
        logits = rng.standard_normal((3, n, n)) * temp
        A = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)         # [h, n, n], rows sum to 1
        J = np.full((n, n), 1.0 / n)
        want = [np.linalg.eigvalsh(a.T @ (np.eye(n) - J) @ a).max() for a in A]
        got = M.attention_lambda(torch.tensor(A, dtype=torch.float32).unsqueeze(0))[0]
        assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-6)
        seen += want
    assert min(seen) < 0.3 and max(seen) > 0.5      # away from the fixed points 0 and 1
    # with padding: the same value as the cropped matrix, and a non-stochastic A too
    A = rng.random((2, 6, 6))
    mask = torch.tensor([[1, 1, 0, 1, 1, 0]])
    idx = [0, 1, 3, 4]
    J = np.full((4, 4), 0.25)
    want = [np.linalg.eigvalsh(a[np.ix_(idx, idx)].T @ (np.eye(4) - J) @ a[np.ix_(idx, idx)]).max() for a in A]
    got = M.attention_lambda(torch.tensor(A, dtype=torch.float32).unsqueeze(0), mask)[0]
    assert got.tolist() == pytest.approx(want, rel=1e-4)


def test_lambda_respects_padding():
    n = 4
    A = torch.zeros(1, 1, 6, 6)
    A[0, 0, :n, :n] = 1.0 / n                  # uniform over the 4 real tokens
    A[0, 0, n:, :] = torch.eye(6)[n:]          # padding rows: anything
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert M.attention_lambda(A, mask).item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- LayerNorm contraction
def test_layernorm_contraction_constructed():
    # rows with per-token std >= 2 and gamma = 0.5: d_M shrinks by at least max|gamma| / sigma_min = 1/4
    torch.manual_seed(2)
    d = 16
    ln = torch.nn.LayerNorm(d, eps=1e-12)
    with torch.no_grad():
        ln.weight.fill_(0.5)
        ln.bias.normal_()
    Y = torch.randn(9, d)
    Y = (Y - Y.mean(-1, keepdim=True)) / Y.std(-1, unbiased=False, keepdim=True) * torch.linspace(2, 5, 9)[:, None]
    sig = M.layernorm_sigma(Y, 1e-12)
    assert sig.min().item() == pytest.approx(2.0, rel=1e-4)
    out = ln(Y).detach()
    assert M.d_M(out).item() <= 0.5 / sig.min().item() * M.d_M(Y).item() + 1e-6
    # common sigma: exactly gamma / sigma
    Yc = Y / torch.linspace(2, 5, 9)[:, None] * 3.0
    assert M.d_M(ln(Yc).detach()).item() == pytest.approx(0.5 / 3.0 * M.d_M(Yc).item(), rel=1e-4)


def test_gelu_lipschitz():
    x = torch.linspace(-6, 6, 200001, requires_grad=True)
    torch.nn.functional.gelu(x).sum().backward()
    assert x.grad.abs().max().item() == pytest.approx(M.gelu_lipschitz(), abs=1e-4)


# --------------------------------------------------------------------------- theory demo
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_bound_holds_per_layer_and_sequence(norm):
    enc = random_stack(8, 32, 2, gain=1.5, gamma=1.0, norm_position=norm, seed=3)
    tr = M.trace_encoder(enc, inputs=torch.randn(3, 12, 32, generator=torch.Generator().manual_seed(0)))
    recs = M.layer_bounds(enc, tr)
    assert len(recs) == 8
    for rec in recs:
        # every ratio and bound is a finite number: an inf or nan bound would hold vacuously
        assert torch.isfinite(rec["ratio"]).all() and torch.isfinite(rec["v"]).all(), rec
        assert (rec["ratio"] > 0).all() and (rec["v"] > 0).all()
        assert (rec["ratio"] <= rec["v"] * (1 + 1e-4)).all()


def test_collapse_postln_large_gain_not_preln():
    post = run_stack(random_stack(12, 32, 2, gain=2.0, gamma=1.0, norm_position="post", seed=0), 16, 4)
    pre = run_stack(random_stack(12, 32, 2, gain=2.0, gamma=1.0, norm_position="pre", seed=0), 16, 4)
    assert post["rel_dm_last"] < 0.05 and post["cos_last"] > 0.99
    assert pre["rel_dm_last"] > 0.1
    assert post["bound_holds_fraction"] == 1.0 and pre["bound_holds_fraction"] == 1.0
    small = run_stack(random_stack(12, 32, 2, gain=0.5, gamma=1.0, norm_position="post", seed=0), 16, 4)
    assert small["rel_dm_last"] > post["rel_dm_last"]


# --------------------------------------------------------------------------- fusion
def _cfg(**kw):
    return EncoderConfig(vocab_size=50, hidden_size=16, num_layers=3, num_heads=2, intermediate_size=32,
                         max_position_embeddings=16, hidden_dropout_prob=0.0, attention_dropout_prob=0.0, **kw)


def _hs(cfg, B=2, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, T, cfg.hidden_size, generator=g, requires_grad=True)
                 for _ in range(cfg.num_layers + 1))


def test_registered():
    for name in ("concat", "max", "gate"):
        assert name in FUSIONS


def test_max_equals_torch_max():
    cfg = _cfg()
    hs = _hs(cfg)
    out, extras = MaxFusion(cfg)(hs, None)
    assert extras is None
    assert torch.equal(out, torch.stack(hs[1:]).max(0).values)
    out0, _ = MaxFusion(cfg, include_embeddings=True)(hs, None)
    assert torch.equal(out0, torch.stack(hs).max(0).values)


def test_concat_equals_manual_linear():
    cfg = _cfg()
    hs = _hs(cfg)
    f = ConcatFusion(cfg)
    out, _ = f(hs, None)
    W, b = f.proj.weight, f.proj.bias
    D = cfg.hidden_size
    manual = sum(hs[l + 1] @ W[:, l * D:(l + 1) * D].T for l in range(cfg.num_layers)) + b
    assert torch.allclose(out, manual, atol=1e-6)
    last, _ = ConcatFusion(cfg, init="last")(hs, None)
    assert torch.allclose(last, hs[-1], atol=1e-6)
    mean, _ = ConcatFusion(cfg, init="mean", include_embeddings=True)(hs, None)
    assert torch.allclose(mean, torch.stack(hs).mean(0), atol=1e-6)


def test_gate_softmax_sums_to_one_and_starts_at_mean():
    cfg = _cfg()
    hs = _hs(cfg)
    g = GateFusion(cfg)
    out, ex = g(hs, None)
    w = ex["gate_weights"]
    assert w.shape == (2, 5, cfg.num_layers)
    assert torch.allclose(w.sum(-1), torch.ones(2, 5), atol=1e-6)
    assert torch.allclose(out, torch.stack(hs[1:]).mean(0), atol=1e-6)
    with torch.no_grad():
        g.weight.normal_()
    out, ex = g(hs, None)
    w = ex["gate_weights"]
    assert torch.allclose(w.sum(-1), torch.ones(2, 5), atol=1e-5)
    assert w.std() > 0                                      # token-wise: weights differ per token
    manual = (w.unsqueeze(-1) * torch.stack(hs[1:], 2)).sum(2)
    assert torch.allclose(out, manual, atol=1e-5)


def test_gate_options():
    cfg = _cfg()
    hs = _hs(cfg)
    s = GateFusion(cfg, activation="sigmoid", include_embeddings=True, shared=False)
    out, ex = s(hs, None)
    assert ex["gate_weights"].shape == (2, 5, cfg.num_layers + 1)
    assert s.weight.shape == (cfg.num_layers + 1, cfg.hidden_size)
    assert ((ex["gate_weights"] > 0) & (ex["gate_weights"] < 1)).all()
    # bias log(1/(L-1)): sigmoid weights sum to one at initialisation
    assert torch.allclose(ex["gate_weights"].sum(-1), torch.ones(2, 5), atol=1e-5)
    with pytest.raises(ValueError):
        GateFusion(cfg, activation="tanh")


@pytest.mark.parametrize("name", ["concat", "max", "gate"])
def test_fusion_heads_shapes_and_gradients(name):
    cfg = _cfg()
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (2, 7))
    am = torch.ones_like(ids)
    am[1, 5:] = 0
    clf = SequenceClassifier(cfg, num_labels=3, fusion=name)
    out = clf(ids, am, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.fused.shape == (2, 7, 16)
    out.loss.backward()
    assert clf.encoder.layers[0].mixer.query.weight.grad.abs().sum() > 0      # the first layer learns too
    for p in clf.fusion.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    span = SpanExtractor(cfg, fusion=name)
    so = span(ids, am, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    assert so.logits.shape == (2, 7, 2)
    so.loss.backward()
    mlm = MaskedLM(cfg, fusion=name)                 # fusion during pre-training
    labels = torch.full_like(ids, -100)
    labels[:, 2] = 7
    mo = mlm(ids, am, labels=labels)
    mo.loss.backward()
    if name == "gate":
        assert out.extras["gate_weights"].shape == (2, 7, cfg.num_layers)


def test_fast_spectral_norms_match_svd():
    torch.manual_seed(4)
    W = torch.randn(40, 24)
    assert M._spectral(W) == pytest.approx(float(torch.linalg.svdvals(W)[0]), rel=1e-6)
    cfg = _cfg()
    from arkbench.models.mixers import MultiHeadSelfAttention

    mix = MultiHeadSelfAttention(cfg)
    dh = cfg.hidden_size // cfg.num_heads
    got = M._head_norms(mix, dh)
    for k in range(cfg.num_heads):
        prod = mix.value.weight[k * dh:(k + 1) * dh].T @ mix.out.weight[:, k * dh:(k + 1) * dh].T
        assert got[k].item() == pytest.approx(float(torch.linalg.svdvals(prod.detach())[0]), rel=1e-5)


def test_grid_average_puts_every_task_on_a_0_100_scale():
    """GLUE fractions are x100 before averaging with SQuAD's percent F1 (GLUE-style average)."""
    from arkbench.papers.oversmoothing.grid import aggregate_tasks

    def agg(v0, v1):
        sim = {"mean": 0.5, "std": 0.0, "n": 2}
        return {"metric": "x", "mean": (v0 + v1) / 2, "std": 0.0, "per_seed": {"0": v0, "1": v1},
                "sim_fused_centred": sim, "sim_fused_raw": sim, "sim_last_centred": sim}

    per_task = {"cola": {"last": agg(0.40, 0.60), "gate": agg(0.50, 0.70)},
                "squad": {"last": agg(20.0, 30.0), "gate": agg(20.0, 30.0)}}
    out = aggregate_tasks(per_task, ["last", "gate"])
    assert out["last"]["mean"] == pytest.approx(((40 + 20) / 2 + (60 + 30) / 2) / 2)
    assert out["gate"]["minus_last"]["mean"] == pytest.approx(5.0)
