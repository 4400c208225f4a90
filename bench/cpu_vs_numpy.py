#!/usr/bin/env python3
"""archc-built CPU code against numpy (OpenBLAS), in one process, same threads.

Builds each case with `archc build`, loads lib<workload>.so with ctypes,
checks its output against numpy, then times both alternately (medians of
repeated runs after warm-up; the machine is noisy, so ratios matter).

    .venv/bin/python bench/cpu_vs_numpy.py target/release/archc [--quick] [--markdown]

Cases: f32 GEMM 1024^3 and 2048^3 (examples/gemm.arch), and
examples/mlp.arch (matmul + bias + relu, fused) against numpy's three steps
`np.maximum(x @ w + b, 0)`; each on 1 and 2 threads. numpy's thread count
is set with OPENBLAS_NUM_THREADS in a child process per thread count.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = [
    # name, file, --set overrides, flops(params)
    ("gemm 1024^3", "examples/gemm.arch", ["M=1024", "N=1024", "K=1024"]),
    ("gemm 2048^3", "examples/gemm.arch", ["M=2048", "N=2048", "K=2048"]),
    ("mlp 256x1024x4096 (matmul+bias+relu)", "examples/mlp.arch", []),
]


def build(archc, case, threads, out):
    name, path, sets = case
    cmd = [archc, "build", os.path.join(ROOT, path), "--target", "host", "-o", out,
           "--threads", str(threads)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifests = [f for f in os.listdir(out) if f.endswith(".manifest.json")]
    with open(os.path.join(out, manifests[0])) as f:
        return json.load(f)


def child(archc, threads, rounds, quick):
    import numpy as np
    rng = np.random.default_rng(0)
    rows = []
    for case in CASES[:2] if quick else CASES:
        with tempfile.TemporaryDirectory() as out:
            m = build(archc, case, threads, out)
            lib = ctypes.CDLL(os.path.join(out, m["library"]))
            fn = getattr(lib, m["function"])
            fn.restype = ctypes.c_int32
            arrays = {}
            for a in m["arguments"]:
                shape = tuple(a["shape"])
                if a["role"] == "output":
                    arrays[a["name"]] = np.zeros(shape, dtype=np.float32)
                else:
                    arrays[a["name"]] = (rng.random(shape, dtype=np.float32) * 2 - 1)
            ptrs = [arrays[a["name"]].ctypes.data_as(ctypes.c_void_p) for a in m["arguments"]]
            names = [a["name"] for a in m["arguments"]]
            out_name = [a["name"] for a in m["arguments"] if a["role"] == "output"][0]
            if m["workload"] == "gemm":
                a_, b_ = arrays[names[0]], arrays[names[1]]
                reference = lambda: a_ @ b_
                M, K = a_.shape
                N = b_.shape[1]
            else:
                x, w, b = arrays["x"], arrays["w"], arrays["b"]
                reference = lambda: np.maximum(x @ w + b, 0)
                M, K = x.shape
                N = w.shape[1]
            flops = 2.0 * M * N * K
            assert fn(*ptrs) == 0
            want = reference()
            got = arrays[out_name]
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-30))
            assert err < 1e-4, f"{case[0]}: archc differs from numpy by {err}"
            ours, theirs = [], []
            for _ in range(rounds):
                for _ in range(3):
                    t = time.perf_counter(); fn(*ptrs); ours.append(time.perf_counter() - t)
                time.sleep(0.3)
                for _ in range(3):
                    t = time.perf_counter(); reference(); theirs.append(time.perf_counter() - t)
                time.sleep(0.3)
            med = lambda xs: sorted(xs)[len(xs) // 2]
            rows.append({
                "case": case[0], "threads": threads,
                "archc_s": med(ours), "numpy_s": med(theirs),
                "archc_gflops": flops / med(ours) / 1e9, "numpy_gflops": flops / med(theirs) / 1e9,
                "max_rel_error": err,
            })
    print(json.dumps(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("archc")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="GEMM cases only")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    archc = os.path.abspath(a.archc)
    if a.child:
        child(archc, a.child, a.rounds, a.quick)
        return
    rows = []
    for threads in (1, 2):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        args = [sys.executable, __file__, archc, "--child", str(threads), "--rounds", str(a.rounds)]
        if a.quick:
            args.append("--quick")
        r = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
        rows += json.loads(r.stdout.strip().splitlines()[-1])
    if a.markdown:
        print("| case | threads | archc GFLOP/s | numpy GFLOP/s | archc / numpy |")
        print("|---|---|---|---|---|")
    for r in rows:
        ratio = r["archc_gflops"] / r["numpy_gflops"]
        if a.markdown:
            print(f"| {r['case']} | {r['threads']} | {r['archc_gflops']:.1f} | {r['numpy_gflops']:.1f} | {ratio:.2f} |")
        else:
            print(f"{r['case']:<40} threads {r['threads']}: archc {r['archc_gflops']:7.1f} GFLOP/s "
                  f"({r['archc_s']*1e3:8.2f} ms), numpy {r['numpy_gflops']:7.1f} GFLOP/s "
                  f"({r['numpy_s']*1e3:8.2f} ms), ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
