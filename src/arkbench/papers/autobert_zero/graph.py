"""AutoBERT-Zero's intra-layer search space: attention as a DAG of primitive operations.

A graph is plain JSON-able data:

    {"nodes": [{"op": "transpose", "in": [1]},          # node 3 = K^T
               {"op": "matmul", "in": [0, 3]},          # node 4 = Q K^T
               {"op": "scale", "in": [4]},              # node 5 = Q K^T / sqrt(d)
               {"op": "softmax", "in": [5]},            # node 6
               {"op": "matmul", "in": [6, 2]}],         # node 7 = A V
     "output": 7}

Indices 0, 1, 2 are the input nodes Q, K, V (per head, each [n, d]: n tokens, d =
head dim); hidden node i of the list has index 3 + i and may only read earlier
indices (so the list is a topological order). The output node must have shape
[n, d]; the layer's output is Linear(concat_heads(output)).

Shapes are symbolic: every tensor is (a, b) with a, b in {"n", "d"}, so "n" and "d"
never unify even when a test happens to use n == d.

Primitive table (spec 3.2: the ones marked [fig] appear in Figure 7; the rest are
"the like"; the paper's full table is unknown):

    unary   neg [fig] -x             transpose [fig] x^T       scale [fig] x/sqrt(d)
            softmax [fig] (last dim; padded keys masked when that dim is n)
            logsigmoid [fig] log s(x) softsign [fig] x/(1+|x|) sqrt [fig] (safe, below)
            sigmoid, tanh, abs, exp, log (raw ln: NaN on negatives -> such graphs are rejected)
    binary  add [fig], matmul [fig] (a,b)@(b,c), mul (element-wise), sub, max (element-wise),
            cosine: rows L2-normalised then x1 x2^T, (a,d)x(c,d) -> (a,c)

`sqrt` cannot be a literal square root of activations that may be negative. Two
readings, a module-level option: "signed" (default) = sign(x) (sqrt(|x| + eps) -
sqrt(eps)), continuous, odd, finite gradient at 0; "scale" = x/sqrt(d), the
third-party re-implementation's reading (spec 3.3).

Padding: softmax over a key axis (last dim "n") adds the key-padding bias, and every
matmul that contracts over "n" zeroes the padded rows of its right operand, so padded
tokens never reach real ones through any graph.

Canonical form: the output node's expression, dead nodes dropped, arguments of
commutative ops sorted, neg(neg x) = transpose(transpose x) = x. Its SHA-256 is the
de-duplication key; it does not depend on the order of the node list.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

INPUTS = ("q", "k", "v")
N, D = "n", "d"
Shape = tuple[str, str]

SQRT_EPS = 1e-4
# how the `sqrt` primitive is read ("signed" | "scale"); see the module docstring
SQRT_READINGS = ("signed", "scale")


@dataclass(frozen=True)
class Primitive:
    name: str
    arity: int
    shape: Callable[..., Shape | None]     # symbolic shape rule; None = incompatible inputs
    commutative: bool = False
    in_figure7: bool = False


def _same(s: Shape) -> Shape:
    return s


def _transpose(s: Shape) -> Shape:
    return (s[1], s[0])


def _elementwise(a: Shape, b: Shape) -> Shape | None:
    return a if a == b else None


def _matmul(a: Shape, b: Shape) -> Shape | None:
    return (a[0], b[1]) if a[1] == b[0] else None


def _cosine(a: Shape, b: Shape) -> Shape | None:
    return (a[0], b[0]) if a[1] == b[1] else None


PRIMITIVES: dict[str, Primitive] = {p.name: p for p in [
    Primitive("neg", 1, _same, in_figure7=True),
    Primitive("transpose", 1, _transpose, in_figure7=True),
    Primitive("scale", 1, _same, in_figure7=True),
    Primitive("softmax", 1, _same, in_figure7=True),
    Primitive("logsigmoid", 1, _same, in_figure7=True),
    Primitive("softsign", 1, _same, in_figure7=True),
    Primitive("sqrt", 1, _same, in_figure7=True),
    Primitive("sigmoid", 1, _same),
    Primitive("tanh", 1, _same),
    Primitive("abs", 1, _same),
    Primitive("exp", 1, _same),
    Primitive("log", 1, _same),
    Primitive("add", 2, _elementwise, commutative=True, in_figure7=True),
    Primitive("matmul", 2, _matmul, in_figure7=True),
    Primitive("mul", 2, _elementwise, commutative=True),
    Primitive("sub", 2, _elementwise),
    Primitive("max", 2, _elementwise, commutative=True),
    Primitive("cosine", 2, _cosine),
]}
UNARY = tuple(p.name for p in PRIMITIVES.values() if p.arity == 1)
BINARY = tuple(p.name for p in PRIMITIVES.values() if p.arity == 2)
INVOLUTIONS = ("neg", "transpose")


class GraphError(ValueError):
    """An invalid graph; the message names the node and the rule it breaks."""


# --- structure and shapes ------------------------------------------------------------

def _nodes(graph: dict) -> list[dict]:
    if not isinstance(graph, dict) or "nodes" not in graph or "output" not in graph:
        raise GraphError(f"a graph is a mapping with 'nodes' and 'output', got {graph!r}")
    return graph["nodes"]


def infer_shapes(graph: dict, ops: dict[str, Primitive] = PRIMITIVES) -> list[Shape]:
    """Symbolic shape of every node (inputs first); GraphError naming the bad node."""
    shapes: list[Shape] = [(N, D)] * len(INPUTS)
    for i, node in enumerate(_nodes(graph)):
        idx = len(INPUTS) + i
        op = node.get("op") if isinstance(node, dict) else None
        if op not in ops:
            raise GraphError(f"node {idx}: unknown op {op!r}; known: {', '.join(ops)}")
        ins = node.get("in")
        if not isinstance(ins, list) or len(ins) != ops[op].arity:
            raise GraphError(f"node {idx} ({op}): needs {ops[op].arity} input(s), got {ins!r}")
        for j in ins:
            if not isinstance(j, int) or not 0 <= j < idx:
                raise GraphError(f"node {idx} ({op}): input {j!r} is not an earlier node (0..{idx - 1})")
        shape = ops[op].shape(*(shapes[j] for j in ins))
        if shape is None:
            raise GraphError(f"node {idx} ({op}): incompatible input shapes "
                             f"{' x '.join('[' + ','.join(shapes[j]) + ']' for j in ins)}")
        shapes.append(shape)
    out = graph["output"]
    if not isinstance(out, int) or not 0 <= out < len(shapes):
        raise GraphError(f"output {out!r} is not a node index (0..{len(shapes) - 1})")
    return shapes


def check_structure(graph: dict, max_nodes: int | None = None) -> list[Shape]:
    """Shapes, plus: output is [n, d], is a hidden node, and the size limit holds."""
    shapes = infer_shapes(graph)
    out = graph["output"]
    if shapes[out] != (N, D):
        raise GraphError(f"output node {out} has shape [{','.join(shapes[out])}], needs [n,d]")
    if out < len(INPUTS):
        raise GraphError(f"output node {out} is an input ({INPUTS[out]}): no operation at all")
    live = live_nodes(graph)
    if max_nodes is not None and len(live) > max_nodes:
        raise GraphError(f"{len(live)} live hidden nodes > max_nodes={max_nodes}")
    return shapes


def live_nodes(graph: dict) -> list[int]:
    """Hidden node indices that the output depends on (ascending)."""
    nodes = _nodes(graph)
    seen: set[int] = set()
    stack = [graph["output"]]
    while stack:
        i = stack.pop()
        if i < len(INPUTS) or i in seen:
            continue
        seen.add(i)
        stack.extend(nodes[i - len(INPUTS)]["in"])
    return sorted(seen)


def used_inputs(graph: dict) -> set[str]:
    """Which of q, k, v the output depends on (a graph without v needs no W_V)."""
    nodes = _nodes(graph)
    used = set()
    for i in live_nodes(graph):
        for j in nodes[i - len(INPUTS)]["in"]:
            if j < len(INPUTS):
                used.add(INPUTS[j])
    return used


def mixes_tokens(graph: dict) -> bool:
    """Whether the output depends on an operation across tokens: a matmul contracting over n
    (e.g. A V) or a softmax over an n axis. Graphs without one are per-token maps, not attention."""
    shapes = infer_shapes(graph)
    nodes = _nodes(graph)
    for i in live_nodes(graph):
        node = nodes[i - len(INPUTS)]
        ins = [shapes[j] for j in node["in"]]
        if node["op"] == "matmul" and ins[0][1] == N:
            return True
        if node["op"] == "softmax" and shapes[i][1] == N and shapes[i][0] != N:
            return True                                  # softmax over tokens of a [d, n] tensor
    return False


def ops_of(graph: dict) -> list[str]:
    """The ops of the live nodes, in node order."""
    nodes = _nodes(graph)
    return [nodes[i - len(INPUTS)]["op"] for i in live_nodes(graph)]


# --- canonical form and hash -----------------------------------------------------------

def canonical(graph: dict) -> str:
    """Canonical expression of the output node (independent of node order)."""
    infer_shapes(graph)
    nodes = _nodes(graph)
    memo: dict[int, str] = {}

    def expr(i: int) -> str:
        if i < len(INPUTS):
            return INPUTS[i]
        if i in memo:
            return memo[i]
        node = nodes[i - len(INPUTS)]
        op = node["op"]
        args = [expr(j) for j in node["in"]]
        if op in INVOLUTIONS and args[0].startswith(op + "("):
            s = args[0][len(op) + 1:-1]                       # f(f(x)) = x
        else:
            if PRIMITIVES[op].commutative:
                args.sort()
            s = f"{op}({','.join(args)})"
        memo[i] = s
        return s

    return expr(graph["output"])


def graph_hash(graph: dict) -> str:
    return hashlib.sha256(canonical(graph).encode()).hexdigest()[:16]


def normalise(graph: dict) -> dict:
    """The same graph with dead nodes dropped and indices renumbered (order kept)."""
    nodes = _nodes(graph)
    live = live_nodes(graph)
    remap = {i: i for i in range(len(INPUTS))}
    out_nodes = []
    for i in live:
        remap[i] = len(INPUTS) + len(out_nodes)
        node = nodes[i - len(INPUTS)]
        out_nodes.append({"op": node["op"], "in": [remap[j] for j in node["in"]]})
    return {"nodes": out_nodes, "output": remap[graph["output"]]}


# --- evaluation ------------------------------------------------------------------------------

def _signed_sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * (torch.sqrt(x.abs() + SQRT_EPS) - math.sqrt(SQRT_EPS))


def evaluate(graph: dict, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             key_bias: torch.Tensor | None = None, key_keep: torch.Tensor | None = None,
             sqrt_reading: str = "signed") -> torch.Tensor:
    """Run the graph on per-head inputs q, k, v [B, H, n, d] -> [B, H, n, d].

    key_bias [B, 1, 1, n]: additive (0 / dtype-min) for softmax over a key axis;
    key_keep [B, 1, n, 1]: 1 for real tokens, multiplies the right operand of an
    n-contracting matmul.
    """
    if sqrt_reading not in SQRT_READINGS:
        raise GraphError(f"sqrt_reading={sqrt_reading!r}: allowed {SQRT_READINGS}")
    shapes = infer_shapes(graph)
    d = next(x for x in (q, k, v) if x is not None).shape[-1]
    vals: list[torch.Tensor | None] = [q, k, v]
    nodes = _nodes(graph)
    live = set(live_nodes(graph))
    for i, node in enumerate(nodes):
        idx = len(INPUTS) + i
        if idx not in live:
            vals.append(None)
            continue
        op = node["op"]
        a = [vals[j] for j in node["in"]]
        sa = [shapes[j] for j in node["in"]]
        x = a[0]
        if op == "neg":
            y = -x
        elif op == "transpose":
            y = x.transpose(-1, -2)
        elif op == "scale":
            y = x / math.sqrt(d)
        elif op == "softmax":
            if shapes[idx][1] == N and key_bias is not None:
                x = x + key_bias
            y = x.softmax(-1)
        elif op == "logsigmoid":
            y = F.logsigmoid(x)
        elif op == "softsign":
            y = F.softsign(x)
        elif op == "sqrt":
            y = _signed_sqrt(x) if sqrt_reading == "signed" else x / math.sqrt(d)
        elif op == "sigmoid":
            y = torch.sigmoid(x)
        elif op == "tanh":
            y = torch.tanh(x)
        elif op == "abs":
            y = x.abs()
        elif op == "exp":
            y = torch.exp(x)
        elif op == "log":
            y = torch.log(x)
        elif op == "add":
            y = x + a[1]
        elif op == "sub":
            y = x - a[1]
        elif op == "mul":
            y = x * a[1]
        elif op == "max":
            y = torch.maximum(x, a[1])
        elif op == "matmul":
            right = a[1]
            if sa[1][0] == N and key_keep is not None:      # contraction over tokens
                right = right * key_keep                    # [B,1,n,1]: padded rows -> 0
            y = x @ right
        elif op == "cosine":
            y = F.normalize(x, dim=-1) @ F.normalize(a[1], dim=-1).transpose(-1, -2)
        else:  # pragma: no cover - infer_shapes rejects unknown ops
            raise GraphError(f"node {idx}: unknown op {op!r}")
        vals.append(y)
    return vals[graph["output"]]


def flops_per_head(graph: dict, n: int, d: int) -> int:
    """Multiply-adds x2 of the live nodes for one head and one sequence of n tokens."""
    shapes = infer_shapes(graph)
    size = {N: n, D: d}
    total = 0
    for i in live_nodes(graph):
        node = _nodes(graph)[i - len(INPUTS)]
        s_in = [shapes[j] for j in node["in"]]
        out = shapes[i]
        if node["op"] == "matmul":
            total += 2 * size[out[0]] * size[out[1]] * size[s_in[0][1]]
        elif node["op"] == "cosine":
            total += 2 * size[out[0]] * size[out[1]] * size[s_in[0][1]] + 3 * sum(
                size[s[0]] * size[s[1]] for s in s_in)
        else:
            total += size[out[0]] * size[out[1]] * (5 if node["op"] in ("softmax", "logsigmoid") else 1)
    return total


# --- builders used by presets and the search --------------------------------------------------

class GraphBuilder:
    """Write graphs as expressions: b = GraphBuilder(); a = b.op("softmax", b.op(...)); b.build(a)."""

    def __init__(self):
        self.nodes: list[dict] = []

    q, k, v = 0, 1, 2

    def op(self, name: str, *inputs: int) -> int:
        self.nodes.append({"op": name, "in": list(inputs)})
        return len(INPUTS) + len(self.nodes) - 1

    def build(self, output: int) -> dict:
        return {"nodes": [dict(n) for n in self.nodes], "output": output}


def to_json(graph: dict) -> str:
    return json.dumps(graph, sort_keys=True, separators=(",", ":"))

