"""The metric registry's own logic (arkbench.metrics): registering, the unknown-name message,
as_percent's scales, the float conversion of results, and the SQuAD text helpers' edge cases.

Written against mutmut's survivors of metrics/__init__.py and metrics/_squad_text.py
(docs/mutation.md): registration runs at import, before a mutant is switched on, so these
tests call `register` themselves. No `evaluate` load: pure functions.
"""
from __future__ import annotations

import numpy as np
import pytest

from arkbench import metrics
from arkbench.metrics import MetricSpec, UnknownMetricError, _as_floats, as_percent, register
from arkbench.metrics._squad_text import best_over_golds, exact_match, token_f1


@pytest.fixture
def probe():
    names = []

    def reg(name, *args, **kw):
        names.append(name)
        register(name, *args, **kw)
        return metrics.METRICS[name]

    yield reg
    for n in names:
        metrics._SPECS.pop(n, None)


def test_register_stores_every_field(probe):
    assert probe("_probe/a", "glue", "mrpc", "f1") == MetricSpec("glue", "mrpc", "f1", False)
    assert probe("_probe/b", "squad", None, "exact_match", percent=True) == \
        MetricSpec("squad", None, "exact_match", True)
    assert metrics.primary_metric("_probe/b") == "exact_match"
    assert metrics.metric_path("_probe/a") == metrics.METRICS_DIR / "glue" / "glue.py"


def test_register_twice_names_the_metric(probe):
    probe("_probe/a", "glue", "mrpc", "f1")
    with pytest.raises(ValueError) as e:
        register("_probe/a", "glue", "rte", "accuracy")
    assert str(e.value) == "metric '_probe/a' is already registered"
    assert metrics.METRICS["_probe/a"].config == "mrpc"        # the first registration stands


def test_as_percent_scales():
    assert as_percent("glue/mrpc", 0.8125) == 81.25             # fractions x 100
    assert as_percent("accuracy", 1) == 100.0
    assert as_percent("squad", 81.25) == 81.25                  # SQuAD already reports percent
    assert as_percent("squad_v2", 50) == 50.0 and isinstance(as_percent("squad_v2", 50), float)
    with pytest.raises(UnknownMetricError, match="unknown metric 'glue/mrcp'"):
        as_percent("glue/mrcp", 0.5)


def _message(name) -> str:
    with pytest.raises(UnknownMetricError) as e:
        metrics.primary_metric(name)
    return str(e.value)


def test_unknown_metric_message_exact():
    known = ", ".join(sorted(metrics.METRICS))
    assert _message("zzzz") == f"unknown metric 'zzzz'; known metrics: {known}"      # no "did you mean"
    assert _message("glue/mrcp") == (f"unknown metric 'glue/mrcp' (did you mean glue/mrpc, glue/rte, "
                                     f"glue/qqp?); known metrics: {known}")


def test_unknown_metric_suggests_at_most_three():
    msg = _message("glue/mnli_x")         # four registered names are close: mnli, mnli_matched, ...
    hint = msg[msg.index("(did you mean ") + len("(did you mean "):msg.index("?)")]
    assert len(hint.split(", ")) == 3, hint


def test_as_floats_flattens_lists_and_converts_numbers():
    out = _as_floats({"acc": np.float32(0.5), "n": 3, "per_class": [np.int64(1), 0.25], "t": (2,)})
    assert out == {"acc": 0.5, "n": 3.0, "per_class_0": 1.0, "per_class_1": 0.25, "t_0": 2.0}
    assert all(type(v) is float for v in out.values())

    class Scalar:                       # not numbers.Real, but float() works (a 0-d tensor, say)
        def __float__(self):
            return 0.75

    assert _as_floats({"x": Scalar()}) == {"x": 0.75}
    with pytest.raises(TypeError) as e:
        _as_floats({"acc": 0.5, "label": "yes"})
    assert str(e.value) == "metric value 'label' is str, not a number"


def test_token_f1_empty_answers():
    # SQuAD v1.1 (default): an empty prediction shares no token with anything -> 0, even with itself
    assert token_f1("", "") == 0.0
    assert token_f1("the", "a") == 0.0                      # both normalise to nothing
    # v2.0: both empty -> 1, one empty -> 0
    assert token_f1("", "", empty_match=True) == 1.0
    assert token_f1("the", "", empty_match=True) == 1.0
    assert token_f1("", "Paris", empty_match=True) == 0.0
    assert token_f1("Paris", "", empty_match=True) == 0.0
    assert token_f1("in Paris", "Paris", empty_match=True) == pytest.approx(2 / 3)


def test_best_over_golds():
    assert best_over_golds(exact_match, "Paris", []) == 0.0
    assert type(best_over_golds(exact_match, "Paris", [])) is float
    assert best_over_golds(exact_match, "Paris", ["London", "paris."]) == 1.0
    assert best_over_golds(token_f1, "the big cat", ["cat", "big dog"]) == pytest.approx(2 / 3)
    assert best_over_golds(exact_match, "Rome", ["London", "Paris"]) == 0.0
