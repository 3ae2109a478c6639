"""ZeroGen pipeline pieces without a PLM: Self-BLEU, TAMs, selection on synthetic data, poisoned gold."""
from __future__ import annotations

import math
import random
import re

import pytest
import torch

from arkbench.data import embedded as E
from arkbench.papers.zerogen import analysis as A
from arkbench.papers.zerogen import stages as S
from arkbench.papers.zerogen import tam as M
from arkbench.papers.zerogen.synth import load_synthetic, pick_premises, save_synthetic

SMALL = M.TamConfig(emb_dim=16, hidden=32, mlp_hidden=32, nli_layers=1, epochs=3, patience=2, lr=3e-3, batch_size=16)


# ----------------------------------------------------------------------------- Self-BLEU
def test_self_bleu_identical_texts_is_one():
    assert A.self_bleu(["a b c d e f"] * 4) == pytest.approx(1.0)


def test_self_bleu_disjoint_texts_is_zero():
    assert A.self_bleu(["a b c", "d e f", "g h i"]) == 0.0


def test_self_bleu_known_value():
    """Two texts 'a b c' / 'a b d', by hand with NLTK's method1 rules (p_k = 0.1/#k-grams when no match)."""
    p = [2 / 3, 1 / 2, 0.1, 0.1, 0.1]
    bleu = [math.exp(sum(math.log(x) for x in p[:n]) / n) for n in range(1, 6)]
    assert A.self_bleu(["a b c", "a b d"]) == pytest.approx(sum(bleu) / 5)


def test_self_bleu_falls_with_diversity():
    rng = random.Random(0)
    same = ["the film is good and the plot is fine ."] * 20
    varied = [E.sentiment_sentence(rng)[0] for _ in range(20)]
    assert A.self_bleu(varied) < A.self_bleu(same)


# ----------------------------------------------------------------------------- TAMs
def test_lstm_shapes_and_param_count():
    m = M.BiLSTMClassifier(1000, 2)          # spec A.8 sizes
    x = torch.randint(1, 1000, (3, 7))
    assert m(x, torch.tensor([7, 4, 1])).shape == (3, 2)
    emb, lstm, head = 1000 * 100, 2 * (4 * 150 * (100 + 150) + 8 * 150), 300 * 2 + 2
    assert M.n_params(m) == emb + lstm + head
    # forget-gate bias is 1, the others 0
    b = m.lstm.bias_ih_l0
    assert torch.all(b[150:300] == 1) and torch.all(b[:150] == 0)
    nli = M.BiLSTMNLI(1000, 2)
    assert nli(x, torch.tensor([7, 4, 1]), x, torch.tensor([2, 7, 3])).shape == (3, 2)
    assert nli.mlp[0].in_features == 4 * 600


def test_padding_does_not_change_the_prediction():
    torch.manual_seed(0)
    m = M.BiLSTMNLI(50, 2, emb_dim=8, hidden=8, layers=1, mlp_hidden=8).eval()
    a = torch.tensor([[5, 6, 7]])
    b = torch.tensor([[5, 6, 7, 0, 0]])
    h = torch.tensor([[9, 3]])
    out1 = m(a, torch.tensor([3]), h, torch.tensor([2]))
    out2 = m(b, torch.tensor([3]), torch.tensor([[9, 3, 0]]), torch.tensor([2]))
    assert torch.allclose(out1, out2, atol=1e-6)


def _sentiment(n, seed):
    rng = random.Random(seed)
    return [(t, None, y) for t, y in (E.sentiment_sentence(rng) for _ in range(n))]


def test_lstm_learns_embedded_sentiment():
    train, gold = _sentiment(300, 1), _sentiment(100, 2)
    r = M.fit_and_evaluate("lstm", "tc", train, {"gold": gold}, 2, SMALL.model_copy(update={"epochs": 6}), seed=0)
    assert r["gold_acc"] > 0.7 and 1 <= r["best_epoch"] <= 6


def test_selection_never_sees_gold():
    """Model selection uses the synthetic 10% only: flipping every gold label leaves the chosen
    epoch and the synthetic dev accuracy unchanged and mirrors the gold accuracy."""
    train, gold = _sentiment(200, 3), _sentiment(60, 4)
    flipped = [(a, b, 1 - y) for a, b, y in gold]
    r1 = M.fit_and_evaluate("lstm", "tc", train, {"gold": gold}, 2, SMALL, seed=0)
    r2 = M.fit_and_evaluate("lstm", "tc", train, {"gold": flipped}, 2, SMALL, seed=0)
    assert (r1["best_epoch"], r1["dev_acc"]) == (r2["best_epoch"], r2["dev_acc"])
    assert r1["gold_acc"] + r2["gold_acc"] == pytest.approx(1.0)


def test_split_synthetic_is_seeded_ninety_ten():
    ex = [(str(i), None, i % 2) for i in range(100)]
    tr, dev = M.split_synthetic(ex, 0.1, 42)
    assert len(dev) == 10 and len(tr) == 90 and not set(tr) & set(dev)
    assert M.split_synthetic(ex, 0.1, 42) == (tr, dev)


