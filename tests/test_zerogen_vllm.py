"""ZeroGen's optional vLLM backend, on CPU, with a fake ``vllm`` module (vllm is never installed here).

The fake (``LLM`` + ``SamplingParams``) records what it receives and answers canned completions,
cut at the stop string the way vLLM cuts them. The real engine is exercised by
tests/test_gpu.py::test_vllm_backend_generates_with_smollm2 on a GPU host with ``pip install vllm``.

Switched off once each, these fail: the ``sample_texts`` hand-off in ``generate.sample`` (the
prompt / rows comparisons), the stop mapping in ``sampling_kwargs`` (the stop test), the
seed derivation (a constant seed: the determinism test), ``check_vllm`` (the up-front error tests)
and the params check ``_vllm_cannot_debias`` (the self-debiasing test).
"""
from __future__ import annotations

import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch

from arkbench.papers.zerogen import generate as G
from arkbench.papers.zerogen import plm as P
from arkbench.papers.zerogen import qa as Q
from arkbench.papers.zerogen import stages as S
from arkbench.papers.zerogen import synth as Y
from arkbench.papers.zerogen import tasks as T
from arkbench.papers.zerogen import vllm_backend as V
from arkbench.papers.zerogen.generate import DecodeConfig
from arkbench.papers.zerogen.synth import SynthConfig
from tiny_lm import random_gpt2


@pytest.fixture(scope="module")
def plm_dir(tmp_path_factory) -> Path:
    """A PLM folder as zerogen_plm leaves it: plm_dir/tiny (a random GPT-2 and its BPE)."""
    model, tok = random_gpt2(P.smoke_corpus(60) + P.smoke_qa_corpus(20), n_positions=256, n_embd=16, n_layer=1)
    root = tmp_path_factory.mktemp("plm")
    model.save_pretrained(str(root / "tiny"))
    tok.save_pretrained(str(root / "tiny"))
    return root


def _canned():
    """Completions keyed by (prompt token ids, how often that prompt was asked so far): both backends
    asked the same prompts in the same order get the same texts. Every text runs past its closing
    quote (vLLM's stop cuts it there; the transformers path's filters cut it)."""
    seen: Counter = Counter()

    def complete(ids) -> str:
        key = tuple(ids)
        n = seen[key]
        seen[key] += 1
        h = (sum(ids) * 31 + n) % 7
        if len(ids) <= 4:                               # an x1 prompt ('Movie: "'): a title, some repeated
            return f'Title number {n % 5}" and then more words'
        if h == 0:
            return 'too short" but the rest is long enough to pass were it kept'
        if h == 1:
            return "no closing quote at all in this one, so rule one drops it whatever its length"
        if h == 2:
            return 'What is the name of the city in this text?" and more'
        if h == 3:
            return 'Which university did the person in the text attend? Nobody" knows'
        return f'a generated text number {h} with plenty of words in it for the filter" then junk after it'
    return complete


class _FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class _FakeLLM:
    instances: list = []
    complete = None

    def __init__(self, **kw):
        from transformers import AutoTokenizer

        self.kw = kw
        self.calls: list = []
        self.tok = AutoTokenizer.from_pretrained(kw["tokenizer"])
        _FakeLLM.instances.append(self)

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert len(prompts) == len(sampling_params)
        self.calls.append((prompts, sampling_params))
        outs = []
        for p, sp in zip(prompts, sampling_params):
            text = _FakeLLM.complete(p["prompt_token_ids"])
            for s in sp.kw.get("stop") or []:           # vLLM's stop strings: cut at the first match
                if s in text:
                    i = text.index(s)
                    text = text[: i + (len(s) if sp.kw.get("include_stop_str_in_output") else 0)]
            outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = _FakeLLM
    mod.SamplingParams = _FakeSamplingParams
    _FakeLLM.instances = []
    _FakeLLM.complete = staticmethod(_canned())
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return mod


def _canned_transformers(monkeypatch, tok, seen: list):
    """The transformers path up to its LM: `_sample_batch` records the prompts it is given and
    answers the canned completions as token ids (no stop cut: the filters cut)."""
    complete = _canned()

    def fake_batch(model, tokenizer, prompts, counters, cfg, gen, trace=None):
        seen.extend(prompts)
        return [tok(complete(tok(p, add_special_tokens=False)["input_ids"]), add_special_tokens=False)["input_ids"]
                for p in prompts]
    monkeypatch.setattr(G, "_sample_batch", fake_batch)


def _vllm_prompts() -> list[list[int]]:
    return [p["prompt_token_ids"] for llm in _FakeLLM.instances for prompts, _ in llm.calls for p in prompts]


CFG = SynthConfig(n_contexts=3, x1_samples=8, per_label=2, min_words=5,
                  x1=DecodeConfig(max_new_tokens=10, batch_size=4), x2=DecodeConfig(max_new_tokens=20, batch_size=4))


