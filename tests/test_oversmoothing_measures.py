"""Edge cases of the over-smoothing measures (arkbench.papers.oversmoothing.measures) against
direct numpy computations: one sequence given as [T, D] with a mask, a single kept token,
small-norm tokens, masked tokens in corpus means and LayerNorm sigmas, empty sequences,
batched Gram eigenvalues, and the weight-factor cache.

Written against mutmut's survivors (docs/mutation.md); each assertion failed on at least one
surviving mutant. Pure tensor functions on tiny inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arkbench.models import EncoderConfig
from arkbench.papers.oversmoothing import measures as M


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _np_cos(X):
    """Mean cosine over ordered pairs i != j, directly."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    n = len(U)
    G = U @ U.T
    return (G.sum() - np.trace(G)) / (n * (n - 1))


def _np_dm(X):
    return np.linalg.norm(X - X.mean(0, keepdims=True))


def test_one_sequence_with_a_mask_equals_the_batched_call():
    H = _rand(6, 4)
    mask = torch.tensor([1, 1, 0, 1, 1, 0])
    keep = H[mask.bool()].double().numpy()
    assert M.token_cosine(H, mask).item() == pytest.approx(_np_cos(keep), abs=1e-6)
    assert M.d_M(H, mask).item() == pytest.approx(_np_dm(keep), rel=1e-5)
    assert M.corpus_mean(H, mask).numpy() == pytest.approx(keep.mean(0), abs=1e-6)
    assert M.token_cosine(H, mask).shape == (1,)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError) as e:
        M.d_M(torch.zeros(5))
    assert str(e.value) == "expected hidden states [B,T,D] or [T,D], got shape (5,)"
    with pytest.raises(ValueError) as e:
        M.d_M(torch.zeros(2, 5, 3), torch.ones(2, 4))
    assert str(e.value) == "mask shape (2, 4) does not match hidden states (2, 5)"


def test_default_mask_is_boolean_all_true():
    H, m = M._as_batch(torch.zeros(2, 3, 4, dtype=torch.float64), None)
    assert m.dtype == torch.bool and m.all() and m.shape == (2, 3) and H.dtype == torch.float32


def test_corpus_mean_over_kept_tokens_of_all_sequences():
    H = _rand(2, 3, 4)
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]])
    keep = H[mask.bool()].numpy()
    assert M.corpus_mean(H, mask).numpy() == pytest.approx(keep.mean(0), abs=1e-6)
    one = torch.tensor([[0, 1, 0], [0, 0, 0]])                        # one kept token: its own vector
    assert M.corpus_mean(H, one).numpy() == pytest.approx(H[0, 1].numpy(), abs=1e-7)


def test_small_norm_tokens_cosine_and_rel_dm_are_scale_free():
    H = _rand(2, 5, 3) * 1e-3                                          # |h| << 1
    for b in range(2):
        X = H[b].double().numpy()
        assert M.token_cosine(H)[b].item() == pytest.approx(_np_cos(X), abs=1e-5)
    assert M.rel_d_M(H).numpy() == pytest.approx(M.rel_d_M(H * 1e3).numpy(), rel=1e-4)
    X = H[0].double().numpy()
    assert M.rel_d_M(H)[0].item() == pytest.approx(_np_dm(X) / np.linalg.norm(X), rel=1e-4)


def test_single_kept_token_has_zero_distance():
    H = _rand(2, 4, 3) + 5.0
    mask = torch.tensor([[0, 1, 0, 0], [1, 1, 1, 1]])
    dm = M.d_M(H, mask)
    assert dm[0].item() == 0.0
    assert dm[1].item() == pytest.approx(_np_dm(H[1].double().numpy()), rel=1e-5)
    assert torch.isnan(M.token_cosine(H, mask)[0]) and not torch.isnan(M.token_cosine(H, mask)[1])


def _np_lambda(P):
    C = P - P.mean(0, keepdims=True)
    return np.linalg.eigvalsh(C.T @ C).max()