# ----------------------------------------------------------------------------- stages without a PLM
def _fake_synthetic(n=120, seed=5):
    rng = random.Random(seed)
    return [{"C": "Film", "X": t, "Y": "positive" if y else "negative"}
            for t, y in (E.sentiment_sentence(rng) for _ in range(n))]


def test_poisoned_gold_train_does_not_move_zerogen():
    """No gold training label touches ZeroGen: poisoning them changes SUPERVISED, not ZeroGen.
    (Training ZeroGen's TAM on gold train instead of the synthetic set makes the first assertion fail.)"""
    p = S.TrainParams(tasks=["sst2"], models=["lstm"], tam=SMALL, prompting=False, bidaf=S.BidafConfig(),
                      data=S.DataParams(source="embedded", embedded_sizes=(200, 60)))
    rows = _fake_synthetic()
    clean = S.train_task(p, "sst2", rows)
    poisoned = S.train_task(p.model_copy(update={"poison_gold_train": True}), "sst2", rows)
    assert poisoned["zerogen"] == clean["zerogen"]
    assert poisoned["supervised"]["lstm"]["acc"] != clean["supervised"]["lstm"]["acc"]


def test_max_train_for_caps_one_task_and_the_stage_says_where_its_time_went(capsys):
    """`data.max_train_for` caps one task's gold train rows over `max_train` (the cpu profile's RTE:
    its NLI LSTM on 1000 long pairs was half of zerogen_train@rte), and train_task prints each
    method's wall seconds. A cap below 1 is refused naming the key."""
    p = S.TrainParams(tasks=["sst2"], models=["lstm"], tam=SMALL, prompting=False, bidaf=S.BidafConfig(),
                      data=S.DataParams(source="embedded", embedded_sizes=(200, 60), max_train=120,
                                        max_train_for={"sst2": 50, "rte": 500}))
    assert len(S.load_gold("sst2", p.data)[0]) == 50
    assert len(S.load_gold("sst2", p.data.model_copy(update={"max_train_for": {}}))[0]) == 120
    res = S.train_task(p, "sst2", _fake_synthetic())
    assert res["supervised"]["lstm"]["n_train"] == 50
    printed = capsys.readouterr().out
    for method in ("zerogen/lstm", "supervised/lstm"):
        assert re.search(rf"^\[zerogen_train@sst2\] {method}: [0-9.]+s$", printed, re.M), printed
    assert "seconds" not in res            # wall time stays out of the stage's JSON (identical across runs)
    with pytest.raises(ValueError, match="max_train_for.*'rte': 0"):
        S.DataParams(max_train_for={"rte": 0})


def test_analysis_samples_each_plm_and_setting_once(monkeypatch, tmp_path):
    """The PLM-size comparison's large generator samples with the sweep's top-p 0.9 settings: the
    analysis reuses that synthesis and its TAM accuracy instead of sampling and training twice
    (7 -> 6 syntheses). The small generator, with the same settings, is sampled on its own."""
    from arkbench.papers.zerogen.synth import SynthConfig

    save_synthetic(_fake_synthetic(40), tmp_path / "movie", {"plm": "large", "rows": 40})
    calls = []

    def fake_synth(set_name, model, tok, cfg, seed, data, **kw):
        calls.append((model, cfg.x2.label()))
        return _fake_synthetic(30, seed=len(calls)), {}

    monkeypatch.setattr(S, "synthesize_set", fake_synth)
    monkeypatch.setattr(S, "_load_plm", lambda name, plm_dir: (name, None))
    monkeypatch.setattr("arkbench.papers.zerogen.plm.n_params", lambda m: 1)
    p = S.AnalysisParams(plm="large", plm_small="small", sweep_synth=SynthConfig(n_contexts=2, per_label=2),
                         tam=SMALL, synthetic_dir=str(tmp_path), size_fractions=[1.0],
                         data=S.DataParams(source="embedded", embedded_sizes=(200, 60)))
    out = S.run_analysis(p, None)
    assert [m for m, _ in calls] == ["large"] * 5 + ["small"]
    topp = out["decoding"]["name"].index("topp0.9")
    assert out["plm_size"]["large"]["acc"] == out["decoding"]["tam_acc"][topp]
    assert out["plm_size"]["large"]["rows"] == out["decoding"]["rows"][topp]


def test_synthetic_set_round_trip(tmp_path):
    rows = _fake_synthetic(10)
    save_synthetic(rows, tmp_path / "movie", {"plm": "x", "rows": 10})
    back, prov = load_synthetic(tmp_path / "movie")
    assert back == rows and prov["rows"] == 10
    with pytest.raises(FileNotFoundError, match="run the zerogen_synthesize stage"):
        load_synthetic(tmp_path / "none")


def test_premises_are_a_seeded_sample_of_distinct_texts():
    ps = pick_premises(["a", "b", "a", "c", "", "d"], 3, seed=1)
    assert len(ps) == 3 and len(set(ps)) == 3 and set(ps) <= {"a", "b", "c", "d"}
    assert ps == pick_premises(["a", "b", "a", "c", "", "d"], 3, seed=1)


