#!/usr/bin/env python3
"""The workload suite (bench/suite/*.arch) against ONNX Runtime and numpy.

    .venv/bin/python bench/suite.py target/release/archc [--threads 1,2] [--rounds 5]
        [--only ffn,mha] [--generate N --seed S [--with-suite]]
        [--case ffn:T=1,D=205,F=2582 ...] [--quick]
        [--markdown] [--json OUT]

Every workload is written as a user would: `import std.hw.host`, std.nn ops
where natural, no mapping (archc tunes every knob). For each workload and
thread count T the script

1. builds it: `archc build FILE --target host -o DIR --threads T [--set ...]`;
2. in a child process (so that a crash of one case does not end the run;
   OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to T; threads unbound, as
   in a user's process; every buffer 64-byte aligned, as PyTorch's and
   ONNX Runtime's own are, for every runtime), loads
   lib<workload>.so with ctypes, fills every input and weight with seeded
   random numbers, calls it, and compares every output with a numpy
   reference of the same math computed in f64 (max |got - want| / max |want|
   must be below 1e-3);
3. builds the same computation as an ONNX graph in memory (onnx.helper,
   opset 20; weights as initializers, as a deployed model has them) and runs
   it with ONNX Runtime (CPU provider, intra_op_num_threads = T,
   inter_op_num_threads = 1, sequential execution, all graph optimizations,
   `session.intra_op.allow_spinning` = 0 so that its idle threads do not
   steal time from the other runtimes; inputs and outputs bound once with
   IOBinding), checked against the same reference;
4. times archc, ORT and numpy (the f32 reference itself) alternately, in
   the same process: after warm-up, `--rounds` rounds, each a block of
   calls per runtime (about 0.1 s) preceded by an idle pause (`--idle`,
   0.25 s) so that spinning worker threads of the previous runtime go quiet;
   the figure is the median of every timed call. Each round also times a
   fixed job on every thread (OpenBLAS, 384^3): a case whose job ran more
   than 1.25x slower than the fastest seen at its thread count, or during
   which other processes used the cores, is run again (`--retry-noisy`);
   rows still noisy are marked.

Per row: archc, ORT and numpy milliseconds, ORT / archc (> 1: archc faster),
archc's rate (GFLOP/s, 2 per multiply-add, for contractions; GB/s of
compulsory traffic, inputs read once and outputs written once, for
element-wise, normalization and reduction workloads), and measured /
predicted (archc's median over `total.latency_s` of the build's
report.json). Then the geometric mean of ORT / archc per thread count.

A build failure, a crash, a non-zero return or a mismatch is a row that
says so; the run continues and the exit status is 1 at the end.

`--generate N --seed S` draws N new shape sets across the families
(`random.Random(S)`, odd sizes, each case kept to roughly 50 ms or less)
and runs them through `--set` instead of the fixed suite (with
`--with-suite`, besides it). `--case NAME:K=V,...` runs one workload at
the given sizes (repeatable; a generated case's sizes reproduce it). `--quick` builds every workload at small odd
sizes, on one thread, one round: it proves that each builds and matches.

onnx and onnxruntime (bench/requirements.txt) are installed into the
running interpreter's environment by the script when missing.
"""
import argparse
import ctypes
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "bench", "suite")
REQUIREMENTS = os.path.join(ROOT, "bench", "requirements.txt")
OPSET = 20
IR_VERSION = 10
EPS = 1e-5
GELU_C = 0.7978845608
TOLERANCE = 1e-3
CHILD_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 600


# ---------------------------------------------------------------- references
# Each reference takes numpy, a dict of arrays named as the workload's
# tensors, and the sizes; it returns a dict of outputs. Written without dtype
# casts: called with f64 arrays it is the check, with f32 arrays it is what
# numpy's timing runs.

def gelu(np, x):
    return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + 0.044715 * x * x * x)))


def sigmoid(np, x):
    return 1.0 / (1.0 + np.exp(-x))


def layernorm(np, x, g, b):
    mu = x.mean(axis=-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True)
    return d / np.sqrt(var + EPS) * g + b


