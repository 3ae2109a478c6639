"""Extension points a paper plugs into: bias/mixer factories, padding masks, mixer kwargs,
masks in the state dict, auxiliary losses, MLM-loop callbacks, run_task model builders,
and checkpoint fingerprints that cover a paper's code."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from arkbench.models import (ATTENTION_BIASES, MIXERS, AttentionBias, EncoderConfig, FixedMask, MaskedLM,
                             SequenceClassifier, from_pretrained, register_attention_bias, register_mixer,
                             save_pretrained)

TINY = dict(vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=32, hidden_dropout_prob=0.0, attention_dropout_prob=0.0)
SEEN: list[tuple] = []


def _batch(B=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (B, T), generator=g)
    mask = torch.ones_like(ids)
    if B >= 3:
        mask[1, 8:] = 0
        mask[2, 3:] = 0
    return ids, mask


# --- test plugins (registered once per process) ------------------------------------------
if "_test_probe_mixer" not in MIXERS:
    @register_mixer("_test_probe_mixer")
    class ProbeMixer(nn.Module):
        """Records what the factory and forward receive; mixes by a masked mean."""

        def __init__(self, config, layer, graph=None, scale=1.0):
            super().__init__()
            SEEN.append(("mixer", config.hidden_size, layer, graph))
            self.lin = nn.Linear(config.hidden_size, config.hidden_size)
            self.scale = scale

        def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
            SEEN.append(("forward", None if key_padding_mask is None else key_padding_mask.clone()))
            keep = (~key_padding_mask).unsqueeze(-1).to(x.dtype)          # [B,T,1]
            mean = (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)
            return self.lin(mean.expand_as(x)) * self.scale, None

    @register_attention_bias("_test_layer_bias")
    class LayerBias(AttentionBias):
        """A learned per-head bias whose L1 norm is an auxiliary loss."""

        def __init__(self, config, layer, weight: float = 1.0):
            super().__init__(config, layer)
            SEEN.append(("bias", config.num_heads, layer))
            self.logits = nn.Parameter(torch.full((config.num_heads, config.max_position_embeddings,
                                                   config.max_position_embeddings), 0.5))
            self.weight = weight

        def forward(self, seq_len, device, dtype):
            return self.logits[:, :seq_len, :seq_len].to(dtype)          # [H,T,T]

        def aux_losses(self):
            return {"mask_l1": self.weight * self.logits.abs().mean()}


# --- encoder ------------------------------------------------------------------------------
def test_factories_receive_config_and_layer_index():
    SEEN.clear()
    cfg = EncoderConfig(**TINY, mixers=["attention", "_test_probe_mixer"],
                        mixer_kwargs={"attention": {"biases": [{"name": "_test_layer_bias"}]},
                                      "_test_probe_mixer": {"graph": {"op": "mean", "inputs": [0]}}})
    MaskedLM(cfg)
    assert ("bias", 4, 0) in SEEN
    # a dict-valued kwarg (an op graph) reaches the mixer: the old mixer_for dropped it silently
    assert ("mixer", 32, 1, {"op": "mean", "inputs": [0]}) in SEEN


def test_mixer_kwargs_forms_are_explicit():
    shared = EncoderConfig(**TINY, mixers="conv", mixer_kwargs={"kernel_size": 5})
    assert shared.mixer_for(1, {"conv", "attention"}) == ("conv", {"kernel_size": 5})
    per_layer = EncoderConfig(**TINY, mixers=["conv", "attention"], mixer_kwargs=[{"kernel_size": 3}, {}])
    assert per_layer.mixer_for(0, set()) == ("conv", {"kernel_size": 3})
    with pytest.raises(ValueError, match=r"mixes mixer names \['conv'\] with option names \['kernel_size'\]"):
        MaskedLM(EncoderConfig(**TINY, mixers="conv", mixer_kwargs={"conv": {}, "kernel_size": 3}))
    with pytest.raises(ValueError, match="mixer_kwargs.conv = 3: per-mixer options must be a mapping"):
        MaskedLM(EncoderConfig(**TINY, mixers="conv", mixer_kwargs={"conv": 3}))
    with pytest.raises(ValueError, match="mixer_kwargs lists 3 layers but num_layers=2"):
        EncoderConfig(**TINY, mixer_kwargs=[{}, {}, {}])
    with pytest.raises(ValueError, match="biases\\[0\\]"):
        MaskedLM(EncoderConfig(**TINY, mixer_kwargs={"biases": ["diagonal"]}))


def test_mixers_receive_a_boolean_key_padding_mask():
    SEEN.clear()
    m = MaskedLM(EncoderConfig(**TINY, mixers="_test_probe_mixer")).eval()
    ids, mask = _batch()
    m(ids, mask)
    pads = [s[1] for s in SEEN if s[0] == "forward"]
    assert len(pads) == 2 and all(p.dtype == torch.bool and torch.equal(p, mask == 0) for p in pads)


def test_conv_mixer_ignores_padding():
    """Padding must not leak into real tokens through the convolution (switch the
    key_padding_mask off in LightConvMixer and this fails)."""
    m = MaskedLM(EncoderConfig(**TINY, mixers="conv", mixer_kwargs={"kernel_size": 7})).eval()
    ids, _ = _batch(B=1, T=10)
    padded = torch.cat([ids, torch.full((1, 6), 7)], 1)                     # non-zero junk in the padding
    mask = torch.cat([torch.ones(1, 10, dtype=torch.long), torch.zeros(1, 6, dtype=torch.long)], 1)
    with torch.no_grad():
        a = m.encoder(ids).last_hidden_state
        b = m.encoder(padded, mask).last_hidden_state[:, :10]
    assert torch.allclose(a, b, atol=1e-5)


def test_per_head_fixed_mask_and_state_dict_round_trip(tmp_path):
    """A [H, T, T] mask: head 0 may only attend to itself, the others to everything.
    The mask travels in model.safetensors, not in encoder_config.json."""
    cfg = EncoderConfig(**TINY, mixer_kwargs={"biases": [{"name": "fixed", "per_head": True}]})
    torch.manual_seed(0)
    m = MaskedLM(cfg).eval()
    P = cfg.max_position_embeddings
    pattern = torch.ones(4, P, P, dtype=torch.bool)
    pattern[0] = torch.eye(P, dtype=torch.bool)
    for layer in m.encoder.layers:
        layer.mixer.biases[0].set_mask(pattern)
    ids, mask = _batch(B=1, T=12)
    probs = m.encoder(ids, output_attentions=True).attentions[0][0]          # [H,T,T]
    assert torch.allclose(probs[0], torch.eye(12), atol=1e-6)
    assert (probs[1] > 0).all()
    save_pretrained(m, tmp_path / "ck")
    assert "allowed" not in (tmp_path / "ck" / "encoder_config.json").read_text()
    m2 = from_pretrained(MaskedLM, tmp_path / "ck").eval()
    assert torch.equal(m2.encoder.layers[1].mixer.biases[0].allowed, pattern)
    with torch.no_grad():
        assert torch.equal(m(ids, mask).logits, m2(ids, mask).logits)
    # a [T, T] mask and a band pattern
    band = FixedMask(cfg, 0, band=1)
    assert band(4, torch.device("cpu"), torch.float32).shape == (4, 4)
    assert band.allowed[0, 2].item() is False and band.allowed[0, 1].item() is True


def test_aux_losses_are_separate_from_the_reported_loss():
    cfg = EncoderConfig(**TINY, mixer_kwargs={"biases": [{"name": "_test_layer_bias", "weight": 2.0}]})
    torch.manual_seed(0)
    m = MaskedLM(cfg)
    ids, mask = _batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1] = ids[:, 1]
    out = m(ids, mask, labels=labels)
    # two layers x 2.0 x mean|0.5|
    assert set(out.aux_losses) == {"mask_l1"} and out.aux_losses["mask_l1"].item() == pytest.approx(2.0)
    logits = out.logits
    assert out.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, ids[:, 1]).item(), abs=1e-6)
    assert out.total_loss.item() == pytest.approx(out.loss.item() + 2.0, abs=1e-5)
    c = SequenceClassifier(cfg, num_labels=2)(ids, mask, labels=torch.tensor([0, 1, 0]))
    assert "mask_l1" in c.aux_losses and c.total_loss.item() > c.loss.item()


# --- MLM loop -----------------------------------------------------------------------------
def _corpus():
    from datasets import Dataset, DatasetDict

    from test_pretrain import synthetic_corpus

    return DatasetDict({"train": Dataset.from_dict({"text": synthetic_corpus(200, 1)}),
                        "validation": Dataset.from_dict({"text": synthetic_corpus(30, 2)})})


def _pparams(**over):
    from arkbench.training.pretrain import PretrainParams

    base = dict(model={"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                       "max_position_embeddings": 32},
                variants={"bert": {}, "lb": {"mixer_kwargs": {"biases": [{"name": "_test_layer_bias",
                                                                          "weight": 5.0}]}}},
                tokenizer="bert-base-uncased", seq_len=32, batch_size=8, max_steps=12, lr=3e-3, warmup_steps=2,
                checkpoint_every=5, eval_every=4, eval_blocks=16, log_every=4, num_threads=1)
    return PretrainParams.model_validate({**base, **over})


class Recorder:
    def __init__(self, stop_at=None):
        self.events, self.stop_at, self.restored = [], stop_at, None

    def on_step_start(self, state):
        self.events.append(("start", state.step))

    def on_step_end(self, state, stats):
        self.events.append(("end", state.step, stats["loss"]))
        if self.stop_at is not None and state.step >= self.stop_at:
            state.stop = True
        return {"sched/temperature": 1.0 / state.step}

    def on_eval(self, state, metrics):
        self.events.append(("eval", state.step, metrics["val/loss"]))
        return {"val/proxy_score": -metrics["val/loss"]}

    def on_checkpoint(self, state, extra):
        self.events.append(("ckpt", state.step))
        extra["temperature_state"] = state.step

    def on_resume(self, state, extra):
        self.restored = extra["temperature_state"]


def test_mlm_loop_callbacks_and_aux_logging(tmp_path):
    from arkbench.training.pretrain import train

    logged: list[tuple[dict, int]] = []
    rec = Recorder()
    res = train(_pparams(), "lb", corpus=_corpus(), workdir=tmp_path, progress=False, callbacks=[rec],
                log_metrics=lambda m, s: logged.append((m, s)))
    kinds = [e[0] for e in rec.events]
    assert kinds.count("start") == kinds.count("end") == 12
    assert [e[1] for e in rec.events if e[0] == "eval"] == [4, 8, 12]       # every eval_every + the final one
    assert [e[1] for e in rec.events if e[0] == "ckpt"] == [5, 10, 12]
    names = {k for m, _ in logged for k in m}
    assert {"sched/temperature", "val/proxy_score", "train/aux/mask_l1", "train/loss"} <= names
    # the reported curve is the MLM loss alone: it equals the step loss the callbacks saw
    assert [r[1] for r in res.curve] == [e[2] for e in rec.events if e[0] == "end"]
    aux = [m["train/aux/mask_l1"] for m, _ in logged if "train/aux/mask_l1" in m]
    assert aux[-1] < aux[0], "the aux loss was not back-propagated (its L1 should shrink)"
    assert all(m["train/loss"] < 20 for m, _ in logged if "train/loss" in m)
    # resume: a second call restores the callback state from the last checkpoint
    rec2 = Recorder()
    res2 = train(_pparams(), "lb", corpus=_corpus(), workdir=tmp_path, progress=False, callbacks=[rec2])
    assert res2.resumed_from == 12 and rec2.restored == 12


def test_mlm_loop_reusable_for_proxy_training():
    """A paper's proxy training: its own model, fewer steps, no checkpoints, an early stop."""
    from arkbench.tokenization import load_tokenizer
    from arkbench.training.mlm_loop import mlm_loop, prepare_mlm_data

    p = _pparams(max_steps=50)
    tok = load_tokenizer("bert-base-uncased")
    data = prepare_mlm_data(_corpus(), tok, p, seed=0)
    torch.manual_seed(0)
    model = MaskedLM(p.encoder_config("bert", len(tok)))
    rec = Recorder(stop_at=6)
    res = mlm_loop(p, model, data, seed=0, callbacks=[rec], progress=False)
    assert res.steps == 6 and len(res.curve) == 6 and res.val_loss == res.val_loss   # finite


