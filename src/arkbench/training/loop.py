"""Step helpers shared by pre-training and fine-tuning: precision, accumulation, clipping, MFU.

    prec = resolve_precision("auto", device)             # "bf16" | "fp16" | "fp32"
    scaler = grad_scaler(device, prec)                   # enabled only for fp16 on CUDA
    stats = train_step(model, micro_batches, loss_fn, optimizer, scheduler, scaler,
                       device=device, precision=prec, max_grad_norm=1.0)

`loss_fn(model, batch) -> (loss, stats)` returns the loss to back-propagate for one
micro-batch, already scaled so that the sum over micro-batches (and, under DDP, the
mean over ranks) is the loss of the whole optimizer step, and a dict of float/tensor
statistics that :func:`train_step` sums over micro-batches. The gradient all-reduce
runs only on the last micro-batch (DDP `no_sync`).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Iterable

import torch

from .distributed import no_sync

# Dense bf16/fp16 tensor-core peak FLOP/s per GPU (vendor data sheets, no sparsity).
# Matched by substring of torch.cuda.get_device_name(), first match wins.
PEAK_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),        # SXM / NVL
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),        # fp16 (no bf16)
    ("T4", 65e12),           # fp16
]


def peak_flops(device: torch.device | str) -> float | None:
    """Peak FLOP/s of `device` from :data:`PEAK_FLOPS`; None on CPU or an unknown GPU."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS if k in name), None)


def mfu(flops_per_token: float, tokens_per_s: float, device: torch.device | str) -> float | None:
    """Model FLOPs utilisation = flops_per_token * tokens/s / peak (None on CPU)."""
    peak = peak_flops(device)
    return None if peak is None else flops_per_token * tokens_per_s / peak


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'auto' -> bf16 on a bf16-capable GPU, fp16 on older GPUs, fp32 on CPU.

    Mixed precision is GPU-only: on CPU anything but fp32 falls back to fp32.
    """
    device = torch.device(device)
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision {precision!r}: allowed auto, fp32, bf16, fp16")
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(device: torch.device | str, precision: str):
    """torch.autocast for bf16/fp16 on CUDA; a no-op context otherwise."""
    device = torch.device(device)
    if device.type != "cuda" or precision == "fp32":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 on CUDA (bf16 and fp32 need none)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and precision == "fp16")


def _add(acc: dict[str, Any], stats: dict[str, Any]) -> None:
    for k, v in stats.items():
        v = v.detach().float() if torch.is_tensor(v) else float(v)
        acc[k] = acc[k] + v if k in acc else v


def train_step(model: torch.nn.Module, micro_batches: Iterable[Any],
               loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, Any]]],
               optimizer: torch.optim.Optimizer, scheduler=None, scaler: torch.amp.GradScaler | None = None,
               *, device: torch.device | str = "cpu", precision: str = "fp32",
               max_grad_norm: float | None = 1.0) -> dict[str, Any]:
    """One optimizer step over `micro_batches` (gradient accumulation).

    Returns the summed `stats` of every micro-batch plus `grad_norm` (before clipping;
    a tensor, so no host sync is forced) and `lr` (the rate this step used).
    """
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError("train_step needs at least one micro-batch")
    acc: dict[str, Any] = {}
    model.train()
    for i, batch in enumerate(micro_batches):
        with no_sync(model, active=i < len(micro_batches) - 1):
            with autocast(device, precision):
                loss, stats = loss_fn(model, batch)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
            else:
                loss.backward()
        _add(acc, stats)
    if scaler is not None and scaler.is_enabled():
        scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if max_grad_norm:
        acc["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        acc["grad_norm"] = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))
    acc["lr"] = optimizer.param_groups[0]["lr"]
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return acc
