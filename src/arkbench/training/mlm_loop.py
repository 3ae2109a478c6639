"""The MLM training loop as a reusable function, with callbacks.

    data = prepare_mlm_data(corpus, tokenizer, p, seed, info)     # packed blocks, fixed val masks
    model = MaskedLM(cfg)                                          # or any model taking (input_ids, labels)
    res = mlm_loop(p, model, data, seed=0, callbacks=[MySchedule()], ckpt_dir=..., fingerprint=fp)
    res.curve, res.val_loss, res.val_acc, res.resumed_from

`p` is anything with the fields of :class:`arkbench.training.pretrain.PretrainParams`
the loop reads (batch_size, grad_accum, max_steps, optimiser and schedule fields,
precision, log/eval/checkpoint cadence); a paper's proxy training passes
``p.model_copy(update={"max_steps": 500})`` and no ``ckpt_dir``.

Callbacks (subclass :class:`Callback`, override what you need):

    on_step_start(state)             before step state.step + 1: set a temperature, a lambda
    on_step_end(state, stats)        stats: loss, mlm_acc, lr, grad_norm, aux/<name>; may
                                     return metrics to log at this step; state.stop = True ends
    on_eval(state, metrics)          after each validation (val/loss, val/mlm_acc); may return more
    on_checkpoint(state, extra)      before a checkpoint is written: put callback state in `extra`
    on_resume(state, extra)          after a resume: read it back

Batching and determinism are pre-training's (see arkbench.training.pretrain): the
masked global batch of step s is a pure function of (seed, s), so resuming needs
only the step. Auxiliary losses of the model (``ModelOutput.aux_losses``) are added
to the loss that is back-propagated, with the MLM loss's micro-batch weight, and
logged as ``train/aux/<name>``; the reported loss (curve, train/loss, val/loss) is
the MLM loss alone.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..models.heads import training_loss
from . import checkpoint as ckpt
from . import distributed as dist_utils
from .loop import autocast, grad_scaler, mfu, resolve_precision, train_step
from .mlm import (DROPOUT, VAL_MASK, BlockSampler, Masker, derive_seed, global_batch, pack_blocks, shard,
                  step_generator, tokenize_texts)
from .optim import build_optimizer, build_scheduler

log = logging.getLogger("arkbench.mlm_loop")


@dataclass
class MLMData:
    train_blocks: torch.Tensor          # [N, seq_len] packed training blocks
    val_x: torch.Tensor                 # [M, seq_len] this rank's masked validation inputs
    val_y: torch.Tensor                 # [M, seq_len] labels (-100 = not scored)
    masker: Masker
    sampler: BlockSampler
    seq_len: int


def prepare_mlm_data(ds, tok, p, seed: int, info: dist_utils.DistInfo | None = None) -> MLMData:
    """Tokenise and pack `ds` (train/validation `text`), fix the validation masks (seeded)."""
    info = info or dist_utils.DistInfo()
    world = info.world_size
    train_blocks = pack_blocks(tokenize_texts(ds["train"]["text"], tok), p.seq_len, tok.cls_token_id,
                               tok.sep_token_id)
    val_blocks = pack_blocks(tokenize_texts(ds["validation"]["text"], tok), p.seq_len, tok.cls_token_id,
                             tok.sep_token_id)[: p.eval_blocks]
    masker = Masker.from_tokenizer(tok, p.mlm_probability)
    val_x, val_y = masker(val_blocks, step_generator(seed, 0, VAL_MASK))
    return MLMData(train_blocks, val_x[info.rank::world], val_y[info.rank::world], masker,
                   BlockSampler(len(train_blocks), seed), p.seq_len)


@dataclass
class LoopState:
    step: int                           # optimiser steps done so far
    max_steps: int
    model: torch.nn.Module              # unwrapped (not the DDP wrapper)
    optimizer: Any
    scheduler: Any
    info: dist_utils.DistInfo
    stop: bool = False                  # a callback sets it to end training after this step


class Callback:
    """Hooks of :func:`mlm_loop`; every method is optional."""

    def on_step_start(self, state: LoopState) -> None: ...

    def on_step_end(self, state: LoopState, stats: dict[str, float]) -> dict[str, float] | None: ...

    def on_eval(self, state: LoopState, metrics: dict[str, float]) -> dict[str, float] | None: ...

    def on_checkpoint(self, state: LoopState, extra: dict[str, Any]) -> None: ...

    def on_resume(self, state: LoopState, extra: dict[str, Any]) -> None: ...


@dataclass
class LoopResult:
    curve: list[tuple[int, float, float, float]]      # (step, loss, mlm_acc, lr)
    val_loss: float
    val_acc: float
    train_time: float                                 # seconds in training steps (no eval, no checkpoints)
    steps: int                                        # steps done (< max_steps if a callback stopped)
    resumed_from: int = 0
    n_params: int = 0
    flops_per_token: float = 0.0
    eval_metrics: dict[str, float] = field(default_factory=dict)


def evaluate_mlm(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, info,
                 precision: str) -> tuple[float, float]:
    """(loss, mlm_acc) over this rank's rows, summed over ranks (every rank gets the totals)."""
    model.eval()
    tot = torch.zeros(3, dtype=torch.float64, device=info.device)
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            x = inputs[i:i + batch_size].to(info.device)
            y = labels[i:i + batch_size].to(info.device)
            n = (y != -100).sum()
            if n == 0:
                continue
            with autocast(info.device, precision):
                out = model(input_ids=x, labels=y)
            tot += torch.stack([out.loss.double() * n, (out.logits.argmax(-1) == y[y != -100]).sum().double(),
                                n.double()])
    tot = dist_utils.all_reduce_mean(tot, info) * info.world_size
    loss_sum, correct, n = tot.tolist()
    model.train()
    return loss_sum / max(n, 1), correct / max(n, 1)