# --- fine-tuning with any task model ---------------------------------------------------------
class LSTMClassifier(nn.Module):
    def __init__(self, vocab: int, num_labels: int, aux_weight: float = 0.0):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.out = nn.Linear(48, num_labels)
        self.aux_weight = aux_weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        from types import SimpleNamespace

        e = self.emb(input_ids)                                        # [B,T,16]
        h, _ = self.lstm(e)                                            # [B,T,32]
        m = attention_mask.unsqueeze(-1).float()
        logits = self.out(torch.cat([h, e], -1).mul(m).sum(1) / m.sum(1))   # masked mean -> [B,C]
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        aux = {"l2": self.aux_weight * self.out.weight.pow(2).sum()} if self.aux_weight else {}
        return SimpleNamespace(loss=loss, logits=logits, aux_losses=aux)


def test_run_task_takes_a_model_builder():
    from arkbench.data import load_task
    from arkbench.tokenization import load_tokenizer
    from arkbench.training.finetune import run_task

    tok = load_tokenizer("bert-base-uncased")
    data = load_task("sst2", "embedded", embedded_sizes=(300, 100))
    built = []

    def builder(spec, init, hp):
        built.append((spec.name, init))
        return LSTMClassifier(len(tok), spec.num_labels, aux_weight=1e-3)

    class Ctx:
        def __init__(self):
            self.logged: dict = {}
            self.curve: list[float] = []

        def log_metrics(self, m, step=None):
            self.logged.update(m)
            if "seed0/train_loss" in m:
                self.curve.append(m["seed0/train_loss"])

    # 32 rows, 15 epochs: the task model must fit them (embedded SST-2 defeats bag-of-words
    # models at this budget, so the test asks for a falling training loss, not accuracy)
    hp = dict(lr=1e-2, batch_size=8, epochs=15, max_seq_len=32, log_every=5, max_train_examples=32)
    ctx = Ctx()
    res = run_task("sst2", None, hp, [0, 1], model_builder=builder, tokenizer=tok, data=data, ctx=ctx,
                   model_name="lstm")
    again = run_task("sst2", None, hp, [0], model_builder=builder, tokenizer=tok, data=data)
    assert built[0] == ("sst2", None) and len(built) == 3
    assert res["model"] == "lstm" and res["metric"] == "accuracy" and res["n_seeds"] == 2
    assert res["seeds"][0]["train_steps"] == 60 and 0.0 <= res["mean"] <= 1.0
    assert ctx.curve[-1] < 0.5 * ctx.curve[0], ctx.curve          # the builder's model is what trains
    assert again["seeds"][0]["accuracy"] == res["seeds"][0]["accuracy"]   # seeded like ours
    assert "seed0/aux/l2" in ctx.logged


