"""SQuAD pre/post-processing on hand-made examples (no training)."""
from __future__ import annotations

import numpy as np
import pytest

from arkbench.tokenization import load_tokenizer
from arkbench.training import squad


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


def ex(qid, question, context, answer=None):
    if answer is None:
        return {"id": qid, "question": question, "context": context, "title": "t",
                "answers": {"text": [], "answer_start": []}}
    start = context.index(answer)
    return {"id": qid, "question": question, "context": context, "title": "t",
            "answers": {"text": [answer], "answer_start": [start]}}


def span_tokens(feat, tok):
    s, e = feat["start_positions"], feat["end_positions"]
    return tok.decode(feat["input_ids"][s:e + 1])


def peaked_logits(feat, start_tok, end_tok, width=None, null=-5.0):
    n = width or len(feat["input_ids"])
    s = np.full(n, -10.0)
    e = np.full(n, -10.0)
    s[feat["cls_index"]] = e[feat["cls_index"]] = null
    if start_tok is not None:
        s[start_tok] = 10.0
        e[end_tok] = 10.0
    return s, e


def tokens_of(feat, char_start, char_end):
    """Token indices in `feat` covering context characters [char_start, char_end)."""
    offs = feat["offset_mapping"]
    idx = [k for k, o in enumerate(offs) if o is not None and o[0] < char_end and o[1] > char_start]
    return (idx[0], idx[-1]) if idx else (None, None)


def test_train_labels_point_at_answer(tok):
    e = ex("a", "Where does the cat sleep?", "The old cat sleeps on the warm mat in the kitchen.", "warm mat")
    feats = squad.prepare_features([e], tok, max_seq_len=64, doc_stride=16, max_query_len=16, train=True)
    assert len(feats) == 1
    assert span_tokens(feats[0], tok) == "warm mat"
    assert feats[0]["input_ids"][feats[0]["cls_index"]] == tok.cls_token_id


def test_unanswerable_labels_cls(tok):
    e = ex("u", "Who won?", "Nothing about winners is said here.")
    f = squad.prepare_features([e], tok, max_seq_len=64, doc_stride=16, max_query_len=16, train=True)[0]
    assert f["start_positions"] == f["end_positions"] == f["cls_index"] == 0


def long_context():
    words = [f"w{i}" for i in range(120)]
    words[50:52] = ["golden", "bridge"]
    return " ".join(words)


def test_sliding_windows_and_answer_outside_window(tok):
    c = long_context()
    e = ex("l", "What is it?", c, "golden bridge")
    feats = squad.prepare_features([e], tok, max_seq_len=48, doc_stride=16, max_query_len=8, train=True)
    assert len(feats) > 2
    assert all(len(f["input_ids"]) <= 48 for f in feats)
    inside = [f for f in feats if f["start_positions"] != f["cls_index"]]
    outside = [f for f in feats if f["start_positions"] == f["cls_index"]]
    assert inside and outside                      # some windows have it, others label CLS
    for f in inside:
        assert span_tokens(f, tok) == "golden bridge"
    assert all(f["end_positions"] == f["cls_index"] for f in outside)


def test_consecutive_windows_overlap_by_doc_stride(tok):
    c = long_context()
    feats = squad.prepare_features([ex("l", "What is it?", c, "golden bridge")], tok, max_seq_len=48,
                                   doc_stride=16, max_query_len=8, train=False)
    spans = [[o for o in f["offset_mapping"] if o is not None] for f in feats]
    for a, b in zip(spans, spans[1:]):
        shared = set(a) & set(b)
        assert len(shared) == 16
    # every context character that is part of a word is covered by some window
    assert spans[0][0][0] == 0 and spans[-1][-1][1] == len(c)


def test_long_question_is_truncated(tok):
    q = " ".join(["why"] * 50) + "?"
    feats = squad.prepare_features([ex("q", q, "short context here", "context")], tok, max_seq_len=32,
                                   doc_stride=4, max_query_len=8, train=True)
    seq_ids_q = [t for t in feats[0]["token_type_ids"] if t == 0]
    assert len(seq_ids_q) == 8 + 2                 # [CLS] + 8 question tokens + [SEP]
    assert span_tokens(feats[0], tok) == "context"


def test_postprocess_peaked_logits_give_exact_text(tok):
    c = "Marie Curie was born in Warsaw in 1867 and died in 1934."
    examples = [ex("p", "Where was she born?", c, "Warsaw")]
    feats = squad.prepare_features(examples, tok, max_seq_len=64, doc_stride=16, max_query_len=16, train=False)
    a, b = tokens_of(feats[0], c.index("Warsaw in 1867"), c.index("Warsaw in 1867") + len("Warsaw in 1867"))
    s, e = peaked_logits(feats[0], a, b, width=70)   # logits padded past the feature
    preds = squad.postprocess(examples, feats, [s], [e])
    assert preds == [{"id": "p", "prediction_text": "Warsaw in 1867"}]   # original casing kept


