"""Mutation testing of the pure-math modules with mutmut, bounded for a shared machine.

    python tools/mutation.py                 # every target below
    python tools/mutation.py optim criteria  # some of them
    python tools/mutation.py --list-survivors optim

For each target, the source tree and tests are copied to a scratch folder, a
`[tool.mutmut]` section naming only that module and only its tests is written there,
and `mutmut run` runs under `nice` with one child process. Prints, per target: mutants,
killed, survived, timed out, other (suspicious / no tests / segfault), and the survivors'
names with --list-survivors (inspect one with `mutmut show NAME` in the scratch folder,
printed at the end). Results and the survivors judged equivalent: docs/mutation.md.

The `evaluate` metric scripts (metrics/glue/glue.py, ...) are loaded by file path into
`evaluate`'s module cache, outside mutmut's reach, so the metrics target covers the
code they share and the registry: metrics/_squad_text.py and metrics/__init__.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# target: (modules to mutate, tests that cover them)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "optim": (["src/arkbench/training/optim.py"], ["tests/test_optim.py"]),
    "criteria": (["src/arkbench/report/criteria.py"], ["tests/test_report.py", "tests/test_criteria.py"]),
    "measures": (["src/arkbench/papers/oversmoothing/measures.py"],
                 ["tests/test_oversmoothing.py", "tests/test_oversmoothing_analysis.py",
                  "tests/test_oversmoothing_measures.py"]),
    "metrics": (["src/arkbench/metrics/_squad_text.py", "src/arkbench/metrics/__init__.py"],
                ["tests/test_metrics.py", "tests/test_metrics_registry.py"]),
}

SUBPROCESS_TESTS: dict[str, list[str]] = {
    "criteria": ["tests/test_report.py::test_report_stage_script"],
}


def _toml_list(xs: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"


def prepare(target: str, scratch: Path, rev: str | None = None) -> None:
    """Copy src/ and tests/ (the work tree, or git revision `rev`) and write the config."""
    modules, tests = TARGETS[target]
    if rev is None:
        shutil.copytree(REPO / "src", scratch / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(REPO / "tests", scratch / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "stages", scratch / "stages", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(REPO / "params.yaml", scratch / "params.yaml")
    else:   # e.g. the commit before a test change, for a before/after count
        tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src", "tests", "stages",
                              "params.yaml"], check=True,
                             capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(scratch)], input=tar, check=True)
    tests = [t for t in tests if (scratch / t).exists()]
    if not tests:
        raise SystemExit(f"{target}: none of {TARGETS[target][1]} exists at {rev or 'the work tree'}")
    # tests that run a stage script in another folder: mutmut's trampoline in that child process
    # cannot find its config there (FileNotFoundError, every mutant "other"); they test the stage
    # wiring, not the mutated math, and are left out of the mutation runs
    deselect = [a for t in SUBPROCESS_TESTS.get(target, []) for a in ("--deselect", t)]
    base = (REPO / "pyproject.toml").read_text()
    (scratch / "pyproject.toml").write_text(base + f"""
[tool.mutmut]
source_paths = ["src"]
also_copy = ["stages", "params.yaml"]   # tests read params.yaml (conftest.REPO = the mutants folder)
only_mutate = {_toml_list(modules)}
pytest_add_cli_args_test_selection = {_toml_list(tests)}
pytest_add_cli_args = {_toml_list(["-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-x", *deselect])}
""")


def run(target: str, scratch: Path, nice: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(scratch / "mutants" / "src"), "OMP_NUM_THREADS": "1",
           "ARKBENCH_TRACKING": "off"}
    mutmut = [sys.executable, "-m", "mutmut"]
    # the mutated tree must win over an editable install of arkbench: it goes first on
    # PYTHONPATH, and exists before Python starts (a missing sys.path entry is cached as such)
    (scratch / "mutants" / "src").mkdir(parents=True, exist_ok=True)
    with open(scratch / "mutmut-run.log", "w") as log:
        subprocess.run(["nice", "-n", str(nice), *mutmut, "run", "--max-children", "1"], cwd=scratch, env=env,
                       check=False, stdout=log, stderr=subprocess.STDOUT)
    subprocess.run([*mutmut, "export-cicd-stats"], cwd=scratch, env=env, check=True, stdout=subprocess.DEVNULL)
    stats = json.loads((scratch / "mutants" / "mutmut-cicd-stats.json").read_text())
    res = subprocess.run([*mutmut, "results"], cwd=scratch, env=env, capture_output=True, text=True)
    stats["survivors"] = [ln.split(":")[0].strip() for ln in res.stdout.splitlines() if ln.strip().endswith("survived")]
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", default=[], help=f"some of: {', '.join(TARGETS)}")
    ap.add_argument("--list-survivors", action="store_true")
    ap.add_argument("--nice", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders (for `mutmut show`)")
    ap.add_argument("--rev", help="mutate and test this git revision's src/ and tests/ instead of the work tree")
    a = ap.parse_args(argv)
    unknown = sorted(set(a.targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    print(f"{'target':<10} {'mutants':>8} {'killed':>7} {'survived':>9} {'timeout':>8} {'other':>6}")
    for t in a.targets or list(TARGETS):
        scratch = Path(tempfile.mkdtemp(prefix=f"mutmut-{t}-"))
        try:
            try:
                prepare(t, scratch, a.rev)
            except SystemExit as e:
                print(f"{t:<10} {'-':>8} {'-':>7} {'-':>9} {'-':>8} {'-':>6}  ({e})", flush=True)
                continue
            s = run(t, scratch, a.nice)
            other = s["total"] - s["killed"] - s["survived"] - s["timeout"]
            print(f"{t:<10} {s['total']:>8} {s['killed']:>7} {s['survived']:>9} {s['timeout']:>8} {other:>6}",
                  flush=True)
            if a.list_survivors:
                for name in s["survivors"]:
                    print(f"    survived: {name}")
        finally:
            if a.keep:
                print(f"    scratch: {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
