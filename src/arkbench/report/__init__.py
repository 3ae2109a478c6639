"""Report: the papers' headline claims beside our numbers (see build.py, claims.yaml)."""
from .claims import VERDICTS, evaluate_claims, load_claims, validate_claims

__all__ = ["build_report", "evaluate_claims", "load_claims", "validate_claims", "VERDICTS"]


def __getattr__(name):  # lazy: importing the package must not pull in matplotlib
    if name == "build_report":
        from .build import build_report

        return build_report
    raise AttributeError(name)
