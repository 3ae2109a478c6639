"""A short `small`-profile MLM pre-training, for a GPU machine (benchmarks/gpu_check.sh).

    python benchmarks/gpu_small_pretrain.py --steps 300            # cuda when present
    python benchmarks/gpu_small_pretrain.py --steps 3 --device cpu # mechanics only

Takes params.yaml's `pretrain` section under the `small` profile (BERT-small-ish model,
seq 128, batch 256, bf16 via precision auto) and changes only what a short check must:
the step count (and the checkpoint/eval/warm-up cadence scaled to it), the embedded
corpus (no download stage, no network) and a WordPiece tokenizer trained on that corpus
(bert-base-uncased's vocab ships in a pip package the GPU machine may lack). Prints the
loss at the start and the end, tokens/s and MFU, and exits non-zero if the loss did not
fall or is not finite.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", default="small")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from arkbench.config import stage_params
    from arkbench.training import pretrain

    work = Path(tempfile.mkdtemp(prefix="arkbench-gpu-small-"))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = a.profile
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    p = stage_params("pretrain", work / "params.yaml")
    every = max(a.steps // 3, 1)
    p = p.model_copy(update=dict(
        max_steps=a.steps, warmup_steps=max(a.steps // 10, 1), checkpoint_every=every, eval_every=every,
        log_every=max(a.steps // 30, 1), corpus="embedded", tokenizer="train", device=a.device,
        variants={"bert": {}}))
    print(f"profile={a.profile} model={p.model} seq_len={p.seq_len} batch={p.batch_size} "
          f"steps={p.max_steps} precision={p.precision} device={p.device}", flush=True)
    t0 = time.perf_counter()
    res = pretrain.train(p, "bert", seed=0, workdir=work, progress=False)
    wall = time.perf_counter() - t0
    losses = [row[1] for row in res.curve]
    m = {k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}
    first, last = sum(losses[:10]) / len(losses[:10]), sum(losses[-10:]) / len(losses[-10:])
    print(json.dumps({"wall_s": round(wall, 1), "loss_first10": round(first, 3), "loss_last10": round(last, 3),
                      **m}, indent=1), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    ok = math.isfinite(last) and last < first
    print("OK: loss fell" if ok else "FAIL: loss did not fall", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("ARKBENCH_TRACKING", "off")
    sys.exit(main())
