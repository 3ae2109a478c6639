"""The synthetic world of the embedded (smoke) default (spec §B.10).

A *scene* is a ground-truth graph with geometry: 2-5 objects of ~20 classes, each with
a colour and a size, placed on a canvas so that 1-4 sampled relations hold
(on / above / under / next to / near / holding). From one scene we get

  * an English caption (template, describes a subset: "a red dog on a big table"),
  * a Chinese caption of the same content in Chinese word order, with classifiers
    ("一只红色的狗在一张大桌子上") -- together the *bitext* of phase 1;
  * a rendered RGB image (flat-coloured shapes on a noisy background) and
  * a simulated noisy detector's output on it: boxes jittered, labels confused
    between similar classes (man/boy, dog/cat, ...), objects missed, spurious
    objects added. The same pixel/geometry code as for real photos
    (:mod:`.image_graphs`) turns that into the image scene graph.

Two samplers differ in class frequencies and scene size, so the bitext scenes and
the test images are drawn from different distributions (the image-vs-text gap of
the paper, plus the detector's noise). Everything is a pure function of a seed.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from .graph import SceneGraph

# class -> (Chinese noun, classifier, is_person, is_small, shape)
CLASSES: dict[str, tuple[str, str, bool, bool, str]] = {
    "man": ("男人", "个", True, False, "rect"), "woman": ("女人", "个", True, False, "rect"),
    "boy": ("男孩", "个", True, False, "rect"), "girl": ("女孩", "个", True, False, "rect"),
    "dog": ("狗", "只", False, False, "ellipse"), "cat": ("猫", "只", False, False, "ellipse"),
    "bird": ("鸟", "只", False, True, "ellipse"), "horse": ("马", "匹", False, False, "ellipse"),
    "ball": ("球", "个", False, True, "ellipse"), "cup": ("杯子", "个", False, True, "rect"),
    "kite": ("风筝", "个", False, True, "triangle"), "umbrella": ("雨伞", "把", False, True, "triangle"),
    "car": ("汽车", "辆", False, False, "rect"), "bike": ("自行车", "辆", False, False, "rect"),
    "boat": ("船", "条", False, False, "triangle"), "tree": ("树", "棵", False, False, "triangle"),
    "house": ("房子", "座", False, False, "rect"), "table": ("桌子", "张", False, False, "rect"),
    "chair": ("椅子", "把", False, False, "rect"), "bench": ("长椅", "张", False, False, "rect"),
}
CONFUSABLE = {"man": "boy", "boy": "man", "woman": "girl", "girl": "woman", "dog": "cat",
              "cat": "dog", "car": "boat", "boat": "car", "chair": "bench", "bench": "chair",
              "cup": "ball", "ball": "cup", "kite": "bird", "bird": "kite"}
COLOURS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "red": ("红色", (200, 30, 30)), "green": ("绿色", (30, 160, 40)), "blue": ("蓝色", (30, 60, 200)),
    "yellow": ("黄色", (220, 210, 40)), "white": ("白色", (240, 240, 240)), "black": ("黑色", (20, 20, 20)),
}
SIZES = {"big": "大", "small": "小"}
# relation -> Chinese frame around subject S and object O
RELATIONS: dict[str, str] = {"on": "{S}在{O}上", "above": "{S}在{O}上方", "under": "{S}在{O}下面",
                             "next to": "{S}在{O}旁边", "near": "{S}在{O}附近", "holding": "{S}拿着{O}"}
ZH_RELATIONS_ALT: dict[str, str] = {"on": "{S}在{O}的上面", "above": "{S}在{O}的上方",
                                    "under": "{S}在{O}的下面", "next to": "{S}在{O}的旁边",
                                    "near": "{S}在{O}的附近", "holding": "{S}手里拿着{O}"}
CANVAS = 96


@dataclass
class Obj:
    cls: str
    colour: str
    size: str
    box: list[float] = field(default_factory=list)   # x0, y0, x1, y1 on the canvas


@dataclass
class Scene:
    objects: list[Obj]
    relations: list[tuple[int, str, int]]

    def graph(self) -> SceneGraph:
        """The full ground-truth graph (every object, both attributes, every relation)."""
        return SceneGraph(objects=[o.cls for o in self.objects],
                          attributes=[[o.colour, o.size] for o in self.objects],
                          relations=list(self.relations), boxes=[list(o.box) for o in self.objects])


# ---------------------------------------------------------------------- sampling
def _class_weights(kind: str) -> dict[str, float]:
    """Zipf-like class frequencies; the image sampler uses a different order than the text one."""
    names = list(CLASSES)
    order = names if kind == "text" else names[::-1][5:] + names[::-1][:5]
    return {c: 1.0 / (1 + r) ** 0.8 for r, c in enumerate(order)}


def _place(rng: random.Random, rel: str, obox: list[float], w: float, h: float) -> list[float]:
    ox0, oy0, ox1, oy1 = obox
    ocx = (ox0 + ox1) / 2
    if rel == "on":
        x0, y0 = ocx - w / 2 + rng.uniform(-0.2, 0.2) * (ox1 - ox0), oy0 - h + 0.1 * h
    elif rel == "above":
        x0, y0 = ocx - w / 2 + rng.uniform(-0.3, 0.3) * (ox1 - ox0), oy0 - h - rng.uniform(6, 14)
    elif rel == "under":
        x0, y0 = ocx - w / 2 + rng.uniform(-0.3, 0.3) * (ox1 - ox0), oy1 + rng.uniform(2, 8)
    elif rel == "next to":
        side = rng.choice([-1, 1])
        x0 = ox1 + rng.uniform(1, 4) if side > 0 else ox0 - w - rng.uniform(1, 4)
        y0 = oy1 - h
    elif rel == "holding":   # small object inside the holder's box, at hand height
        x0, y0 = rng.choice([ox0 - w / 3, ox1 - 2 * w / 3]), oy0 + 0.35 * (oy1 - oy0)
    else:                    # near
        ang = rng.uniform(0, 2 * math.pi)
        d = 0.6 * (max(ox1 - ox0, oy1 - oy0) + max(w, h)) + rng.uniform(4, 10)
        x0, y0 = ocx + d * math.cos(ang) - w / 2, (oy0 + oy1) / 2 + d * math.sin(ang) - h / 2
    x0 = min(max(x0, 0.0), CANVAS - w)
    y0 = min(max(y0, 0.0), CANVAS - h)
    return [x0, y0, x0 + w, y0 + h]


def sample_scene(rng: random.Random, kind: str = "text") -> Scene:
    """One scene; `kind` text (bitext) or image (test photos) picks the distribution."""
    weights = _class_weights(kind)
    n = rng.choice([2, 2, 3, 3, 4] if kind == "text" else [3, 3, 4, 4, 5])
    classes = rng.choices(list(weights), weights=list(weights.values()), k=n)
    objs: list[Obj] = []
    rels: list[tuple[int, str, int]] = []
    for i, c in enumerate(classes):
        size = rng.choice(["big", "small"])
        small = CLASSES[c][3]
        side = (rng.uniform(10, 16) if small else rng.uniform(18, 30)) * (1.35 if size == "big" else 0.8)
        w, h = side * rng.uniform(0.8, 1.2), side * rng.uniform(0.8, 1.2)
        if i == 0:
            x0, y0 = rng.uniform(10, CANVAS - w - 10), rng.uniform(CANVAS / 3, CANVAS - h - 4)
            box = [x0, y0, x0 + w, y0 + h]
        else:
            j = rng.randrange(i)
            options = ["on", "above", "under", "next to", "near"]
            if CLASSES[classes[j]][2] and small:
                options += ["holding"] * 3
            rel = rng.choice(options)
            box = _place(rng, rel, objs[j].box, w, h)
            # "holding" reads holder -> held; the others read new object -> anchor
            rels.append((j, rel, i) if rel == "holding" else (i, rel, j))
        objs.append(Obj(c, rng.choice(list(COLOURS)), size, box))
    return Scene(objs, rels)


# ---------------------------------------------------------------------- captions
def _np_en(o: Obj, colour: bool, size: bool) -> str:
    words = ([o.size] if size else []) + ([o.colour] if colour else []) + [o.cls]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def _np_zh(o: Obj, colour: bool, size: bool) -> str:
    noun, clf = CLASSES[o.cls][0], CLASSES[o.cls][1]
    return "一" + clf + (COLOURS[o.colour][0] + "的" if colour else "") + (SIZES[o.size] if size else "") + noun


def captions(scene: Scene, rng: random.Random, k: int = 1,
             p_colour: float = 0.7, p_size: float = 0.35) -> list[tuple[str, str]]:
    """k (English, Chinese) caption pairs of one scene: one or two of its relations, same content.

    Which attributes a caption mentions is drawn once per object and caption, so both
    languages say the same thing and an object mentioned twice is described once.
    """
    out = []
    for _ in range(k):
        said = {i: (rng.random() < p_colour, rng.random() < p_size) for i in range(len(scene.objects))}
        seen: set[int] = set()

        def np_(i: int) -> tuple[str, str]:
            c, s = said[i] if i not in seen else (False, False)
            seen.add(i)
            return _np_en(scene.objects[i], c, s), _np_zh(scene.objects[i], c, s)

        if not scene.relations:
            out.append(np_(0))
            continue
        picked = rng.sample(scene.relations, min(len(scene.relations), rng.choice([1, 1, 2])))
        en_parts, zh_parts = [], []
        for m, (s, r, o) in enumerate(picked):
            (en_s, zh_s), (en_o, zh_o) = np_(s), np_(o)
            frame = RELATIONS[r] if rng.random() < 0.6 else ZH_RELATIONS_ALT[r]
            en_parts.append(f"{en_s} {r} {en_o}" if m == 0 else f"and {en_s} {r} {en_o}")
            zh_parts.append(frame.format(S=zh_s, O=zh_o))
        out.append((" ".join(en_parts), "，".join(zh_parts)))
    return out


# ---------------------------------------------------------------------- pixels
def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Canvas x canvas x 3 uint8: grey noisy background, flat shapes in each object's colour."""
    img = np.clip(rng.normal(128, 18, (CANVAS, CANVAS, 3)), 0, 255)
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS] + 0.5
    for o in sorted(scene.objects, key=lambda o: -(o.box[2] - o.box[0]) * (o.box[3] - o.box[1])):
        x0, y0, x1, y1 = o.box
        shape = CLASSES[o.cls][4]
        if shape == "ellipse":
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        elif shape == "triangle":
            t = (yy - y0) / max(y1 - y0, 1e-6)
            cx = (x0 + x1) / 2
            m = (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * (x1 - x0) / 2)
        else:
            m = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
        col = np.array(COLOURS[o.colour][1], float) + rng.normal(0, 12, 3)
        img[m] = np.clip(col + rng.normal(0, 10, (int(m.sum()), 3)), 0, 255)
    return img.astype(np.uint8)


