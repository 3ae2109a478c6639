"""SparseBERT (paper b): fixed patterns, DAM sampling, L1 aux loss, frozen masks.

Each test guarding a claim was checked by switching its feature off once and
watching it fail; the docstrings say how.
"""
from __future__ import annotations

import json

import pytest
import torch

from arkbench.models import EncoderConfig, FixedMask, MaskedLM, SequenceClassifier
from arkbench.papers.sparsebert import patterns as P
from arkbench.papers.sparsebert.dam import DAMCallback, dam_modules, gumbel_sigmoid, learned_masks, tau_at
from arkbench.papers.sparsebert.masks import DAMStructured, DAMUnstructured, SparsePatternMask
from arkbench.papers.sparsebert.protocol import (apply_masks, current_masks, fixed_mask_config, freeze_dam,
                                                 load_masks, save_masks)

TINY = dict(vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=32, hidden_dropout_prob=0.0, attention_dropout_prob=0.0)


def _cfg(*biases, **over):
    return EncoderConfig(**{**TINY, **over}, mixer_kwargs={"biases": list(biases)})


def _batch(B=4, T=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (B, T), generator=g)
    labels = torch.where(torch.rand(B, T, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 1] = ids[:, 1]
    return ids, labels


# --- Gumbel-sigmoid straight-through -----------------------------------------------------------
def test_gumbel_sigmoid_st_is_binary_forward_with_sigmoid_gradient():
    """Forward: exactly 0/1 and = 1[alpha + noise > 0]; backward: sigmoid'((alpha+noise)/tau)/tau.
    Switched off (hard=False, the soft sample) the binary assertion fails."""
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(3, 7, 7, generator=g, requires_grad=True)
    noise = torch.randn(3, 7, 7, generator=g)
    tau = 0.7
    w = torch.randn(3, 7, 7, generator=g)                       # a downstream loss sum(w * M)
    M = gumbel_sigmoid(alpha, tau, noise=noise)
    assert set(M.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(M.detach(), (alpha.detach() + noise > 0).float())
    (w * M).sum().backward()
    s = torch.sigmoid((alpha.detach() + noise) / tau)
    torch.testing.assert_close(alpha.grad, w * s * (1 - s) / tau, rtol=1e-6, atol=1e-7)
    soft = gumbel_sigmoid(alpha, tau, noise=noise, hard=False)
    assert not set(soft.detach().unique().tolist()) <= {0.0, 1.0}     # the switched-off form fails


def test_logistic_noise_keeps_with_probability_sigmoid_alpha():
    """G1 - G2 noise: P(M = 1) = sigmoid(alpha) (1 - 0.88 = 0.12 for alpha = -2)."""
    torch.manual_seed(0)
    alpha = torch.full((200_000,), 2.0)
    assert gumbel_sigmoid(alpha).mean().item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=5e-3)


def test_tau_schedule():
    assert tau_at(5, 10) == 1.0                                        # official: constant 1
    assert tau_at(0, 11, 2.0, 0.5, "linear") == 2.0 and tau_at(10, 11, 2.0, 0.5, "linear") == 0.5
    assert tau_at(5, 11, 2.0, 0.5, "exponential") == pytest.approx(1.0)   # geometric mid-point
    with pytest.raises(ValueError, match="kind='cosine'"):
        tau_at(0, 10, 1.0, 0.5, "cosine")


# --- fixed patterns: hand counts at T = 8 ---------------------------------------------------------
# kept entries counted by hand from the definitions in patterns.py (pairs at offset k: 2 (T - k), k > 0)
HAND = [
    ("no_diagonal", {}, 64 - 8),
    ("strided", {"stride": 3}, 8 + 14 + 12 + 10 + 4),            # |d| in {0,1,2} + {3,6}
    ("fixed", {"block": 4, "summary": 1}, 32 + 7 + 7),            # 2 blocks + column/row 3 and 7 across
    ("longformer", {"window": 1, "global_tokens": 1}, 22 + 6 + 6),   # band 3 + row 0 + column 0
    ("logsparse", {"local": 0}, 8 + 14 + 12 + 8),                 # |d| in {0, 1, 2, 4}
    ("bigbird", {"window": 1, "global_tokens": 1, "random": 0}, 34),
    ("star", {}, 34),                                             # ring + relay 0 = longformer(1, 1)
]


@pytest.mark.parametrize("name,params,kept", HAND, ids=[h[0] for h in HAND])
def test_pattern_sparsity_matches_hand_count(name, params, kept):
    """Switched off (fixed without its symmetric half) the fixed case counts 40, not 46, and fails."""
    m = P.build_pattern(name, 8, **params)
    assert m.shape == (8, 8) and m.dtype == torch.bool
    assert int(m.sum()) == kept
    assert P.sparsity(m) == pytest.approx(100 * (64 - kept) / 64)
    assert torch.equal(m, m.T)                                     # bidirectional: applied symmetrically


def test_bigbird_random_keys_are_extra_seeded_and_symmetric():
    base = P.bigbird(16, 1, 1, 0)
    a, b = P.bigbird(16, 1, 1, 2, seed=3), P.bigbird(16, 1, 1, 2, seed=3)
    assert torch.equal(a, b) and torch.equal(a, a.T) and bool((a | base).eq(a).all())
    # rows 1..15 gain 2 keys each before symmetrising (row 0 is global: already full)
    assert int(base.sum()) + 30 <= int(a.sum()) <= int(base.sum()) + 60


def test_default_patterns_sit_near_the_papers_sparsity():
    rows = {r["pattern"]: r for r in P.pattern_table(128)}
    for name, paper in P.PAPER_SPARSITY.items():
        assert abs(rows[name]["sparsity"] - paper) < 1.5, (name, rows[name]["sparsity"], paper)


def test_bad_pattern_params_are_named():
    with pytest.raises(ValueError, match="stride=-1"):
        P.build_pattern("strided", 8, stride=-1)
    with pytest.raises(KeyError, match="unknown attention pattern 'zigzag'"):
        P.build_pattern("zigzag", 8)


def test_pattern_bias_any_length_uses_top_left_block():
    model = MaskedLM(_cfg({"name": "sparse_pattern", "pattern": "logsparse"}))
    bias = model.encoder.layers[0].mixer.biases[0]
    assert isinstance(bias, SparsePatternMask)
    assert "encoder.layers.0.mixer.biases.0.allowed" in model.state_dict()     # persistent: saved with the model
    for T in (5, 17, 32):
        b = bias(T, torch.device("cpu"), torch.float32)
        assert b.shape == (T, T)
        assert torch.equal(b == 0, P.logsparse(32)[:T, :T])
        ids, labels = _batch(T=T)
        assert torch.isfinite(model(input_ids=ids, labels=labels).loss)
    with pytest.raises(ValueError, match="32 positions, got a sequence of 40"):
        bias(40, torch.device("cpu"), torch.float32)


def test_pattern_changes_attention():
    """The mask reaches the softmax: masked-out probabilities are 0 (dropping the bias fails this)."""
    torch.manual_seed(0)
    model = MaskedLM(_cfg({"name": "sparse_pattern", "pattern": "star"})).eval()
    ids, _ = _batch(T=12)
    att = model(input_ids=ids, output_attentions=True).encoder.attentions[0]     # [B,H,T,T]
    allowed = P.star(32)[:12, :12]
    assert float(att[..., ~allowed].abs().max().detach()) == 0.0 and float(att[..., allowed].min().detach()) > 0


# --- DAM ---------------------------------------------------------------------------------------
def test_dam_s_is_toeplitz_per_head():
    """M[h, i, j] = m[h, |i - j|] for the sample, the logits and the frozen mask; heads differ.
    Switched off (DAMStructured.sample drawing per (i, j) instead of per offset) it fails."""
    torch.manual_seed(0)
    model = MaskedLM(_cfg({"name": "dam_s"}))
    dam = dam_modules(model)[0]
    assert isinstance(dam, DAMStructured) and dam.mask_logits.shape == (4, 32)
    T = 20
    i = torch.arange(T)
    off = (i[:, None] - i[None, :]).abs()
    for M in (dam.sample(T).detach(), dam.logits(T).detach(), dam.binary_mask(T).float()):
        assert M.shape == (4, T, T)
        assert torch.equal(M[:, 1:, 1:], M[:, :-1, :-1])            # constant along every diagonal
        assert torch.equal(M, M.transpose(-1, -2))                  # |i - j|: symmetric
        assert torch.equal(M, M[:, 0, :][:, off])                   # M[h, i, j] = m[h, |i - j|]
    assert not torch.equal(dam.logits(T)[0], dam.logits(T)[1])


def test_dam_u_has_a_logit_per_pair_and_optional_symmetry():
    torch.manual_seed(0)
    u = dam_modules(MaskedLM(_cfg({"name": "dam_u"})))[0]
    assert isinstance(u, DAMUnstructured) and u.mask_logits.shape == (4, 32, 32)
    assert not torch.equal(u.sample(16), u.sample(16).transpose(-1, -2))
    s = dam_modules(MaskedLM(_cfg({"name": "dam_u", "symmetric": True})))[0]
    M = s.sample(16).detach()
    assert torch.equal(M, M.transpose(-1, -2)) and torch.equal(s.logits(16), s.logits(16).transpose(-1, -2))


def test_dam_l1_normalisation_and_gradient():
    """dam_l1 = lam * (kept entries) / (L H T^2) summed over layers (mean), or lam * count per layer;
    the ST gradient reaches alpha of every layer."""
    torch.manual_seed(0)
    lam = 0.3
    model = MaskedLM(_cfg({"name": "dam_u", "lam": lam, "normalize": "mean"}))
    ids, labels = _batch(T=16)
    out = model(input_ids=ids, labels=labels)
    assert "dam_l1" in out.aux_losses and out.aux_losses["dam_l1"].requires_grad
    out.total_loss.backward()
    assert all(m.mask_logits.grad.abs().sum() > 0 for m in dam_modules(model))
    # recompute from a fresh forward with the same noise: the kept count of what the layers used
    torch.manual_seed(1)
    out = model(input_ids=ids, labels=labels)
    torch.manual_seed(1)
    kept = 0
    for m in dam_modules(model):                    # same draws in the same order as the forward
        kept += float(m.sample(16).detach().sum())
    assert out.aux_losses["dam_l1"].item() == pytest.approx(lam * kept / (2 * 4 * 16 * 16), rel=1e-5)
    cnt = MaskedLM(_cfg({"name": "dam_u", "lam": lam, "normalize": "count"}))
    v = cnt(input_ids=ids, labels=labels).aux_losses["dam_l1"].item()
    assert v == pytest.approx(lam * round(v / lam)) and v > 1.0


def test_mask_logits_get_their_own_optimizer_group():
    from arkbench.training.optim import build_optimizer

    model = MaskedLM(_cfg({"name": "dam_s"}))
    opt = build_optimizer(model, "adamw", lr=3e-4, weight_decay=0.01)
    groups = {g.get("name"): g for g in opt.param_groups}
    ids = {id(m.mask_logits) for m in dam_modules(model)}
    assert {id(p) for p in groups["mask_logits"]["params"]} == ids
    assert groups["mask_logits"]["weight_decay"] == 0.0 and groups["mask_logits"]["lr"] == 3e-4
    assert not ids & {id(p) for g in opt.param_groups if g.get("name") is None for p in g["params"]}
    fast = build_optimizer(MaskedLM(_cfg({"name": "dam_u", "lr_scale": 10.0})), "adamw", lr=3e-4)
    assert {g.get("name"): g["lr"] for g in fast.param_groups}["mask_logits"] == pytest.approx(3e-3)


def test_dam_eval_and_frozen_masks_are_deterministic():
    torch.manual_seed(0)
    model = MaskedLM(_cfg({"name": "dam_u", "lam": 1.0}))
    dam = dam_modules(model)[0]
    b1 = dam(16, torch.device("cpu"), torch.float32)
    b2 = dam(16, torch.device("cpu"), torch.float32)
    assert not torch.equal(b1, b2)                                   # training: resampled each forward
    model.eval()
    assert torch.equal(dam(16, "cpu", torch.float32), (dam.binary_mask(16).float() - 1) * 1e4)
    model.train()
    freeze_dam(model)
    f1, f2 = dam(16, "cpu", torch.float32), dam(16, "cpu", torch.float32)
    assert torch.equal(f1, f2) and dam.aux_losses() == {} and not dam.mask_logits.requires_grad
    assert bool(model.state_dict()["encoder.layers.0.mixer.biases.0.frozen"])


# --- two-stage protocol ----------------------------------------------------------------------
def test_frozen_mask_is_identical_across_finetuning_steps(tmp_path):
    """Stage 2: the learned mask is written into per-head FixedMask buffers, saved with the model,
    reloaded for fine-tuning, and the attention mask is the same before and after every step.
    Switched off (fine-tuning the DAM model itself, as the official run_glue.py does) the bias
    changes between steps, which the last block shows."""
    from arkbench.models import from_pretrained, save_pretrained

    torch.manual_seed(0)
    dam_model = MaskedLM(_cfg({"name": "dam_u", "lam": 1e-2}))
    masks = learned_masks(dam_model, 32)                               # [L,H,T,T]
    save_masks(tmp_path / "masks.pt", masks, {"variant": "dam_u"})
    masks = load_masks(tmp_path / "masks.pt")
    assert masks.shape == (2, 4, 32, 32) and 0 < masks.float().mean() < 1
    stage2 = MaskedLM(fixed_mask_config(dam_model.config))
    apply_masks(stage2, masks)
    save_pretrained(stage2, tmp_path / "m")
    clf = from_pretrained(SequenceClassifier, tmp_path / "m", num_labels=2)
    assert torch.equal(current_masks(clf, 32), masks)
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-2)
    ids, _ = _batch(T=32)
    y = torch.tensor([0, 1, 0, 1])
    for _ in range(3):
        before = [l.mixer.logits_bias(None, 32, torch.zeros(1, 32, 32)) for l in clf.encoder.layers]
        clf(input_ids=ids, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
        after = [l.mixer.logits_bias(None, 32, torch.zeros(1, 32, 32)) for l in clf.encoder.layers]
        assert all(torch.equal(a, b) for a, b in zip(before, after))
        assert torch.equal(current_masks(clf, 32), masks)
    # the official behaviour we do not copy: a DAM model in training mode draws a new mask each step
    dam = dam_modules(dam_model)[0]
    assert not torch.equal(dam(32, "cpu", torch.float32), dam(32, "cpu", torch.float32))


def _mlm_data(seq_len=16, n=48):
    from arkbench.training.mlm import BlockSampler, Masker, VAL_MASK, step_generator
    from arkbench.training.mlm_loop import MLMData

    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(5, 120, (n, seq_len), generator=g)
    masker = Masker(120, 3, [0, 1, 2, 3, 4], 0.15)
    vx, vy = masker(blocks[:8], step_generator(0, 0, VAL_MASK))
    return MLMData(blocks, vx, vy, masker, BlockSampler(n, 0), seq_len)


def _p(**kw):
    from arkbench.training.pretrain import PretrainParams

    return PretrainParams(**{"batch_size": 8, "max_steps": 3, "warmup_steps": 0, "eval_every": 100,
                             "log_every": 1, "seq_len": 16, **kw})


def test_mlm_loss_of_a_dam_run_excludes_the_l1_term():
    """The MLM loss the loop writes (curve, train/loss) is the same at step 1 whatever lam is;
    train/aux/dam_l1 carries the penalty. Switched off (adding aux into the logged loss in
    mlm_loop) the two step-1 losses differ by lam * kept fraction (~5 for lam = 10)."""
    from arkbench.training.mlm_loop import mlm_loop

    runs = {}
    for lam in (0.0, 10.0):
        torch.manual_seed(0)
        model = MaskedLM(_cfg({"name": "dam_u", "lam": lam, "normalize": "mean"}))
        logged: list[dict] = []
        res = mlm_loop(_p(), model, _mlm_data(), seed=0, progress=False, callbacks=[DAMCallback(16)],
                       log_metrics=lambda m, s: logged.append(m))
        runs[lam] = (res, logged)
    (r0, l0), (r1, l1) = runs[0.0], runs[10.0]
    assert r0.curve[0][1] == pytest.approx(r1.curve[0][1], abs=1e-6)
    aux = [m["train/aux/dam_l1"] for m in l1 if "train/aux/dam_l1" in m]
    assert aux and 1.0 < aux[0] < 10.0                                  # lam x kept fraction (~1/2)
    assert all(m["train/loss"] < 6 for m in l1 if "train/loss" in m)     # ln(120) = 4.8: no penalty inside
    assert {"dam/tau", "dam/sparsity"} <= {k for m in l1 for k in m}


# --- grid runner (tiny, fine-tuning stubbed) ---------------------------------------------------
def test_grid_family_runs_both_stages_and_summarises(tmp_path):
    """dam_s family end to end at toy size: stage 1 writes masks.pt, heat maps and the importance
    history; the saved stage-2 model carries exactly that mask as FixedMask buffers; the summary
    writes the table and the claims' numbers (fine-tuning stubbed: run_task is tested elsewhere)."""
    from arkbench.data import load_task
    from arkbench.errors import read_json
    from arkbench.models import from_pretrained
    from arkbench.papers.sparsebert.grid import run_family
    from arkbench.papers.sparsebert.stages import GridParams
    from arkbench.papers.sparsebert.summary import SummaryParams, run_summary
    from arkbench.tokenization import load_tokenizer

    p = GridParams(model=dict(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                              max_position_embeddings=16),
                   pretrain=dict(seq_len=16, batch_size=8, max_steps=4, warmup_steps=0, eval_blocks=8, log_every=2,
                                 eval_every=100, checkpoint_every=100),
                   lambdas=[1e-4], tasks=["rte"], models_dir=str(tmp_path / "models"),
                   plots_dir=str(tmp_path / "plots"), metrics_dir=str(tmp_path / "metrics"),
                   importance_points=2, snapshot_fractions=[0.5, 1.0])
    seen = []

    def finetune(task, init, hp, seeds):
        seen.append((task, init, seeds))
        return {"metric": "accuracy", "mean": 0.5}

    corpus = load_task("corpus", "embedded")
    tok = load_tokenizer("bert-base-uncased")
    res = run_family(p, "dam_s", corpus=corpus, tokenizer=tok, finetune=finetune)
    v = res["variants"]["dam_s_1e-04"]
    masks = load_masks(tmp_path / "models/dam_s/masks/dam_s_1e-04_seed0.pt")
    assert masks.shape == (2, 2, 16, 16)
    assert v["sparsity"] == pytest.approx(P.sparsity(masks)) and v["tasks"]["rte"]["mean"] == 50.0
    hist = v["seeds"][0]["stage1"]["history"]
    assert [h["step"] for h in hist] == [0, 2, 4] and 1 <= hist[-1]["diag_rank"] <= 16
    assert {f.name for f in (tmp_path / "plots/dam_s").glob("*.png")} == {
        "dam_s_1e-04_keep_step2.png", "dam_s_1e-04_keep_step4.png", "dam_s_1e-04_mask.png",
        "dam_s_1e-04_offsets.png"}
    model = from_pretrained(MaskedLM, tmp_path / "models/dam_s/dam_s_1e-04_seed0")
    assert torch.equal(current_masks(model, 16), masks)
    assert seen == [("rte", str(tmp_path / "models/dam_s/dam_s_1e-04_seed0"), [0])]
    run_summary(SummaryParams(grid_metrics=str(tmp_path / "metrics/grid"), tasks=["rte"],
                              metrics_dir=str(tmp_path / "metrics"), plots_dir=str(tmp_path / "sum")))
    assert read_json(tmp_path / "metrics/masks.json")["dam_s"]["variant"] == "dam_s_1e-04"
    assert "band_plus_long" in read_json(tmp_path / "metrics/dam.json")["dam_s_band"]
    assert "status" in read_json(tmp_path / "metrics/no_diagonal.json")          # baselines not run
    table = (tmp_path / "sum/table.md").read_text()
    assert "| dam_s_1e-04 |" in table and "(91.2)" in table and "(63.2)" in table    # the paper's numbers beside


def test_importance_statistics_on_a_known_mask():
    """offset profile = mean over each |i - j|; a diagonal kept less than every offset ranks 1st
    and gives diag - median < 0 (raising the diagonal to 0.9 flips both)."""
    from arkbench.papers.sparsebert.analysis import band_summary, diagonal_rank, importance_stats, offset_profile

    T = 6
    i = torch.arange(T)
    off = (i[:, None] - i[None, :]).abs().float()
    p = (0.8 - 0.1 * off).expand(2, 3, T, T).clone()              # keep falls with the offset
    p[..., i, i] = 0.05                                            # ... but the diagonal is lowest
    prof = offset_profile(p)
    torch.testing.assert_close(prof[0, 0], torch.tensor([0.05, 0.7, 0.6, 0.5, 0.4, 0.3]))
    assert torch.equal(diagonal_rank(prof), torch.ones(2, 3))
    s = importance_stats(p)
    assert s["diag_rank"] == 1.0 and s["diag_minus_median_keep"] < 0 and s["diag_least_kept_share"] == 1.0
    p[..., i, i] = 0.9
    s = importance_stats(p)
    assert s["diag_rank"] == T and s["diag_minus_median_keep"] > 0
    b = band_summary(p > 0.45, band=2)                               # offsets 1, 2, 3 kept; 4, 5 dropped
    assert b["short_offsets_kept"] == 1.0 and b["long_offsets_kept"] == pytest.approx(1 / 3)


def test_grid_params_name_the_bad_key():
    from pydantic import ValidationError

    from arkbench.papers.sparsebert.stages import GridParams

    with pytest.raises(ValidationError, match=r"sparsebert_grid.patterns: unknown \['zigzag'\]"):
        GridParams(patterns=["zigzag"])
    with pytest.raises(ValidationError, match="sparsebert_grid.pattern_params.strided: .*stride=0"):
        GridParams(pattern_params={"strided": {"stride": 0}})
    with pytest.raises(ValidationError, match="sparsebert_grid.pretrain.seq_len = 64 > model.max_position"):
        GridParams(pretrain={"seq_len": 64})
    with pytest.raises(ValidationError, match="families"):
        GridParams(families=["dam_x"])


def test_benchmark_block_gather_equals_the_masked_softmax():
    """The benchmark's block-gather backend computes the same attention as SDPA with the additive
    mask (so its timing compares like with like)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sparse_attention.py"
    spec = importlib.util.spec_from_file_location("bench_sparse_attention", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    allowed = bench.band(64, 5)
    attn, frac = bench.block_gather_attention(allowed, 16)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 64, 8, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.zeros(64, 64).masked_fill(~allowed, float("-inf")))
    torch.testing.assert_close(attn(q, k, v), ref, rtol=1e-5, atol=1e-6)
    assert frac == 0.75                                   # 3 of 4 key blocks per query block


def test_warm_start_is_where_every_variant_starts(tmp_path):
    """The sparsebert_warm stage's folder (tokenizer, dense model, warm.json last) and start_from: a
    variant's encoder takes every warm weight while its own mask (FixedMask buffers) keeps its values.
    Switched off once (start_from a no-op): the first assertion on the weights failed."""
    from arkbench.data import load_task
    from arkbench.papers.sparsebert.grid import load_warm_start, run_family, start_from, warm_start
    from arkbench.papers.sparsebert.stages import GridParams

    kw = dict(model=dict(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_position_embeddings=16),
              pretrain=dict(seq_len=16, batch_size=8, max_steps=2, warmup_steps=0, eval_blocks=4, log_every=1,
                            eval_every=100, checkpoint_every=100),
              tasks=["rte"], models_dir=str(tmp_path / "models"), plots_dir=str(tmp_path / "plots"),
              metrics_dir=str(tmp_path / "metrics"))
    p = GridParams(**kw, warm_start={"steps": 3})
    corpus = load_task("corpus", "embedded")
    meta = warm_start(p, corpus, seed=0)
    assert meta["steps"] == 3 and meta["val_loss"] > 0
    assert {f.name for f in (tmp_path / "models/warm").iterdir()} == {"tokenizer", "model", "warm.json"}
    tok, state, meta2 = load_warm_start(p)
    assert meta2 == json.loads((tmp_path / "models/warm/warm.json").read_text()) and len(tok) == meta["vocab_size"]

    cfg = fixed_mask_config(_cfg({"name": "sparse_pattern", "pattern": "strided"}, vocab_size=len(tok),
                                 hidden_size=16, intermediate_size=32, num_heads=2, max_position_embeddings=16))
    torch.manual_seed(1)
    model = MaskedLM(cfg)
    mask = torch.rand(2, 2, 16, 16) > 0.5
    apply_masks(model, mask)
    start_from(model, state)
    own = model.state_dict()
    weights = [k for k in own if ".biases." not in k]
    assert weights and all(torch.equal(own[k], state[k]) for k in weights)
    assert torch.equal(current_masks(model, 16), mask)                        # the variant's mask untouched

    with pytest.raises(ValueError, match=r"missing \['encoder.embeddings"):
        start_from(model, {k: v for k, v in state.items() if "embeddings" not in k})
    with pytest.raises(ValueError, match=r"warm.json: 3 warm-start steps, but sparsebert_grid.warm_start.steps = 5"):
        load_warm_start(GridParams(**kw, warm_start={"steps": 5}))

    res = run_family(p, "baselines", corpus=corpus, tokenizer=tok, init_state=state, warm=meta,
                     finetune=lambda task, init, hp, seeds: {"metric": "accuracy", "mean": 0.5})
    assert "from a shared dense warm start of 3 steps" in res["model"] and res["warm_start"]["steps"] == 3

    (tmp_path / "models/warm/warm.json").unlink()                            # a half-written folder
    with pytest.raises(FileNotFoundError, match=r"warm/warm.json: no warm start"):
        load_warm_start(p)
