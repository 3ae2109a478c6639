"""The claim-criterion language (arkbench.report.criteria): each kind at its boundary, the
report's criterion text cell by cell, and the messages of validation and of "inconclusive".

Written against mutmut's survivors (docs/mutation.md): each assertion below failed on at least
one surviving mutant of criteria.py (a flipped comparison, a dropped message, an off-by-one
index), and passes on the real module. Pure functions, no files.
"""
from __future__ import annotations

import math

import pytest

from arkbench.report import criteria
from arkbench.report.criteria import Inconclusive, describe, evaluate, validate


def _no_ref(ref):
    raise AssertionError(f"no reference expected, got {ref}")


def ev(crit, ours, paper=None, resolve=_no_ref):
    return evaluate(crit, ours, paper, resolve)


def inconclusive(crit, ours, paper=None, resolve=_no_ref) -> str:
    with pytest.raises(Inconclusive) as e:
        ev(crit, ours, paper, resolve)
    return str(e.value)


# --- each kind at its boundary ------------------------------------------------------------

@pytest.mark.parametrize("crit, ours, paper, expected", [
    ({"kind": "gt", "than": 1.0}, 1.0, None, False),                  # strict
    ({"kind": "gt", "than": 1.0}, 1.0001, None, True),
    ({"kind": "lt", "than": 1.0}, 1.0, None, False),
    ({"kind": "lt", "than": 1.0}, 0.9999, None, True),
    ({"kind": "in_range", "low": 1, "high": 2}, 1, None, True),       # both ends closed
    ({"kind": "in_range", "low": 1, "high": 2}, 2, None, True),
    ({"kind": "in_range", "low": 1, "high": 2}, 0.999, None, False),
    ({"kind": "in_range", "low": 1, "high": 2}, 2.001, None, False),
    ({"kind": "ge_paper_minus", "margin": 2}, 80.0, 82.0, True),      # ours == paper - margin
    ({"kind": "ge_paper_minus", "margin": 2}, 79.9, 82.0, False),
    ({"kind": "ge_paper_minus", "margin": 2}, 84.0, 82.0, True),      # better than the paper
    ({"kind": "abs_diff_le", "tol": 1}, 81.0, 82.0, True),            # |diff| == tol, below
    ({"kind": "abs_diff_le", "tol": 1}, 83.0, 82.0, True),            # and above
    ({"kind": "abs_diff_le", "tol": 1}, 83.5, 82.0, False),
    ({"kind": "abs_diff_le", "tol": 1}, 80.5, 82.0, False),
    ({"kind": "ge_other_minus", "other": 5}, 5, None, True),           # slack defaults to 0
    ({"kind": "ge_other_minus", "other": 5}, 4.99, None, False),
    ({"kind": "ge_other_minus", "other": 5, "slack": 1}, 4, None, True),
    ({"kind": "ge_other_minus", "other": 5, "slack": 1}, 3.99, None, False),
    ({"kind": "le_other_plus", "other": 5}, 5, None, True),
    ({"kind": "le_other_plus", "other": 5}, 5.01, None, False),
    ({"kind": "le_other_plus", "other": 5, "slack": 1}, 6, None, True),
    ({"kind": "le_other_plus", "other": 5, "slack": 1}, 6.01, None, False),
    ({"kind": "is_true"}, True, None, True),
    ({"kind": "is_true"}, 1, None, True),
    ({"kind": "is_true"}, False, None, False),
    ({"kind": "is_true"}, 0.0, None, False),
])
def test_kind_boundaries(crit, ours, paper, expected):
    assert ev(crit, ours, paper) is expected