def softmax(np, x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def conv(np, x, w, stride):
    """Unpadded NCHW / FCRS convolution: im2col view, one tensordot (BLAS)."""
    _, _, r, s = w.shape
    v = np.lib.stride_tricks.sliding_window_view(x, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.tensordot(v, w, axes=([1, 4, 5], [1, 2, 3]))  # [N, P, Q, F]
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def ref_ffn(np, a, s):
    h = layernorm(np, a["x"], a["g"], a["b"])
    u = gelu(np, h @ a["w1"] + a["b1"])
    return {"y": u @ a["w2"] + a["b2"] + a["x"]}


def ref_mha(np, a, s):
    sc = (a["q"] @ a["k"].transpose(0, 2, 1)) / math.sqrt(s["D"])
    return {"o": softmax(np, sc) @ a["v"]}


def ref_layernorm(np, a, s):
    return {"y": layernorm(np, a["x"], a["g"], a["b"])}


def ref_softmax(np, a, s):
    return {"y": softmax(np, a["x"])}


def ref_conv3x3(np, a, s):
    return {"y": np.maximum(conv(np, a["x"], a["w"], 1) + a["b"][None, :, None, None], 0.0)}


def ref_conv1x1(np, a, s):
    x = a["x"]
    n, c, h, w = x.shape
    return {"y": (a["w"] @ x.reshape(n, c, h * w)).reshape(n, -1, h, w)}


def ref_conv3x3_s2(np, a, s):
    return {"y": conv(np, a["x"], a["w"], 2)}


def ref_conv7x7_s2(np, a, s):
    return {"y": conv(np, a["x"], a["w"], 2)}


def ref_depthwise(np, a, s):
    x, w = a["x"], a["w"]
    H, W = s["H"], s["W"]
    y = None
    for r in range(3):
        for q in range(3):
            t = x[:, :, r:r + H, q:q + W] * w[None, :, r, q, None, None]
            y = t if y is None else y + t
    return {"y": y}


def ref_mlp(act):
    def ref(np, a, s):
        z = a["x"] @ a["w1"] + a["b1"]
        h = {"relu": lambda v: np.maximum(v, 0.0), "gelu": lambda v: gelu(np, v),
             "tanh": np.tanh, "sigmoid": lambda v: sigmoid(np, v)}[act](z)
        return {"y": h @ a["w2"] + a["b2"]}
    return ref


def ref_bmm(np, a, s):
    return {"c": a["a"] @ a["w"]}


def ref_eltwise(np, a, s):
    return {"y": gelu(np, a["x"] * a["a"] + a["b"]) + a["r"]}


def ref_row_reduce(np, a, s):
    x = a["x"]
    return {"s": x.sum(axis=1), "m": x.max(axis=1), "mu": x.mean(axis=1)}


def ref_col_reduce(np, a, s):
    return {"s": a["x"].sum(axis=0)}


# ---------------------------------------------------------------- ONNX graphs
# Each returns (nodes, constants): node tensors use the workload's tensor
# names for inputs, weights and outputs; constants are (name, array) pairs
# added as initializers.

def onnx_ffn(h, np, s):
    return [
        h.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, epsilon=EPS),
        h.make_node("MatMul", ["ln", "w1"], ["t1"]),
        h.make_node("Add", ["t1", "b1"], ["t2"]),
        h.make_node("Gelu", ["t2"], ["u"], approximate="tanh"),
        h.make_node("MatMul", ["u", "w2"], ["t3"]),
        h.make_node("Add", ["t3", "b2"], ["t4"]),
        h.make_node("Add", ["t4", "x"], ["y"]),
    ], []


def onnx_mha(h, np, s):
    return [
        h.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        h.make_node("MatMul", ["q", "kt"], ["s0"]),
        h.make_node("Mul", ["s0", "scale"], ["s1"]),
        h.make_node("Softmax", ["s1"], ["p"], axis=-1),
        h.make_node("MatMul", ["p", "v"], ["o"]),
    ], [("scale", np.array(1.0 / math.sqrt(s["D"]), dtype=np.float32))]


def onnx_layernorm(h, np, s):
    return [h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=EPS)], []


def onnx_softmax(h, np, s):
    return [h.make_node("Softmax", ["x"], ["y"], axis=-1)], []


def onnx_conv3x3(h, np, s):
    return [
        h.make_node("Conv", ["x", "w", "b"], ["z"], kernel_shape=[3, 3], strides=[1, 1]),
        h.make_node("Relu", ["z"], ["y"]),
    ], []


def onnx_conv1x1(h, np, s):
    return [
        h.make_node("Reshape", ["w", "w_shape"], ["w4"]),
        h.make_node("Conv", ["x", "w4"], ["y"], kernel_shape=[1, 1]),
    ], [("w_shape", np.array([s["F"], s["C"], 1, 1], dtype=np.int64))]


def onnx_conv_s2(k):
    def build(h, np, s):
        return [h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[2, 2])], []
    return build


def onnx_depthwise(h, np, s):
    return [
        h.make_node("Reshape", ["w", "w_shape"], ["w4"]),
        h.make_node("Conv", ["x", "w4"], ["y"], kernel_shape=[3, 3], group=s["C"]),
    ], [("w_shape", np.array([s["C"], 1, 3, 3], dtype=np.int64))]


def onnx_mlp(act):
    def build(h, np, s):
        if act == "gelu":
            a = h.make_node("Gelu", ["z"], ["h"], approximate="tanh")
        else:
            a = h.make_node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act], ["z"], ["h"])
        return [
            h.make_node("MatMul", ["x", "w1"], ["t1"]),
            h.make_node("Add", ["t1", "b1"], ["z"]),
            a,
            h.make_node("MatMul", ["h", "w2"], ["t2"]),
            h.make_node("Add", ["t2", "b2"], ["y"]),
        ], []
    return build


