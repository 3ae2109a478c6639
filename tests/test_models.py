"""Encoder: numerical equivalence with transformers' BertModel, shapes, mixers, checkpoints."""
from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from arkbench.models import (EncoderConfig, MaskedLM, SequenceClassifier, SpanExtractor,
                             from_pretrained, save_pretrained)
from arkbench.models.loading import hf_to_ours, ours_to_hf, resolve_checkpoint

TINY = dict(vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_dropout_prob=0.0)


def _batch(vocab=120, B=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, T), generator=g)
    mask = torch.ones_like(ids)
    if B >= 3:  # rows 1 and 2 carry padding
        mask[1, T * 2 // 3:] = 0
        mask[2, 3:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def minilm_pair():
    path = resolve_checkpoint("minilm")
    # eager attention: transformers 5 defaults to SDPA, which returns no attention maps at all
    hf = BertModel.from_pretrained(str(path), attn_implementation="eager").eval()
    return hf, from_pretrained(MaskedLM, "minilm").eval()


def _assert_close(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """|x - y| <= 1e-5 * (1 + |x|) element-wise.

    Basis: both sides compute the same float32 graph with different kernels (fused vs
    explicit softmax, different matmul blocking), so they differ by accumulation order
    only: a few ulp (eps = 1.2e-7) per op, grown over 6 layers. Measured (transformers 5,
    eager): 7.2e-6 worst on hidden states of magnitude up to ~10, 2e-6 on attention
    probabilities. A relative term keeps large activations from turning the test red on
    an upgrade; any real difference (a wrong mask, a missing scale, a swapped weight) is
    >= 1e-2.
    """
    err = (x - y).abs() / (1 + x.abs())
    assert err.max().item() < 1e-5, f"{what}: max relative error {err.max().item():.3g}"


def test_minilm_hidden_states_match_transformers(minilm_pair):
    """Hidden states and attention probabilities agree with transformers' BertModel.

    Checked against a switched-off feature: with our encoder returning no attention maps
    the test fails (6 maps expected); with transformers' default SDPA attention it fails
    (transformers returns none), so the maps are really compared.
    """
    hf, ours = minilm_pair
    ids, mask = _batch(vocab=30000, T=24)
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        b = ours.encoder(ids, mask, output_attentions=True)
    assert len(a.hidden_states) == len(b.hidden_states) == 7
    assert len(a.attentions) == 6, "transformers returned no attention maps (SDPA?)"
    assert len(b.attentions) == 6 and all(p is not None for p in b.attentions)
    keep = mask.bool()                                   # [B, T]: real tokens
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states)):
        _assert_close(x[keep], y[keep], f"hidden state {i}")
    # SDPA path (no probabilities requested) agrees with the explicit-softmax path
    with torch.no_grad():
        c = ours.encoder(ids, mask)
    _assert_close(b.last_hidden_state[keep], c.last_hidden_state[keep], "SDPA vs explicit softmax")
    assert c.attentions is None
    # attention maps [B, H, T, T]: rows of real query tokens, all key columns (padded keys
    # must get ~0 probability on both sides)
    n_compared = 0
    for i, (pa, pb) in enumerate(zip(a.attentions, b.attentions)):
        assert pa.shape == pb.shape == (3, 12, 24, 24)
        rows = keep[:, None, :, None].expand_as(pa)
        _assert_close(pa[rows], pb[rows], f"attention layer {i}")
        pad_keys = (~keep)[:, None, None, :].expand_as(pb) & rows
        assert pb[pad_keys].abs().max().item() < 1e-6
        n_compared += int(rows.sum())
    assert n_compared == 6 * 12 * int(keep.sum()) * 24


def test_tiny_mlm_logits_match_transformers():
    cfg = EncoderConfig(**TINY)
    hf = BertForMaskedLM(BertConfig(**cfg.to_hf())).eval()
    ours = MaskedLM(cfg).eval()
    state = hf_to_ours(hf.state_dict())
    missing = set(ours.state_dict()) - set(state)
    assert not missing, missing
    ours.load_state_dict(state)
    ids, mask = _batch()
    with torch.no_grad():
        la = hf(input_ids=ids, attention_mask=mask).logits
        lb = ours(ids, mask).logits
    assert lb.shape == (3, 12, 120)
    assert (la - lb)[mask.bool()].abs().max().item() < 1e-5
    # the inverse name map covers every encoder + MLM-head tensor
    assert set(hf_to_ours(ours_to_hf(ours.state_dict()))) == set(ours.state_dict())


def test_mlm_loss_only_on_masked_positions():
    torch.manual_seed(0)
    m = MaskedLM(EncoderConfig(**TINY)).eval()
    ids, mask = _batch()
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 7
    labels[1, 4] = 9
    out = m(ids, mask, labels=labels)
    full = m(ids, mask).logits
    ref = torch.nn.functional.cross_entropy(full[[0, 1], [2, 4]], torch.tensor([7, 9]))
    assert torch.allclose(out.loss, ref, atol=1e-6)
    assert out.logits.shape == (2, 120)


@pytest.mark.parametrize("num_labels", [1, 3])
def test_classifier_shapes_and_loss(num_labels):
    m = SequenceClassifier(EncoderConfig(**TINY), num_labels=num_labels)
    ids, mask = _batch()
    labels = torch.tensor([0.5, 1.0, 2.0]) if num_labels == 1 else torch.tensor([0, 2, 1])
    out = m(ids, mask, labels=labels)
    assert out.logits.shape == (3, num_labels) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert m.encoder.embeddings.word.weight.grad is not None


def test_span_extractor_shapes():
    m = SpanExtractor(EncoderConfig(**TINY))
    ids, mask = _batch()
    out = m(ids, mask, start_positions=torch.tensor([1, 2, 0]), end_positions=torch.tensor([3, 2, 0]))
    assert out.logits.shape == (3, 12, 2) and torch.isfinite(out.loss)


def test_padding_does_not_change_real_tokens():
    m = MaskedLM(EncoderConfig(**TINY)).eval()
    ids, _ = _batch(B=1, T=10)
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 10, dtype=torch.long), torch.zeros(1, 6, dtype=torch.long)], 1)
    with torch.no_grad():
        a = m.encoder(ids).last_hidden_state
        b = m.encoder(padded, mask).last_hidden_state[:, :10]
    assert torch.allclose(a, b, atol=1e-5)