def test_lambda_of_one_sequence_with_a_mask():
    A = torch.softmax(_rand(2, 5, 5), -1)                              # [h, T, T]
    mask = torch.tensor([1, 0, 1, 1, 1])
    got = M.attention_lambda(A, mask)
    assert got.shape == (1, 2)
    idx = [0, 2, 3, 4]
    for k in range(2):
        P = A[k].double().numpy()[np.ix_(idx, idx)]
        assert got[0, k].item() == pytest.approx(_np_lambda(P), rel=1e-5)
    assert torch.equal(got, M.attention_lambda(A[None], mask[None]))
    nomask = M.attention_lambda(A)
    assert nomask.shape == (1, 2)
    assert nomask[0, 1].item() == pytest.approx(_np_lambda(A[1].double().numpy()), rel=1e-5)


def test_lambda_empty_and_single_token_sequences():
    A = torch.softmax(_rand(3, 2, 4, 4), -1)
    mask = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 0], [1, 1, 1, 1]])
    lam = M.attention_lambda(A, mask)
    assert torch.isnan(lam[0]).all()                                   # no token: undefined
    assert (lam[1] == 0).all()                                         # one token: nothing to spread
    for k in range(2):                                                 # later sequences still computed
        assert lam[2, k].item() == pytest.approx(_np_lambda(A[2, k].double().numpy()), rel=1e-5)


def test_layernorm_sigma_adds_eps_inside_the_root():
    x = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]])                       # variances 1 and 0
    assert M.layernorm_sigma(x, 0.5).numpy() == pytest.approx(np.sqrt([[1.5, 0.5]]))


@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 3, 5), (4, 4), (6, 2)])
def test_gram_top_is_the_squared_spectral_norm(shape):
    C = _rand(*shape, seed=1).double()
    want = torch.linalg.matrix_norm(C, ord=2) ** 2
    assert torch.allclose(M._gram_top(C), want, rtol=1e-10)


def test_masked_min_mean():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[True, True, False], [False, True, False]])
    lo, mean = M._masked_min_mean(v, m)
    assert lo.tolist() == [1.0, 5.0]
    assert mean.tolist() == [1.5, 5.0]


def _cfg(**kw):
    return EncoderConfig(vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                         max_position_embeddings=16, hidden_dropout_prob=0.0, attention_dropout_prob=0.0, **kw)


def test_weight_factors_follow_in_place_weight_changes_and_layers():
    from arkbench.models.encoder import Encoder

    cfg = _cfg()
    enc = Encoder(cfg)
    l0, l1 = enc.layers
    heads0, f0 = M._weight_factors(l0, cfg, 1.0)
    heads1, f1 = M._weight_factors(l1, cfg, 1.0)
    assert f0 != f1                                                    # each layer its own entry
    assert f0 == pytest.approx(M._spectral(l0.ffn.up.weight) * M._spectral(l0.ffn.down.weight), rel=1e-9)
    with torch.no_grad():
        l0.ffn.up.weight.mul_(2.0)                                     # in place: same tensor, new version
    assert M._weight_factors(l0, cfg, 1.0)[1] == pytest.approx(2 * f0, rel=1e-9)
    with torch.no_grad():
        l0.mixer.value.weight.mul_(3.0)
    assert M._weight_factors(l0, cfg, 1.0)[0].numpy() == pytest.approx(3 * heads0.numpy(), rel=1e-6)


def test_non_attention_layer_has_no_head_norms_and_nan_bound():
    from arkbench.models.encoder import Encoder

    cfg = _cfg(mixers=["conv", "attention"])
    enc = Encoder(cfg)
    heads, f = M._weight_factors(enc.layers[0], cfg, 1.0)
    assert heads is None and f > 0
    tr = M.trace_encoder(enc, inputs=_rand(2, 5, 8))
    recs = M.layer_bounds(enc, tr)
    assert torch.isnan(recs[0]["v"]).all() and torch.isfinite(recs[1]["v"]).all()