def onnx_bmm(h, np, s):
    return [h.make_node("MatMul", ["a", "w"], ["c"])], []


def onnx_eltwise(h, np, s):
    return [
        h.make_node("Mul", ["x", "a"], ["t1"]),
        h.make_node("Add", ["t1", "b"], ["t2"]),
        h.make_node("Gelu", ["t2"], ["t3"], approximate="tanh"),
        h.make_node("Add", ["t3", "r"], ["y"]),
    ], []


def onnx_row_reduce(h, np, s):
    return [
        h.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
        h.make_node("ReduceMax", ["x", "axes"], ["m"], keepdims=0),
        h.make_node("ReduceMean", ["x", "axes"], ["mu"], keepdims=0),
    ], [("axes", np.array([1], dtype=np.int64))]


def onnx_col_reduce(h, np, s):
    return [h.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)], \
        [("axes", np.array([0], dtype=np.int64))]


# ---------------------------------------------------------------- work
# (unit, amount): "GFLOP/s" with 2 FLOPs per multiply-add of the
# contractions (element-wise arithmetic not counted), or "GB/s" with the
# compulsory bytes (every input and weight read once, every output written once).

def flop(n):
    return ("GFLOP/s", float(n))


def gbytes(elements):
    return ("GB/s", 4.0 * float(elements))


def conv_work(s, k):
    return flop(2 * s["N"] * s["F"] * s["H"] * s["W"] * s["C"] * k * k)


# ---------------------------------------------------------------- generator

def is_pow2(n):
    return n & (n - 1) == 0


def odd(rng, lo, hi):
    """An integer in lo..hi, not a power of two (unless the range is one)."""
    for _ in range(100):
        n = rng.randint(lo, hi)
        if not is_pow2(n) or lo == hi or n == 1:
            return n
    return n


def small(rng):
    return rng.choice([1, 3, 7, 13, 37])


GEN = {
    "ffn": lambda r: dict(T=rng_pick(r, [small(r), odd(r, 20, 300)]), D=odd(r, 100, 1000), F=odd(r, 200, 3000)),
    "mha": lambda r: dict(H=odd(r, 1, 12), S=odd(r, 20, 700), D=r.choice([37, 48, 80, 100, 123, 64])),
    "layernorm": lambda r: dict(R=odd(r, 1, 4000), C=odd(r, 100, 2000)),
    "softmax": lambda r: dict(R=odd(r, 1, 4000), C=odd(r, 7, 2000)),
    "conv3x3": lambda r: dict(N=1, C=odd(r, 3, 160), F=odd(r, 8, 200), H=odd(r, 7, 80), W=odd(r, 7, 80)),
    "conv1x1": lambda r: dict(N=1, C=odd(r, 16, 600), F=odd(r, 16, 600), H=odd(r, 7, 60), W=odd(r, 7, 60)),
    "conv3x3_s2": lambda r: dict(N=1, C=odd(r, 8, 200), F=odd(r, 8, 300), H=odd(r, 7, 60), W=odd(r, 7, 60)),
    "conv7x7_s2": lambda r: dict(N=1, C=r.choice([1, 3, 4, 7]), F=odd(r, 16, 100), H=odd(r, 20, 120), W=odd(r, 20, 120)),
    "depthwise": lambda r: dict(N=1, C=odd(r, 16, 400), H=odd(r, 7, 120), W=odd(r, 7, 120)),
    "mlp": lambda r: dict(B=rng_pick(r, [small(r), odd(r, 100, 1000)]), K=odd(r, 100, 1000),
                          N=odd(r, 100, 1000), O=odd(r, 1, 200)),
    "bmm": lambda r: dict(B=odd(r, 1, 16), M=odd(r, 7, 700), K=odd(r, 7, 700), N=odd(r, 7, 700)),
    "eltwise_chain": lambda r: dict(R=odd(r, 1, 2000), C=odd(r, 100, 5000)),
    "reduce": lambda r: dict(R=odd(r, 1, 5000), C=odd(r, 1, 3000)),
}


def rng_pick(r, xs):
    return xs[r.randrange(len(xs))]


# ---------------------------------------------------------------- the suite

def mlp_entry(act):
    return dict(file=f"mlp_{act}.arch", ref=ref_mlp(act), onnx=onnx_mlp(act),
                work=lambda s: flop(2 * s["B"] * (s["K"] * s["N"] + s["N"] * s["O"])),
                quick=dict(B=7, K=30, N=20, O=3), gen="mlp", fan_in={"w1": "K", "w2": "N"})


