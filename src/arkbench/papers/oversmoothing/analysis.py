"""Per-layer over-smoothing curves of a (pre-trained or fine-tuned) encoder on real text.

    rows = load_inputs("stsb", source="local", local_dir="../shared/data", n=256)
    batches = tokenize(tokenizer, rows, max_length=128, batch_size=32)
    curves = layer_curves(model.encoder, batches, special_ids=[cls_id, sep_id])

Inputs are fed as the task feeds them (one sentence, or a pair as [CLS] a [SEP] b [SEP];
SQuAD as question + context, truncated to `max_length`, as in the paper's n = 128).
The evaluation split is used first (the paper uses dev sets) and topped up from the
training split when it is smaller than `n` (the local SQuAD's training split is itself
carved from the real dev file).

`layer_curves` makes two passes: the first gets each layer's corpus mean (the centre of
the mean-centred cosine), the second every per-layer number. Index 0 is the embedding
output, 1..L the layers. Keys (lists of L+1 floats unless noted):

    cos_raw / cos_raw_content          raw token cosine, with / without [CLS],[SEP]
    cos_centred / cos_centred_content  the same after subtracting the corpus mean
    rel_dm                             d_M(H) / ||H||_F
    ratio, bound_v, bound_v_common     measured d_M(H_l)/d_M(H_{l-1}) and the bounds
    lambda_mean, lambda_max            attention lambda over heads and sequences
    sigma1_mean, sigma1_min, sigma2_mean, sigma2_min, gamma1_max, gamma2_max  LayerNorm stats
    bound_holds_fraction (float)       share of (sequence, layer) with ratio <= v
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .measures import corpus_mean, content_mask, layer_bounds, rel_d_M, token_cosine, trace_encoder

__all__ = ["load_inputs", "tokenize", "layer_curves", "slope", "summarise_curve"]


def load_inputs(task: str, source: str = "embedded", *, local_dir: str | None = None, n: int = 256,
                seed: int = 0, with_labels: bool = False) -> list[tuple] :
    """Up to `n` model inputs of `task`: tuples of its text fields (+ label if asked)."""
    from arkbench.data import get_task, load_task

    spec = get_task(task)
    dd = load_task(task, source, local_dir=local_dir, seed=seed)
    order = list(spec.eval_splits) + [spec.train_split]
    rows: list[tuple] = []
    for split in order:
        ds = dd[split]
        take = min(len(ds), n - len(rows))
        if take <= 0:
            break
        idx = np.random.default_rng(seed).permutation(len(ds))[:take]
        sub = ds.select(sorted(int(i) for i in idx))
        cols = [sub[f] for f in spec.text_fields]
        labels = sub["label"] if (with_labels and "label" in sub.column_names) else [None] * take
        for i in range(take):
            t = tuple(c[i] for c in cols)
            rows.append(t + (labels[i],) if with_labels else t)
    return rows


def tokenize(tokenizer, rows: Sequence[tuple], max_length: int = 128, batch_size: int = 32,
             text_fields: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Rows of 1 or 2 texts -> padded batches {input_ids, attention_mask, token_type_ids}."""
    k = text_fields or len(rows[0])
    out = []
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        a = [r[0] for r in chunk]
        b = [r[1] for r in chunk] if k == 2 else None
        enc = tokenizer(a, b, truncation="only_second" if b is not None else True, max_length=max_length,
                        padding=True, return_tensors="pt")
        out.append({key: enc[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in enc})
    return out


def _nanmean(xs: list[torch.Tensor]) -> float:
    v = torch.cat([x.flatten().float() for x in xs])
    v = v[torch.isfinite(v)]
    return float(v.mean()) if v.numel() else float("nan")


@torch.no_grad()
def layer_curves(encoder, batches: Iterable[dict[str, torch.Tensor]], special_ids: Sequence[int],
                 bounds: bool = True) -> dict[str, Any]:
    batches = list(batches)
    # pass 1: per-layer corpus means, over all tokens and over content tokens
    sums_all, sums_con, n_all, n_con = None, None, 0.0, 0.0
    for b in batches:
        enc = encoder(b["input_ids"], b["attention_mask"], b.get("token_type_ids"))
        m = b["attention_mask"].bool()
        mc = content_mask(b["input_ids"], b["attention_mask"], special_ids)
        hs = torch.stack([h.float() for h in enc.hidden_states])                 # [L+1,B,T,D]
        sa = (hs * m[None, ..., None]).sum((1, 2))
        sc = (hs * mc[None, ..., None]).sum((1, 2))
        sums_all = sa if sums_all is None else sums_all + sa
        sums_con = sc if sums_con is None else sums_con + sc
        n_all += float(m.sum())
        n_con += float(mc.sum())
    mu_all = sums_all / max(n_all, 1)
    mu_con = sums_con / max(n_con, 1)
    L1 = mu_all.shape[0]
    acc: dict[str, list[list[torch.Tensor]]] = {k: [[] for _ in range(L1)] for k in (
        "cos_raw", "cos_raw_content", "cos_centred", "cos_centred_content", "rel_dm", "ratio", "bound_v",
        "bound_v_common", "lambda_mean", "lambda_max", "sigma1_mean", "sigma1_min", "sigma2_mean",
        "sigma2_min", "gamma1_max", "gamma2_max")}
    held = total = 0
    for b in batches:
        m = b["attention_mask"].bool()
        mc = content_mask(b["input_ids"], b["attention_mask"], special_ids)
        tr = trace_encoder(encoder, b["input_ids"], b["attention_mask"], b.get("token_type_ids"))
        for l, h in enumerate(tr.hidden_states):
            acc["cos_raw"][l].append(token_cosine(h, m))
            acc["cos_raw_content"][l].append(token_cosine(h, mc))
            acc["cos_centred"][l].append(token_cosine(h, m, center=mu_all[l]))
            acc["cos_centred_content"][l].append(token_cosine(h, mc, center=mu_con[l]))
            acc["rel_dm"][l].append(rel_d_M(h, m))
        if not bounds:
            continue
        for l, rec in enumerate(layer_bounds(encoder, tr), start=1):
            acc["ratio"][l].append(rec["ratio"])
            acc["bound_v"][l].append(rec["v"])
            acc["bound_v_common"][l].append(rec["v_common"])
            lam = rec["lambda"]
            acc["lambda_mean"][l].append(lam.nanmean(-1))
            acc["lambda_max"][l].append(lam.amax(-1))
            for k in ("sigma1_mean", "sigma1_min", "sigma2_mean", "sigma2_min"):
                acc[k][l].append(rec[k])
            for k in ("gamma1_max", "gamma2_max"):
                acc[k][l].append(torch.tensor([rec[k]]))
            ok = torch.isfinite(rec["ratio"]) & torch.isfinite(rec["v"])
            held += int((rec["ratio"][ok] <= rec["v"][ok] * (1 + 1e-4)).sum())
            total += int(ok.sum())
    out: dict[str, Any] = {}
    for k, per_layer in acc.items():
        out[k] = [(_nanmean(xs) if xs else None) for xs in per_layer]
    out["num_layers"] = L1 - 1
    out["num_sequences"] = sum(int(b["input_ids"].shape[0]) for b in batches)
    out["bound_holds_fraction"] = held / total if total else None
    return out


def slope(values: Sequence[float | None], start: int = 1) -> float:
    """Least-squares slope of values[start:] against layer index (similarity per layer)."""
    ys = np.array([np.nan if v is None else v for v in values[start:]], dtype=float)
    xs = np.arange(start, start + len(ys), dtype=float)
    ok = np.isfinite(ys)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(xs[ok], ys[ok], 1)[0])


def summarise_curve(values: Sequence[float | None]) -> dict[str, Any]:
    """Layers 1..L of a curve: the list, its slope, last minus first, share of rising steps."""
    layers = [float(v) for v in values[1:]]
    steps = np.diff(layers)
    return {"per_layer": layers, "slope": slope(values), "last_minus_first": layers[-1] - layers[0],
            "rising_fraction": float((steps > 0).mean()) if len(steps) else float("nan"),
            "argmax_layer": int(np.argmax(layers)) + 1, "argmin_layer": int(np.argmin(layers)) + 1}
