"""BIWS: a candidate that inherits from the super-net computes exactly what the super-net
computes on that candidate's path (attention projections shared, conv kernels centre-sliced)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arkbench.papers.autobert_zero import biws as B
from arkbench.papers.autobert_zero import graph as G
from arkbench.papers.autobert_zero import proxy as P
from arkbench.papers.autobert_zero import space as S

CFG = dict(model=dict(hidden_size=16, num_heads=2, intermediate_size=32, max_position_embeddings=32),
           num_layers=3, steps=3, batch_size=4, warmup=1, eval_batches=1)


@pytest.mark.parametrize("conv_type", ["light", "dynamic"])
def test_inherited_candidate_equals_supernet_path(conv_type):
    """Checked to fail when the kernel slice is taken from the left edge instead of the centre."""
    cfg = P.ProxyConfig(**CFG, conv_type=conv_type)
    data = P.synthetic_data(0, seq_len=32)
    torch.manual_seed(0)
    net = B.build_supernet(cfg, data.vocab_size, max_kernel=15)
    with torch.no_grad():                                      # non-trivial kernels
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = net.state_dict()
    arch = {"slots": [{"type": "conv", "kernel": 5}, {"type": "att", "graph": S.figure7_graphs()[2]},
                      {"type": "conv", "kernel": 15}]}
    cand = P.build_model(arch, data, cfg)
    cand.load_state_dict(B.inherit(state, arch, cfg, data))
    B.set_path(net, arch)
    net.eval(), cand.eval()
    ids = data.val[:4]
    mask = torch.ones_like(ids)
    mask[0, 20:] = 0
    torch.testing.assert_close(cand.encoder(ids, mask).last_hidden_state,
                               net.encoder(ids, mask).last_hidden_state, rtol=1e-5, atol=1e-5)
    # the shared-V layer inherits no W_V, the vanilla one does
    assert "encoder.layers.1.mixer.value.weight" not in cand.state_dict()


def test_supernet_training_and_ranking_study_run():
    cfg = P.ProxyConfig(**{**CFG, "num_layers": 2})
    data = P.synthetic_data(0, seq_len=16)
    ops = list(G.UNARY + G.BINARY)
    state, info = B.train_supernet(data, cfg, steps=6, seed=0, ops=ops, max_nodes=6, kernels=[3, 5, 7])
    assert info["steps"] == 6 and np.isfinite(info["final_loss"])
    rng = np.random.default_rng(0)
    archs = [S.random_arch(rng, 2, ops, 6, [3, 5, 7]) for _ in range(4)]
    archs = [a for a in archs if S.valid_arch(a, 6, [3, 5, 7])[0]]
    out = B.ranking_study(data, cfg, state, archs, seed=0, proxy_steps=2, reference_steps=4)
    assert out["n"] == len(archs) and set(out["tau"]) == {"proxy_scratch", "proxy_biws"}
