"""Phase 2: unsupervised feature mapping, one CycleGAN per component (spec §B.5).

Domains (frozen phase-1 encoder features, shuffled independently, never paired):
    a = image scene-graph features  [N_a, 3, d]      b = sentence scene-graph features [N_b, 3, d]
For each component c in (obj, rel, att):
    G_A^c: a -> b, G_B^c: b -> a      Linear(d, d, bias=False) -> LeakyReLU(0.2)
    D_A^c on the text domain, D_B^c on the image domain: SpectralNorm(Linear(d, d)) -> LeakyReLU(0.2),
    d logits each compared with a 1/0 target (BCE with logits)
    L_G = BCE(D_A(G_A a), 1) + BCE(D_B(G_B b), 1) + l_A |G_B(G_A a) - a|_1 + l_B |G_A(G_B b) - b|_1
          + l_idt (l_B |G_A b - b|_1 + l_A |G_B a - a|_1)
    L_D = 1/2 [BCE(D_A b, 1) + BCE(D_A pool(G_A a), 0)] + 1/2 [BCE(D_B a, 1) + BCE(D_B pool(G_B b), 0)]
summed over c; pool = a 50-item history of fakes returning a past one with probability 1/2.
One Adam for all generators, one for all discriminators; a generator step (discriminators
frozen), then a discriminator step. `lambda_cyc = 0` gives the adversarial-only ablation
(identity term off too, as it is scaled by the cycle weights).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

COMPONENTS = ("obj", "rel", "att")


@dataclass
class GanConfig:
    iters: int = 2000
    batch_size: int = 50
    lr: float = 5e-5
    lambda_cyc: float = 10.0      # lambda_A = lambda_B
    lambda_idt: float = 0.5
    pool_size: int = 50
    seed: int = 0


class HistoryPool:
    """CycleGAN image pool over feature rows: until full, rows are stored and returned as they are;
    then each row is, with probability 1/2, swapped for a random stored one (which it replaces)."""

    def __init__(self, size: int, rng: random.Random):
        self.size, self.n = size, 0
        self.gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
        self.buf: torch.Tensor | None = None

    def query(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return x
        x = x.detach()
        if self.buf is None:
            self.buf = x.new_zeros(self.size, x.shape[1])
        out = x.clone()
        take = min(self.size - self.n, len(x))          # fill phase: store, return as is
        if take:
            self.buf[self.n:self.n + take] = x[:take]
            self.n += take
        rest = torch.arange(take, len(x))
        if len(rest):
            swap = rest[torch.rand(len(rest), generator=self.gen) < 0.5]
            for i in swap.tolist():                     # sequential: a later row may get an earlier one
                k = int(torch.randint(self.size, (1,), generator=self.gen))
                out[i] = self.buf[k]
                self.buf[k] = x[i]
        return out


def _gen(d: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, d, bias=False), nn.LeakyReLU(0.2))


def _disc(d: int) -> nn.Module:
    return nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Linear(d, d)), nn.LeakyReLU(0.2))


class CycleMapper(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.G_A = nn.ModuleDict({c: _gen(d) for c in COMPONENTS})
        self.G_B = nn.ModuleDict({c: _gen(d) for c in COMPONENTS})
        self.D_A = nn.ModuleDict({c: _disc(d) for c in COMPONENTS})
        self.D_B = nn.ModuleDict({c: _disc(d) for c in COMPONENTS})

    @torch.no_grad()
    def map_a(self, a: torch.Tensor) -> torch.Tensor:
        """Image features [N, 3, d] -> text domain with G_A (the inference path)."""
        return torch.stack([self.G_A[c](a[:, i]) for i, c in enumerate(COMPONENTS)], 1)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def train_cycle(a: torch.Tensor, b: torch.Tensor, cfg: GanConfig, log_every: int = 0) -> tuple[CycleMapper, list[dict]]:
    """Fit the per-component CycleGAN on unpaired features a [Na, 3, d], b [Nb, 3, d]."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    d = a.shape[-1]
    m = CycleMapper(d)
    g_params = list(m.G_A.parameters()) + list(m.G_B.parameters())
    d_params = list(m.D_A.parameters()) + list(m.D_B.parameters())
    opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr, betas=(0.5, 0.999))
    pools_a = {c: HistoryPool(cfg.pool_size, rng) for c in COMPONENTS}
    pools_b = {c: HistoryPool(cfg.pool_size, rng) for c in COMPONENTS}
    la = lb = cfg.lambda_cyc
    curve = []
    for it in range(cfg.iters):
        ia = torch.tensor([rng.randrange(len(a)) for _ in range(cfg.batch_size)])
        ib = torch.tensor([rng.randrange(len(b)) for _ in range(cfg.batch_size)])
        xa, xb = a[ia], b[ib]
        # ---- generators (discriminators frozen)
        for p in d_params:
            p.requires_grad_(False)
        lg = xa.new_zeros(())
        fakes = {}
        for i, c in enumerate(COMPONENTS):
            ra, rb = xa[:, i], xb[:, i]
            fb, fa = m.G_A[c](ra), m.G_B[c](rb)           # fake text, fake image
            fakes[c] = (fb, fa)
            lg = lg + _bce(m.D_A[c](fb), 1.0) + _bce(m.D_B[c](fa), 1.0)
            if la > 0:
                lg = lg + la * F.l1_loss(m.G_B[c](fb), ra) + lb * F.l1_loss(m.G_A[c](fa), rb)
                if cfg.lambda_idt > 0:
                    lg = lg + cfg.lambda_idt * (lb * F.l1_loss(m.G_A[c](rb), rb) + la * F.l1_loss(m.G_B[c](ra), ra))
        opt_g.zero_grad()
        lg.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        # ---- discriminators
        ld = xa.new_zeros(())
        for i, c in enumerate(COMPONENTS):
            fb, fa = fakes[c]
            ld = ld + 0.5 * (_bce(m.D_A[c](xb[:, i]), 1.0) + _bce(m.D_A[c](pools_b[c].query(fb)), 0.0))
            ld = ld + 0.5 * (_bce(m.D_B[c](xa[:, i]), 1.0) + _bce(m.D_B[c](pools_a[c].query(fa)), 0.0))
        opt_d.zero_grad()
        ld.backward()
        opt_d.step()
        if log_every and (it + 1) % log_every == 0:
            curve.append({"iter": it + 1, "loss_g": float(lg), "loss_d": float(ld)})
    m.eval()
    return m, curve
