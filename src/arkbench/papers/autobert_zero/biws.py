"""Bi-branch weight sharing (BIWS): one super-net whose every slot holds both branches.

    slot i of the super-net  =  attention branch  (W_Q, W_K, W_V, W_O: [D, D] each)
                             +  conv branch       (GLU in [2D, D], kernel [H, K_max] or
                                                   dynamic kernel_proj [H*K_max, D], W_out)
                             +  the slot's FFN and LayerNorms (shared by both branches)

Training (single-path, uniform sampling): every step draws a random architecture of
the search space (seeded by the step), routes each slot through the branch it names
(an attention slot runs its own op graph on the shared projections; a conv slot with
kernel k uses the centre k taps of the K_max kernel, Once-for-All style, softmax-
normalised over those k taps), and takes one MLM step.

Inheritance: a candidate copies embeddings, MLM head, FFNs and norms, the projections
its graphs use, and the centre slices of the conv kernels; then trains the short
proxy budget (spec 3.5, recalled [R]: the paper's exact mechanics are unknown).

The ranking study compares, on the same sampled candidates and the same proxy step
budget, Kendall tau between proxy scores and a longer from-scratch reference, with
and without BIWS.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from arkbench.models import EncoderConfig, MaskedLM
from arkbench.models.registry import MIXERS, register_mixer
from arkbench.training.mlm import BlockSampler, Masker, derive_seed, global_batch

from . import graph as G
from . import space as S
from .modules import _key_bias, _keep_from_bias
from .proxy import ProxyConfig, ProxyData, _lr_at, evaluate_candidate


class _AttBranch(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))


class _ConvBranch(nn.Module):
    def __init__(self, d: int, h: int, kmax: int, conv_type: str):
        super().__init__()
        self.glu_in = nn.Linear(d, 2 * d)
        if conv_type == "light":
            self.weight = nn.Parameter(torch.zeros(h, kmax))
        else:
            self.kernel_proj = nn.Linear(d, h * kmax)
        self.out = nn.Linear(d, d)


MIXERS.pop("abz_biws", None)


@register_mixer("abz_biws")
class BiBranchSlot(nn.Module):
    """A super-net slot; `self.path` ({"type": "att", "graph": ...} | {"type": "conv", "kernel": k})
    picks the branch of the next forward."""

    def __init__(self, config: EncoderConfig, layer: int | None = None, *, max_kernel: int = 65,
                 conv_type: str = "light", sqrt_reading: str = "signed"):
        super().__init__()
        d, self.h = config.hidden_size, config.num_heads
        self.kmax, self.conv_type, self.sqrt_reading = max_kernel, conv_type, sqrt_reading
        self.att = _AttBranch(d)
        self.conv = _ConvBranch(d, self.h, max_kernel, conv_type)
        self.path: dict | None = None

    def _split(self, x):
        B, T, D = x.shape
        return x.view(B, T, self.h, D // self.h).transpose(1, 2)

    def forward(self, x, attn_bias=None, output_attentions=False, *, key_padding_mask=None):
        if self.path is None:
            raise RuntimeError("BiBranchSlot: set_path() before forward")
        B, T, D = x.shape
        keep = _keep_from_bias(attn_bias, key_padding_mask)
        if self.path["type"] == "att":
            g = self.path["graph"]
            used = G.used_inputs(g)
            proj = [self._split(m(x)) if n in used else None
                    for n, m in zip("qkv", (self.att.query, self.att.key, self.att.value))]
            y = G.evaluate(g, *proj, key_bias=_key_bias(keep, x.dtype) if keep is not None else None,
                           key_keep=keep[:, None, :, None] if keep is not None else None,
                           sqrt_reading=self.sqrt_reading)
            return self.att.out(y.transpose(1, 2).reshape(B, T, D)), None
        k, H = self.path["kernel"], self.h
        lo = self.kmax // 2 - k // 2
        c = self.conv
        g = F.glu(c.glu_in(x), dim=-1)
        if keep is not None:
            g = g * keep.unsqueeze(-1)
        if self.conv_type == "light":
            w = c.weight[:, lo:lo + k].softmax(-1).repeat_interleave(D // H, 0)
            y = F.conv1d(g.transpose(1, 2), w.unsqueeze(1), padding=k // 2, groups=D).transpose(1, 2)
        else:
            wk = c.kernel_proj.weight.view(H, self.kmax, D)[:, lo:lo + k].reshape(H * k, D)
            bk = c.kernel_proj.bias.view(H, self.kmax)[:, lo:lo + k].reshape(H * k)
            w = F.linear(g, wk, bk).view(B, T, H, k).softmax(-1)
            win = F.pad(g.transpose(1, 2), (k // 2, k // 2)).unfold(2, k, 1).view(B, H, D // H, T, k)
            y = (win * w.permute(0, 2, 1, 3).unsqueeze(2)).sum(-1).reshape(B, D, T).transpose(1, 2)
        return c.out(y), None


def build_supernet(cfg: ProxyConfig, vocab_size: int, max_kernel: int) -> MaskedLM:
    enc = EncoderConfig(**{**cfg.base(vocab_size), "num_layers": cfg.num_layers, "mixers": "abz_biws",
                           "mixer_kwargs": {"abz_biws": {"max_kernel": max_kernel, "conv_type": cfg.conv_type,
                                                         "sqrt_reading": cfg.sqrt_reading}}})
    return MaskedLM(enc)


def set_path(supernet: MaskedLM, arch: dict) -> None:
    for layer, slot in zip(supernet.encoder.layers, arch["slots"]):
        layer.mixer.path = slot


def train_supernet(data: ProxyData, cfg: ProxyConfig, steps: int, seed: int, ops, max_nodes: int,
                   kernels, p_conv: float = 0.5, log=None, require_mixing: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Single-path uniform training; returns (state_dict, {steps, time_s, final_loss, paths_skipped})."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        net = build_supernet(cfg, data.vocab_size, max(kernels))
        masker = Masker(data.vocab_size, data.mask_id, data.special_ids)
        sampler = BlockSampler(len(data.train), seed)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
        net.train()
        losses, skipped = [], 0
        from arkbench.progress import progress

        for step in progress(range(steps), desc="BIWS super-net", unit="step"):
            rng = np.random.default_rng(derive_seed(seed, step, 11))
            while True:
                arch = S.random_arch(rng, cfg.num_layers, ops, max_nodes, kernels, p_conv,
                                     require_mixing=require_mixing)
                if S.valid_arch(arch, max_nodes, kernels, require_mixing)[0]:
                    break
                skipped += 1
            set_path(net, arch)
            for grp in opt.param_groups:
                grp["lr"] = _lr_at(step, cfg, steps)
            inputs, labels = global_batch(data.train, sampler, masker, seed, step, cfg.batch_size)
            loss = net(inputs, labels=labels).loss
            if not torch.isfinite(loss):
                skipped += 1
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if log and (step + 1) % max(1, steps // 10) == 0:
                log({"supernet_loss": float(np.mean(losses[-20:]))}, step + 1)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return state, {"steps": steps, "time_s": time.perf_counter() - t0,
                       "final_loss": float(np.mean(losses[-20:])) if losses else None, "paths_skipped": skipped}
    finally:
        torch.set_num_threads(threads)


def inherit(supernet_state: dict[str, torch.Tensor], arch: dict, cfg: ProxyConfig, data: ProxyData,
            ) -> dict[str, torch.Tensor]:
    """The candidate's state dict, every tensor taken from the super-net's matching branch."""
    from .proxy import build_model

    with torch.device("meta"):
        cand = build_model(arch, data, cfg)
    H = cfg.model["num_heads"]
    out = {}
    for name, t in cand.state_dict().items():
        parts = name.split(".")
        if parts[:2] == ["encoder", "layers"] and parts[3] == "mixer":
            i, rest = int(parts[2]), parts[4:]
            slot = arch["slots"][i]
            prefix = f"encoder.layers.{i}.mixer."
            if slot["type"] == "att":
                src = supernet_state[prefix + "att." + ".".join(rest)]
            else:
                k = slot["kernel"]
                if rest[0] == "weight":                                      # [H, Kmax] -> [H, k]
                    full = supernet_state[prefix + "conv.weight"]
                    lo = full.shape[1] // 2 - k // 2
                    src = full[:, lo:lo + k]
                elif rest[0] == "kernel_proj":                               # [H*Kmax, ...] -> [H*k, ...]
                    full = supernet_state[prefix + "conv." + ".".join(rest)]
                    kmax = full.shape[0] // H
                    lo = kmax // 2 - k // 2
                    src = full.view(H, kmax, *full.shape[1:])[:, lo:lo + k].reshape(H * k, *full.shape[1:])
                else:
                    src = supernet_state[prefix + "conv." + ".".join(rest)]
        else:
            src = supernet_state[name]
        if tuple(src.shape) != tuple(t.shape):
            raise ValueError(f"BIWS: {name} has shape {tuple(t.shape)}, the super-net gives {tuple(src.shape)}")
        out[name] = src.clone()
    return out


# --- ranking study ------------------------------------------------------------------------------

def ranking_study(data: ProxyData, cfg: ProxyConfig, supernet_state: dict, archs: list[dict], seed: int,
                  proxy_steps: int, reference_steps: int, log=None) -> dict[str, Any]:
    """Kendall tau of proxy scores (with / without BIWS, same proxy_steps) against from-scratch
    scores after reference_steps, on the same candidates."""
    from arkbench.progress import progress

    rows = []
    for j, arch in enumerate(progress(archs, desc="ranking study", unit="cand")):
        ref = evaluate_candidate(arch, data, cfg, seed, steps=reference_steps)
        scratch = evaluate_candidate(arch, data, cfg, seed, steps=proxy_steps)
        biws = evaluate_candidate(arch, data, cfg, seed, steps=proxy_steps,
                                  init_state=inherit(supernet_state, arch, cfg, data))
        rows.append({"hash": S.arch_hash(arch), "arch": arch, "reference": ref["score"],
                     "proxy_scratch": scratch["score"], "proxy_biws": biws["score"],
                     "proxy_scratch_s": scratch["eval_s"], "proxy_biws_s": biws["eval_s"],
                     "reference_s": ref["eval_s"]})
        if log:
            log({"ranking_done": j + 1}, j + 1)
    from scipy.stats import kendalltau   # here, not at the top: the plugin import (every stage that builds
                                         # an encoder) would pay scipy.stats' ~1-3 s import for one function

    ref = [r["reference"] for r in rows]
    tau = {}
    for key in ("proxy_scratch", "proxy_biws"):
        t, p = kendalltau([r[key] for r in rows], ref)
        tau[key] = {"tau": float(t), "p": float(p)}
    return {"rows": rows, "tau": tau, "n": len(rows), "proxy_steps": proxy_steps,
            "reference_steps": reference_steps}
