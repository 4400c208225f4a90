#!/usr/bin/env python3
"""Compare archc with ZigZag (PyPI `zigzag-dse`) on one TPU-like accelerator
described in both tools: `std.hw.npu16` (a 16 x 16 int8 weight-stationary
systolic array, 256 KiB scratchpad, 64 KiB accumulator, 16 B/cycle DRAM)
and the same numbers written as ZigZag hardware.

For every layer of `examples/resnet18.arch` (ResNet-18's 20 convolutions and
its classifier) it runs ZigZag's mapper (LOMA, optimizing latency, spatial
unrolling fixed to the array: output channels on one side, input channels on
the other) and `archc tune`, and prints each tool's latency (cycles) and
energy for the mapping it found, and each mapper's wall time. The two
tools model the same hardware with different cost models (ZigZag counts
every read and write at every level and memory stalls per port; archc counts
the bytes each level moves, overlapped with compute), so the figures are
side by side, not expected to agree.

Exits 1 when a tool fails, or with --check when archc's mapper is not at
least 10x faster than ZigZag's or its total latency or energy is worse than
ZigZag's.

Usage: zigzag_compare.py ARCHC [--layers N] [--markdown] [--check]
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "examples", "resnet18.arch")

# std.hw.npu16, in ZigZag's terms. Every number is the stdlib's (see
# stdlib/hw.arch for their sources): energies per byte times the port width
# give ZigZag's energy per access; bandwidths are per cycle at 1 GHz.
DRAM_BITS, SPAD_BITS, ACC_BITS = 128, 512, 1024  # 16, 64, 128 B/cycle
DRAM_PJ_B, SPAD_PJ_B, ACC_PJ_B, MAC_PJ = 160.0, 2.5, 3.0, 0.3
SPAD_BYTES, ACC_BYTES = 256 * 1024, 64 * 1024


def port(name, kind, bits, allocation):
    return {
        "name": name,
        "type": kind,
        "bandwidth_min": bits,
        "bandwidth_max": bits,
        "allocation": allocation,
    }


def memory(size_bits, bits, pj_per_byte, operands, served, allocation):
    cost = pj_per_byte * bits / 8
    return {
        "size": size_bits,
        "r_cost": cost,
        "w_cost": cost,
        "area": 0,
        "latency": 1,
        "operands": operands,
        "ports": [
            port("r_port_1", "read", bits, [a for a in allocation if a.endswith(("tl", "th"))]),
            port("w_port_1", "write", bits, [a for a in allocation if a.endswith(("fh", "fl"))]),
        ],
        "served_dimensions": served,
    }


def zigzag_hardware():
    """npu16 as ZigZag hardware: one weight and one partial-sum register per
    processing element (free: archc has no per-PE energy), the accumulator
    for outputs, the scratchpad for inputs and weights, DRAM for all."""
    o_all = ["O, fh", "O, tl", "O, fl", "O, th"]
    return {
        "name": "npu16",
        "memories": {
            "w_reg": memory(8, 8, 0.0, ["I2"], [], ["I2, fh", "I2, tl"]),
            "o_reg": memory(32, 32, 0.0, ["O"], [], o_all),
            "accumulator": memory(ACC_BYTES * 8, ACC_BITS, ACC_PJ_B, ["O"], ["D1", "D2"], o_all),
            "scratchpad": memory(
                SPAD_BYTES * 8, SPAD_BITS, SPAD_PJ_B, ["I1", "I2"], ["D1", "D2"],
                ["I1, fh", "I1, tl", "I2, fh", "I2, tl"],
            ),
            "dram": memory(
                10**12, DRAM_BITS, DRAM_PJ_B, ["I1", "I2", "O"], ["D1", "D2"],
                ["I1, fh", "I1, tl", "I2, fh", "I2, tl"] + o_all,
            ),
        },
        "operational_array": {
            "unit_energy": MAC_PJ,
            "unit_area": 1,
            "dimensions": ["D1", "D2"],
            "sizes": [16, 16],
        },
    }


def layers_of(path):
    """(name, C, H, R, F, stride) of each convolution, and the classifier,
    read from examples/resnet18.arch."""
    text = open(path).read()
    shapes = {}
    for tensor, dims in re.findall(r"(?:input|weight|output) (\w+): \w+\[([^\]]*)\]", text):
        shapes[tensor] = [int(d) for d in dims.split(",")]
    out = []
    for name, x, stride in re.findall(r"(\w+) = conv2d\((\w+), \w+, stride: (\d+)\)", text):
        _, c, h, _ = shapes[x]
        f, _, r, _ = shapes["w_" + name]
        out.append((name, "conv", (c, h, r, f, int(stride))))
    k, n = shapes["w_fc"]
    out.append(("fc", "gemm", (1, k, n)))
    return out


def zigzag_layer(i, name, kind, p):
    if kind == "conv":
        c, h, r, f, s = p
        o = (h - r) // s + 1
        return {
            "id": i,
            "name": name,
            "operator_type": "Conv",
            "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
            "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
            "loop_sizes": [1, f, c, o, o, r, r],
            "operand_precision": {"I": 8, "W": 8, "O": 32, "O_final": 32},
            "operand_source": {"W": i, "I": i},
        }
    m, k, n = p
    return {
        "id": i,
        "name": name,
        "operator_type": "Gemm",
        "equation": "O[b][k]+=I[b][c]*W[c][k]",
        "loop_dims": ["B", "C", "K"],
        "loop_sizes": [m, k, n],
        "operand_precision": {"I": 8, "W": 8, "O": 32, "O_final": 32},
        "operand_source": {"W": i, "I": i},
    }


# Output channels across the array's columns; the reduction (input channels
# and, mixed with them, the filter window, as archc's im2col view does)
# down its rows. ZigZag searches the unrollings within this hint.
MAPPING = [
    {
        "name": "default",
        "spatial_mapping_hint": {"D1": ["K"], "D2": ["C", "FX", "FY"]},
        "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
    },
    {
        "name": "Gemm",
        "spatial_mapping_hint": {"D1": ["K"], "D2": ["C"]},
        "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
    },
]


def run_zigzag(layers, work):
    import yaml
    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.WARNING)
    hw = os.path.join(work, "npu16.yaml")
    mp = os.path.join(work, "mapping.yaml")
    with open(hw, "w") as f:
        yaml.safe_dump(zigzag_hardware(), f, sort_keys=False)
    with open(mp, "w") as f:
        yaml.safe_dump(MAPPING, f, sort_keys=False)
    results = {}
    for i, (name, kind, p) in enumerate(layers):
        wl = os.path.join(work, f"{name}.yaml")
        with open(wl, "w") as f:
            yaml.safe_dump([zigzag_layer(0, name, kind, p)], f, sort_keys=False)
        started = time.perf_counter()
        energy, latency, _ = get_hardware_performance_zigzag(
            workload=wl,
            accelerator=hw,
            mapping=mp,
            opt="latency",
            dump_folder=os.path.join(work, "out", name),
            loma_show_progress_bar=False,
            enable_mix_spatial_mapping=True,
        )
        results[name] = (latency, energy * 1e-12, time.perf_counter() - started)
        print(f"  zigzag {name}: {latency:.0f} cycles, {energy * 1e-6:.3f} uJ, "
              f"{results[name][2]:.2f} s", file=sys.stderr)
    return results


def run_archc(archc, layers, work):
    """Tunes the whole workload once (every op), and again per layer kept."""
    src = os.path.join(work, "resnet18.arch")
    with open(EXAMPLE) as f:
        text = f.read()
    keep = {name for name, _, _ in layers}
    with open(src, "w") as f:
        f.write(text)
    started = time.perf_counter()
    out = subprocess.run(
        [archc, "tune", src, "--target", "npu16", "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"archc tune failed:\n{out.stderr}")
    report = json.loads(out.stdout)
    results = {}
    for op in report["ops"]:
        if op["name"] in keep:
            p = op["predicted"]
            results[op["name"]] = (p["cycles"], p["energy_j"])
    return results, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archc")
    ap.add_argument("--layers", type=int, default=0, help="only the first N layers (0: all)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless archc's mapper is >= 10x faster and no worse in total")
    args = ap.parse_args()
    layers = layers_of(EXAMPLE)
    if args.layers:
        layers = layers[: args.layers]
    with tempfile.TemporaryDirectory() as work:
        archc, archc_wall = run_archc(os.path.abspath(args.archc), layers, work)
        import_started = time.perf_counter()
        import zigzag.api  # noqa: F401  (import time is reported apart)
        import_s = time.perf_counter() - import_started
        zz = run_zigzag(layers, work)
    rows = []
    totals = [0.0] * 5
    for name, _, _ in layers:
        zl, ze, zt = zz[name]
        al, ae = archc[name]
        rows.append((name, zl, al, ze, ae, zt))
        for j, v in enumerate((zl, al, ze, ae, zt)):
            totals[j] += v
    zz_wall = totals[4]
    if args.markdown:
        print("| layer | ZigZag latency (cycles) | archc latency (cycles) | archc / ZigZag | ZigZag energy (uJ) | archc energy (uJ) | archc / ZigZag | ZigZag mapper (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, zl, al, ze, ae, zt in rows:
            print(f"| {name} | {zl:.0f} | {al:.0f} | {al / zl:.2f} | {ze * 1e6:.2f} | {ae * 1e6:.2f} | {ae / ze:.2f} | {zt:.2f} |")
        print(f"| **total** | {totals[0]:.0f} | {totals[1]:.0f} | {totals[1] / totals[0]:.2f} | "
              f"{totals[2] * 1e6:.1f} | {totals[3] * 1e6:.1f} | {totals[3] / totals[2]:.2f} | {zz_wall:.1f} |")
    else:
        for name, zl, al, ze, ae, zt in rows:
            print(f"{name:12} latency zigzag {zl:10.0f} archc {al:10.0f} ({al / zl:5.2f}x)  "
                  f"energy zigzag {ze * 1e6:9.2f} uJ archc {ae * 1e6:9.2f} uJ ({ae / ze:5.2f}x)")
    speedup = zz_wall / archc_wall
    print(f"\nmapper wall time, {len(layers)} layers: ZigZag {zz_wall:.1f} s (plus {import_s:.1f} s "
          f"to import it), archc {archc_wall:.2f} s for the whole workload (process start "
          f"included): {speedup:.0f}x")
    print(f"total latency archc / ZigZag {totals[1] / totals[0]:.3f}, "
          f"total energy archc / ZigZag {totals[3] / totals[2]:.3f}")
    if args.check and (speedup < 10 or totals[1] > totals[0] or totals[3] > totals[2]):
        print("zigzag: check failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
