#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Side by side in one run: ace's DeepSets layer (bench_sets, 1 and 2 threads; one or more builds, e.g. Eigen's own
GEMM and the ACE_WITH_BLAS build on OpenBLAS) against PyTorch's
(deepsets_torch.py, 1 and 2 threads) at batch 64, set size 100, 256 -> 256 features, float32, forward+backward.

PyTorch runs twice: tuned (OPENBLAS_CORETYPE=Cooperlake OMP_WAIT_POLICY=PASSIVE) and with its default setup.
The headline ratio is PyTorch's best tuned time over ace's best time. Rounds alternate ace and PyTorch, and each
side keeps its best round, so background load on a shared machine penalises neither side systematically.

  /usr/bin/python3 benchmarks/peers/compare_deepsets.py \
      --bench eigen=build/release/benchmarks/bench_sets --bench blas=build/release-blas/benchmarks/bench_sets
"""
import argparse
import json
import os
import pathlib
import re
import subprocess

HERE = pathlib.Path(__file__).resolve().parent


def ace_ms(bench, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "--benchmark_filter=deepsets/", "--benchmark_min_time=0.5",
                          "--benchmark_format=json"], env=env, check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        kind = "forward_backward" if "forward+backward" in b["name"] else "forward"
        scale = {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
        times[kind] = b["real_time"] * scale
    return times


def torch_ms(threads, tuned):
    env = dict(os.environ)
    if tuned:
        env.update(OPENBLAS_CORETYPE="Cooperlake", OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run(["/usr/bin/python3", str(HERE / "deepsets_torch.py"), "--threads", str(threads)], env=env,
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"forward_ms=([\d.]+) forward_backward_ms=([\d.]+)", out)
    return {"forward": float(m.group(1)), "forward_backward": float(m.group(2))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="append", metavar="NAME=PATH",
                        help="an ace bench_sets build to measure (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    benches = dict(b.split("=", 1) for b in (args.bench or ["eigen=build/release/benchmarks/bench_sets"]))
    configs = [(f"ace ({name})", t, path) for name, path in benches.items() for t in (1, 2)]
    configs += [("torch tuned", t, True) for t in (1, 2)] + [("torch default", t, False) for t in (1, 2)]
    best = {}
    for _ in range(args.rounds):
        for name, threads, how in configs:
            r = ace_ms(how, threads) if isinstance(how, str) else torch_ms(threads, how)
            key = (name, threads)
            best[key] = {k: min(v, best.get(key, r)[k]) for k, v in r.items()}

    print("| implementation | threads | forward (ms) | forward+backward (ms) |")
    print("|---|---:|---:|---:|")
    for (name, threads), r in best.items():
        print(f"| {name} | {threads} | {r['forward']:.1f} | {r['forward_backward']:.1f} |")

    def fastest(name, kind):
        return min(r[kind] for (n, _), r in best.items() if n == name)

    for kind in ("forward", "forward_backward"):
        t, d = fastest("torch tuned", kind), fastest("torch default", kind)
        for name in benches:
            a = fastest(f"ace ({name})", kind)
            print(f"{kind}: ace ({name}) {a:.1f} ms; PyTorch tuned {t:.1f} ms (ratio {t / a:.2f}x), "
                  f"PyTorch default {d:.1f} ms (ratio {d / a:.2f}x)")


if __name__ == "__main__":
    main()
