"""Architecture search: Operation-Priority (OP) evolution and its baselines, resumable.

Strategies (the same budget of evaluated candidates, the same initial population for
a given seed: the all-vanilla BERT architecture plus random architectures):

    op           aging evolution (tournament parent, oldest member removed); a mutation's
                 new operation / kernel is drawn with probability softmax(UCB_o / tau),
                     UCB_o = mu_o + c sqrt(2 ln N / N_o)                       (spec 3.4, [R])
                 mu_o = mean percentile rank (0..1) of the scores of the evaluated
                 candidates that contain o, where every invalid child an op produced
                 counts as a rank-0 observation of that op; N_o = observations of o, N =
                 all observations; an op never observed gets priority +inf (tried first).
    regularized  the same loop with uniform mutation choices (Real et al. 2019).
    random       every candidate is a fresh random architecture.

Each proposal is checked (shapes, size, finite values and gradients on random inputs:
space.valid_arch) and de-duplicated by canonical hash; a rejected child is redrawn (up
to `max_tries`) and counted.

Rounds: `parallel` children are proposed from the state, evaluated (in any order, on
any executor), and then folded into the state in proposal order. Proposals depend only
on the state (RNG + scores), so the history is the same whatever executor or worker
count runs them.

State, checkpointed (atomic JSON) after every evaluated candidate: config, RNG state,
history, population, invalid-op counts, and the pending round with the results that
already came back. A killed search reruns only the unfinished candidates of the pending
round and reaches the same history as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import graph as G
from . import space as S

STRATEGIES = ("op", "regularized", "random")


@dataclass
class SearchConfig:
    strategy: str = "op"
    budget: int = 30                       # evaluated candidates
    population: int = 8
    sample_size: int = 3                   # tournament size
    parallel: int = 2                      # candidates per round
    num_layers: int = 2
    max_nodes: int = 10
    ops: list[str] = field(default_factory=lambda: list(G.UNARY + G.BINARY))
    kernels: list[int] = field(default_factory=lambda: list(S.KERNELS))
    p_conv: float = 0.5
    ucb_c: float = 0.5
    ucb_temperature: float = 0.1
    max_tries: int = 50
    seed: int = 0
    require_mixing: bool = False           # attention graphs must mix tokens (graph.mixes_tokens)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"search.strategy={self.strategy!r}: allowed {STRATEGIES}")
        unknown = [o for o in self.ops if o not in G.PRIMITIVES]
        if unknown:
            raise ValueError(f"search.ops: unknown primitives {unknown}; known: {list(G.PRIMITIVES)}")
        bad = [k for k in self.kernels if k < 1 or k % 2 == 0]
        if bad:
            raise ValueError(f"search.kernels: {bad} are not positive odd sizes")
        if self.sample_size > self.population:
            raise ValueError(f"search.sample_size={self.sample_size} > population={self.population}")
        if self.parallel < 1 or self.budget < 1:
            raise ValueError("search.parallel and search.budget must be >= 1")


# --- state --------------------------------------------------------------------------------------

def new_state(cfg: SearchConfig) -> dict[str, Any]:
    rng = np.random.default_rng(cfg.seed)
    return {"config": asdict(cfg), "rng": rng.bit_generator.state, "history": [], "population": [],
            "invalid_ops": {}, "rejected": {"invalid": 0, "duplicate": 0}, "pending": [],
            "wall_s": 0.0}


def save_state(state: dict, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def load_state(path: str | os.PathLike, cfg: SearchConfig) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if state["config"] != asdict(cfg):
        changed = sorted(k for k in asdict(cfg) if state["config"].get(k) != asdict(cfg)[k])
        raise ValueError(f"{path}: a search state with other settings ({', '.join(changed)}); "
                         "delete it or restore those settings")
    return state


# --- OP priority ----------------------------------------------------------------------------------

def op_statistics(state: dict) -> dict[str, dict[str, float]]:
    """Per primitive: n (observations), mu (mean percentile rank), invalid (rank-0 observations)."""
    hist = state["history"]
    scores = np.array([h["score"] for h in hist], dtype=float)
    ranks = (scores.argsort().argsort() / max(len(scores) - 1, 1)) if len(scores) else scores
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for h, r in zip(hist, ranks):
        for o in set(S.arch_ops(h["arch"])):
            sums[o] = sums.get(o, 0.0) + float(r)
            counts[o] = counts.get(o, 0) + 1
    for o, n in state["invalid_ops"].items():
        counts[o] = counts.get(o, 0) + n
    return {o: {"n": counts[o], "mu": sums.get(o, 0.0) / counts[o], "invalid": state["invalid_ops"].get(o, 0)}
            for o in counts}


def ucb_scores(state: dict, cfg: SearchConfig) -> dict[str, float]:
    stats = op_statistics(state)
    total = sum(s["n"] for s in stats.values())
    return {o: s["mu"] + cfg.ucb_c * math.sqrt(2 * math.log(max(total, 1)) / s["n"]) for o, s in stats.items()}


def _op_chooser(state, cfg, rng, record: list):
    if cfg.strategy != "op":
        def uniform(cands):
            c = cands[int(rng.integers(len(cands)))]
            record.append(str(c) if not isinstance(c, (int, np.integer)) else f"conv{int(c)}")
            return c
        return uniform
    ucb = ucb_scores(state, cfg)

    def prioritised(cands):
        keys = [c if isinstance(c, str) else f"conv{int(c)}" for c in cands]
        unseen = [i for i, k in enumerate(keys) if k not in ucb]
        if unseen:                                     # never observed: try first
            i = unseen[int(rng.integers(len(unseen)))]
        else:
            u = np.array([ucb[k] for k in keys]) / cfg.ucb_temperature
            p = np.exp(u - u.max())
            i = int(rng.choice(len(cands), p=p / p.sum()))
        record.append(keys[i])
        return cands[i]
    return prioritised


# --- proposals --------------------------------------------------------------------------------------

def _known_hashes(state) -> set[str]:
    return {h["hash"] for h in state["history"]} | {p["hash"] for p in state["pending"]}


def propose(state: dict, cfg: SearchConfig, rng: np.random.Generator) -> dict:
    """One new, valid, unseen candidate {arch, hash, parent, mutation}."""
    seen = _known_hashes(state)
    n_done = len(state["history"]) + len(state["pending"])
    for _ in range(cfg.max_tries):
        record: list[str] = []
        choose = _op_chooser(state, cfg, rng, record)
        parent, kind = None, "random"
        if n_done == 0:
            arch, kind = S.bert_arch(cfg.num_layers), "init"
        elif cfg.strategy == "random" or n_done < cfg.population or not state["population"]:
            arch = S.random_arch(rng, cfg.num_layers, cfg.ops, cfg.max_nodes, cfg.kernels, cfg.p_conv,
                                 require_mixing=cfg.require_mixing)
            kind = "random" if cfg.strategy == "random" and n_done >= cfg.population else "init"
        else:
            pop = state["population"]
            picks = rng.choice(len(pop), size=min(cfg.sample_size, len(pop)), replace=False)
            parent = max((pop[int(i)] for i in picks), key=lambda j: (state["history"][j]["score"], -j))
            arch, kind = S.mutate(state["history"][parent]["arch"], rng, cfg.ops, cfg.max_nodes, cfg.kernels,
                                  choose_op=choose, choose_kernel=choose, require_mixing=cfg.require_mixing)
        ok, why = S.valid_arch(arch, cfg.max_nodes, cfg.kernels, cfg.require_mixing)
        if not ok:
            state["rejected"]["invalid"] += 1
            for o in record:
                state["invalid_ops"][o] = state["invalid_ops"].get(o, 0) + 1
            continue
        h = S.arch_hash(arch)
        if h in seen:
            state["rejected"]["duplicate"] += 1
            continue
        return {"arch": arch, "hash": h, "parent": parent, "mutation": kind, "result": None}
    raise RuntimeError(f"no valid new candidate in {cfg.max_tries} tries "
                       f"(rejected so far: {state['rejected']})")


def _fold(state: dict, cfg: SearchConfig, cand: dict) -> None:
    entry = {"i": len(state["history"]), "hash": cand["hash"], "arch": cand["arch"], "parent": cand["parent"],
             "mutation": cand["mutation"], **cand["result"]}
    state["history"].append(entry)
    state["population"].append(entry["i"])
    if cfg.strategy != "random" and len(state["population"]) > cfg.population:
        state["population"].pop(0)                 # aging: the oldest member leaves


# --- the loop ------------------------------------------------------------------------------------------

Evaluate = Callable[[list[dict]], Iterator[tuple[int, dict]]]


def run_search(cfg: SearchConfig, evaluate: Evaluate, state_path: str | os.PathLike | None = None,
               on_candidate: Callable[[dict, dict], None] | None = None) -> dict:
    """Run (or resume) a search to `cfg.budget` candidates; returns the final state.

    evaluate(archs) yields (index, result) pairs in any order as candidates finish;
    result holds at least "score". on_candidate(state, entry) is called when a
    candidate is folded into the history (tracking, progress).
    """
    state = load_state(state_path, cfg) if state_path else None
    state = state or new_state(cfg)
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    save = (lambda: save_state(state, state_path)) if state_path else (lambda: None)
    while len(state["history"]) < cfg.budget:
        t0 = time.perf_counter()
        if not state["pending"]:
            room = min(cfg.parallel, cfg.budget - len(state["history"]))
            for _ in range(room):
                state["pending"].append(propose(state, cfg, rng))
            state["rng"] = rng.bit_generator.state
            save()
        todo = [i for i, p in enumerate(state["pending"]) if p["result"] is None]
        if todo:
            for j, result in evaluate([state["pending"][i]["arch"] for i in todo]):
                state["pending"][todo[j]]["result"] = result
                state["wall_s"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                save()                                    # checkpoint after every evaluated candidate
        for cand in state["pending"]:
            _fold(state, cfg, cand)
            if on_candidate:
                on_candidate(state, state["history"][-1])
        state["pending"] = []
        save()
    return state


# --- summaries ------------------------------------------------------------------------------------------

def best_so_far(history: list[dict]) -> list[float]:
    out, best = [], -math.inf
    for h in history:
        best = max(best, h["score"])
        out.append(best)
    return out


def candidates_to_reach(history: list[dict], target: float) -> int | None:
    for i, b in enumerate(best_so_far(history)):
        if b >= target:
            return i + 1
    return None


def comparable(history: Iterable[dict]) -> list[dict]:
    """History without timing fields (for comparing runs)."""
    return [{k: v for k, v in h.items() if k != "eval_s"} for h in history]
