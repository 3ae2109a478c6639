"""How torch's CPU threads should wait: OpenMP wait policy and thread count, on this machine.

    python benchmarks/bench_threads.py                     # every setting, the default workloads
    python benchmarks/bench_threads.py --rounds 3 --steps 6

The stages set OMP_WAIT_POLICY=PASSIVE (arkbench.stage.ENV_DEFAULTS): on a busy 2-core
machine spinning OpenMP threads took the core the working thread needed. This measures
what that costs, or saves, when the machine is not busy. Each setting runs in a fresh
interpreter (libgomp reads its environment once, when torch loads), and settings
alternate round by round so drift in the machine's load weighs on all of them alike:

    passive    OMP_WAIT_POLICY=PASSIVE: a waiting thread sleeps at once (the stages' default)
    spin-1ms   GOMP_SPINCOUNT=300000 without a policy: spins ~0.1-1 ms, then sleeps (libgomp's default)
    active     OMP_WAIT_POLICY=ACTIVE: a waiting thread spins until work arrives
    1-thread   torch.set_num_threads(1): no waiting at all, one core

Workloads (one optimizer step each, fp32, the profiles' shapes):
    minilm-16 / minilm-64   all-MiniLM-L6-v2 classifier, batch 32, 16 / 64 tokens (finetune_ref, fusion grid)
    mlm-4x128               the cpu profile's pretrain model (4 layers x 128), batch 32 x 128 tokens

Prints the median seconds per step for each setting and workload, and each setting's ratio
to `passive` measured in the same run (> 1: faster than passive), plus the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "spin-1ms": ({"GOMP_SPINCOUNT": "300000"}, None),
    "active": ({"OMP_WAIT_POLICY": "ACTIVE"}, None),
    "1-thread": ({"OMP_WAIT_POLICY": "PASSIVE"}, 1),
}
WORKER = textwrap.dedent("""
    import json, statistics, sys, time, torch
    from arkbench.models.config import EncoderConfig
    from arkbench.models.heads import MaskedLM, SequenceClassifier
    from arkbench.models.loading import load_config
    threads, steps, names = json.loads(sys.argv[1])
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    def build(name):
        if name.startswith("minilm"):
            T = int(name.split("-")[1])
            return SequenceClassifier(load_config("minilm"), 2, pooling="mean"), 32, T, False
        c = EncoderConfig(hidden_size=128, num_layers=4, num_heads=2, intermediate_size=512,
                          max_position_embeddings=128)
        return MaskedLM(c), 32, 128, True
    out = {}
    for name in names:
        model, B, T, mlm = build(name)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, 2000, (B, T), generator=g)
        if mlm:
            lab = torch.full((B, T), -100)
            lab[:, ::7] = ids[:, ::7]
        else:
            lab = torch.randint(0, 2, (B,), generator=g)
        times = []
        for i in range(steps + 1):       # the first step (allocations, thread pool start) is not kept
            t = time.perf_counter()
            model(ids, attention_mask=torch.ones_like(ids), labels=lab).loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times[1:])
    print(json.dumps(out))
""")


def run(setting: str, steps: int, names: list[str]) -> dict[str, float]:
    env_extra, threads = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    p = subprocess.run([sys.executable, "-c", WORKER, json.dumps([threads, steps, names])], env=env,
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{setting}: worker failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--workloads", nargs="+", default=["minilm-16", "minilm-64", "mlm-4x128"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    res: dict[str, dict[str, list[float]]] = {s: {w: [] for w in a.workloads} for s in a.settings}
    for r in range(a.rounds):
        for s in a.settings:
            for w, t in run(s, a.steps, a.workloads).items():
                res[s][w].append(t)
            print(f"round {r + 1} {s}: " + ", ".join(f"{w} {res[s][w][-1]:.3f} s" for w in a.workloads), flush=True)
    print(f"load average after: {os.getloadavg()}")
    base = {w: statistics.median(res["passive"][w]) for w in a.workloads} if "passive" in res else None
    print(f"\n{'setting':10s} " + " ".join(f"{w:>22s}" for w in a.workloads))
    for s in a.settings:
        cells = []
        for w in a.workloads:
            m = statistics.median(res[s][w])
            cells.append(f"{m:7.3f} s/step" + (f" ({base[w] / m:4.2f}x)" if base else ""))
        print(f"{s:10s} " + " ".join(f"{c:>22s}" for c in cells))
    print("\n(x: speed relative to passive in this run; > 1 is faster)")


if __name__ == "__main__":
    main()
