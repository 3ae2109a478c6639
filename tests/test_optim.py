"""Optimisers and learning-rate schedules against hand computations (no training run).

LAMB is the paper profile's pre-training optimiser and the schedules drive every
training stage, so both are checked value by value: LAMB's two first steps against the
formulas of You et al. (2020) written out in numpy (float64), each schedule's multiplier
at the end of warm-up, mid-way through the decay and at the end.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from arkbench.training.optim import Lamb, build_optimizer, build_scheduler, lr_lambda, param_groups


def _lamb_reference(w, grads, lr, b1, b2, eps, wd):
    """LAMB written out: Adam moments with bias correction, decoupled decay inside the
    update, update scaled by the trust ratio ||w|| / ||update|| (1 when either is 0)."""
    w = w.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        u = m_hat / (np.sqrt(v_hat) + eps) + wd * w
        wn, un = np.linalg.norm(w), np.linalg.norm(u)
        trust = wn / un if wn > 0 and un > 0 else 1.0
        w = w - lr * trust * u
    return w


@pytest.mark.parametrize("wd", [0.0, 0.01, 0.3])
def test_lamb_two_steps_match_hand_computation(wd):
    """Checked against switched-off parts: dropping the trust ratio, the bias correction or
    the weight decay each moves the result by far more than the tolerance."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) * s for s in (1.0, 0.1)]        # different scales per step
    lr, b1, b2, eps = 0.05, 0.9, 0.99, 1e-6
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = Lamb([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    want = _lamb_reference(w0, grads, lr, b1, b2, eps, wd)
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    # the step is not a plain Adam step: the trust ratio scales it to ||w||
    adam_first = w0 - lr * (grads[0] / (np.abs(grads[0]) + eps) + wd * w0)
    assert np.abs(_lamb_reference(w0, grads[:1], lr, b1, b2, eps, wd) - adam_first).max() > 1e-3


def test_lamb_zero_weights_use_trust_one_and_skip_missing_grads():
    z = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    untouched = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    # the parameter without a gradient comes first: it is skipped, the next one still steps
    opt = Lamb([untouched, z], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    z.grad = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    opt.step()
    # ||w|| = 0: trust 1, so the first step is the bias-corrected Adam direction g/(|g|+eps)
    want = -0.1 * np.array([1 / (1 + 1e-6), -2 / (2 + 1e-6), 0.0])
    np.testing.assert_allclose(z.detach().numpy(), want, rtol=1e-12)
    assert torch.equal(untouched.detach(), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="LAMB lr=0"):
        Lamb([z], lr=0)
    assert Lamb([z]).defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}


class _WithNormMatrix(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.ln = torch.nn.LayerNorm(4)
        self.norm_scale = torch.nn.Parameter(torch.ones(2, 2))   # 2-d, but a norm parameter: no decay
        self.frozen = torch.nn.Parameter(torch.ones(2, 2), requires_grad=False)


def test_build_optimizer_groups_and_names():
    model = _WithNormMatrix()
    decay, no_decay = param_groups(model, 0.1)
    assert [p.shape for p in decay["params"]] == [(4, 3)]                # only the linear matrix decays
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
    assert any(p is model.norm_scale for p in no_decay["params"])
    assert not any(p is model.frozen for g in (decay, no_decay) for p in g["params"])
    # every hyper-parameter reaches the optimizer
    for name, cls in (("lamb", Lamb), ("adamw", torch.optim.AdamW)):
        opt = build_optimizer(model, name, lr=3e-4, weight_decay=0.1, betas=(0.8, 0.95), eps=1e-7)
        assert isinstance(opt, cls) and [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
        assert {(g["lr"], tuple(g["betas"]), g["eps"]) for g in opt.param_groups} == {(3e-4, (0.8, 0.95), 1e-7)}
    assert build_optimizer(model, "lamb").defaults["eps"] == 1e-6          # BERT's eps by default
    # AdamW takes the fused kernel for float CPU/CUDA parameters
    assert all(g["fused"] for g in build_optimizer(model, "adamw").param_groups)
    with pytest.raises(ValueError, match="optimizer 'sgd'"):
        build_optimizer(model, "sgd")


# ------------------------------------------------------------------------------------- schedules
W, T = 10, 110          # warm-up steps, total steps: the decay runs over steps 10..110 (100 steps)


@pytest.mark.parametrize("schedule, power, mid, quarter", [
    ("linear", 1.0, 0.5, 0.75),
    ("polynomial", 2.0, 0.25, 0.5625),          # (1 - progress)^2
    ("polynomial", 0.5, math.sqrt(0.5), math.sqrt(0.75)),
    ("cosine", 1.0, 0.5, 0.5 * (1 + math.cos(math.pi / 4))),
    ("constant", 1.0, 1.0, 1.0),
])
def test_schedule_values(schedule, power, mid, quarter):
    f = lambda s: lr_lambda(s, W, T, schedule, power)  # noqa: E731
    # warm-up: linear from 1/W at step 0 to 1 at its last step (0-based step W-1)
    assert f(0) == pytest.approx(1 / W) and f(4) == pytest.approx(5 / W) and f(W - 1) == pytest.approx(1.0)
    assert f(W) == pytest.approx(1.0)                            # end of warm-up: the peak
    assert f(W + 25) == pytest.approx(quarter)
    assert f(W + 50) == pytest.approx(mid)                       # mid-way through the decay
    end = 1.0 if schedule == "constant" else 0.0
    assert f(T) == pytest.approx(end, abs=1e-12) and f(T + 50) == pytest.approx(end, abs=1e-12)


def test_no_warmup_and_unknown_schedule():
    assert lr_lambda(0, 0, 100, "linear") == 1.0 and lr_lambda(50, 0, 100, "linear") == pytest.approx(0.5)
    assert lr_lambda(0, 1, 11) == 1.0 and lr_lambda(1, 1, 11) == 1.0        # one warm-up step
    assert lr_lambda(0, 0, 1) == 1.0 and lr_lambda(1, 0, 1) == 0.0          # a one-step decay
    assert lr_lambda(60, 10, 110, "polynomial") == pytest.approx(0.5)       # default power 1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, 0, 4)                                      # default: linear
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="lr schedule 'step'"):
        lr_lambda(20, 10, 100, "step")
    with pytest.raises(ValueError, match="lr schedule 'step'"):        # at build time, not at step 10
        build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10, 100, "step")


@pytest.mark.parametrize("schedule", ["linear", "polynomial", "cosine"])
def test_scheduler_drives_the_optimizer_lr(schedule):
    """The lr an optimizer step really uses: peak x lr_lambda(step), step counted from 0."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = build_scheduler(opt, W, T, schedule, power=2.0)
    seen = []
    for _ in range(T):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(2e-3 / W)
    assert seen[W - 1] == pytest.approx(2e-3) and seen[W] == pytest.approx(2e-3)
    assert seen[W + 50] == pytest.approx(2e-3 * lr_lambda(W + 50, W, T, schedule, 2.0))
    assert seen[-1] == pytest.approx(2e-3 * lr_lambda(T - 1, W, T, schedule, 2.0))
    assert 0 < seen[-1] < 2e-3 * 0.05 and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