@pytest.mark.parametrize("xs, up, frac, expected", [
    ([1, 2], True, 0.5, True),                  # two values are enough for a trend
    ([2, 1], False, 0.5, True),
    ([1, 1], True, 0.0, False),                 # flat ends: no rise even when no step must rise
    ([1, 1], False, 0.0, False),
    ([1, 3, 2, 4], True, 2 / 3, True),          # 2 of 3 steps rise: fraction reaches 2/3 exactly
    ([1, 3, 2, 4], True, 0.7, False),
    ([4, 2, 3, 1], False, 2 / 3, True),
    ([4, 2, 3, 1], False, 0.7, False),
    ([1, 1, 1, 2], True, 0.5, False),           # ends rise, but flat steps are not rises (1 of 3)
    ([2, 2, 2, 1], False, 0.5, False),          # ... nor falls
    ([1, 0, 5, 2], True, 0.0, True),            # judged on first vs LAST, not the one before it
    ([1, 0, 5, 2], True, 0.5, False),           # 1 of 3 steps up
    ([5, 6, 0, 3], False, 0.0, True),
    ([5, 6, 0, 3], False, 0.5, False),          # 1 of 3 steps down
    ([0, 5, 3, 4], True, 0.5, True),            # first vs last, not second vs last (5 > 4)
    ([5, 0, 2, 1], False, 0.5, True),           # first vs last, not second vs last (0 < 1)
    ([3, 1, 2, 4], True, 0.7, False),           # 2 of 3 steps up; b + a (all > 0) would count 3
    ([1, 2, 0, 3], True, 0.5, True),            # first vs last, not vs the one before last (0 < 1)
    ([3, 2, 4, 1], False, 0.5, True),           # ... (4 > 3)
    ([1, 3, 2, 4], False, 0.0, False),          # a rising series never "falls"
    ([0.5, 0.2, 0.6, 0.9], True, 0.6, True),    # 2 of 3 up; a step-of-2 diff list has 2 of 2
    ([3, 4, 1, 0], False, 0.6, True),           # 2 of 3 down; with d < 1 the flat-ish rise would count
    ([3, 3.5, 1, 0], False, 0.9, False),        # a rise of 0.5 is not a fall
])
def test_trend_steps(xs, up, frac, expected):
    kind = "increasing" if up else "decreasing"
    assert ev({"kind": kind, "min_fraction": frac}, xs) is expected


def test_trend_default_fraction_is_half():
    assert ev({"kind": "increasing"}, [0, 1, 0.5, 2]) is True        # 2 of 3
    assert ev({"kind": "increasing"}, [0, 1, 0.5, 0.2, 2]) is True   # 2 of 4: exactly half
    assert ev({"kind": "increasing"}, [0, 1, 0.5, 0.2, 0.1, 2]) is False   # 2 of 5
    assert ev({"kind": "decreasing"}, [2, 1, 1.5, 1.8, 0]) is True   # 2 of 4


def test_trend_needs_two_values_and_a_list():
    assert inconclusive({"kind": "increasing"}, [1.0]) == "need at least two values for a trend"
    assert inconclusive({"kind": "decreasing"}, []) == "need at least two values for a trend"
    assert inconclusive({"kind": "increasing"}, 1.0) == "expected a list of values"
    assert inconclusive({"kind": "increasing"}, [1.0, "x"]) == "ours[i] is not a number (str)"
    assert inconclusive({"kind": "increasing"}, [1.0, float("nan")]) == "ours[i] is NaN"


# --- operands and "inconclusive" messages ------------------------------------------------

def test_inconclusive_messages_name_the_operand():
    assert inconclusive({"kind": "gt", "than": 0}, "x") == "ours is not a number (str)"
    assert inconclusive({"kind": "gt", "than": 0}, None) == "ours is not a number (NoneType)"
    assert inconclusive({"kind": "gt", "than": 0}, float("nan")) == "ours is NaN"
    assert inconclusive({"kind": "gt", "than": "1"}, 2.0) == "than is not a number (str)"
    assert inconclusive({"kind": "in_range", "low": 0, "high": float("nan")}, 2.0) == "high is NaN"
    assert inconclusive({"kind": "abs_diff_le", "tol": 1}, 2.0, None) == "the paper's number is unknown"
    assert inconclusive({"kind": "abs_diff_le", "tol": 1}, 2.0, "n/a") == "paper is not a number (str)"
    assert inconclusive({"kind": "ge_paper_minus", "margin": 1}, 2.0, float("nan")) == "paper is NaN"


def test_bools_count_as_numbers():
    assert ev({"kind": "gt", "than": 0.5}, True) is True
    assert ev({"kind": "lt", "than": 0.5}, False) is True


def test_info_is_always_inconclusive_with_its_note():
    assert inconclusive({"kind": "info"}, 1.0) == "context only; not reproduced at this scale"
    assert inconclusive({"kind": "info", "note": "needs 64 GPUs"}, 1.0) == "needs 64 GPUs"
    assert inconclusive({"kind": "info", "note": ""}, 1.0) == "context only; not reproduced at this scale"


def test_references_are_resolved_and_their_values_checked():
    seen = []

    def resolve(ref):
        seen.append(ref)
        return {"a.b": 3.0, "c": 0.5}[ref["key"]]

    crit = {"kind": "ge_other_minus", "other": {"key": "a.b"}, "slack": {"file": "metrics/x.json", "key": "c"}}
    assert ev(crit, 2.5, resolve=resolve) is True
    assert ev(crit, 2.4, resolve=resolve) is False
    assert seen[:2] == [{"key": "a.b"}, {"file": "metrics/x.json", "key": "c"}]
    assert inconclusive({"kind": "gt", "than": {"key": "s"}}, 1.0, resolve=lambda r: "str") \
        == "than is not a number (str)"