WORKLOADS = {
    "ffn": dict(file="ffn.arch", ref=ref_ffn, onnx=onnx_ffn,
                work=lambda s: flop(4 * s["T"] * s["D"] * s["F"]),
                quick=dict(T=7, D=37, F=100), gen="ffn", fan_in={"w1": "D", "w2": "F"}),
    "mha": dict(file="mha.arch", ref=ref_mha, onnx=onnx_mha,
                work=lambda s: flop(4 * s["H"] * s["S"] * s["S"] * s["D"]),
                quick=dict(H=2, S=37, D=16), gen="mha"),
    "layernorm": dict(file="layernorm.arch", ref=ref_layernorm, onnx=onnx_layernorm,
                      work=lambda s: gbytes(2 * s["R"] * s["C"] + 2 * s["C"]),
                      quick=dict(R=37, C=100), gen="layernorm"),
    "softmax": dict(file="softmax.arch", ref=ref_softmax, onnx=onnx_softmax,
                    work=lambda s: gbytes(2 * s["R"] * s["C"]),
                    quick=dict(R=37, C=100), gen="softmax"),
    "conv3x3": dict(file="conv3x3.arch", ref=ref_conv3x3, onnx=onnx_conv3x3,
                    work=lambda s: conv_work(s, 3),
                    quick=dict(C=5, F=7, H=9, W=11), gen="conv3x3", fan_in={"w": "C*9"}),
    "conv1x1": dict(file="conv1x1.arch", ref=ref_conv1x1, onnx=onnx_conv1x1,
                    work=lambda s: conv_work(s, 1),
                    quick=dict(C=7, F=9, H=9, W=11), gen="conv1x1", fan_in={"w": "C"}),
    "conv3x3_s2": dict(file="conv3x3_s2.arch", ref=ref_conv3x3_s2, onnx=onnx_conv_s2(3),
                       work=lambda s: conv_work(s, 3),
                       quick=dict(C=5, F=7, H=9, W=11), gen="conv3x3_s2", fan_in={"w": "C*9"}),
    "conv7x7_s2": dict(file="conv7x7_s2.arch", ref=ref_conv7x7_s2, onnx=onnx_conv_s2(7),
                       work=lambda s: conv_work(s, 7),
                       quick=dict(C=3, F=8, H=9, W=11), gen="conv7x7_s2", fan_in={"w": "C*49"}),
    "depthwise": dict(file="depthwise.arch", ref=ref_depthwise, onnx=onnx_depthwise,
                      work=lambda s: flop(2 * s["N"] * s["C"] * s["H"] * s["W"] * 9),
                      quick=dict(C=7, H=9, W=11), gen="depthwise"),
    "mlp_relu": mlp_entry("relu"),
    "mlp_gelu": mlp_entry("gelu"),
    "mlp_tanh": mlp_entry("tanh"),
    "mlp_sigmoid": mlp_entry("sigmoid"),
    "bmm": dict(file="bmm.arch", ref=ref_bmm, onnx=onnx_bmm,
                work=lambda s: flop(2 * s["B"] * s["M"] * s["N"] * s["K"]),
                quick=dict(B=2, M=7, K=9, N=11), gen="bmm"),
    "eltwise_chain": dict(file="eltwise_chain.arch", ref=ref_eltwise, onnx=onnx_eltwise,
                          work=lambda s: gbytes(3 * s["R"] * s["C"] + 2 * s["C"]),
                          quick=dict(R=7, C=100), gen="eltwise_chain"),
    "row_reduce": dict(file="row_reduce.arch", ref=ref_row_reduce, onnx=onnx_row_reduce,
                       work=lambda s: gbytes(s["R"] * s["C"] + 3 * s["R"]),
                       quick=dict(R=37, C=100), gen="reduce"),
    "col_reduce": dict(file="col_reduce.arch", ref=ref_col_reduce, onnx=onnx_col_reduce,
                       work=lambda s: gbytes(s["R"] * s["C"] + s["C"]),
                       quick=dict(R=37, C=100), gen="reduce"),
}

# Limits for generated cases, so that each call stays around 50 ms or less
# even where archc is slow: contractions up to 4e8 FLOPs (and at least 1e5),
# memory-bound workloads up to 64 MB of compulsory traffic.
MAX_FLOP = 4e8
MIN_FLOP = 1e5
MAX_BYTES = 64e6


def defaults(name):
    """The workload's size parameters and their defaults, read from its file."""
    with open(os.path.join(SUITE, WORKLOADS[name]["file"])) as f:
        text = f.read()
    m = re.search(r"workload\s+(\w+)\s*\(([^)]*)\)", text)
    sizes = {}
    for part in m.group(2).split(","):
        if part.strip():
            k, v = part.split("=")
            sizes[k.strip()] = int(v.strip())
    return m.group(1), sizes