# --- fingerprints cover a paper's code ------------------------------------------------------------
def test_editing_a_paper_mixer_changes_the_pretraining_fingerprint(tmp_path, monkeypatch):
    """A pre-training checkpoint written by an older version of a paper's mixer is never
    resumed: the fingerprint hashes the source of every package the model is built from
    (before, code_digest hashed models/ and training/ only, and this test failed)."""
    import arkbench.papers
    from arkbench.training import pretrain

    pkg = tmp_path / "papers" / "toymix"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    src = textwrap.dedent('''
        from torch import nn
        from arkbench.models import register_mixer, MIXERS

        if "toymix" not in MIXERS:
            @register_mixer("toymix")
            class ToyMix(nn.Module):
                def __init__(self, config, layer, **kw):
                    super().__init__()
                    self.lin = nn.Linear(config.hidden_size, config.hidden_size)

                def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
                    return self.lin(x), None
        ''')
    (pkg / "mixer.py").write_text(src)
    monkeypatch.setattr(arkbench.papers, "__path__", [*arkbench.papers.__path__, str(tmp_path / "papers")])
    import importlib

    importlib.import_module("arkbench.papers.toymix.mixer")
    try:
        p = _pparams(variants={"bert": {}, "toy": {"mixers": "toymix"}})
        before = pretrain.fingerprint(p, "toy", 0)
        assert before == pretrain.fingerprint(p, "toy", 0)
        bert_before = pretrain.fingerprint(p, "bert", 0)
        (pkg / "mixer.py").write_text(src.replace("return self.lin(x), None", "return self.lin(x) * 2, None"))
        assert pretrain.fingerprint(p, "toy", 0) != before
        assert pretrain.fingerprint(p, "bert", 0) == bert_before       # other variants keep their checkpoints
    finally:
        MIXERS.pop("toymix", None)
        for name in [m for m in sys.modules if m.startswith("arkbench.papers.toymix")]:
            del sys.modules[name]

