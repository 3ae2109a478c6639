"""A small, safe criterion language for claim rows (no eval).

A criterion is a mapping ``{kind: NAME, **params}``. Operands:

* ``ours``  -- the value at the row's ``ours.file`` : ``ours.key``;
* ``paper`` -- the row's ``paper.value`` (only for the ``*_paper_*`` kinds);
* a param given as a number, or as a reference ``{key: a.b}`` (same metrics
  file as ``ours``) or ``{file: metrics/x.json, key: a.b}``.

Kinds (params in brackets, ``?`` = optional):

==================  =====================================  ==================================
kind                params                                 passes when
==================  =====================================  ==================================
gt                  than                                   ours > than
lt                  than                                   ours < than
in_range            low, high                              low <= ours <= high
ge_paper_minus      margin                                 ours >= paper - margin
abs_diff_le         tol                                    abs(ours - paper) <= tol
ge_other_minus      other, slack?                          ours >= other - slack  (higher is better)
le_other_plus       other, slack?                          ours <= other + slack  (lower is better)
increasing          min_fraction?                          list: last > first and >= min_fraction of steps rise
decreasing          min_fraction?                          list: last < first and >= min_fraction of steps fall
is_true             -                                      ours is true / 1
info                note?                                  never: context only -> "inconclusive"
==================  =====================================  ==================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

Number = (int, float)


class Inconclusive(Exception):
    """The criterion cannot be decided (missing operand, no paper number, NaN ...)."""


@dataclass(frozen=True)
class Kind:
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    needs_paper: bool = False
    list_operand: bool = False
    check: Callable[..., bool] = field(default=lambda ours, p, paper: False)
    text: Callable[[dict], str] = field(default=lambda p: "")


def _steps(xs: list[float], up: bool, min_fraction: float) -> bool:
    if len(xs) < 2:
        raise Inconclusive("need at least two values for a trend")
    diffs = [b - a for a, b in zip(xs, xs[1:])]
    good = sum(1 for d in diffs if (d > 0 if up else d < 0))
    ends = xs[-1] > xs[0] if up else xs[-1] < xs[0]
    return ends and good / len(diffs) >= min_fraction


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return v.get("key", "?") if "file" not in v else f"{v['file']}:{v.get('key', '?')}"
    return f"{v:g}" if isinstance(v, float) else str(v)


KINDS: dict[str, Kind] = {
    "gt": Kind(("than",), check=lambda o, p, _: o > p["than"],
               text=lambda p: f"ours > {_fmt(p['than'])}"),
    "lt": Kind(("than",), check=lambda o, p, _: o < p["than"],
               text=lambda p: f"ours < {_fmt(p['than'])}"),
    "in_range": Kind(("low", "high"), check=lambda o, p, _: p["low"] <= o <= p["high"],
                     text=lambda p: f"{_fmt(p['low'])} <= ours <= {_fmt(p['high'])}"),
    "ge_paper_minus": Kind(("margin",), needs_paper=True,
                           check=lambda o, p, paper: o >= paper - p["margin"],
                           text=lambda p: f"ours >= paper - {_fmt(p['margin'])}"),
    "abs_diff_le": Kind(("tol",), needs_paper=True,
                        check=lambda o, p, paper: abs(o - paper) <= p["tol"],
                        text=lambda p: f"abs(ours - paper) <= {_fmt(p['tol'])}"),
    "ge_other_minus": Kind(("other",), ("slack",),
                           check=lambda o, p, _: o >= p["other"] - p.get("slack", 0.0),
                           text=lambda p: f"ours >= {_fmt(p['other'])}"
                           + (f" - {_fmt(p['slack'])}" if "slack" in p else "")),
    "le_other_plus": Kind(("other",), ("slack",),
                          check=lambda o, p, _: o <= p["other"] + p.get("slack", 0.0),
                          text=lambda p: f"ours <= {_fmt(p['other'])}"
                          + (f" + {_fmt(p['slack'])}" if "slack" in p else "")),
    "increasing": Kind((), ("min_fraction",), list_operand=True,
                       check=lambda o, p, _: _steps(o, True, p.get("min_fraction", 0.5)),
                       text=lambda p: f"ours rises (last > first, >= {p.get('min_fraction', 0.5):g} of steps up)"),
    "decreasing": Kind((), ("min_fraction",), list_operand=True,
                       check=lambda o, p, _: _steps(o, False, p.get("min_fraction", 0.5)),
                       text=lambda p: f"ours falls (last < first, >= {p.get('min_fraction', 0.5):g} of steps down)"),
    "is_true": Kind(check=lambda o, p, _: bool(o), text=lambda p: "ours is true"),
    "info": Kind((), ("note",), text=lambda p: "context only (not checked at this scale)"),
}


def is_ref(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("key"), str) and set(v) <= {"key", "file"}


def validate(crit: Any, paper_value: Any = None) -> list[str]:
    """Problems with one criterion mapping (empty when valid)."""
    if not isinstance(crit, dict) or "kind" not in crit:
        return ["criterion must be a mapping with a 'kind'"]
    kind = KINDS.get(crit["kind"])
    if kind is None:
        return [f"unknown criterion kind {crit['kind']!r}; known: {', '.join(sorted(KINDS))}"]
    problems = []
    params = {k: v for k, v in crit.items() if k != "kind"}
    for name in kind.required:
        if name not in params:
            problems.append(f"criterion {crit['kind']!r} needs {name!r}")
    for name, v in params.items():
        if name not in kind.required + kind.optional:
            problems.append(f"criterion {crit['kind']!r} has unknown parameter {name!r}")
        elif name != "note" and not (isinstance(v, Number) and not isinstance(v, bool)) and not is_ref(v):
            problems.append(f"criterion parameter {name!r} must be a number or {{key: ..., file?: ...}}")
    if kind.needs_paper and not isinstance(paper_value, Number):
        problems.append(f"criterion {crit['kind']!r} compares with the paper but paper.value is not a number")
    return problems


def describe(crit: dict) -> str:
    kind = KINDS[crit["kind"]]
    return kind.text({k: v for k, v in crit.items() if k != "kind"})


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool):
        return float(v)
    if not isinstance(v, Number):
        raise Inconclusive(f"{what} is not a number ({type(v).__name__})")
    v = float(v)
    if math.isnan(v):
        raise Inconclusive(f"{what} is NaN")
    return v


def evaluate(crit: dict, ours: Any, paper: Any, resolve: Callable[[dict], Any]) -> bool:
    """True/False for pass/fail; raises :class:`Inconclusive` when undecidable.

    `resolve` maps a reference ``{key, file?}`` to its value (raising Inconclusive).
    """
    kind = KINDS[crit["kind"]]
    if crit["kind"] == "info":
        raise Inconclusive(crit.get("note") or "context only; not reproduced at this scale")
    params: dict[str, Any] = {}
    for name, v in crit.items():
        if name in ("kind", "note"):
            continue
        params[name] = _number(resolve(v) if is_ref(v) else v, name)
    if kind.list_operand:
        if not isinstance(ours, (list, tuple)):
            raise Inconclusive("expected a list of values")
        value: Any = [_number(x, "ours[i]") for x in ours]
    else:
        value = _number(ours, "ours")
    paper_v = None
    if kind.needs_paper:
        if paper is None:
            raise Inconclusive("the paper's number is unknown")
        paper_v = _number(paper, "paper")
    return bool(kind.check(value, params, paper_v))