def generate(n, seed, only):
    rng = random.Random(seed)
    names = [w for w in WORKLOADS if not only or w in only]
    cases = []
    order = []
    while len(cases) < n:
        if not order:
            order = names[:]
            rng.shuffle(order)
        name = order.pop()
        _, base = defaults(name)
        for _ in range(1000):
            s = dict(base)
            s.update(GEN[WORKLOADS[name]["gen"]](rng))
            unit, amount = WORKLOADS[name]["work"](s)
            if unit == "GFLOP/s" and MIN_FLOP <= amount <= MAX_FLOP:
                break
            if unit == "GB/s" and amount <= MAX_BYTES:
                break
        overrides = {k: v for k, v in s.items() if v != base[k]}
        cases.append((name, overrides, f"{name} (gen {len(cases) + 1})"))
    return cases


# ---------------------------------------------------------------- child

def stage(what):
    print(f"stage: {what}", file=sys.stderr, flush=True)


def fan_in_scale(expr, sizes):
    return 1.0 / math.sqrt(eval(expr, {}, dict(sizes)))


def child(cfg):
    import numpy as np
    spec = WORKLOADS[cfg["name"]]
    sizes = cfg["sizes"]
    out_dir = cfg["dir"]
    threads = cfg["threads"]
    stage("load")
    man_files = [f for f in os.listdir(out_dir) if f.endswith(".manifest.json")]
    with open(os.path.join(out_dir, man_files[0])) as f:
        man = json.load(f)
    lib = ctypes.CDLL(os.path.join(out_dir, man["library"]))
    fn = getattr(lib, man["function"])
    fn.restype = ctypes.c_int32
    args = man["arguments"]
    fn.argtypes = [ctypes.c_void_p] * len(args)
    rng = np.random.default_rng(cfg.get("seed", 0))

    def aligned_zeros(shape):
        # 64-byte aligned, as PyTorch's and ONNX Runtime's own buffers are
        # (numpy's are 16-byte aligned): every runtime gets these buffers.
        n = int(np.prod(shape, dtype=np.int64))
        raw = np.zeros(n + 16, dtype=np.float32)
        skip = (-raw.ctypes.data % 64) // 4
        return raw[skip:skip + n].reshape(shape)

    arrays = {}
    for a in args:
        if a["dtype"] != "f32":
            raise SystemExit(f"argument {a['name']} is {a['dtype']}, the suite expects f32")
        shape = tuple(a["shape"])
        if a["role"] == "output":
            arrays[a["name"]] = aligned_zeros(shape)
        else:
            x = rng.random(shape, dtype=np.float32) * 2 - 1
            if a["name"] in spec.get("fan_in", {}):
                x *= np.float32(fan_in_scale(spec["fan_in"][a["name"]], sizes))
            arrays[a["name"]] = aligned_zeros(shape)
            arrays[a["name"]][...] = x
    ptrs = [arrays[a["name"]].ctypes.data_as(ctypes.c_void_p) for a in args]
    outs = [a["name"] for a in args if a["role"] == "output"]
    given = {a["name"]: arrays[a["name"]] for a in args if a["role"] != "output"}

    stage("call")
    rc = fn(*ptrs)
    result = {"rc": rc}
    if rc != 0:
        result["status"] = f"returned {rc}"
        print(json.dumps(result))
        return

    stage("check")
    want = spec["ref"](np, {k: v.astype(np.float64) for k, v in given.items()}, sizes)

    def rel_err(got, w):
        if got.shape != w.shape:
            return float("inf")
        return float(np.max(np.abs(got.astype(np.float64) - w)) / max(np.max(np.abs(w)), 1e-30))

    errs = {o: rel_err(arrays[o], want[o]) for o in outs}
    result["max_rel_error"] = max(errs.values())
    bad = {o: e for o, e in errs.items() if not e < TOLERANCE}
    if bad:
        shapes = {o: (list(arrays[o].shape), list(want[o].shape)) for o in bad}
        result["status"] = "MISMATCH " + ", ".join(
            f"{o}: rel err {e:.3g}" + ("" if shapes[o][0] == shapes[o][1] else f" shape {shapes[o]}")
            for o, e in bad.items())

    stage("ort-session")
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper, TensorProto
    nodes, consts = spec["onnx"](helper, np, sizes)
    g_inputs = [helper.make_tensor_value_info(a["name"], TensorProto.FLOAT, a["shape"])
                for a in args if a["role"] == "input"]
    inits = [numpy_helper.from_array(arrays[a["name"]], a["name"]) for a in args if a["role"] == "weight"]
    inits += [numpy_helper.from_array(v, k) for k, v in consts]
    g_outputs = [helper.make_tensor_value_info(a["name"], TensorProto.FLOAT, a["shape"])
                 for a in args if a["role"] == "output"]
    graph = helper.make_graph(nodes, cfg["name"], g_inputs, g_outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if cfg.get("ort_spin") else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    io = sess.io_binding()
    for a in args:
        if a["role"] == "input":
            io.bind_cpu_input(a["name"], arrays[a["name"]])
    ort_out = {}
    for a in args:
        if a["role"] == "output":
            ort_out[a["name"]] = aligned_zeros(tuple(a["shape"]))
            io.bind_output(a["name"], "cpu", 0, np.float32, list(a["shape"]),
                           ort_out[a["name"]].ctypes.data)
    sess.run_with_iobinding(io)
    ort_errs = {o: rel_err(ort_out[o], want[o]) for o in outs}
    result["ort_max_rel_error"] = max(ort_errs.values())
    if not max(ort_errs.values()) < TOLERANCE:
        result["ort_status"] = "ORT MISMATCH " + ", ".join(f"{o}: {e:.3g}" for o, e in ort_errs.items())

    stage("time")
    f32 = {k: v for k, v in given.items()}
    # A fixed job on every thread (OpenBLAS's product of two 384 x 384
    # matrices) timed each round too: its time shows whether the cores
    # were all there (see PROBE_SLOW).
    pa = rng.random((384, 384), dtype=np.float32)
    pb = rng.random((384, 384), dtype=np.float32)
    runners = [
        ("archc", lambda: fn(*ptrs)),
        ("ort", lambda: sess.run_with_iobinding(io)),
        ("numpy", lambda: spec["ref"](np, f32, sizes)),
        ("probe", lambda: pa @ pb),
    ]
    reps = {}
    for name, f in runners:
        f()
        t = time.perf_counter()
        f()
        f()
        est = (time.perf_counter() - t) / 2
        reps[name] = max(3, min(200, int(cfg["block_s"] / max(est, 1e-7))))
    samples = {name: [] for name, _ in runners}
    for _ in range(cfg["rounds"]):
        for name, f in runners:
            time.sleep(cfg["idle"])
            for _ in range(reps[name]):
                t = time.perf_counter()
                f()
                samples[name].append(time.perf_counter() - t)
    for name, xs in samples.items():
        xs.sort()
        result[name + "_s"] = xs[len(xs) // 2]
        result[name + "_calls"] = len(xs)
    print(json.dumps(result))


# ---------------------------------------------------------------- parent

def ensure_requirements():
    probe = [sys.executable, "-c", "import numpy, onnx, onnxruntime"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return
    print("suite: installing bench/requirements.txt into the environment", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", REQUIREMENTS], check=True)


def last_lines(text, n=3):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])[:400]


def signal_name(rc):
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


# Other processes (a compiler, a test run) share this machine's cores. The
# parent measures, around each child, the CPU time the whole machine spent
# (/proc/stat) minus the child's own (getrusage): the cores others used
# meanwhile. A case whose others used more than NOISY_CORES on average is
# run again (`--retry-noisy`), after waiting for the machine to go quiet;
# the quietest attempt is kept, and still-noisy rows are marked.
NOISY_CORES = 0.15

# A neighbour on the host can also hold one of this VM's vCPUs for seconds,
# which /proc/stat does not show (no steal time here): a two-thread library
# then measures its one-thread time. Each child also times a fixed job on
# every thread (`probe`); a case whose probe ran more than PROBE_SLOW times
# slower than the fastest probe seen at its thread count is run again too.
PROBE_SLOW = 1.25
FASTEST_PROBE = {}


def probe_ratio(res, threads):
    p = res.get("probe_s")
    if not p:
        return 1.0
    best = FASTEST_PROBE.get(threads, p)
    FASTEST_PROBE[threads] = min(best, p)
    return p / FASTEST_PROBE[threads]


def machine_cpu_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_for_quiet(max_wait_s):
    """Wait (up to max_wait_s) until the machine is idle for one second."""
    if max_wait_s <= 0:
        return
    deadline = time.time() + max_wait_s
    while True:
        c0, t0 = machine_cpu_s(), time.time()
        time.sleep(1.0)
        if (machine_cpu_s() - c0) / (time.time() - t0) < NOISY_CORES or time.time() > deadline:
            return


def run_child(cfg, env, stack_mb):
    def stack_limit():
        if stack_mb:
            import resource
            n = stack_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_STACK, (n, max(n, resource.getrlimit(resource.RLIMIT_STACK)[1])))
    res = {}
    m0, c0, t0 = machine_cpu_s(), children_cpu_s(), time.time()
    try:
        c = subprocess.run([sys.executable, os.path.abspath(__file__), "-", "--child", json.dumps(cfg)],
                           env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                           preexec_fn=stack_limit)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {CHILD_TIMEOUT_S} s"}
    wall = time.time() - t0
    res["others_cores"] = max(0.0, ((machine_cpu_s() - m0) - (children_cpu_s() - c0)) / wall)
    stages = re.findall(r"stage: (\S+)", c.stderr)
    where = stages[-1] if stages else "start"
    if c.returncode != 0:
        how = signal_name(c.returncode) if c.returncode < 0 else f"exit {c.returncode}"
        err = "\n".join(l for l in c.stderr.splitlines() if not l.startswith("stage: "))
        res["status"] = f"crash ({how}) in {where}" + (f": {last_lines(err)}" if err.strip() else "")
        return res
    res.update(json.loads(c.stdout.strip().splitlines()[-1]))
    res.setdefault("status", "ok")
    return res


def run_case(archc, name, overrides, label, threads, a):
    spec = WORKLOADS[name]
    wname, base = defaults(name)
    sizes = dict(base)
    sizes.update(overrides)
    row = {"case": label, "workload": name, "sizes": sizes, "threads": threads}
    unit, amount = spec["work"](sizes)
    row["unit"], row["work"] = unit, amount
    out = tempfile.mkdtemp(prefix=f"suite-{name}-")
    try:
        cmd = [archc, "build", os.path.join(SUITE, spec["file"]), "--target", "host", "-o", out,
               "--threads", str(threads)]
        for k, v in overrides.items():
            cmd += ["--set", f"{k}={v}"]
        row["build_cmd"] = " ".join(cmd[1:]).replace(out, "DIR").replace(ROOT + "/", "")
        t = time.perf_counter()
        try:
            b = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            row["status"] = f"build timed out after {BUILD_TIMEOUT_S} s"
            return row
        row["build_s"] = time.perf_counter() - t
        if b.returncode != 0:
            row["status"] = f"build failed (exit {b.returncode}): {last_lines(b.stderr or b.stdout)}"
            return row
        try:
            with open(os.path.join(out, "report.json")) as f:
                row["predicted_s"] = json.load(f)["total"]["latency_s"]
        except (OSError, KeyError, ValueError) as e:
            row["predicted_s"] = None
        cfg = {"name": name, "sizes": sizes, "dir": out, "threads": threads,
               "rounds": a.rounds, "idle": a.idle, "block_s": a.block, "ort_spin": a.ort_spin}
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        # No thread binding (OMP_PROC_BIND): libomp would pin the process's
        # main thread to one core, and ONNX Runtime's pool, created from
        # it, with it (measured: ORT's two-thread times became its
        # one-thread times).
        best = None

        def noise(r):
            return (r.get("others_cores", 0) > NOISY_CORES, r.get("probe_ratio", 1.0) > PROBE_SLOW)

        for attempt in range(1 + a.retry_noisy):
            wait_for_quiet(a.quiet_wait)
            res = run_child(cfg, env, a.stack_mb)
            res["attempts"] = attempt + 1
            res["probe_ratio"] = probe_ratio(res, threads)
            key = lambda r: (sum(noise(r)), r.get("probe_ratio", 1.0), r.get("others_cores", 0))
            if best is None or key(res) < key(best):
                best = res
            if "archc_s" not in res or not any(noise(res)):
                break
        row.update(best)
        if any(noise(best)) and "archc_s" in best:
            row["noisy"] = True
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)


