"""Detections + pixels -> image scene graph (stands in for the paper's MOTIFS classifiers).

Objects are the detector's labels (score >= `min_score`, at most `max_objects`,
highest score first). Attributes come from cheap pixel statistics inside each box:

    colour  the median RGB of the box's central half, named by HSV rules
            (v < 0.22 black; s < 0.18: v > 0.72 white else gray; else by hue:
            red / orange / yellow / green / blue / purple / pink, brown for dark orange)
    size    box area / image area: >= big_area -> "big", <= small_area -> "small"

Relations come from box geometry, evaluated per ordered pair in this order, the first
that holds wins (boxes in pixels, y down):

    hold      subject is a person, object's centre inside the subject box, object area
              < 0.35 x subject area
    on        horizontal overlap > 0.3 x the narrower width, subject centre above
              the object's centre, and subject bottom within the object's top half
    above     subject bottom above object top, horizontal overlap > 0
    under     the converse of above
    next to   vertical overlap > 0.5 x the shorter height and horizontal gap
              < 0.5 x the narrower width
    near      centre distance < 1.5 x the mean box diagonal / 2

Each object keeps at most `rels_per_object` relations (nearest partners first).

Honest limits: colour names from a box's pixels see the background as much as the
object; relations from 2-D boxes cannot tell "on" from "in front of", and "holding"
is a containment guess. Those are the image-vs-text gaps the feature mapping has to
absorb, as the paper's predicted graphs have their own.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from .graph import SceneGraph

PERSON_CLASSES = {"person", "man", "woman", "boy", "girl"}


def colour_name(rgb: np.ndarray) -> str:
    """Name of one RGB colour (0..255) by HSV rules (see the module docstring)."""
    r, g, b = (float(x) / 255.0 for x in rgb[:3])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.72 else "gray"
    deg = h * 360
    if deg < 15 or deg >= 345:
        return "red"
    if deg < 40:
        return "brown" if v < 0.6 else "orange"
    if deg < 70:
        return "yellow"
    if deg < 165:
        return "green"
    if deg < 255:
        return "blue"
    if deg < 290:
        return "purple"
    return "pink"


def box_colour(img: np.ndarray, box: list[float]) -> str:
    """Median colour of the central half of `box` in `img` (H x W x 3 uint8)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    cx0, cx1 = x0 + (x1 - x0) / 4, x1 - (x1 - x0) / 4
    cy0, cy1 = y0 + (y1 - y0) / 4, y1 - (y1 - y0) / 4
    xa, xb = int(max(0, math.floor(cx0))), int(min(w, math.ceil(cx1)))
    ya, yb = int(max(0, math.floor(cy0))), int(min(h, math.ceil(cy1)))
    if xb <= xa or yb <= ya:
        return "gray"
    patch = img[ya:yb, xa:xb].reshape(-1, img.shape[2])[:, :3]
    return colour_name(np.median(patch, axis=0))


def relation(a: list[float], b: list[float], a_person: bool) -> str | None:
    """The geometric predicate of subject box `a` w.r.t. object box `b` (or None)."""
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    aw, ah, bw, bh = ax1 - ax0, ay1 - ay0, bx1 - bx0, by1 - by0
    acx, acy, bcx, bcy = (ax0 + ax1) / 2, (ay0 + ay1) / 2, (bx0 + bx1) / 2, (by0 + by1) / 2
    hov = min(ax1, bx1) - max(ax0, bx0)
    vov = min(ay1, by1) - max(ay0, by0)
    if a_person and ax0 <= bcx <= ax1 and ay0 <= bcy <= ay1 and bw * bh < 0.35 * aw * ah:
        return "hold"
    if hov > 0.3 * min(aw, bw) and acy < bcy and by0 - 0.15 * bh <= ay1 <= by0 + 0.5 * bh:
        return "on"
    if hov > 0 and ay1 <= by0:
        return "above"
    if hov > 0 and ay0 >= by1:
        return "under"
    if vov > 0.5 * min(ah, bh) and -hov < 0.5 * min(aw, bw):
        return "next to"
    diag = (math.hypot(aw, ah) + math.hypot(bw, bh)) / 2
    if math.hypot(acx - bcx, acy - bcy) < 1.5 * diag:
        return "near"
    return None


def image_graph(img: np.ndarray, detections: list[dict], *, min_score: float = 0.3,
                max_objects: int = 8, rels_per_object: int = 2, big_area: float = 0.2,
                small_area: float = 0.04, label_map: dict[str, str] | None = None) -> SceneGraph:
    """Scene graph of one image from its detections ({"label", "score", "box"})."""
    dets = sorted((d for d in detections if d["score"] >= min_score), key=lambda d: -d["score"])
    dets = dets[:max_objects]
    H, W = img.shape[:2]
    objects, attrs, boxes, scores = [], [], [], []
    for d in dets:
        label = (label_map or {}).get(d["label"], d["label"])
        box = [float(x) for x in d["box"]]
        area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]) / float(H * W)
        a = [box_colour(img, box)]
        if area >= big_area:
            a.append("big")
        elif area <= small_area:
            a.append("small")
        objects.append(label)
        attrs.append(a)
        boxes.append(box)
        scores.append(float(d["score"]))
    rels: list[tuple[int, str, int]] = []
    for i, bi in enumerate(boxes):
        cands = []
        for j, bj in enumerate(boxes):
            if i == j:
                continue
            r = relation(bi, bj, objects[i] in PERSON_CLASSES or dets[i]["label"] in PERSON_CLASSES)
            if r is not None:
                dist = math.hypot((bi[0] + bi[2] - bj[0] - bj[2]) / 2, (bi[1] + bi[3] - bj[1] - bj[3]) / 2)
                cands.append((dist, j, r))
        for _, j, r in sorted(cands)[:rels_per_object]:
            rels.append((i, r, j))
    return SceneGraph(objects=objects, attributes=attrs, relations=rels, boxes=boxes, scores=scores)
