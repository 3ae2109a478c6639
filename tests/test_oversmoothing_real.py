"""MiniLM (all-MiniLM-L6-v2, offline) on real STS-B sentences: similarity rises with depth."""
from __future__ import annotations

import torch


def test_minilm_similarity_rises_on_real_stsb(shared_data):
    from arkbench.models import MaskedLM, from_pretrained
    from arkbench.papers.oversmoothing.analysis import layer_curves, load_inputs, summarise_curve, tokenize
    from arkbench.tokenization import load_tokenizer

    tok = load_tokenizer("minilm")
    model = from_pretrained(MaskedLM, "minilm").eval()
    rows = load_inputs("stsb", "local", local_dir=str(shared_data), n=64, seed=0)
    assert len(rows) == 64 and all(len(r) == 2 for r in rows)
    batches = tokenize(tok, rows, max_length=128, batch_size=32)
    with torch.no_grad():
        c = layer_curves(model.encoder, batches, [tok.cls_token_id, tok.sep_token_id], bounds=False)
    assert c["num_layers"] == 6
    raw, centred = c["cos_raw"], c["cos_centred"]
    assert raw[6] > raw[1] and centred[6] > centred[1]
    assert c["cos_raw_content"][6] > c["cos_raw_content"][1]
    assert summarise_curve(raw)["slope"] > 0
