"""Importance analysis during pre-training (spec §2.3): which attention positions DAM drops.

For keep-probabilities p = sigmoid(alpha) of every DAM layer, [L, H, T, T]:

    offset profile   prof[l, h, k] = mean of p[l, h, i, j] over |i - j| = k          [L, H, T]
    diagonal rank    rank of offset 0 in prof[l, h, :] in ascending order (1 = the least kept
                     offset of all T), averaged over layers and heads
    diag - median    mean(p on i = j) - median(p off the diagonal), per layer and head, averaged:
                     < 0 means the diagonal is kept less than a typical position
    kept fractions   share of entries with alpha > 0 (the frozen mask) on and off the diagonal

:class:`ImportanceTracker` (an mlm_loop callback) records these every `every` steps
and keeps full [L, H, T, T] snapshots at `snapshot_steps` for heat maps.
"""
from __future__ import annotations

from typing import Any

import torch

from .dam import dam_modules, keep_probabilities


def offset_profile(p: torch.Tensor) -> torch.Tensor:
    """[..., T, T] -> [..., T]: mean over each |i - j| = k (vectorised: scatter by offset)."""
    T = p.shape[-1]
    i = torch.arange(T)
    off = (i[:, None] - i[None, :]).abs().reshape(-1)                         # [T*T]
    flat = p.reshape(-1, T * T)
    sums = torch.zeros(flat.shape[0], T, dtype=p.dtype).index_add_(1, off, flat)
    counts = torch.bincount(off, minlength=T).to(p.dtype)                      # T, 2(T-1), 2(T-2), ...
    return (sums / counts).reshape(*p.shape[:-2], T)


def diagonal_rank(profile: torch.Tensor) -> torch.Tensor:
    """[..., T] -> [...]: 1-based rank of offset 0 among all offsets, least kept first (ties: mid)."""
    d = profile[..., :1]
    below = (profile < d).sum(-1).float()
    ties = (profile == d).sum(-1).float() - 1                                  # other offsets equal to it
    return 1 + below + ties / 2


def importance_stats(p: torch.Tensor) -> dict[str, Any]:
    """Summary of keep-probabilities p [L, H, T, T] (see the module doc)."""
    L, H, T, _ = p.shape
    eye = torch.eye(T, dtype=torch.bool)
    diag = p[..., eye]                                                          # [L,H,T]
    off = p[..., ~eye]                                                          # [L,H,T(T-1)]
    prof = offset_profile(p)                                                    # [L,H,T]
    rank = diagonal_rank(prof)                                                  # [L,H]
    kept = p > 0.5
    return {
        "diag_keep": diag.mean().item(),
        "offdiag_median_keep": off.median(-1).values.mean().item(),
        "diag_minus_median_keep": (diag.mean(-1) - off.median(-1).values).mean().item(),
        "diag_rank": rank.mean().item(),                                        # 1 = least kept of T offsets
        "diag_rank_per_layer": rank.mean(-1).tolist(),
        "diag_least_kept_share": (rank <= 1.5).float().mean().item(),          # heads whose diagonal ranks 1st
        "n_offsets": T,
        "diag_kept": kept[..., eye].float().mean().item(),
        "offdiag_kept": kept[..., ~eye].float().mean().item(),
        "sparsity": 100.0 * (1 - kept.float().mean().item()),
    }


def band_summary(binary: torch.Tensor, band: int = 8) -> dict[str, float]:
    """For a DAM_s mask (bool [L, H, T, T]): kept share of offsets 1..band vs offsets > band
    (a learned "band plus some long offsets" has a high first and a non-zero second)."""
    prof = offset_profile(binary.float())                                       # [L,H,T] 0/1 per offset
    return {"short_offsets_kept": prof[..., 1:band + 1].mean().item(),
            "long_offsets_kept": prof[..., band + 1:].mean().item(),
            "diagonal_kept": prof[..., 0].mean().item(), "band": band}


class ImportanceTracker:
    """mlm_loop callback: importance statistics of the DAM masks over pre-training."""

    def __init__(self, seq_len: int, every: int = 10, snapshot_steps: tuple[int, ...] = ()):
        self.seq_len, self.every = seq_len, max(1, every)
        self.snapshot_steps = set(snapshot_steps)
        self.history: list[dict[str, Any]] = []
        self.profiles: list[tuple[int, list]] = []          # (step, mean offset profile [T]) over heads/layers
        self.snapshots: dict[int, torch.Tensor] = {}       # step -> keep-prob [L,H,T,T]

    def record(self, model, step: int) -> None:
        if not dam_modules(model):
            return
        p = keep_probabilities(model, self.seq_len)
        self.history.append({"step": step, **importance_stats(p)})
        self.profiles.append((step, offset_profile(p).mean((0, 1)).tolist()))
        if step in self.snapshot_steps:
            self.snapshots[step] = p.clone()

    def on_step_start(self, state) -> None:
        if state.step == 0:
            self.record(state.model, 0)

    def on_step_end(self, state, stats):
        if state.step % self.every == 0 or state.step == state.max_steps or state.step in self.snapshot_steps:
            self.record(state.model, state.step)
            if self.history and self.history[-1]["step"] == state.step:     # logged as MLflow metrics
                h = self.history[-1]
                return {f"importance/{k}": h[k] for k in ("diag_rank", "diag_minus_median_keep", "diag_kept",
                                                           "offdiag_kept", "sparsity")}
        return None

    def on_eval(self, state, metrics): ...

    def on_checkpoint(self, state, extra): ...

    def on_resume(self, state, extra): ...


# --- figures -----------------------------------------------------------------------------
def heatmap_figure(p: torch.Tensor, title: str):
    """[L, H, T, T] keep-probabilities (or a 0/1 mask) as an L x H grid of heat maps."""
    from arkbench.outputs import pyplot

    plt = pyplot()
    L, H = p.shape[:2]
    fig, axes = plt.subplots(L, H, figsize=(1.9 * H + 0.8, 1.9 * L + 0.5), squeeze=False)
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            im = ax.imshow(p[l, h].numpy(), vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"layer {l + 1} head {h + 1}", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="keep")
    fig.suptitle(title, fontsize=9)
    return fig


def profile_figure(profiles: list[tuple[int, list]], title: str):
    """Keep-probability per offset |i - j| (mean over layers, heads) at each recorded step."""
    from arkbench.outputs import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = [s for s, _ in profiles]
    img = torch.tensor([p for _, p in profiles])                                # [S, T]
    im = ax.imshow(img.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower",
                   extent=(-0.5, img.shape[1] - 0.5, steps[0], steps[-1] if len(steps) > 1 else steps[0] + 1))
    ax.set_xlabel("offset |i - j| (0 = diagonal)")
    ax.set_ylabel("pre-training step")
    fig.colorbar(im, ax=ax, label="mean keep probability")
    ax.set_title(title, fontsize=9)
    return fig