def test_postprocess_respects_max_answer_length_and_order(tok):
    c = "alpha beta gamma delta epsilon zeta"
    examples = [ex("m", "which?", c, "beta")]
    f = squad.prepare_features(examples, tok, max_seq_len=32, doc_stride=4, max_query_len=8, train=False)[0]
    ia, _ = tokens_of(f, c.index("alpha"), c.index("alpha") + 5)
    _, iz = tokens_of(f, c.index("zeta"), c.index("zeta") + 4)
    ib, _ = tokens_of(f, c.index("beta"), c.index("beta") + 4)
    _, ig = tokens_of(f, c.index("gamma"), c.index("gamma") + 5)
    s = np.full(len(f["input_ids"]), -10.0)
    e = s.copy()
    s[ia], e[iz] = 9.0, 9.0            # best pairs (alpha..zeta, alpha..gamma) are too long for 2
    s[ib], e[ig] = 5.0, 5.0
    e[ia - 1 if ia > 0 else ia] = 20.0  # an end before any start must never win
    preds = squad.postprocess(examples, [f], [s], [e], max_answer_length=2)
    assert tok.tokenize(c)[:3] == ["alpha", "beta", "gamma"]
    assert preds[0]["prediction_text"] == "beta gamma"


def test_postprocess_answer_spanning_two_windows(tok):
    """The answer is in two windows; the one with the higher score wins, mapped to the context."""
    c = long_context()
    examples = [ex("l", "What is it?", c, "golden bridge")]
    feats = squad.prepare_features(examples, tok, max_seq_len=48, doc_stride=16, max_query_len=8, train=False)
    lo = c.index("golden bridge")
    hi = lo + len("golden bridge")
    having = [i for i, f in enumerate(feats) if tokens_of(f, lo, hi)[0] is not None
              and tokens_of(f, lo, hi)[1] is not None
              and f["offset_mapping"][tokens_of(f, lo, hi)[0]][0] == lo
              and f["offset_mapping"][tokens_of(f, lo, hi)[1]][1] == hi]
    assert len(having) >= 2
    starts, ends = [], []
    for i, f in enumerate(feats):
        a, b = tokens_of(f, lo, hi) if i in having else (None, None)
        s, e = peaked_logits(f, a, b)
        if i == having[0]:
            s[a] = e[b] = 3.0              # weaker in the first window
        if i != having[-1] and i not in having:
            # a decoy with a lower score elsewhere
            offs = [k for k, o in enumerate(f["offset_mapping"]) if o is not None]
            s[offs[0]] = e[offs[0]] = 1.0
        starts.append(s)
        ends.append(e)
    preds = squad.postprocess(examples, feats, starts, ends)
    assert preds[0]["prediction_text"] == "golden bridge"


def test_postprocess_v2_null_vs_best(tok):
    c = "The museum opens at nine and closes at five."
    examples = [ex("n1", "When does it open?", c, "nine"), ex("n2", "Who built it?", c)]
    feats = squad.prepare_features(examples, tok, max_seq_len=48, doc_stride=8, max_query_len=16, train=False)
    assert [f["example_index"] for f in feats] == [0, 1]
    a, b = tokens_of(feats[0], c.index("nine"), c.index("nine") + 4)
    s0, e0 = peaked_logits(feats[0], a, b, null=-5.0)            # answer score 20 >> null -10
    a1, b1 = tokens_of(feats[1], c.index("five"), c.index("five") + 4)
    s1, e1 = peaked_logits(feats[1], a1, b1, null=0.0)
    s1[a1] = e1[b1] = -1.0                                       # best non-null -2 < null 0
    preds = squad.postprocess(examples, feats, [s0, s1], [e0, e1], version_2=True, null_threshold=0.0)
    assert preds[0]["prediction_text"] == "nine" and preds[0]["no_answer_probability"] < 0.01
    assert preds[1]["prediction_text"] == "" and preds[1]["no_answer_probability"] > 0.5
    # a high threshold lets the non-null answer through
    preds = squad.postprocess(examples, feats, [s0, s1], [e0, e1], version_2=True, null_threshold=5.0)
    assert preds[1]["prediction_text"] == "five"
    # v1 never predicts the empty string when a span exists
    preds = squad.postprocess(examples, feats, [s0, s1], [e0, e1], version_2=False)
    assert preds[1] == {"id": "n2", "prediction_text": "five"}


def test_postprocess_output_scores_with_metrics(tok):
    from arkbench import metrics

    c = "Paris is the capital of France."
    examples = [ex("x", "What is the capital?", c, "Paris"), ex("y", "What is it of?", c, "France")]
    feats = squad.prepare_features(examples, tok, max_seq_len=48, doc_stride=8, max_query_len=16, train=False)
    sl, el = [], []
    for f, ans in zip(feats, ["Paris", "France"]):
        a, b = tokens_of(f, c.index(ans), c.index(ans) + len(ans))
        s, e = peaked_logits(f, a, b)
        sl.append(s)
        el.append(e)
    preds = squad.postprocess(examples, feats, sl, el)
    res = metrics.compute("squad", predictions=preds, references=squad.references(examples))
    assert res["exact_match"] == pytest.approx(100.0) and res["f1"] == pytest.approx(100.0)


def test_mismatched_lengths_raise(tok):
    examples = [ex("z", "q?", "some context", "context")]
    feats = squad.prepare_features(examples, tok, max_seq_len=32, doc_stride=4, max_query_len=8, train=False)
    with pytest.raises(ValueError, match="features"):
        squad.postprocess(examples, feats, [], [])
