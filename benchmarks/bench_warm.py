"""Stage start-up: cold (`python stages/X.py`) vs warm (`python -m arkbench.warm stages/X.py`).

    python benchmarks/bench_warm.py                 # every stage script, 2 rounds
    python benchmarks/bench_warm.py --rounds 3 --stages finetune pretrain report

What is timed is everything a stage does before its own work: interpreter start-up,
its imports, and its params validation. Each stage script is run with a params file
that has one unknown key in every section, so it exits 2 ("bad params") right after
validating, before any work; the exit status and message are checked on both paths,
so the two paths did the same thing. Cold and warm runs alternate, stage by stage, in
one process, so the load on the machine weighs on both alike. A warm server is started
first and its start-up (it imports torch, transformers, datasets, mlflow once) is
printed separately: a `dvc repro` pays it once, in the background of its first stages.

Prints per stage the median wall seconds of each path and the ratio cold / warm, then
the totals over all stages: the start-up share of a cold `dvc repro` that warm removes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BOGUS = "arkbench_bench_bogus_key"


def _site() -> Path:
    """A copy of params.yaml (one unknown key per section) and stages/ in a temporary folder."""
    d = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, sec in doc.items():
        if isinstance(sec, dict) and key != "profiles":
            sec[BOGUS] = 1
    (d / "params.yaml").write_text(yaml.safe_dump(doc))
    shutil.copytree(REPO / "stages", d / "stages")
    return d


def _run(cmd: list[str], site: Path, env: dict) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=site, env=env, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t
    if p.returncode != 2 or "bad params" not in p.stderr or BOGUS not in p.stderr:
        raise SystemExit(f"{' '.join(cmd)} did not stop at params validation ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stages", nargs="*", help="stage script names without .py (default: all)")
    args = ap.parse_args()
    site = _site()
    names = args.stages or sorted(p.stem for p in (site / "stages").glob("*.py") if p.stem != "resolve")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ARKBENCH_TRACKING": "off",
           "ARKBENCH_WARM_IDLE": "60"}
    env.pop("ARKBENCH_WARM", None)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    warm = [sys.executable, "-m", "arkbench.warm"]

    sock = Path(subprocess.run(
        [sys.executable, "-c", "import os; from arkbench import warm; "
         "print(warm.server_socket(os.getcwd(), dict(os.environ)))"],
        cwd=site, env=env, capture_output=True, text=True, check=True).stdout.strip())
    t = time.perf_counter()
    _run([*warm, f"stages/{names[0]}.py", "--params-file", "params.yaml"], site, env)   # cold; starts the server
    while not sock.exists():
        time.sleep(0.05)
    print(f"server ready {time.perf_counter() - t:.1f}s after the first (cold) client started")
    rows = []
    for name in names:
        script = f"stages/{name}.py"
        cold, hot = [], []
        for _ in range(args.rounds):
            cold.append(_run([sys.executable, script, "--params-file", "params.yaml"], site, env))
            hot.append(_run([*warm, script, "--params-file", "params.yaml"], site, env))
        c, h = statistics.median(cold), statistics.median(hot)
        rows.append((name, c, h))
        print(f"{name:32s} cold {c:6.2f}s  warm {h:6.2f}s  ratio {c / h:5.1f}x", flush=True)
    tc, th = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total (' + str(len(rows)) + ' stage scripts)':32s} cold {tc:6.1f}s  warm {th:6.1f}s  ratio {tc / th:5.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    subprocess.run(["pkill", "-f", f"arkbench.warm --serve {sock}"], check=False)
    shutil.rmtree(site, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