def test_params_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown prompt family 'books'"):
        S.SynthesizeParams(sets=["books"])
    with pytest.raises(ValueError, match="unknown ZeroGen task 'nope'"):
        S.TrainParams(tasks=["nope"])
    with pytest.raises(ValueError, match="size_fractions must be increasing"):
        S.AnalysisParams(size_fractions=[0.5, 0.25])
    with pytest.raises(ValueError, match=r"zerogen_train.task_overrides.rte: not one of \['sst2'\]"):
        S.TrainParams(tasks=["sst2"], tam=SMALL, bidaf=S.BidafConfig(), data=S.DataParams(),
                      task_overrides={"rte": {"tf_epochs": 3}})
    with pytest.raises(ValueError, match=r"zerogen_train.model_overrides.minilm: unknown TAM keys \['tf_epoch'\]"):
        S.TrainParams(tasks=["sst2"], tam=SMALL, bidaf=S.BidafConfig(), data=S.DataParams(),
                      model_overrides={"minilm": {"tf_epoch": 3}})


def test_tam_overrides_merge_task_then_model(repo_root):
    """tam_for: `tam`, then the task's overrides, then the model's (finetune's order). The cpu
    profile gives MiniLM 2e-4 x 6 epochs, RTE 3 of them (its long pairs, chance either way)."""
    from arkbench.config import effective_section, read_params

    p = S.TrainParams(tasks=["sst2", "rte"], tam=SMALL, bidaf=S.BidafConfig(), data=S.DataParams(),
                      task_overrides={"rte": {"tf_epochs": 3, "lr": 0.5}}, model_overrides={"minilm": {"lr": 0.25}})
    assert (p.tam_for("lstm", "rte").tf_epochs, p.tam_for("lstm", "rte").lr) == (3, 0.5)
    assert (p.tam_for("minilm", "rte").tf_epochs, p.tam_for("minilm", "rte").lr) == (3, 0.25)
    assert p.tam_for("lstm", "sst2") == SMALL == p.tam_for("lstm")
    cpu = S.TrainParams.model_validate(effective_section(read_params(repo_root / "params.yaml"), "zerogen_train", "cpu"))
    assert (cpu.tam_for("minilm", "sst2").tf_lr, cpu.tam_for("minilm", "sst2").tf_epochs) == (2e-4, 6)
    assert cpu.tam_for("minilm", "rte").tf_epochs == 3


def test_every_stage_applies_its_num_threads_first(monkeypatch, repo_root):
    """Each zerogen stage hands its section's num_threads (smoke: 1, the other profiles: None =
    torch's default) to set_threads before any work; set_threads sets torch's intra-op threads
    only when a number is given. Drop the call from one run_* function and this fails."""
    from arkbench.config import read_params, stage_params

    class Called(Exception):
        pass

    seen = []

    def fake(n):
        seen.append(n)
        raise Called

    raw = read_params(repo_root / "params.yaml")
    for section, run, matrix in (("zerogen_plm", S.run_plm, {}),
                                 ("zerogen_synthesize", S.run_synthesize, {"set": "movie"}),
                                 ("zerogen_train", S.run_train, {"task": "sst2"}),
                                 ("zerogen_analysis", S.run_analysis, {})):
        assert raw[section]["num_threads"] == 1                                   # smoke
        assert all(o.get("num_threads", "absent") is None for o in raw[section]["profiles"].values())
        p = stage_params(section, repo_root / "params.yaml")
        monkeypatch.setattr(S, "set_threads", fake)
        with pytest.raises(Called):
            run(p, None, **matrix)
        monkeypatch.undo()
    assert seen == [1, 1, 1, 1]
    before = torch.get_num_threads()
    try:
        S.set_threads(None)
        assert torch.get_num_threads() == before
        S.set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_profile_sets_resolve_as_their_comments_say(repo_root):
    """The cpu profile's per-set overrides merge over `synth` key by key: RTE keeps the profile's 8
    samples per label and ZeroGen's self-debiasing, QA takes one sample per (context, answer). A
    mis-indented override once gave RTE the QA keys (per_label 1: 24 raw pairs, 11 rows kept)."""
    from arkbench.config import effective_section, read_params
    from arkbench.papers.zerogen.stages import SynthesizeParams

    p = SynthesizeParams.model_validate(effective_section(read_params(repo_root / "params.yaml"),
                                                         "zerogen_synthesize", "cpu"))
    movie, rte, qa = p.synth_for("movie"), p.synth_for("rte"), p.synth_for("qa")
    assert movie.per_label == rte.per_label == p.synth.per_label == 8
    assert rte.x2.decay_constant == 200.0 and movie.x2.decay_constant == 0.0
    assert rte.n_contexts * 2 * rte.per_label >= 90   # ~60 rows kept (64 % in the seventh cpu run); the QA keys gave 24
    assert (qa.per_label, qa.answers_per_context, qa.one_per_answer) == (1, 4, True)
