"""arkbench.metrics: every number below is worked out by hand in the comments.

The metrics are local ``evaluate`` scripts; these tests also pin that loading
and computing them needs no network (tests/conftest.py sets the HF_*_OFFLINE vars).
"""
from __future__ import annotations

import math
import os
import socket

import pytest

from arkbench import metrics
from arkbench.metrics._squad_text import normalize_answer, token_f1


def approx(x, rel=1e-6):
    return pytest.approx(x, rel=rel, abs=1e-9)


# --- registry -----------------------------------------------------------------


def test_no_network_during_load_and_compute(monkeypatch):
    """Fresh loads of every family with sockets disabled: nothing may try to connect."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        assert os.environ.get(var) == "1"

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    metrics._load.cache_clear()

    assert metrics.compute("glue/cola", [1, 0], [1, 0]) == {"matthews_correlation": 1.0}
    assert metrics.compute("classification", [1, 0], [1, 1])["accuracy"] == 0.5
    squad_pred = [{"id": "q", "prediction_text": "x"}]
    squad_ref = [{"id": "q", "answers": {"text": ["x"], "answer_start": [0]}}]
    assert metrics.compute("squad", squad_pred, squad_ref)["f1"] == 100.0
    assert metrics.compute("squad_v2", squad_pred, squad_ref)["exact"] == 100.0


def test_metric_paths_are_local_absolute_scripts():
    """An absolute path to an existing .py is what keeps evaluate off the hub."""
    for name in metrics.METRICS:
        path = metrics.metric_path(name)
        assert path.is_absolute() and path.is_file() and path.suffix == ".py", name


def test_load_metric_is_cached():
    assert metrics.load_metric("glue/sst2") is metrics.load_metric("glue/sst2")


def test_module_dir_loads_with_plain_evaluate():
    import evaluate

    m = evaluate.load(str(metrics.METRICS_DIR / "glue"), "rte", keep_in_memory=True)
    assert m.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]) == {"accuracy": 0.75}


def test_unknown_metric_names_the_bad_name_and_the_known_ones():
    with pytest.raises(metrics.UnknownMetricError) as err:
        metrics.load_metric("glue/colaa")
    msg = str(err.value)
    assert "'glue/colaa'" in msg and "did you mean glue/cola" in msg
    for known in ("glue/cola", "glue/stsb", "squad", "squad_v2", "classification"):
        assert known in msg
    assert isinstance(err.value, KeyError)
    with pytest.raises(KeyError, match="nope"):
        metrics.compute("nope", [1], [1])
    with pytest.raises(KeyError, match="nope"):
        metrics.primary_metric("nope")


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"glue/mrpc: got 3 predictions but 2 references"):
        metrics.compute("glue/mrpc", [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match=r"squad: got 0 predictions but 1 references"):
        metrics.compute("squad", [], [{"id": "q", "answers": {"text": ["x"], "answer_start": [0]}}])


def test_primary_metrics():
    expected = {
        "glue/cola": "matthews_correlation",
        "glue/stsb": "pearson",
        "glue/mrpc": "f1",
        "glue/qqp": "f1",
        "glue/mnli_matched": "accuracy",
        "glue/sst2": "accuracy",
        "squad": "f1",
        "squad_v2": "f1",
        "classification": "accuracy",
    }
    for name, key in expected.items():
        assert metrics.primary_metric(name) == key


_TINY_SQUAD = (
    [{"id": "q", "prediction_text": "x"}],
    [{"id": "q", "answers": {"text": ["x"], "answer_start": [0]}}],
)


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_every_metric_returns_plain_floats_with_its_primary_key(name):
    if name.startswith("squad"):
        preds, refs = _TINY_SQUAD
    elif name == "glue/stsb":
        preds, refs = [0.5, 2.0, 3.5], [1.0, 2.0, 4.0]
    else:
        preds, refs = [0, 1, 1, 0], [0, 1, 0, 1]
    result = metrics.compute(name, preds, refs)
    assert metrics.primary_metric(name) in result
    assert all(type(v) is float for v in result.values()), result


# --- GLUE (fractions in [0, 1]) --------------------------------------------------


def test_cola_mcc_hand_confusion_matrix():
    # TP=3 (1,1) x3, TN=2 (0,0) x2, FP=1 (pred 1, gold 0), FN=1 (pred 0, gold 1)
    preds = [1, 1, 1, 0, 0, 1, 0]
    refs = [1, 1, 1, 0, 0, 0, 1]
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6-1)/sqrt(4*4*3*3) = 5/12
    assert metrics.compute("glue/cola", preds, refs) == {"matthews_correlation": approx(5 / 12)}


def test_mcc_degenerate_and_multiclass():
    # a constant prediction has zero variance -> MCC defined as 0
    assert metrics.compute("glue/cola", [1, 1, 1], [1, 0, 1])["matthews_correlation"] == 0.0
    # 3 classes, s=4 examples, c=3 correct: t=(1,2,1) gold counts, p=(2,1,1) predicted counts
    # (c*s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)) = (12 - 5) / sqrt((16-6)(16-6)) = 7/10
    preds, refs = [0, 0, 1, 2], [0, 1, 1, 2]
    assert metrics.compute("glue/ax", preds, refs)["matthews_correlation"] == approx(0.7)
    from sklearn.metrics import matthews_corrcoef

    assert matthews_corrcoef(refs, preds) == approx(0.7)


def test_mrpc_accuracy_and_f1():
    preds = [1, 1, 0, 1, 0, 0]
    refs = [1, 0, 0, 1, 1, 0]
    # TP=2, FP=1, FN=1, TN=2: P=R=2/3 -> F1=2/3; accuracy 4/6
    assert metrics.compute("glue/mrpc", preds, refs) == {"accuracy": approx(4 / 6), "f1": approx(2 / 3)}
    # no positive predicted or gold: F1 = 0 (not NaN)
    assert metrics.compute("glue/qqp", [0, 0], [0, 0]) == {"accuracy": 1.0, "f1": 0.0}


def test_stsb_pearson_and_spearman_with_ties():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 4.0, 5.0, 4.0, 5.0]
    # Pearson: dx=(-2,-1,0,1,2), dy=(-2,0,1,0,1): sum dx*dy=6, sum dx^2=10, sum dy^2=6 -> 6/sqrt(60)
    # Spearman: ranks(y) with ties averaged = (1, 2.5, 4.5, 2.5, 4.5); Pearson of ranks:
    # dr=(-2,-.5,1.5,-.5,1.5): sum dx*dr=7, sum dr^2=9 -> 7/sqrt(90)
    # (the no-ties shortcut 1 - 6*sum d^2/(n(n^2-1)) would give 0.75: ties must be averaged)
    result = metrics.compute("glue/stsb", x, y)
    assert result == {"pearson": approx(6 / math.sqrt(60)), "spearmanr": approx(7 / math.sqrt(90))}


def test_mnli_matched_and_mismatched_accuracy():
    assert metrics.compute("glue/mnli_matched", [0, 1, 2, 0], [0, 1, 1, 0]) == {"accuracy": 0.75}
    assert metrics.compute("glue/mnli_mismatched", [2, 2, 1], [2, 0, 1]) == {"accuracy": approx(2 / 3)}
    assert metrics.compute("glue/mnli", [2, 2, 1], [2, 0, 1]) == {"accuracy": approx(2 / 3)}


# --- classification -----------------------------------------------------------------


def test_classification_accuracy_and_macro_f1():
    # class 0: TP1 -> F1 1; class 1: TP1 FN1 -> 2/3; class 2: TP1 FP1 -> 2/3; mean 7/9
    result = metrics.compute("classification", [0, 1, 2, 2], [0, 1, 1, 2])
    assert result == {"accuracy": 0.75, "macro_f1": approx(7 / 9)}
    # a never-predicted class counts with F1 0: class 0 TP2 FP1 -> 4/5, class 1 -> 0; mean 2/5
    assert metrics.compute("classification", [0, 0, 0], [0, 0, 1])["macro_f1"] == approx(2 / 5)


# --- SQuAD v1.1 (percent) ---------------------------------------------------------


def test_normalize_answer():
    assert normalize_answer("  The  Quick, brown-fox;  AN apple ") == "quick brownfox apple"
    assert normalize_answer("Theatre anthem") == "theatre anthem"  # articles only as whole words
    assert normalize_answer("the Eiffel Tower!") == normalize_answer("Eiffel Tower")


def test_squad_v1_em_f1_by_hand():
    preds = [  # deliberately in a different order than the references: matched by id
        {"id": "q3", "prediction_text": "Paris, France"},
        {"id": "q1", "prediction_text": "the Eiffel Tower!"},
        {"id": "q2", "prediction_text": "the big red barn"},
        {"id": "q4", "prediction_text": "Denver Broncos"},
    ]
    refs = [
        {"id": "q1", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}},
        # pred {big, red, barn} vs gold {red, barn, near, river}: P=2/3, R=2/4 -> F1 = 4/7
        {"id": "q2", "answers": {"text": ["a red barn near the river"], "answer_start": [5]}},
        # best gold "Paris": P=1/2, R=1 -> 2/3 ("Lyon" gives 0)
        {"id": "q3", "answers": {"text": ["Lyon", "Paris"], "answer_start": [0, 9]}},
        # second gold matches after normalisation -> EM 1
        {"id": "q4", "answers": {"text": ["Broncos", "the Denver Broncos!"], "answer_start": [3, 0]}},
    ]
    result = metrics.compute("squad", preds, refs)
    assert result == {
        "exact_match": approx(100 * 2 / 4),
        "f1": approx(100 * (1 + 4 / 7 + 2 / 3 + 1) / 4),
    }


def test_squad_v1_missing_prediction_scores_zero():
    preds = [{"id": "q1", "prediction_text": "x"}, {"id": "zz", "prediction_text": "y"}]
    refs = [{"id": q, "answers": {"text": ["x"], "answer_start": [0]}} for q in ("q1", "q2")]
    assert metrics.compute("squad", preds, refs) == {"exact_match": 50.0, "f1": 50.0}


# --- SQuAD v2.0 (percent) ---------------------------------------------------------

_V2_REFS = [
    {"id": "q1", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}},
    {"id": "q2", "answers": {"text": [], "answer_start": []}},  # unanswerable
    {"id": "q3", "answers": {"text": [], "answer_start": []}},  # unanswerable
    {"id": "q4", "answers": {"text": ["red barn near river"], "answer_start": [0]}},
    {"id": "q5", "answers": {"text": ["a red barn near the river"], "answer_start": [0]}},
]
_V2_TEXT = {"q1": "the Eiffel Tower!", "q2": "", "q3": "Paris", "q4": "", "q5": "the big red barn"}
# raw (exact, f1): q1 (1, 1); q2 (1, 1) right abstention; q3 (0, 0) answered an
# unanswerable; q4 (0, 0) abstained on an answerable; q5 (0, 4/7)


def test_squad_v2_no_answer_breakdown():
    preds = [{"id": q, "prediction_text": t} for q, t in _V2_TEXT.items()]
    result = metrics.compute("squad_v2", preds, _V2_REFS)
    assert result == {
        "exact": approx(100 * 2 / 5),
        "f1": approx(100 * (2 + 4 / 7) / 5),
        "total": 5.0,
        "HasAns_exact": approx(100 / 3),
        "HasAns_f1": approx(100 * (1 + 4 / 7) / 3),
        "HasAns_total": 3.0,
        "NoAns_exact": 50.0,
        "NoAns_f1": 50.0,
        "NoAns_total": 2.0,
    }


def test_squad_v2_v2_empty_rule_and_article_only_gold():
    assert token_f1("", "", empty_match=True) == 1.0
    assert token_f1("", "x", empty_match=True) == 0.0
    # a gold that normalises to nothing ("The.") makes the question unanswerable
    refs = [{"id": "q", "answers": {"text": ["The."], "answer_start": [0]}}]
    result = metrics.compute("squad_v2", [{"id": "q", "prediction_text": ""}], refs)
    assert result["exact"] == 100.0 and result["NoAns_total"] == 1.0 and "HasAns_total" not in result


def test_squad_v2_no_answer_probability_threshold():
    na = {"q1": 0.2, "q2": 0.9, "q3": 0.7, "q4": 0.1, "q5": 0.3}
    preds = [{"id": q, "prediction_text": t, "no_answer_probability": na[q]} for q, t in _V2_TEXT.items()]
    # threshold 0.5: q2 and q3 (prob > 0.5) become "no answer" -> both unanswerable -> 1 each
    result = metrics.compute("squad_v2", preds, _V2_REFS, no_answer_threshold=0.5)
    assert result["exact"] == approx(100 * 3 / 5)
    assert result["f1"] == approx(100 * (3 + 4 / 7) / 5)
    # sweep by increasing prob, starting at #unanswerable = 2:
    # q4 +0 -> 2, q1 +1 -> 3 (t=0.2), q5 +0 / +4/7 (t=0.3 for f1), q3 -1, q2 0
    assert result["best_exact"] == approx(100 * 3 / 5) and result["best_exact_thresh"] == approx(0.2)
    assert result["best_f1"] == approx(100 * (3 + 4 / 7) / 5) and result["best_f1_thresh"] == approx(0.3)
    # the default threshold 1.0 never overrides: same as the raw scores
    assert metrics.compute("squad_v2", preds, _V2_REFS)["exact"] == approx(100 * 2 / 5)


def test_every_finetune_task_has_a_registered_metric():
    """Each task the finetune stage runs names a metric the registry knows (SICK's "accuracy" did
    not: finetune@bert-sick crashed in `dvc repro` with UnknownMetricError)."""
    import yaml

    from arkbench import metrics
    from arkbench.data.registry import get_task
    from conftest import REPO

    tasks = yaml.safe_load((REPO / "params.yaml").read_text())["finetune"]["tasks"]
    for t in tasks:
        assert metrics.primary_metric(get_task(t).metric), t
    assert metrics.primary_metric("accuracy") == "accuracy"
