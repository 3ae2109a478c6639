"""MLM pre-training: masking, packing, a falling loss, exact resume after kill -9, params errors."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from arkbench.config import ParamsError, stage_params
from arkbench.training import checkpoint as ckpt
from arkbench.training.mlm import (BlockSampler, Masker, global_batch, pack_blocks, shard,
                                   step_generator)

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "pretrain.py"

ADJ = "big small red old young quiet happy dark bright cold".split()
NOUN = "cat dog bird house river tree car city child teacher".split()
VERB = "sees likes finds follows watches helps carries builds".split()


def synthetic_corpus(n_docs: int, seed: int) -> list[str]:
    """Templated English: structure an MLM can learn in a few dozen steps."""
    r = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [f"the {r.choice(ADJ)} {r.choice(NOUN)} {r.choice(VERB)} the {r.choice(NOUN)} ."
                 for _ in range(r.randint(1, 5))]
        docs.append(" ".join(sents))
    return docs


def write_corpus(folder: Path, n_train: int = 400, n_val: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(synthetic_corpus(n_train, 1)) + "\n")
    (folder / "validation.txt").write_text("\n".join(synthetic_corpus(n_val, 2)) + "\n")
    return folder


@pytest.fixture(scope="module")
def shared_tokenizer(tmp_path_factory) -> str:
    """One trained vocab for runs that must agree across processes: `tokenizers`' WordPiece
    trainer breaks frequency ties in hash-map order, which differs between processes."""
    from arkbench.tokenization import train_wordpiece

    out = tmp_path_factory.mktemp("tok")
    train_wordpiece(synthetic_corpus(400, 1), 200, out_dir=out)
    return str(out)


TINY_PARAMS = {
    "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 32},
    "variants": {"bert": {}, "nodiag": {"mixer_kwargs": {"biases": [{"name": "diagonal"}]}}},
    "tokenizer": "train", "vocab_size": 200, "seq_len": 32, "batch_size": 8, "max_steps": 40,
    "lr": 3e-3, "warmup_steps": 4, "checkpoint_every": 20, "keep_checkpoints": 2,
    "eval_every": 20, "eval_blocks": 32, "log_every": 10, "num_threads": 1,
}


def write_params(folder: Path, **over) -> Path:
    sec = {**TINY_PARAMS, "corpus": str(folder / "corpus"), **over}
    p = folder / "params.yaml"
    p.write_text(yaml.safe_dump({"profile": "smoke", "seed": 0, "pretrain": sec}))
    return p


# --- masking & packing ------------------------------------------------------------------

SPECIALS = [0, 100, 101, 102, 103]          # [PAD] [UNK] [CLS] [SEP] [MASK] in BERT's vocab


def test_masking_statistics():
    V, MASK = 1000, 103
    masker = Masker(V, MASK, SPECIALS, 0.15)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(104, V, (512, 512), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    ids[::7, 100:110] = 0                                        # some [PAD] too
    inputs, labels = masker(ids, step_generator(0, 0))
    special = torch.isin(ids, torch.tensor(SPECIALS))
    sel = labels != -100
    assert not (sel & special).any(), "special tokens must never be masked"
    assert torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[sel], ids[sel]) and torch.equal(inputs[~sel], ids[~sel])
    rate = sel.sum().item() / (~special).sum().item()
    # 250k candidates: the std of the rate is sqrt(.15*.85/250k) = 7e-4, so +-0.005 is > 7 sigma
    assert abs(rate - 0.15) < 0.005
    n = sel.sum().item()
    masked = (inputs[sel] == MASK).sum().item() / n
    kept = (inputs[sel] == ids[sel]).sum().item() / n
    rnd = 1 - masked - kept
    # ~37k selected: std of each share <= 2e-3, +-0.01 is ~5 sigma
    assert abs(masked - 0.8) < 0.01 and abs(rnd - 0.1) < 0.01 and abs(kept - 0.1) < 0.01
    replaced = inputs[sel & (inputs != MASK) & (inputs != ids)]
    assert not torch.isin(replaced, torch.tensor(SPECIALS)).any(), "random replacements are normal tokens"


def test_masking_is_a_function_of_seed_and_step():
    masker = Masker(500, 103, SPECIALS)
    ids = torch.randint(104, 500, (16, 32))
    a = masker(ids, step_generator(3, 17))
    b = masker(ids, step_generator(3, 17))
    c = masker(ids, step_generator(3, 18))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_global_batch_independent_of_world_size():
    blocks = torch.randint(104, 500, (50, 16))
    masker, sampler = Masker(500, 103, SPECIALS), BlockSampler(50, seed=0)
    x, y = global_batch(blocks, sampler, masker, 0, step=7, global_batch_size=8)
    # 2 ranks x 2 micro-batches of 2 rows re-assemble exactly into the global batch
    parts = {(m, r): shard(x, m, r, 2, 2) for m in range(2) for r in range(2)}
    assert torch.equal(torch.cat([parts[(m, r)] for m in range(2) for r in range(2)]), x)
    # an epoch visits every block exactly once
    assert sorted(sampler.indices(0, 50).tolist()) == list(range(50))


def test_packing_no_padding():
    docs = [list(range(200, 200 + n)) for n in (5, 17, 1, 40, 3, 60, 9)]
    T = 16
    blocks = pack_blocks(docs, T, cls_id=101, sep_id=102)
    assert blocks.shape[1] == T and blocks.dtype == torch.long
    assert (blocks[:, 0] == 101).all() and (blocks[:, -1] == 102).all()
    assert not (blocks == 0).any(), "no padding"
    stream = [t for i, d in enumerate(docs) for t in ([102] if i else []) + d]
    assert blocks[:, 1:-1].reshape(-1).tolist() == stream[: len(blocks) * (T - 2)]
    assert len(stream) - len(blocks) * (T - 2) < T - 2, "only a tail shorter than one block is dropped"


# --- training ---------------------------------------------------------------------------------

def _params(**over):
    from arkbench.training.pretrain import PretrainParams

    return PretrainParams.model_validate({**TINY_PARAMS, **over})


def test_tiny_run_loss_decreases(tmp_path):
    from datasets import Dataset, DatasetDict

    from arkbench.models import MaskedLM, from_pretrained
    from arkbench.tokenization import load_tokenizer
    from arkbench.training.pretrain import train

    corpus = DatasetDict({"train": Dataset.from_dict({"text": synthetic_corpus(400, 1)}),
                          "validation": Dataset.from_dict({"text": synthetic_corpus(60, 2)})})
    res = train(_params(max_steps=60, checkpoint_every=1000), "nodiag", corpus=corpus, workdir=tmp_path,
                progress=False)
    losses = [r[1] for r in res.curve]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    m = res.metrics
    assert set(m) >= {"final_loss", "val_loss", "val_mlm_acc", "tokens_per_s", "steps", "params"}
    assert m["steps"] == 60 and m["val_mlm_acc"] > 0.2 and "mfu" not in m
    # fine-tuning finds model + tokenizer in one folder; the variant's bias survives the round trip
    out = tmp_path / "models" / "pretrain" / "nodiag"
    model = from_pretrained(MaskedLM, out)
    assert model.config.mixer_kwargs == {"biases": [{"name": "diagonal"}]}
    assert len(load_tokenizer(out)) == model.config.vocab_size
    rows = (tmp_path / "plots" / "pretrain" / "nodiag.csv").read_text().splitlines()
    assert rows[0] == "step,loss,mlm_acc,lr" and len(rows) == 61


def _run_stage(cwd: Path, *args: str, **env_over: str) -> subprocess.Popen:
    env = {**os.environ, "ARKBENCH_TRACKING": "off", "TQDM_DISABLE": "1", **env_over}
    return subprocess.Popen([sys.executable, str(STAGE), "--params-file", "params.yaml", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _curve(folder: Path) -> list[list[float]]:
    lines = (folder / "plots" / "pretrain" / "bert.csv").read_text().splitlines()[1:]
    return [[float(v) for v in line.split(",")] for line in lines]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, shared_tokenizer):
    """kill -9 mid-run, rerun: the rerun resumes from the newest complete checkpoint, reuses
    the pre-kill checkpoints untouched, trains only the remaining steps, and ends
    bit-identical to an uninterrupted run.

    Checked against a switched-off feature: with `ckpt.latest` forced to None on the rerun
    (a fresh restart, equally deterministic) the curve still matches, but the "resuming"
    log line is missing and the pre-kill checkpoints are rewritten, so the test fails.
    """
    # keep every checkpoint (keep_checkpoints is not in the fingerprint): the pre-kill
    # files must survive the rerun unchanged; keep-last-K is tested on its own below
    over = dict(max_steps=400, checkpoint_every=25, eval_every=100, tokenizer=shared_tokenizer,
                keep_checkpoints=100)
    runs = {}
    for name in ("ref", "killed"):
        d = tmp_path / name
        write_corpus(d / "corpus")
        write_params(d, **over)
        runs[name] = (d, _run_stage(d, "--variant", "bert"))
    d, proc = runs["killed"]
    ck = d / "checkpoints" / "pretrain" / "bert"
    deadline = time.time() + 240           # generous: a loaded shared machine, not a speed check
    while ckpt.latest(ck) is None or ckpt.list_checkpoints(ck)[-1][0] < 50:
        assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.list_checkpoints(ck)[-1][0] < 400, "killed too late to test resume"
    assert not (d / "plots" / "pretrain" / "bert.csv").exists()
    for _, path in ckpt.list_checkpoints(ck):          # every visible checkpoint is complete
        assert ckpt.load(path)["step"] > 0
    resumed_from = ckpt.list_checkpoints(ck)[-1][0]
    # a write killed half-way leaves only a temp file: it must be ignored (and cleaned)
    junk = ck / f".step_{resumed_from + 25:08d}.pt.abc123.tmp"
    junk.write_bytes(b"half a checkpoint")
    assert ckpt.latest(ck).name == f"step_{resumed_from:08d}.pt"

    pre_kill = {s: os.stat(path) for s, path in ckpt.list_checkpoints(ck)}
    assert sorted(pre_kill) == list(range(25, resumed_from + 1, 25))
    rerun_start_ns = time.time_ns()
    rerun = _run_stage(d, "--variant", "bert", ARKBENCH_LOG="INFO")
    ref_dir, ref = runs["ref"]
    logs = {}
    for name, p in (("ref", ref), ("rerun", rerun)):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        logs[name] = err
    assert not junk.exists()
    # it resumed, from the newest complete checkpoint
    assert re.search(rf"resuming pretrain bert from \S*step_{resumed_from:08d}\.pt \(step {resumed_from}\)", logs["rerun"]), \
        logs["rerun"][-3000:]
    # the pre-kill checkpoints were reused as they were (same file, never rewritten), and the
    # rerun wrote only the checkpoints after the one it resumed from
    after = dict(ckpt.list_checkpoints(ck))
    assert sorted(after) == list(range(25, 401, 25))
    for s, st in pre_kill.items():
        now = os.stat(after[s])
        assert (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size), \
            f"checkpoint {s} was rewritten by the rerun"
    new = [s for s in after if os.stat(after[s]).st_mtime_ns >= rerun_start_ns]
    assert new == list(range(resumed_from + 25, 401, 25))
    a, b = _curve(ref_dir), _curve(d)
    assert [r[0] for r in a] == [r[0] for r in b] == list(range(1, 401))
    # same ops, same thread count, same data/masks/dropout per step: bit-identical on CPU
    diff = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra[1:], rb[1:]))
    assert diff <= 1e-6, f"resumed curve differs by {diff}"
    assert a[-1][1] < a[0][1]
    wa = ckpt.load(ckpt.latest(ref_dir / "checkpoints" / "pretrain" / "bert"))["model"]
    wb = ckpt.load(ckpt.latest(ck))["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_checkpoints_keep_last_k(tmp_path):
    for step in (10, 20, 30, 40):
        ckpt.save(tmp_path, step, {"step": step}, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [30, 40]
    assert ckpt.load(ckpt.latest(tmp_path))["step"] == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000030.pt", "step_00000040.pt"]


def test_variant_with_fusion_pretrains_and_keeps_its_fusion_weights(tmp_path):
    """A variant may fuse all layers for the MLM head (fusion during pre-training)."""
    from datasets import Dataset, DatasetDict
    from safetensors.torch import load_file

    from arkbench.training.pretrain import train

    corpus = DatasetDict({"train": Dataset.from_dict({"text": synthetic_corpus(200, 1)}),
                          "validation": Dataset.from_dict({"text": synthetic_corpus(30, 2)})})
    variants = {**TINY_PARAMS["variants"], "gate": {"fusion": "gate", "fusion_kwargs": {"activation": "softmax"}}}
    res = train(_params(max_steps=8, checkpoint_every=1000, variants=variants), "gate", corpus=corpus,
                workdir=tmp_path, progress=False)
    assert type(res.model.fusion).__name__.lower().startswith("gate")
    state = load_file(str(tmp_path / "models" / "pretrain" / "gate" / "model.safetensors"))
    assert any(k.startswith("fusion.") for k in state), "the gate's parameters were not saved"


# --- params errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("over, needle", [
    ({"batch_sise": 4}, "pretrain.batch_sise"),
    ({"lr": -1.0}, "pretrain.lr = -1.0"),
    ({"variants": {"bad": {"hiden_size": 3}}}, "pretrain.variants.bad.hiden_size"),
    ({"variants": {"bad": {"num_layers": "two"}}}, "pretrain.variants.bad.num_layers"),
    ({"variants": {"bad": {"mixers": "nope"}}}, "pretrain.variants.bad"),
    ({"variants": {"bad": {"mixer_kwargs": {"biases": [{"name": "nope"}]}}}}, "pretrain.variants.bad"),
    ({"variants": {"bad": {"vocab_size": 10}}}, "pretrain.variants.bad.vocab_size"),
    ({"model": {"hidden_size": 33, "num_heads": 2}}, "pretrain.model"),
    ({"variants": {"bad": {"fusion": "average"}}}, "unknown fusion 'average'"),
])
def test_bad_params_name_the_key(tmp_path, over, needle):
    p = write_params(tmp_path, **over)
    with pytest.raises(ParamsError) as e:
        stage_params("pretrain", p)
    assert needle in str(e.value)


def test_bad_params_fail_before_any_work(tmp_path):
    write_params(tmp_path, variants={"bert": {}, "bad": {"hiden_size": 3}})
    proc = _run_stage(tmp_path, "--variant", "bert")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "pretrain.variants.bad.hiden_size" in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "models").exists()


def test_unknown_variant_fails_early(tmp_path):
    from arkbench.training.pretrain import run

    with pytest.raises(SystemExit, match="unknown variant 'nope'"):
        run(_params(), None, variant="nope")


def test_shipped_params_validate():
    from arkbench.config import check_all

    problems = [p for p in check_all(REPO / "params.yaml") if "pretrain" in p]
    assert problems == []


def test_checkpoint_fingerprint_changes_with_code(monkeypatch):
    """A checkpoint written by other code is never resumed (the fingerprint covers the code)."""
    from arkbench.training import pretrain

    p = _params()
    before = pretrain.fingerprint(p, "bert", 0)
    assert before == pretrain.fingerprint(p, "bert", 0)
    monkeypatch.setattr(pretrain, "code_digest", lambda *a, **k: "edited")
    assert pretrain.fingerprint(p, "bert", 0) != before