# --- describe: the report's criterion cell -----------------------------------------------

@pytest.mark.parametrize("crit, text", [
    ({"kind": "gt", "than": 0.5}, "ours > 0.5"),
    ({"kind": "gt", "than": 3}, "ours > 3"),
    ({"kind": "gt", "than": 1234567}, "ours > 1234567"),            # ints as they are, not %g
    ({"kind": "lt", "than": 1e-7}, "ours < 1e-07"),                 # floats as %g
    ({"kind": "lt", "than": 0.30000000000000004}, "ours < 0.3"),
    ({"kind": "in_range", "low": 0.25, "high": 10}, "0.25 <= ours <= 10"),
    ({"kind": "ge_paper_minus", "margin": 2.0}, "ours >= paper - 2"),
    ({"kind": "abs_diff_le", "tol": 0.5}, "abs(ours - paper) <= 0.5"),
    ({"kind": "ge_other_minus", "other": {"key": "last.mean"}}, "ours >= last.mean"),
    ({"kind": "ge_other_minus", "other": {"key": "last.mean"}, "slack": {"key": "gate.std"}},
     "ours >= last.mean - gate.std"),
    ({"kind": "le_other_plus", "other": {"file": "metrics/p/a.json", "key": "glue"}},
     "ours <= metrics/p/a.json:glue"),
    ({"kind": "le_other_plus", "other": 1, "slack": 0.125}, "ours <= 1 + 0.125"),
    ({"kind": "increasing"}, "ours rises (last > first, >= 0.5 of steps up)"),
    ({"kind": "decreasing", "min_fraction": 0.75}, "ours falls (last < first, >= 0.75 of steps down)"),
    ({"kind": "is_true"}, "ours is true"),
    ({"kind": "info", "note": "x"}, "context only (not checked at this scale)"),
])
def test_describe_cells(crit, text):
    assert describe(crit) == text


def test_describe_reference_without_key():
    # not a valid reference (validate rejects it), but the cell still renders, with '?'
    assert describe({"kind": "gt", "than": {"file": "metrics/x.json"}}) == "ours > metrics/x.json:?"
    assert describe({"kind": "gt", "than": {}}) == "ours > ?"


def test_describe_passes_params_only():
    seen = {}
    kind = criteria.Kind(("than",), text=lambda p: seen.update(p) or "t")
    criteria.KINDS["_probe"] = kind
    try:
        describe({"kind": "_probe", "than": 1})
    finally:
        del criteria.KINDS["_probe"]
    assert seen == {"than": 1}


# --- validate: problems name the kind and the parameter ----------------------------------

def test_validate_messages():
    assert validate({"kind": "gt", "than": 1}) == []
    assert validate({"kind": "gt", "than": {"key": "a.b", "file": "metrics/x.json"}}) == []
    assert validate({"kind": "info", "note": "text is fine here"}) == []
    assert validate({"than": 1}) == ["criterion must be a mapping with a 'kind'"]
    assert validate([("kind", "gt")]) == ["criterion must be a mapping with a 'kind'"]
    assert validate({"kind": "eval"}) == [
        "unknown criterion kind 'eval'; known: abs_diff_le, decreasing, ge_other_minus, ge_paper_minus, gt, "
        "in_range, increasing, info, is_true, le_other_plus, lt"]
    assert validate({"kind": "in_range", "low": 0}) == ["criterion 'in_range' needs 'high'"]
    assert validate({"kind": "gt", "than": 1, "tol": 2}) == ["criterion 'gt' has unknown parameter 'tol'"]
    must = "must be a number or {key: ..., file?: ...}"
    assert validate({"kind": "gt", "than": "1"}) == [f"criterion parameter 'than' {must}"]
    assert validate({"kind": "gt", "than": True}) == [f"criterion parameter 'than' {must}"]
    assert validate({"kind": "gt", "than": {"key": "a", "other": 1}}) == [f"criterion parameter 'than' {must}"]
    assert validate({"kind": "ge_paper_minus", "margin": 1}) == [
        "criterion 'ge_paper_minus' compares with the paper but paper.value is not a number"]
    assert validate({"kind": "ge_paper_minus", "margin": 1}, paper_value=80.0) == []
    assert validate({"kind": "abs_diff_le", "tol": 1}, paper_value="80") != []


def test_validated_params_evaluate_as_numbers():
    assert math.isclose(criteria._number(3, "x"), 3.0) and isinstance(criteria._number(3, "x"), float)
    assert criteria._number(True, "x") == 1.0