def fmt_sizes(s):
    return " ".join(f"{k}={v}" for k, v in s.items())


def row_cells(r):
    ms = lambda k: f"{r[k] * 1e3:.3f}" if r.get(k) else "-"
    cells = [r["case"], fmt_sizes(r["sizes"]), str(r["threads"]), ms("archc_s"), ms("ort_s"), ms("numpy_s")]
    if r.get("archc_s") and r.get("ort_s"):
        cells.append(f"{r['ort_s'] / r['archc_s']:.2f}")
        scale = 1e9
        cells.append(f"{r['work'] / r['archc_s'] / scale:.1f} {r['unit']}")
    else:
        cells += ["-", "-"]
    if r.get("archc_s") and r.get("predicted_s"):
        cells.append(f"{r['archc_s'] / r['predicted_s']:.2f}")
    else:
        cells.append("-")
    status = r["status"]
    if r.get("noisy"):
        status += (f" (noisy: others used {r.get('others_cores', 0):.2f} cores, "
                   f"probe {r.get('probe_ratio', 1.0):.2f}x its fastest)")
    if r.get("ort_status"):
        status += "; " + r["ort_status"]
    cells.append(status)
    return cells


HEADER = ["workload", "sizes", "threads", "archc ms", "ORT ms", "numpy ms", "ORT/archc",
          "archc rate", "measured/predicted", "status"]


