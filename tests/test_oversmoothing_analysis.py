"""Over-smoothing analysis against direct numpy computations: the per-layer curves over
several batches (corpus-mean centring across batches, padding and [CLS]/[SEP] left out),
the probe's sentence features and its error per layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arkbench.models import EncoderConfig, MaskedLM
from arkbench.papers.oversmoothing.analysis import layer_curves
from arkbench.papers.oversmoothing.probe import layer_features, probe_errors, summarise_probe

CLS, SEP = 2, 3


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = EncoderConfig(vocab_size=60, hidden_size=16, num_layers=3, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_dropout_prob=0.0)
    enc = MaskedLM(cfg).encoder.eval()
    g = torch.Generator().manual_seed(1)
    batches = []
    for B, T, lens in ((3, 9, (9, 6, 4)), (2, 7, (7, 5))):       # two batches, different padding
        ids = torch.randint(5, 60, (B, T), generator=g)
        am = torch.zeros(B, T, dtype=torch.long)
        for i, n in enumerate(lens):
            am[i, :n] = 1
            ids[i, 0], ids[i, n - 1] = CLS, SEP
            ids[i, n:] = 0
        batches.append({"input_ids": ids, "attention_mask": am})
    with torch.no_grad():
        hs = [[h.double().numpy() for h in enc(b["input_ids"], b["attention_mask"]).hidden_states]
              for b in batches]                                                # [batch][layer] -> [B,T,D]
    return enc, batches, hs


def _cos_pairs(X: np.ndarray) -> float:
    """Mean cosine over ordered pairs i != j of the rows of X, by a double loop."""
    n = len(X)
    tot = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                tot += X[i] @ X[j] / (np.linalg.norm(X[i]) * np.linalg.norm(X[j]))
    return tot / (n * (n - 1))


def test_layer_curves_match_direct_numpy(tiny):
    """cos_raw, cos_centred (centre = mean over every kept token of every batch, per
    layer), their content-only versions and rel_dm, averaged over sequences.

    Checked against a switched-off feature: centring each batch on its own mean instead
    of the corpus mean moves cos_centred by > 1e-2 here and fails."""
    enc, batches, hs = tiny
    with torch.no_grad():
        got = layer_curves(enc, batches, [CLS, SEP], bounds=False)
    L1 = len(hs[0])
    assert got["num_layers"] == L1 - 1 and got["num_sequences"] == 5
    for layer in range(L1):
        rows_all, rows_con = [], []                      # per sequence: its kept token vectors
        for b, h in zip(batches, hs):
            for i in range(h[layer].shape[0]):
                am = b["attention_mask"][i].bool().numpy()
                con = am & ~np.isin(b["input_ids"][i].numpy(), [CLS, SEP])
                rows_all.append(h[layer][i][am])
                rows_con.append(h[layer][i][con])
        mu_all = np.concatenate(rows_all).mean(0)
        mu_con = np.concatenate(rows_con).mean(0)
        want = {
            "cos_raw": np.mean([_cos_pairs(X) for X in rows_all]),
            "cos_raw_content": np.mean([_cos_pairs(X) for X in rows_con]),
            "cos_centred": np.mean([_cos_pairs(X - mu_all) for X in rows_all]),
            "cos_centred_content": np.mean([_cos_pairs(X - mu_con) for X in rows_con]),
            "rel_dm": np.mean([np.linalg.norm(X - X.mean(0)) / np.linalg.norm(X) for X in rows_all]),
        }
        for k, v in want.items():
            assert got[k][layer] == pytest.approx(v, rel=1e-4, abs=1e-5), (k, layer)
    # centring per batch instead of over the corpus gives a different number
    per_batch = []
    for b, h in zip(batches, hs):
        rows = [h[1][i][b["attention_mask"][i].bool().numpy()] for i in range(h[1].shape[0])]
        mu = np.concatenate(rows).mean(0)
        per_batch += [_cos_pairs(X - mu) for X in rows]
    assert abs(np.mean(per_batch) - got["cos_centred"][1]) > 1e-3


def test_probe_features_are_the_content_token_mean(tiny):
    enc, batches, hs = tiny
    feats = layer_features(enc, batches, [CLS, SEP], pool="mean")
    cls = layer_features(enc, batches, [CLS, SEP], pool="cls")
    assert feats.shape == (len(hs[0]), 5, 16)
    n = 0
    for b, h in zip(batches, hs):
        for i in range(h[0].shape[0]):
            am = b["attention_mask"][i].bool().numpy()
            con = am & ~np.isin(b["input_ids"][i].numpy(), [CLS, SEP])
            for layer in range(len(h)):
                np.testing.assert_allclose(feats[layer, n], h[layer][i][con].mean(0), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(cls[layer, n], h[layer][i][0], rtol=1e-6, atol=1e-7)
            n += 1
    with pytest.raises(ValueError, match="pool='max'"):
        layer_features(enc, batches, [CLS, SEP], pool="max")


def _ridge_error(Xtr, ytr, Xte, yte, alpha):
    """1 - Pearson r of ridge regression on standardised features, solved in closed form."""
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1
    A, Bt = (Xtr - mu) / sd, (Xte - mu) / sd
    w = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ (ytr - ytr.mean()))
    pred = Bt @ w + ytr.mean()
    return 1 - np.corrcoef(pred, yte)[0, 1]


def test_probe_errors_against_direct_computation():
    """Regression: 1 - Pearson r of ridge on standardised features (closed form);
    classification: 1 - accuracy, on layers where the answer is known exactly."""
    rng = np.random.default_rng(0)
    N, M, D = 80, 40, 6
    Xtr, Xte = rng.standard_normal((3, N, D)), rng.standard_normal((3, M, D))
    w = rng.standard_normal(D)
    ytr = Xtr[1] @ w + 0.5 * rng.standard_normal(N)
    yte = Xte[1] @ w + 0.5 * rng.standard_normal(M)
    got = probe_errors(Xtr, ytr, Xte, yte, regression=True, C=0.1)
    for layer in range(3):
        assert got[layer] == pytest.approx(_ridge_error(Xtr[layer], ytr, Xte[layer], yte, 10.0), rel=1e-6, abs=1e-9)
    assert got[1] < 0.1 < got[0]                       # layer 1 carries the signal
    # classification: layer 1 separates the classes by a wide margin, layer 2 with the test
    # labels flipped -> error exactly 0 and exactly 1; layer 0 is noise
    y = np.repeat([0, 1], N // 2)
    yt = np.repeat([0, 1], M // 2)
    Xtr[1, :, 0], Xte[1, :, 0] = 10.0 * (2 * y - 1), 10.0 * (2 * yt - 1)
    Xtr[2], Xte[2] = Xtr[1], Xte[1]
    errs = probe_errors(Xtr, y, Xte, yt, C=1.0)
    flipped = probe_errors(Xtr[2:], y, Xte[2:], 1 - yt, C=1.0)
    assert errs[1] == 0.0 and flipped == [1.0]
    assert 0.2 < errs[0] < 0.8
    # summary: layers 1..L, best layer, majority-class error computed directly
    s = summarise_probe([0.5, 0.3, 0.1, 0.2], y_train=[1, 1, 0], y_test=[0, 1, 1, 1])
    assert s["best_layer"] == 2 and s["best_error"] == 0.1 and s["last_error"] == 0.2
    assert s["last_minus_best"] == pytest.approx(0.1) and s["embedding_error"] == 0.5
    assert s["majority_error"] == 0.25 and s["num_layers"] == 3
