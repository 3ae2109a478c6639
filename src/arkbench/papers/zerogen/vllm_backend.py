"""Optional vLLM backend for ZeroGen's synthesis: the same prompts and settings, served by vLLM.

    check_vllm("zerogen_synthesize.backend")          # before any work: vllm importable, CUDA present
    model, tok = load_vllm_plm("models/zerogen/plm/smollm2", VllmConfig(), seed=42)
    rows, stats = synthesize_tc(task, model, tok, cfg, seed=42)      # the transformers path's code

Only for GPU hosts: ``pip install vllm`` there (it pulls its own CUDA build of torch, so it is in
no constraints file and never in CI). ``vllm`` is imported here only, lazily.

How it plugs in: :class:`VllmPLM` has a ``sample_texts`` method, and ``generate.sample`` hands any
such model its prompts. So the x1 titles, the per-label x2 prompts and the QA questions are built
by the same code (synth.py, qa.py) for both backends, and the texts come back into the same
filters (filters.py). Each prompt is sent as token ids from ``generate.prompt_ids`` -- the ids the
transformers sampler feeds its LM (no special tokens added) -- not as a string vLLM would tokenise
its own way.

Settings (``DecodeConfig`` -> ``vllm.SamplingParams``), one request per prompt:

    do_sample=False        -> temperature 0 (vLLM's greedy), top_p 1, top_k -1
    top_k (0 = off)        -> top_k (-1 = off)         top_p -> top_p     temperature -> temperature
    max_new_tokens         -> max_tokens
    stop '"'               -> stop ['"'], include_stop_str_in_output: the text ends at the quote
    suppress_eos           -> ignore_eos + logit_bias {eos: -100} (never min_tokens: vLLM checks
                              stop strings only after min_tokens, so it would run past the quote)
    seed s, prompt i       -> seed_i = first 4 bytes of blake2b("zerogen:s:i")  (per request)

A request's seed fixes its own sampling whatever else shares its batch, so a rerun with the same
stage seed gives the same set, and x1 (seed s) and x2 (seed s+1) draw from unrelated streams. The
texts are not the transformers backend's texts for the same seed (another RNG, another kernel).
vLLM cuts the text inside the token that holds the quote (``great."`` -> ``great."``, ``",`` ->
``"``); the transformers sampler keeps that token whole; the filters cut at the first quote, so
the rows agree.

Self-debiasing (NLI: ``x2.decay_constant`` > 0) is refused, up front, by the params check
(``SynthesizeParams``) and again here. It needs, at every step, the next-token distribution of
each counter prompt *continued by the tokens the regular prompt has sampled so far*, mixed into
the regular prompt's distribution before sampling. vLLM's requests are independent sequences:
its logits processors see one request's logits, not another request's, and no supported API
forces a second sequence onto the first one's tokens step by step. Emulating it token by token
(one ``generate`` call per step, counter distributions read back through ``logprobs``) would be
slow and capped by ``max_logprobs`` (20 by default; the rule needs the whole vocabulary), so it
would not be self-debiasing as specified. A debiased set stays on the transformers backend
(``backend_for: {rte: transformers}``), or runs with ``decay_constant: 0`` if that is meant.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable, Literal, Sequence

from pydantic import Field

from ...config import Section
from .generate import DecodeConfig, prompt_ids

INSTALL_HINT = ("pip install vllm on a GPU host (it brings its own CUDA build of torch; "
                "arkbench never installs it)")


class VllmConfig(Section):
    """How vLLM's engine runs (params: zerogen_synthesize.vllm)."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"   # auto: vLLM's choice
    gpu_memory_utilization: float = Field(0.8, gt=0, le=1)  # share of the GPU vLLM may reserve
    enforce_eager: bool = False                              # True: skip CUDA-graph capture
    request_chunk: int = Field(2048, ge=1)                   # prompts per generate() call


def check_vllm(key: str = "zerogen_synthesize.backend") -> None:
    """Fail before any work unless vLLM can run here: vllm importable and a CUDA GPU visible."""
    try:
        import vllm  # noqa: F401  (lazily, here only)
    except ImportError as e:
        raise RuntimeError(f"{key}: 'vllm' needs the vllm package, which does not import here ({e}): "
                           f"{INSTALL_HINT}; or set {key}: transformers") from e
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"{key}: 'vllm' needs a CUDA GPU and torch sees none here; "
                           f"set {key}: transformers on a machine without one")


