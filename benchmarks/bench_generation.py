"""ZeroGen generation throughput: our batched KV-cache sampler vs a naive one-prompt `generate` loop,
and the cost of self-debiasing -- all measured in one run on the same model and prompts.

    python benchmarks/bench_generation.py                       # SmolLM2-135M (cached under models/)
    python benchmarks/bench_generation.py --plm tiny --prompts 64

Prints new tokens/s of
  naive    : transformers' `model.generate` called once per prompt (top-p 0.9, max_new_tokens)
  batched  : arkbench.papers.zerogen.generate.sample, `--batch` prompts per forward, stop at `"`
  debiased : the same with one counter prompt per row and λ = 200 (ZeroGen's NLI setting)
and the ratios batched/naive (goal >= 3x) and debiased-time/plain-time per token (goal <= 2x).
Timings on a shared machine are inflated; the load average is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from arkbench.papers.zerogen import generate as G  # noqa: E402
from arkbench.papers.zerogen import plm as P  # noqa: E402
from arkbench.papers.zerogen import tasks as T  # noqa: E402

TITLES = ["Titanic", "The Godfather", "Up", "Heat", "Alien", "Jaws", "Rocky", "Vertigo"]
PREMISES = ["A man is playing a guitar on the street.", "The company reported record profits in 2020.",
            "Two children are running across a sunny field.", "The museum closed early because of the storm."]


def load(name: str, cache: str):
    if name == "tiny":
        folder = Path(cache) / "bench_tiny"
        if not (folder / "config.json").is_file():
            P.train_tiny_lm(P.smoke_corpus(800), folder, steps=60)
        return P.load_plm(str(folder))
    return P.load_plm(name, cache_dir=cache)


def naive(model, tok, prompts, cfg: G.DecodeConfig, seed: int) -> tuple[int, float]:
    torch.manual_seed(seed)
    n, t0 = 0, time.perf_counter()
    for p in prompts:
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, do_sample=True, top_p=cfg.top_p, top_k=0, temperature=cfg.temperature,
                             max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id)
        n += out.shape[1] - ids["input_ids"].shape[1]
    return n, time.perf_counter() - t0


def ours(model, tok, prompts, cfg, seed, counters=None) -> tuple[int, float]:
    t0 = time.perf_counter()
    texts = G.sample(model, tok, prompts, cfg, seed=seed, counters=counters)
    dt = time.perf_counter() - t0
    return G.count_new_tokens(tok, texts), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plm", default="smollm2", help="smollm2 | tiny | a causal-LM folder")
    ap.add_argument("--cache", default="models/zerogen/plm", help="where de-quantised / tiny PLMs are cached")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--naive-prompts", type=int, default=8, help="the naive loop runs on the first N prompts")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    model, tok = load(a.plm, a.cache)
    G.stop_token_mask(tok, '"')     # built once, outside the timings
    movie = T.get_task("sst2")
    prompts = [movie.x2_prompt(["positive", "negative"][i % 2], TITLES[i % len(TITLES)]) for i in range(a.prompts)]
    cfg = G.DecodeConfig(top_p=0.9, max_new_tokens=a.max_new_tokens, batch_size=a.batch)
    # warm-up (allocator, kernels)
    G.sample(model, tok, prompts[:2], cfg.model_copy(update={"max_new_tokens": 2}), seed=a.seed)

    n_naive, t_naive = naive(model, tok, prompts[: a.naive_prompts], cfg, a.seed)
    n_ours, t_ours = ours(model, tok, prompts, cfg, a.seed)
    rte = T.get_task("rte")
    labs = ["entailment", "not_entailment"]
    nli = [rte.x2_prompt(labs[i % 2], PREMISES[i % len(PREMISES)]) for i in range(a.prompts)]
    cnt = [rte.counter_prompts(labs[i % 2], PREMISES[i % len(PREMISES)]) for i in range(a.prompts)]
    n_plain, t_plain = ours(model, tok, nli, cfg, a.seed)
    dcfg = cfg.model_copy(update={"decay_constant": 200.0})
    n_deb, t_deb = ours(model, tok, nli, dcfg, a.seed, counters=cnt)

    tps = lambda n, t: n / max(t, 1e-9)  # noqa: E731
    la = os.getloadavg()
    print(f"plm={a.plm} params={P.n_params(model) / 1e6:.1f}M  torch threads={torch.get_num_threads()}  "
          f"load average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}")
    print(f"naive generate, 1 prompt at a time : {n_naive:5d} new tokens in {t_naive:7.1f}s = "
          f"{tps(n_naive, t_naive):7.1f} tok/s")
    print(f"batched sampler, batch {a.batch:3d}         : {n_ours:5d} new tokens in {t_ours:7.1f}s = "
          f"{tps(n_ours, t_ours):7.1f} tok/s")
    print(f"NLI plain sampling                 : {n_plain:5d} new tokens in {t_plain:7.1f}s = "
          f"{tps(n_plain, t_plain):7.1f} tok/s")
    print(f"NLI self-debiased (lambda=200)     : {n_deb:5d} new tokens in {t_deb:7.1f}s = "
          f"{tps(n_deb, t_deb):7.1f} tok/s")
    speed = tps(n_ours, t_ours) / tps(n_naive, t_naive)
    overhead = (t_deb / max(n_deb, 1)) / (t_plain / max(n_plain, 1))
    print(f"RATIO batched/naive throughput = {speed:.2f}x (goal >= 3x)")
    print(f"RATIO self-debiasing time per token = {overhead:.2f}x plain (goal <= 2x)")


if __name__ == "__main__":
    main()
