"""Where the captioning data come from: the synthetic world or real photos and bitext.

Both produce the same three things (written by the detect / graphs stages):

    bitext   [{id, source, en, zh}]                     phase-1 training pairs (no images)
    images   [{id, split, hw, detections, refs_zh, refs_en}]
             split "eval": captioned at test time (refs_zh are the references; refs_en[0] gives
             the oracle graph, the only use of paired data, marked as such);
             split "gan": unpaired image domain of phase 2 (captions never read)
    pixels   image id -> H x W x 3 uint8 (for attributes from pixel statistics)

Real data (`local` source, ../shared/data): Flickr8k photos, Flickr8k-CN human Chinese
captions (#zhc#) as references, Flickr8k English captions (#enc#) with their Baidu
translations (#zhb#) plus Tatoeba cmn-eng as bitext. Evaluation images are carved from
the photos with a fixed seed, or read from an id-list file (so the official Flickr8k-CN
test split can be pointed at). The bitext takes captions only from images without a
photo here (`bitext_exclude: photos`) or at least not in the evaluation list (`eval`):
no image-caption pair is used, and :func:`check_disjoint` verifies it before training.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from . import synthetic as syn


class DisjointnessError(ValueError):
    """An evaluation image contributes a caption or translation to training."""


def image_of(bitext_id: str) -> str | None:
    """`<image>#<k>` (Flickr8k-CN bitext) -> image id; None for other sources."""
    return bitext_id.split("#")[0] if "#" in bitext_id else None


def check_disjoint(bitext: list[dict], images: list[dict]) -> dict[str, int]:
    """Raise DisjointnessError if any evaluation image id appears in the bitext's images."""
    eval_ids = {r["id"] for r in images if r["split"] == "eval"}
    used = {image_of(r["id"]) for r in bitext} - {None}
    clash = sorted(eval_ids & used)
    if clash:
        raise DisjointnessError(f"{len(clash)} evaluation image(s) also give bitext captions, e.g. {clash[:3]}")
    return {"eval_images": len(eval_ids), "bitext_images": len(used), "overlap": 0}


# ---------------------------------------------------------------------- synthetic
def synthetic(n_bitext: int, n_eval: int, n_gan: int, n_refs: int, noise: syn.DetectorNoise,
              seed: int) -> tuple[list[dict], list[dict], dict[str, np.ndarray]]:
    rng = random.Random(seed)
    bitext = []
    for i in range(n_bitext):
        scene = syn.sample_scene(rng, "text")
        en, zh = syn.captions(scene, rng, k=1)[0]
        bitext.append({"id": f"syn-bitext-{i}", "source": "synthetic", "en": en, "zh": zh})
    images, pixels = [], {}
    nrng = np.random.default_rng(seed + 1)
    for split, n in (("eval", n_eval), ("gan", n_gan)):
        for i in range(n):
            scene = syn.sample_scene(rng, "image")
            iid = f"syn-{split}-{i}"
            pixels[iid] = syn.render(scene, nrng)
            pairs = syn.captions(scene, rng, k=n_refs)
            images.append({"id": iid, "split": split, "hw": [syn.CANVAS, syn.CANVAS],
                           "detections": syn.detect(scene, noise, rng),
                           "refs_zh": [zh for _, zh in pairs] if split == "eval" else [],
                           "refs_en": [en for en, _ in pairs] if split == "eval" else [],
                           "truth": scene.graph().to_dict()})
    return bitext, images, pixels


