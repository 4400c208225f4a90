#!/usr/bin/env python3
"""Compare archc's npu model with SCALE-Sim (PyPI `scalesim`) on the same
array, dataflow and layers: ResNet-18 convolutions and transformer GEMMs.

For every layer and dataflow it runs SCALE-Sim (CALC bandwidth, so its
"Total Cycles" are compute cycles) and `archc report --format json` on an
equivalent .arch program, and compares SCALE-Sim's Total Cycles with archc's
`compute_cycles`. Exits 1 if any layer differs by more than the tolerance.

Usage: scalesim_compare.py ARCHC [--array 64] [--dataflows ws,os] [--tolerance 0.05] [--markdown]
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

# (name, kind, params). conv: (H, W, R, S, C, F, stride) on an already padded
# input; gemm: (M, K, N). Shapes are chosen so that (H - R) is a multiple of
# the stride: both tools then agree on the output size.
LAYERS = [
    ("resnet18_conv1", "conv", (229, 229, 7, 7, 3, 64, 2)),
    ("resnet18_conv2_x", "conv", (58, 58, 3, 3, 64, 64, 1)),
    ("resnet18_conv3_1", "conv", (57, 57, 3, 3, 64, 128, 2)),
    ("resnet18_conv3_x", "conv", (30, 30, 3, 3, 128, 128, 1)),
    ("resnet18_conv4_x", "conv", (16, 16, 3, 3, 256, 256, 1)),
    ("resnet18_conv5_x", "conv", (9, 9, 3, 3, 512, 512, 1)),
    ("resnet18_downsample4", "conv", (27, 27, 1, 1, 128, 256, 2)),
    ("bert_qkv", "gemm", (128, 768, 2304)),
    ("bert_attn_out", "gemm", (128, 768, 768)),
    ("bert_ffn1", "gemm", (128, 768, 3072)),
    ("bert_ffn2", "gemm", (128, 3072, 768)),
    ("bert_scores", "gemm", (128, 64, 128)),
    ("bert_context", "gemm", (128, 128, 64)),
]

DATAFLOW_NAMES = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}

CONFIG = """[general]
run_name = {run}
[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = 4096
filtersramszkB = 4096
ofmapsramszkB = 4096
IfmapOffset = 0
FilterOffset = 100000000
OfmapOffset = 200000000
Dataflow = {dataflow}
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32
[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2
[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""


def arch_program(array, dataflow):
    """One .arch file: an npu with the array, and a workload per layer."""
    lines = [
        "import std.hw.npu16",
        "",
        f"hardware validation_npu extends npu16 {{",
        f"  array systolic [{array}, {array}] {{ dataflow {DATAFLOW_NAMES[dataflow]} }}",
        "  level scratchpad { size 64 MiB }",
        "  level accumulator { size 64 MiB }",
        "}",
        "",
    ]
    for name, kind, p in LAYERS:
        if kind == "conv":
            h, w, r, s, c, f, stride = p
            lines += [
                f"workload {name}(H = {h}, W = {w}, R = {r}, S = {s}, C = {c}, F = {f}) {{",
                "  input x: int8[C, H, W]",
                "  weight k: int8[F, C, R, S]",
                f"  output y: int32[F, (H - R) / {stride} + 1, (W - S) / {stride} + 1]",
                f"  y[f, p, q] = sum[c, r, s] x[c, p * {stride} + r, q * {stride} + s] * k[f, c, r, s]",
                "}",
                "",
            ]
        else:
            m, k, n = p
            lines += [
                f"workload {name}(M = {m}, K = {k}, N = {n}) {{",
                "  input a: int8[M, K]",
                "  weight b: int8[K, N]",
                "  output c: int32[M, N]",
                "  c[i, j] = sum[l] a[i, l] * b[l, j]",
                "}",
                "",
            ]
    return "\n".join(lines)


def archc_cycles(archc, path, layer):
    out = subprocess.run(
        # The first guess is the untiled layer SCALE-Sim simulates (no search).
        [archc, "report", path, "--target", "validation_npu", "--workload", layer, "--format", "json",
         "--first-guess"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"archc report failed for {layer}:\n{out.stderr}")
    report = json.loads(out.stdout)
    return report["ops"][0]["predicted"]["compute_cycles"]


def scalesim_cycles(workdir, array, dataflow, kind, layers):
    """Runs SCALE-Sim once for `layers` of one kind; returns {name: cycles}."""
    from scalesim.scale_sim import scalesim

    run = f"{kind}_{dataflow}_{array}"
    cfg = os.path.join(workdir, f"{run}.cfg")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(run=run, rows=array, cols=array, dataflow=dataflow))
    topo = os.path.join(workdir, f"{run}.csv")
    with open(topo, "w") as f:
        if kind == "conv":
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
            for name, _, (h, w, r, s, c, k, stride) in layers:
                f.write(f"{name}, {h}, {w}, {r}, {s}, {c}, {k}, {stride},\n")
        else:
            f.write("Layer, M, N, K,\n")
            for name, _, (m, k, n) in layers:
                f.write(f"{name}, {m}, {n}, {k},\n")
    layout = os.path.join(workdir, "layout.csv")
    with open(layout, "w") as f:
        f.write("Layer name,\n")
    sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout, input_type_gemm=(kind == "gemm"))
    sim.run_scale(top_path=workdir)
    report = os.path.join(workdir, run, "COMPUTE_REPORT.csv")
    with open(report) as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    col = header.index("Total Cycles")
    return {layers[i][0]: float(row[col]) for i, row in enumerate(rows[1:]) if row and row[0].strip()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archc")
    ap.add_argument("--array", type=int, default=64)
    ap.add_argument("--dataflows", default="ws,os")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    failures = 0
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for dataflow in args.dataflows.split(","):
            path = os.path.join(workdir, f"layers_{dataflow}.arch")
            with open(path, "w") as f:
                f.write(arch_program(args.array, dataflow))
            started = time.time()
            sim = {}
            for kind in ("conv", "gemm"):
                sim.update(scalesim_cycles(workdir, args.array, dataflow, kind, [l for l in LAYERS if l[1] == kind]))
            sim_s = time.time() - started
            started = time.time()
            ours = {name: archc_cycles(args.archc, path, name) for name, _, _ in LAYERS}
            ours_s = time.time() - started
            for name, _, _ in LAYERS:
                err = abs(ours[name] - sim[name]) / sim[name]
                failures += err > args.tolerance
                rows.append((name, dataflow, sim[name], ours[name], err))
            print(f"# {dataflow}: SCALE-Sim {sim_s:.1f} s, archc {ours_s:.2f} s for {len(LAYERS)} layers", file=sys.stderr)
    if args.markdown:
        print(f"| layer | dataflow | SCALE-Sim total cycles | archc compute_cycles | difference |")
        print("|---|---|---|---|---|")
        for name, df, s, o, e in rows:
            print(f"| {name} | {df} | {s:.0f} | {o:.0f} | {e * 100:.3f} % |")
    else:
        for name, df, s, o, e in rows:
            print(f"{name:24} {df}  scalesim {s:12.0f}  archc {o:12.0f}  {e * 100:7.3f} %")
    worst = max(r[4] for r in rows)
    print(f"worst difference {worst * 100:.3f} %, tolerance {args.tolerance * 100:.1f} %")
    print(f"scalesim: {len(rows) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