@dataclass
class DetectorNoise:
    """How the simulated detector corrupts a scene (probabilities per object)."""

    p_miss: float = 0.1          # a true object is not detected
    p_confuse: float = 0.25      # label swapped with its confusable class
    spurious: float = 0.8        # mean number of false detections per image (Poisson)
    jitter: float = 0.1          # box coordinates move by up to this fraction of the box size


def detect(scene: Scene, noise: DetectorNoise, rng: random.Random) -> list[dict]:
    """Simulated detector output: [{"label", "score", "box"}] in canvas pixels."""
    dets = []
    for o in scene.objects:
        if rng.random() < noise.p_miss:
            continue
        label = CONFUSABLE.get(o.cls, o.cls) if rng.random() < noise.p_confuse else o.cls
        x0, y0, x1, y1 = o.box
        w, h = x1 - x0, y1 - y0
        j = [rng.uniform(-noise.jitter, noise.jitter) for _ in range(4)]
        box = [x0 + j[0] * w, y0 + j[1] * h, x1 + j[2] * w, y1 + j[3] * h]
        dets.append({"label": label, "score": rng.uniform(0.5, 1.0),
                     "box": [min(max(v, 0.0), CANVAS) for v in box]})
    n_spurious = int(np.random.default_rng(rng.randrange(1 << 30)).poisson(noise.spurious))
    for _ in range(n_spurious):
        w, h = rng.uniform(8, 30), rng.uniform(8, 30)
        x0, y0 = rng.uniform(0, CANVAS - w), rng.uniform(0, CANVAS - h)
        dets.append({"label": rng.choice(list(CLASSES)), "score": rng.uniform(0.3, 0.7),
                     "box": [x0, y0, x0 + w, y0 + h]})
    return dets


def reference_captions(scene: Scene, rng: random.Random, k: int) -> list[str]:
    """k Chinese references of a test scene (template variation), like human references."""
    return [zh for _, zh in captions(scene, rng, k=k)]