# ----------------------------------------------------------------------------- same prompts, same rows
@pytest.mark.parametrize("kind", ["tc", "nli", "qa"])
def test_same_prompts_and_rows_as_the_transformers_path(kind, fake_vllm, plm_dir, monkeypatch):
    """For the same contexts and labels, vLLM receives exactly the prompt token ids the transformers
    sampler feeds its LM (x1, per-label x2, QA questions), and given the same completions the rows
    and filter counts that come out are identical: same prompt code, same filters."""
    folder = plm_dir / "tiny"
    tf_model, tok = P.load_plm(str(folder))
    premises = ["A man is playing a guitar on the street.", "The committee approved the budget in May."]
    qa_ctx = [{"context": "Alan Turing was born in London in 1912 and studied at Cambridge.", "title": "T"}]

    def run(model, tok_):
        if kind == "tc":
            return Y.synthesize_tc(T.get_task("sst2"), model, tok_, CFG, seed=3)
        if kind == "nli":
            return Y.synthesize_nli(T.get_task("rte"), model, tok_, premises, CFG, seed=3)
        return Q.synthesize_qa(T.get_task("squad"), model, tok_, qa_ctx, CFG.model_copy(update={"min_words": 3}),
                               seed=3, nlp=nlp_once())

    seen: list[str] = []
    with monkeypatch.context() as m:
        _canned_transformers(m, tok, seen)
        tf_rows, tf_stats = run(tf_model, tok)
    vm, vtok = V.load_vllm_plm(folder, V.VllmConfig(request_chunk=5), seed=3)
    v_rows, v_stats = run(vm, vtok)
    assert seen and _vllm_prompts() == [tok(p, add_special_tokens=False)["input_ids"] for p in seen]
    assert tf_rows and v_rows == tf_rows and v_stats == tf_stats


_NLP = []


def nlp_once():
    if not _NLP:
        _NLP.append(Q.load_ner())
    return _NLP[0]


# ----------------------------------------------------------------------------- settings, stop, seeds
def test_sampling_settings_map_to_sampling_params(fake_vllm, plm_dir):
    """top-k (0 = off -> -1), top-p, temperature, max_new_tokens, the stop quote, EOS suppression
    (ignore_eos + a -100 bias, never min_tokens, which would delay the stop check), greedy."""
    vm, tok = V.load_vllm_plm(plm_dir / "tiny", V.VllmConfig(dtype="float32", enforce_eager=True), seed=1)
    assert vm.llm.kw["dtype"] == "float32" and vm.llm.kw["enforce_eager"] is True and vm.llm.kw["seed"] == 1
    eos = tok.eos_token_id
    G.sample(vm, tok, ['Movie: "'] * 2, DecodeConfig(top_k=40, top_p=0.8, temperature=0.7, max_new_tokens=12), seed=1)
    sp = vm.llm.calls[-1][1][0].kw
    assert {k: sp[k] for k in sp if k != "seed"} == dict(
        n=1, max_tokens=12, skip_special_tokens=True, temperature=0.7, top_p=0.8, top_k=40, stop=['"'],
        include_stop_str_in_output=True, ignore_eos=True, logit_bias={eos: -100.0})
    assert "min_tokens" not in sp
    assert V.sampling_kwargs(DecodeConfig(top_k=0), eos)["top_k"] == -1
    greedy = V.sampling_kwargs(DecodeConfig(do_sample=False, top_p=0.5, top_k=5, suppress_eos=False, stop=""), eos)
    assert greedy == dict(n=1, max_tokens=40, skip_special_tokens=True, temperature=0.0, top_p=1.0, top_k=-1)


def test_texts_stop_at_the_closing_quote(fake_vllm, plm_dir):
    """The engine is asked to stop at '"' and keep it: every text ends at its first quote, as the
    transformers sampler's rows do; a text without a quote comes back whole."""
    vm, tok = V.load_vllm_plm(plm_dir / "tiny")
    texts = G.sample(vm, tok, ['Movie: "'] * 3 + ['The movie review in positive sentiment is: "'] * 8,
                     DecodeConfig(), seed=0)
    quoted = [t for t in texts if '"' in t]
    assert quoted and all(t.index('"') == len(t) - 1 for t in quoted)
    assert any('"' not in t for t in texts)                   # the canned "no closing quote" text