def request_seeds(seed: int, n: int) -> list[int]:
    """Per-request seeds for the `n` prompts of one call seeded `seed` (31-bit, stable across runs
    and Python versions: a hash of the text "zerogen:<seed>:<i>", not Python's salted hash())."""
    out = []
    for i in range(n):
        h = hashlib.blake2b(f"zerogen:{int(seed)}:{i}".encode(), digest_size=4).digest()
        out.append(int.from_bytes(h, "big") & 0x7FFF_FFFF)
    return out


def sampling_kwargs(cfg: DecodeConfig, eos_id: int | None) -> dict:
    """``vllm.SamplingParams`` keyword arguments for `cfg` (without the per-request seed)."""
    kw: dict = dict(n=1, max_tokens=cfg.max_new_tokens, skip_special_tokens=True)
    if cfg.do_sample:
        kw.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k if cfg.top_k > 0 else -1)
    else:
        kw.update(temperature=0.0, top_p=1.0, top_k=-1)
    if cfg.stop:
        kw.update(stop=[cfg.stop], include_stop_str_in_output=True)
    if cfg.suppress_eos and eos_id is not None:
        kw.update(ignore_eos=True, logit_bias={int(eos_id): -100.0})
    return kw


def _debias_refused(key: str) -> ValueError:
    return ValueError(f"{key}: the vllm backend cannot self-debias (x2.decay_constant > 0): vLLM offers no "
                      f"supported way to read the counter prompts' logits at every step of another "
                      f"request. Use backend transformers for this set (zerogen_synthesize.backend_for), "
                      f"or decay_constant: 0")


class VllmPLM:
    """A PLM folder served by ``vllm.LLM``; ``generate.sample`` delegates to :meth:`sample_texts`."""

    def __init__(self, path: str | Path, cfg: VllmConfig | None = None, seed: int = 0,
                 key: str = "zerogen_synthesize.backend"):
        from transformers import AutoConfig, AutoTokenizer

        import vllm   # lazily: the one import of vllm in arkbench

        from .plm import _finish_tokenizer

        self.path = Path(path)
        self.cfg = cfg or VllmConfig()
        self.key = key
        self.config = AutoConfig.from_pretrained(str(self.path))   # qa.fits reads its positions
        self.tokenizer = _finish_tokenizer(AutoTokenizer.from_pretrained(str(self.path)))
        self._vllm = vllm
        self.llm = vllm.LLM(model=str(self.path), tokenizer=str(self.path), seed=int(seed), dtype=self.cfg.dtype,
                            gpu_memory_utilization=self.cfg.gpu_memory_utilization,
                            enforce_eager=self.cfg.enforce_eager)

    def num_parameters(self) -> int:
        """Parameters in the folder's safetensors files (what ``plm.n_params`` counts on a loaded model)."""
        from safetensors import safe_open

        n = 0
        for f in sorted(self.path.glob("*.safetensors")):
            with safe_open(str(f), "pt") as fh:
                for k in fh.keys():
                    n += math.prod(fh.get_slice(k).get_shape())
        return n

    def sample_texts(self, prompts: Sequence[str], cfg: DecodeConfig, seed: int = 0,
                     counters: Sequence[Sequence[str]] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
        """One continuation per prompt, in input order (the stop string kept when reached)."""
        if counters is not None:
            raise _debias_refused(self.key)
        ids = prompt_ids(self.tokenizer, prompts)
        seeds = request_seeds(seed, len(ids))
        kw = sampling_kwargs(cfg, self.tokenizer.eos_token_id)
        texts: list[str] = []
        step = self.cfg.request_chunk
        for s in range(0, len(ids), step):
            reqs = [{"prompt_token_ids": x} for x in ids[s: s + step]]
            params = [self._vllm.SamplingParams(seed=sd, **kw) for sd in seeds[s: s + step]]
            outs = self.llm.generate(reqs, params, use_tqdm=False)   # vLLM batches them itself
            texts.extend(o.outputs[0].text for o in outs)              # returned in request order
            if progress is not None:
                progress(len(texts), len(ids))
        return texts


def load_vllm_plm(path: str | Path, cfg: VllmConfig | None = None, seed: int = 0,
                  key: str = "zerogen_synthesize.backend"):
    """(VllmPLM, its tokenizer) for a prepared PLM folder; checks vllm and CUDA first."""
    check_vllm(key)
    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(f"{path}: PLM not prepared (add it to zerogen_plm.plms and run that stage)")
    m = VllmPLM(path, cfg, seed=seed, key=key)
    return m, m.tokenizer


__all__ = ["VllmConfig", "VllmPLM", "check_vllm", "load_vllm_plm", "request_seeds", "sampling_kwargs",
           "INSTALL_HINT"]