# ---------------------------------------------------------------------- real
def _hash_file(path: Path) -> dict[str, list[str]]:
    """`<img>.jpg#<tag>#<k> <sentence>` -> {image id: [sentences in k order]}."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (the local source expects ../shared/data layout)")
    out: dict[str, dict[int, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.partition(" ")
        parts = key.split("#")
        if len(parts) != 3 or not text.strip():
            raise ValueError(f"{path}:{n}: expected `<image>.jpg#<tag>#<k> <caption>`")
        out.setdefault(parts[0].removesuffix(".jpg"), {})[int(parts[2])] = text.strip()
    return {k: [v[i] for i in sorted(v)] for k, v in out.items()}


def real(local_dir: str | Path, n_eval: int, n_gan: int, eval_list: str | None, bitext_exclude: str,
         n_flickr_bitext: int, n_tatoeba: int, max_words: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Bitext and image rows from ../shared/data (photos are read later, by id)."""
    root = Path(local_dir)
    photo_dir = root / "flickr8k" / "Images"
    if not photo_dir.is_dir():
        raise FileNotFoundError(f"{photo_dir}: Flickr8k photos not found (local_dir = {local_dir})")
    photos = sorted(p.stem for p in photo_dir.glob("*.jpg"))
    zhc = _hash_file(root / "flickr8kcn" / "flickr8kzhc.caption.txt")
    enc = _hash_file(root / "flickr8kcn" / "flickr8kenc.caption.txt")
    zhb = _hash_file(root / "flickr8kcn" / "flickr8kzhb.caption.txt")
    with_refs = [p for p in photos if p in zhc and p in enc]
    rng = random.Random(seed)
    if eval_list:
        path = Path(eval_list)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: evaluation image list (captioning eval_list) not found")
        wanted = [ln.strip().removesuffix(".jpg") for ln in path.read_text().splitlines() if ln.strip()]
        missing = [w for w in wanted if w not in set(with_refs)]
        if missing:
            raise ValueError(f"{path}: {len(missing)} listed image(s) lack a photo or references, e.g. {missing[:3]}")
        eval_ids = wanted[:n_eval] if n_eval else wanted
    else:
        eval_ids = sorted(rng.sample(with_refs, min(n_eval, len(with_refs))))
    rest = [p for p in photos if p not in set(eval_ids)]
    gan_ids = sorted(rng.sample(rest, min(n_gan, len(rest))))
    images = [{"id": i, "split": "eval", "refs_zh": zhc[i], "refs_en": enc[i]} for i in eval_ids]
    images += [{"id": i, "split": "gan", "refs_zh": [], "refs_en": []} for i in gan_ids]
    banned = set(photos) if bitext_exclude == "photos" else set(eval_ids)
    pairs = []
    for img in sorted(set(enc) & set(zhb) - banned):
        for k, (en, zh) in enumerate(zip(enc[img], zhb[img])):
            if len(en.split()) <= max_words:
                pairs.append({"id": f"{img}#{k}", "source": "flickr8kcn_zhb", "en": en, "zh": zh})
    rng.shuffle(pairs)
    bitext = pairs[:n_flickr_bitext]
    tat = root / "tatoeba" / "cmn.txt"
    if n_tatoeba:
        if not tat.is_file():
            raise FileNotFoundError(f"{tat}: Tatoeba cmn-eng not found")
        rows = []
        for n, line in enumerate(tat.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0].strip() and len(parts[0].split()) <= max_words:
                rows.append({"id": f"tatoeba-{n}", "source": "tatoeba", "en": parts[0].strip(),
                             "zh": parts[1].strip()})
        rng.shuffle(rows)
        bitext += rows[:n_tatoeba]
    return bitext, images


def load_photo(local_dir: str | Path, image_id: str) -> np.ndarray:
    from PIL import Image

    path = Path(local_dir) / "flickr8k" / "Images" / f"{image_id}.jpg"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def summary(bitext: list[dict], images: list[dict]) -> dict[str, Any]:
    src: dict[str, int] = {}
    for r in bitext:
        src[r["source"]] = src.get(r["source"], 0) + 1
    return {"bitext": len(bitext), "bitext_by_source": src,
            "eval_images": sum(r["split"] == "eval" for r in images),
            "gan_images": sum(r["split"] == "gan" for r in images)}