def test_request_seeds_are_deterministic_and_distinct(fake_vllm, plm_dir):
    """Per-request seeds depend on the stage seed and the prompt's index only: a rerun sends the
    same seeds, another stage seed other ones; x1 (seed s) and x2 (seed s+1) share none; the values
    are pinned (blake2b, not Python's salted hash)."""
    assert V.request_seeds(42, 3) == V.request_seeds(42, 3) == [1974137946, 2104106756, 77665471]
    a, b = V.request_seeds(42, 500), V.request_seeds(43, 500)
    assert len(set(a)) == 500 and not set(a) & set(b)
    vm, tok = V.load_vllm_plm(plm_dir / "tiny", V.VllmConfig(request_chunk=4))
    prompts = ['Movie: "'] * 10
    G.sample(vm, tok, prompts, DecodeConfig(), seed=42)
    G.sample(vm, tok, prompts, DecodeConfig(), seed=42)
    calls = vm.llm.calls
    assert [len(c[0]) for c in calls] == [4, 4, 2, 4, 4, 2]     # batched requests, request_chunk at a time
    sent = [[sp.kw["seed"] for c in calls[i: i + 3] for sp in c[1]] for i in (0, 3)]
    assert sent[0] == sent[1] == V.request_seeds(42, 10)


def test_served_model_counts_parameters_like_the_loaded_one(fake_vllm, plm_dir):
    model, _ = P.load_plm(str(plm_dir / "tiny"))
    vm, _ = V.load_vllm_plm(plm_dir / "tiny")
    assert P.n_params(vm) == P.n_params(model) > 0


# ----------------------------------------------------------------------------- up-front errors
def _params(**kw) -> S.SynthesizeParams:
    return S.SynthesizeParams(synth=SynthConfig(), data=S.DataParams(),
                              set_overrides={"rte": {"x2": {"decay_constant": 200.0}}}, **kw)


def test_self_debiasing_sets_are_refused_up_front():
    """A vllm set that self-debiases (rte, λ = 200) is a params error naming the key; keeping that set
    on transformers (backend_for) or λ = 0 is accepted; the movie set (no counter prompts) is fine."""
    with pytest.raises(ValueError, match=r"zerogen_synthesize\.backend: vllm cannot serve set 'rte'.*decay_constant"):
        _params(sets=["movie", "rte"], backend="vllm")
    with pytest.raises(ValueError, match=r"zerogen_synthesize\.backend_for\.rte: vllm cannot serve set 'rte'"):
        _params(sets=["movie", "rte"], backend_for={"rte": "vllm"})
    ok = _params(sets=["movie", "rte"], backend="vllm", backend_for={"rte": "transformers"})
    assert (ok.backend_of("movie"), ok.backend_of("rte")) == ("vllm", "transformers")
    S.SynthesizeParams(synth=SynthConfig(), data=S.DataParams(), sets=["rte"], backend="vllm")   # λ = 0
    with pytest.raises(ValueError, match="backend_for: unknown prompt family 'books'"):
        _params(backend_for={"books": "vllm"})
    with pytest.raises(ValueError, match="backend"):
        _params(backend="llamacpp")


def test_debiasing_at_run_time_is_refused_too(fake_vllm, plm_dir):
    vm, tok = V.load_vllm_plm(plm_dir / "tiny")
    with pytest.raises(ValueError, match="zerogen_synthesize.backend: the vllm backend cannot self-debias"):
        G.sample(vm, tok, ["a", "b"], DecodeConfig(decay_constant=200.0), counters=[["c"], ["d"]])


def test_missing_vllm_fails_before_any_work(monkeypatch, tmp_path):
    """No vllm (None in sys.modules makes the import fail): run_synthesize stops before loading the PLM
    (whose folder does not even exist), naming the key and what to install."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    params = _params(sets=["movie"], backend="vllm", plm_dir=str(tmp_path / "none"), out_dir=str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match=r"zerogen_synthesize\.backend: 'vllm' needs the vllm package.*pip install vllm"):
        S.run_synthesize(params, None, set="movie")
    assert not (tmp_path / "out").exists()


def test_no_cuda_fails_before_any_work(fake_vllm, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = _params(sets=["movie"], backend_for={"movie": "vllm"}, plm_dir=str(tmp_path / "none"))
    with pytest.raises(RuntimeError, match=r"zerogen_synthesize\.backend_for\.movie: 'vllm' needs a CUDA GPU"):
        S.run_synthesize(params, None, set="movie")
    assert not _FakeLLM.instances


def test_synthesize_stage_runs_on_the_vllm_backend(fake_vllm, plm_dir, tmp_path):
    """The stage end to end on the fake engine: the set is saved with backend 'vllm' in its provenance."""
    params = S.SynthesizeParams(sets=["movie"], backend="vllm", plm="tiny", plm_dir=str(plm_dir), synth=CFG,
                                data=S.DataParams(), out_dir=str(tmp_path / "syn"), seed=3)
    out = S.run_synthesize(params, None, set="movie")
    rows, prov = Y.load_synthetic(tmp_path / "syn" / "movie")
    assert out["rows"] == len(rows) > 0 and prov["backend"] == "vllm" and prov["plm_params"] > 0
    assert _FakeLLM.instances[0].kw["model"] == str(plm_dir / "tiny")