def test_diagonal_bias_blocks_self_attention():
    cfg = EncoderConfig(**TINY, mixer_kwargs={"biases": [{"name": "diagonal"}]})
    m = MaskedLM(cfg).eval()
    ids, mask = _batch()
    out = m.encoder(ids, mask, output_attentions=True)
    for p in out.attentions:
        diag = torch.diagonal(p, dim1=-2, dim2=-1)
        assert diag.abs().max().item() < 1e-6
        assert torch.allclose(p.sum(-1)[..., :3], torch.ones_like(p.sum(-1)[..., :3]), atol=1e-5)


def test_conv_and_attention_mixers_per_layer():
    cfg = EncoderConfig(**{**TINY, "num_layers": 2}, mixers=["conv", "attention"],
                        mixer_kwargs=[{"kernel_size": 5}, {}])
    m = MaskedLM(cfg)
    ids, mask = _batch()
    out = m.encoder(ids, mask, output_attentions=True)
    assert out.attentions[0] is None and out.attentions[1].shape == (3, 4, 12, 12)
    with pytest.raises(ValueError, match="kernel_size=4 must be odd"):
        MaskedLM(EncoderConfig(**TINY, mixers="conv", mixer_kwargs={"kernel_size": 4}))
    with pytest.raises(KeyError, match="unknown mixer 'nope'"):
        MaskedLM(EncoderConfig(**TINY, mixers="nope"))


def test_pre_ln_variant_runs():
    m = MaskedLM(EncoderConfig(**TINY, norm_position="pre"))
    ids, mask = _batch()
    assert len(m.encoder(ids, mask).hidden_states) == 3


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="hidden_size=30 is not divisible by num_heads=4"):
        EncoderConfig(**{**TINY, "hidden_size": 30})
    with pytest.raises(ValueError, match="unknown EncoderConfig keys"):
        EncoderConfig.from_dict({"hidden_sise": 3})


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    m = MaskedLM(EncoderConfig(**TINY)).eval()
    save_pretrained(m, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["encoder_config.json", "model.safetensors"]
    m2 = from_pretrained(MaskedLM, tmp_path / "ckpt").eval()
    ids, mask = _batch()
    with torch.no_grad():
        assert torch.equal(m(ids, mask).logits, m2(ids, mask).logits)
    # a classifier initialised from the MLM checkpoint keeps the encoder, inits its head
    c = from_pretrained(SequenceClassifier, tmp_path / "ckpt", num_labels=2)
    assert torch.equal(c.encoder.embeddings.word.weight, m.encoder.embeddings.word.weight)