def _flops_per_token(model: torch.nn.Module, n_params: int) -> float:
    emb = getattr(getattr(model, "encoder", None), "embeddings", None)
    if emb is None:
        return 6.0 * n_params
    return 6.0 * (n_params - sum(m.weight.numel() for m in (emb.word, emb.position, emb.token_type)))


def _call(callbacks: Sequence[Callback], hook: str, *args) -> dict[str, float]:
    out: dict[str, float] = {}
    for cb in callbacks:
        r = getattr(cb, hook)(*args)
        if r:
            out.update(r)
    return out


def mlm_loop(p, model: torch.nn.Module, data: MLMData, *, seed: int = 0,
             callbacks: Sequence[Callback] = (), ckpt_dir: str | Path | None = None,
             fingerprint: str | None = None, log_metrics: Callable[[dict, int], None] | None = None,
             progress: bool = True, desc: str = "mlm", info: dist_utils.DistInfo | None = None,
             checkpoint_extra: dict[str, Any] | None = None) -> LoopResult:
    """Train `model` (already on info.device) with MLM for p.max_steps; see the module doc.

    With `ckpt_dir` and `fingerprint`: resume from the newest checkpoint carrying that
    fingerprint (others are deleted) and write one every p.checkpoint_every steps.
    """
    info = info or dist_utils.init(p.device)
    world = info.world_size
    if p.batch_size % (world * p.grad_accum):
        raise ValueError(f"pretrain.batch_size = {p.batch_size} is not divisible by world_size ({world}) "
                         f"x grad_accum ({p.grad_accum})")
    micro = p.batch_size // (world * p.grad_accum)
    precision = resolve_precision(p.precision, info.device)
    callbacks = list(callbacks)
    opt = build_optimizer(model, p.optimizer, p.lr, p.weight_decay, betas=tuple(p.adam_betas), eps=p.adam_eps)
    sched = build_scheduler(opt, p.warmup_steps, p.max_steps, p.schedule, p.power)
    scaler = grad_scaler(info.device, precision)
    n_params = sum(t.numel() for t in model.parameters())   # tied decoder counted once
    flops_per_token = _flops_per_token(model, n_params)
    state = LoopState(0, p.max_steps, model, opt, sched, info)

    # -- resume
    start, curve, train_time = 0, [], 0.0
    if ckpt_dir is not None:
        if fingerprint is None:
            raise ValueError("mlm_loop: ckpt_dir needs a fingerprint (arkbench.training.checkpoint.fingerprint)")
        start, extra = ckpt.resume(ckpt_dir, fingerprint, model, opt, sched, scaler, map_location=info.device,
                                   is_main=info.is_main, barrier=lambda: dist_utils.barrier(info), name=desc)
        if start:
            curve = [tuple(r) for r in extra.get("curve", [])]
            train_time = float(extra.get("train_time", 0.0))
            state.step = start
            _call(callbacks, "on_resume", state, extra)
    ddp_model = dist_utils.wrap(model, info)

    def loss_fn(m, batch):
        x, y, n_total = batch
        sel = y != -100
        n = sel.sum()
        out = m(input_ids=x, labels=y)
        # weight = this micro-batch's share of the global batch's masked tokens, x world
        # (DDP averages gradients over ranks): the summed update is the global-batch mean
        weight = n.float() / n_total * world
        loss, aux = training_loss(out)
        correct = (out.logits.argmax(-1) == y[sel]).sum()
        stats = {"loss_sum": out.loss.detach().float() * n, "correct": correct, "n": n}
        for k, v in aux.items():   # per micro-batch mean x share: summed over micro-batches = step value
            stats[f"aux/{k}"] = v.detach().float() * weight / world
        return loss * weight, stats

    def save_checkpoint(step: int) -> None:
        if info.is_main:
            extra = {**(checkpoint_extra or {}), "fingerprint": fingerprint, "samples_seen": step * p.batch_size,
                     "curve": curve, "train_time": train_time}
            _call(callbacks, "on_checkpoint", state, extra)
            st = ckpt.training_state(model, opt, sched, scaler, step=step, extra=extra)
            ckpt.save(ckpt_dir, step, st, keep_last=p.keep_checkpoints)
        dist_utils.barrier(info)

    def evaluate(step: int) -> dict[str, float]:
        vl, va = evaluate_mlm(model, data.val_x, data.val_y, p.eval_batch_size, info, precision)
        m = {"val/loss": vl, "val/mlm_acc": va}
        m.update(_call(callbacks, "on_eval", state, dict(m)))
        return m

    from ..progress import progress as progress_bar

    bar = progress_bar(total=p.max_steps, initial=start, desc=desc, unit="step", enabled=progress and info.is_main)
    window = torch.zeros(3, dtype=torch.float64)
    window_aux: dict[str, float] = {}
    window_t0, window_steps = time.perf_counter(), 0
    tokens_per_step = p.batch_size * data.seq_len
    done = start
    for step in range(start, p.max_steps):
        state.step = step
        _call(callbacks, "on_step_start", state)
        t0 = time.perf_counter()
        x, y = global_batch(data.train_blocks, data.sampler, data.masker, seed, step, p.batch_size)
        n_total = (y != -100).sum().clamp_min(1).to(info.device)
        micro_batches = [(shard(x, m, info.rank, world, micro).to(info.device, non_blocking=True),
                          shard(y, m, info.rank, world, micro).to(info.device, non_blocking=True), n_total)
                         for m in range(p.grad_accum)]
        torch.manual_seed(derive_seed(seed, step, DROPOUT, info.rank))   # dropout: a function of the step
        stats = train_step(ddp_model, micro_batches, loss_fn, opt, sched, scaler, device=info.device,
                           precision=precision, max_grad_norm=p.max_grad_norm)
        tot = torch.stack([torch.as_tensor(stats[k], device=info.device).double()
                           for k in ("loss_sum", "correct", "n")])
        tot = (dist_utils.all_reduce_mean(tot, info) * world).cpu()      # also syncs the device
        train_time += time.perf_counter() - t0
        loss, acc = (tot[0] / tot[2].clamp_min(1)).item(), (tot[1] / tot[2].clamp_min(1)).item()
        done = step + 1
        state.step = done
        aux = {k: float(v) for k, v in stats.items() if k.startswith("aux/")}
        step_stats = {"loss": loss, "mlm_acc": acc, "lr": float(stats["lr"]),
                      "grad_norm": float(stats["grad_norm"]), **aux}
        cb_metrics = _call(callbacks, "on_step_end", state, step_stats)
        if cb_metrics and info.is_main and log_metrics is not None:
            log_metrics(cb_metrics, done)
        last = done == p.max_steps or state.stop
        if done % p.curve_every == 0 or last:
            curve.append((done, loss, acc, float(stats["lr"])))
        window += tot
        for k, v in aux.items():
            window_aux[k] = window_aux.get(k, 0.0) + v
        window_steps += 1
        bar.update(1)
        if done % p.log_every == 0 or last:
            dt = time.perf_counter() - window_t0
            tps = window_steps * tokens_per_step / max(dt, 1e-9)
            wl, wa = (window[0] / window[2].clamp_min(1)).item(), (window[1] / window[2].clamp_min(1)).item()
            bar.set_postfix(loss=f"{wl:.3f}", acc=f"{wa:.3f}", tok_s=f"{tps:.0f}")
            if info.is_main and log_metrics is not None:
                m = {"train/loss": wl, "train/mlm_acc": wa, "train/lr": float(stats["lr"]),
                     "train/grad_norm": float(stats["grad_norm"]), "train/tokens_per_s": tps}
                m.update({f"train/{k}": v / window_steps for k, v in window_aux.items()})
                u = mfu(flops_per_token, tps, info.device)
                if u is not None:
                    m["train/mfu"] = u
                log_metrics(m, done)
            window.zero_()
            window_aux.clear()
            window_t0, window_steps = time.perf_counter(), 0
        if done % p.eval_every == 0 and not last:
            m = evaluate(done)
            if info.is_main and log_metrics is not None:
                log_metrics(m, done)
            window_t0 = time.perf_counter()   # keep eval time out of tokens/s
        if ckpt_dir is not None and (done % p.checkpoint_every == 0 or last):
            save_checkpoint(done)
            window_t0 = time.perf_counter()
        if state.stop:
            break
    bar.close()

    final = evaluate(done)
    if info.is_main and log_metrics is not None:
        log_metrics(final, done)
    return LoopResult(curve=curve, val_loss=final["val/loss"], val_acc=final["val/mlm_acc"], train_time=train_time,
                      steps=done, resumed_from=start, n_params=n_params, flops_per_token=flops_per_token,
                      eval_metrics=final)