def machine():
    """The CPU: model name, logical CPUs, vector extensions."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "model name":
                    model = v.strip()
                elif k.strip() == "flags":
                    flags = set(v.split())
    except OSError:
        pass
    vec = [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni") if x in flags]
    return f"machine: {model}, {os.cpu_count()} logical CPUs, {' '.join(vec) or 'no AVX2'}"


def failed(r):
    return r["status"] != "ok" or bool(r.get("ort_status"))


def geomeans(rows):
    out = {}
    for t in sorted({r["threads"] for r in rows}):
        xs = [r["ort_s"] / r["archc_s"] for r in rows
              if r["threads"] == t and r.get("archc_s") and r.get("ort_s")]
        if xs:
            out[t] = (math.exp(sum(math.log(x) for x in xs) / len(xs)), len(xs))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("archc", nargs="?", help="the archc binary")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,2; --quick: 1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--generate", type=int, default=0, metavar="N")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--with-suite", action="store_true", help="with --generate: run the fixed suite too")
    ap.add_argument("--case", action="append", default=[], metavar="NAME:K=V,...",
                    help="a workload at given sizes, e.g. ffn:T=1,D=205,F=2582 (repeatable; "
                    "replaces the fixed suite unless --with-suite)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one round: builds and checks")
    ap.add_argument("--idle", type=float, default=0.25, help="seconds of idle before each timed block")
    ap.add_argument("--block", type=float, default=0.1, help="seconds per timed block (about)")
    ap.add_argument("--ort-spin", action="store_true", help="let ORT's threads spin (default: no)")
    ap.add_argument("--retry-noisy", type=int, default=2, metavar="N",
                    help="run a case up to N more times while other processes load the machine")
    ap.add_argument("--quiet-wait", type=float, default=120.0, metavar="S",
                    help="before each case, wait up to S seconds for the machine to go idle")
    ap.add_argument("--stack-mb", type=int, default=0,
                    help="raise the child's stack limit to this many MiB (default: inherit, usually 8)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", metavar="OUT", help="write every row as JSON")
    ap.add_argument("--resume", action="store_true",
                    help="with --json: keep the rows already in that file and run only the missing cases")
    ap.add_argument("--render", nargs="+", metavar="JSON",
                    help="print the table of rows saved by --json (ARCHC is then ignored)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return
    if a.render:
        rows = []
        for path in a.render:
            with open(path) as f:
                rows += json.load(f)
        print_table(rows, a.markdown)
        return
    if not a.archc:
        ap.error("give the archc binary")
    archc = os.path.abspath(a.archc)
    only = [x for x in a.only.split(",") if x]
    for x in only:
        if x not in WORKLOADS:
            ap.error(f"unknown workload {x!r}; known: {', '.join(WORKLOADS)}")
    if a.quick:
        a.retry_noisy = 0
        a.quiet_wait = 0.0
        a.rounds = 1
        a.idle = 0.0
        a.block = 0.01
    threads = [int(t) for t in (a.threads or ("1" if a.quick else "1,2")).split(",")]
    ensure_requirements()

    cases = []
    for spec in a.case:
        name, _, sets = spec.partition(":")
        if name not in WORKLOADS:
            ap.error(f"unknown workload {name!r} in --case; known: {', '.join(WORKLOADS)}")
        base = defaults(name)[1]
        overrides = {}
        for kv in filter(None, sets.split(",")):
            k, _, v = kv.partition("=")
            if k not in base or not v.isdigit() or int(v) < 1:
                ap.error(f"--case {spec!r}: {kv!r} is not SIZE=N with SIZE one of {', '.join(base)}")
            overrides[k] = int(v)
        cases.append((name, overrides, spec))
    if not (a.generate or a.case) or a.with_suite:
        for name in WORKLOADS:
            if not only or name in only:
                cases.append((name, dict(WORKLOADS[name]["quick"]) if a.quick else {}, name))
    if a.generate:
        cases += generate(a.generate, a.seed, only)

    rows = []
    if a.resume and a.json and os.path.exists(a.json):
        with open(a.json) as f:
            rows = json.load(f)
    done = {(r["case"], r["threads"], json.dumps(r["sizes"], sort_keys=True)) for r in rows}
    for t in threads:
        for name, overrides, label in cases:
            sizes = dict(defaults(name)[1], **overrides)
            if (label, t, json.dumps(sizes, sort_keys=True)) in done:
                continue
            r = run_case(archc, name, overrides, label, t, a)
            rows.append(r)
            print("  ".join(f"{h}: {c}" for h, c in zip(HEADER, row_cells(r))), file=sys.stderr, flush=True)
            if a.json:  # after every row, so that an interrupted run keeps what it measured
                with open(a.json, "w") as f:
                    json.dump(rows, f, indent=1)
    print_table(rows, a.markdown)


def print_table(rows, markdown):
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for r in rows:
            print("| " + " | ".join(c.replace("|", "/") for c in row_cells(r)) + " |")
    else:
        cells = [HEADER] + [row_cells(r) for r in rows]
        widths = [max(len(c[i]) for c in cells[:]) if i < len(HEADER) - 1 else 0 for i in range(len(HEADER))]
        for c in cells:
            print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    print()
    for t, (g, n) in geomeans(rows).items():
        print(f"geometric mean of ORT/archc, {t} thread{'s' if t > 1 else ''}: {g:.2f} over {n} workloads"
              + ("  " if markdown else ""))
    print(machine() + ("  " if markdown else ""))
    bad = [r for r in rows if failed(r)]
    if bad:
        print(f"\n{len(bad)} of {len(rows)} rows failed (build, crash or mismatch)")
        sys.exit(1)


if __name__ == "__main__":
    main()
