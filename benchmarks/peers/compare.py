#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Side by side in one run: an ace benchmark (1 and 2 threads; one or more builds, e.g. Eigen's own GEMM and the
ACE_WITH_BLAS build on OpenBLAS) against the same computation in PyTorch (1 and 2 threads), float32.

  --case deepsets  DeepSets layer, batch 64, set size 100, 256 -> 256: forward and forward+backward
                   (bench_sets against deepsets_torch.py); also the core's FMA peak in the same rounds and the
                   ratio against PyTorch that 2 cores at that peak would give (the machine's ceiling)
  --case egnn      N-body EGNN, 5 particles, hidden 64, 4 layers, batch 100: forward and one training step
                   (forward, MSE, backward, Adam) (bench_egnn against egnn_torch.py)
  --case segnn     N-body SEGNN (hidden 32x0e + 32x1o, 4 layers), batch 100: forward and one training step
                   (bench_segnn against segnn_torch.py)
  --case conv      C4 group convolution, 16 regular fields in and out (64 -> 64 channels), 32x32, kernel 5, batch
                   32, channels-last: forward and forward+backward (bench_conv against PyTorch's dense conv2d of
                   the same shape, conv_torch.py); also Eigen's sgemm rate in the same run and the convolution's
                   share of it

PyTorch runs twice: tuned (OPENBLAS_CORETYPE=Cooperlake OMP_WAIT_POLICY=PASSIVE) and with its default setup,
each with torch.set_num_threads(1) and (2). That does not set the threads of the OpenBLAS under Debian's PyTorch,
which runs the matrix products of the deepsets, egnn and segnn cases on one thread per core whatever
set_num_threads says (unless OPENBLAS_NUM_THREADS is set): the table shows that count beside the thread count
("1 (OpenBLAS: 2)"), and a third PyTorch setup, "default, one core", runs 1 thread with OPENBLAS_NUM_THREADS=1 too.
The headline ratio is PyTorch's best tuned time over ace's best time; the last column also holds ace against
PyTorch's fastest setup of all (any of the three, 1 or 2 threads). The table's samples/s column is computed from
the step (the training step, or forward+backward), never from the forward pass alone. Rounds alternate ace and
PyTorch, and each side keeps its best round, so background load on a shared machine penalises neither side
systematically. Where the PyTorch script reports the best of N single passes (conv), ace is timed the same way.

  /usr/bin/python3 benchmarks/peers/compare.py --case deepsets \
      --bench release=build/release/benchmarks/bench_sets --bench release-blas=build/release-blas/benchmarks/bench_sets
  /usr/bin/python3 benchmarks/peers/compare.py --case egnn --bench release=build/release/benchmarks/bench_egnn
  /usr/bin/python3 benchmarks/peers/compare.py --case conv --bench direct=build/release/benchmarks/bench_conv \
      --bench winograd=build/release/benchmarks/bench_conv --env winograd:ACE_CONV_ALGORITHM=winograd
"""
import argparse
import json
import os
import pathlib
import re
import subprocess

HERE = pathlib.Path(__file__).resolve().parent


CASES = {
    # ace benchmark filter, how an ace benchmark name maps to a kind, the PyTorch script, samples per step
    "deepsets": ("deepsets/forward", lambda name: "forward_backward" if "forward+backward" in name else "forward",
                 "deepsets_torch.py", 64),
    "egnn": ("egnn/(train_step/relaxed:0/batch:100/workers:[12]|forward/relaxed:0)/", lambda name: "train_step" if "train_step" in name else "forward",
             "egnn_torch.py", 100),
    "conv": ("conv/group_c4/channels_last/", lambda name: "forward_backward" if "forward+backward" in name else "forward",
             "conv_torch.py", 32),
    "segnn": ("segnn/(train_step/relaxed:0/batch:100/workers:[12]|forward/batch:100)/",
              lambda name: "train_step" if "train_step" in name else "forward", "segnn_torch.py", 100),
}
# The GEMM FLOPs of the deepsets case (bench_sets' count): the element product 2 B N F^2 and the pooled one 2 B F^2;
# forward+backward is three of each.
SETS_GFLOP = {"forward": (2 * 64 * 100 * 256 * 256 + 2 * 64 * 256 * 256) * 1e-9,
              "forward_backward": 3 * (2 * 64 * 100 * 256 * 256 + 2 * 64 * 256 * 256) * 1e-9}
# The GEMM FLOPs of one pass of the conv case: 2 B H W Cout Cin k^2; forward+backward is three passes.
CONV_GFLOP = {"forward": 2 * 32 * 32 * 32 * 64 * 64 * 25 * 1e-9, "forward_backward": 3 * 2 * 32 * 32 * 32 * 64 * 64 * 25 * 1e-9}


# Cases whose PyTorch script reports the best of N single passes (conv_torch.py: 10): ace is timed the same way,
# as the best of N repetitions of one iteration each, instead of the mean over half a second of iterations.
SINGLE_PASSES = {"conv": 10}


def ace_ms(case, bench, threads, flt=None):
    """bench: (executable, extra environment)."""
    flt = flt or CASES[case][0]
    kind_of = CASES[case][1]
    bench, extra = bench
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), **extra)
    timing = (["--benchmark_min_time=0.001", f"--benchmark_repetitions={SINGLE_PASSES[case]}"]
              if case in SINGLE_PASSES else ["--benchmark_min_time=0.5"])
    out = subprocess.run([bench, f"--benchmark_filter={flt}", *timing, "--benchmark_format=json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":  # repetitions add mean/median/stddev rows
            continue
        scale = {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
        kind = kind_of(b["name"])  # several variants of one kind (e.g. EGNN worker counts): keep the fastest
        times[kind] = min(times.get(kind, float("inf")), b["real_time"] * scale)
    return times


def ace_fma_peak(bench):
    """The core's FMA peak in GFLOP/s, as the ace benchmark (bench_sets) measures it: fma_peak/one_core, one thread."""
    path, extra = bench
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    out = subprocess.run([path, "--benchmark_filter=fma_peak/one_core$", "--benchmark_min_time=0.3",
                          "--benchmark_format=json"], env=env, check=True, capture_output=True, text=True).stdout
    return max(b["GFLOP/s"] for b in json.loads(out)["benchmarks"])


def torch_ms(case, threads, tuned, one_core=False):
    """PyTorch's times ({kind: ms}) and, where its script reports it, "blas_threads" (its OpenBLAS's thread count).
    one_core: OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to the thread count as well."""
    env = dict(os.environ)
    if tuned:
        env.update(OPENBLAS_CORETYPE="Cooperlake", OMP_WAIT_POLICY="PASSIVE")
    if one_core:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(["/usr/bin/python3", str(HERE / CASES[case][2]), "--threads", str(threads)], env=env,
                         check=True, capture_output=True, text=True).stdout
    times = {k: float(v) for k, v in re.findall(r"(\w+)_ms=([\d.]+)", out)}
    blas = re.search(r"blas_threads=(\d+)", out)
    return times, (int(blas.group(1)) if blas else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), default="deepsets")
    parser.add_argument("--bench", action="append", metavar="NAME=PATH",
                        help="an ace benchmark executable to measure (repeatable)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME:VAR=VALUE",
                        help="an environment variable for the ace executable NAME (repeatable), e.g. "
                             "winograd:ACE_CONV_ALGORITHM=winograd with --bench winograd=build/release/benchmarks/bench_conv")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    default = {"deepsets": "bench_sets", "egnn": "bench_egnn", "conv": "bench_conv", "segnn": "bench_segnn"}[args.case]
    benches = dict(b.split("=", 1) for b in (args.bench or [f"release=build/release/benchmarks/{default}"]))
    extra = {name: {} for name in benches}
    for e in args.env:
        name, assignment = e.split(":", 1)
        if name not in extra:
            parser.error(f"--env {e}: no --bench named {name}")
        var, value = assignment.split("=", 1)
        extra[name][var] = value
    configs = [(f"ace ({name})", t, (path, extra[name])) for name, path in benches.items() for t in (1, 2)]
    configs += [("torch tuned", t, (True, False)) for t in (1, 2)] + [("torch default", t, (False, False)) for t in (1, 2)]
    configs += [("torch default, one core", 1, (False, True))]
    best, sgemm, blas, peak = {}, {}, {}, 0.0
    for _ in range(args.rounds):
        for name, threads, how in configs:
            key = (name, threads)
            if isinstance(how[0], str):
                r = ace_ms(args.case, how, threads)
            else:
                r, blas[key] = torch_ms(args.case, threads, *how)
            best[key] = {k: min(v, best.get(key, r)[k]) for k, v in r.items()}
        if args.case == "deepsets":  # the FMA peak in the same rounds (the ceiling of any implementation's rate)
            first = next(how for _, _, how in configs if isinstance(how[0], str))
            peak = max(peak, ace_fma_peak(first))
        if args.case == "conv":  # Eigen's sgemm (1024^3) in the same rounds, per ace build and thread count
            for name, threads, how in configs:
                if isinstance(how[0], str):
                    ms = ace_ms(args.case, how, threads, flt="sgemm/")["forward"]
                    key = ("sgemm " + name, threads)
                    sgemm[key] = min(ms, sgemm.get(key, ms))

    # forward first, then the step (training step or forward+backward); samples/s is computed from the step
    kinds = sorted(next(iter(best.values())), key=lambda k: k != "forward")
    step = kinds[-1]
    per_step = CASES[args.case][3]
    print("| implementation | threads | " + " | ".join(f"{k} (ms)" for k in kinds) + f" | samples/s ({step}) |")
    print("|---|---:|" + "---:|" * (len(kinds) + 1))
    for (name, threads), r in best.items():
        cells = " | ".join(f"{r[k]:.2f}" for k in kinds)
        b = blas.get((name, threads))
        label = f"{threads} (OpenBLAS: {b})" if b else str(threads)
        print(f"| {name} | {label} | {cells} | {1e3 * per_step / r[step]:.0f} |")

    def fastest(name, kind):
        return min(r[kind] for (n, _), r in best.items() if n == name)

    for (name, threads), ms in sgemm.items():
        rate = 2 * 1024 ** 3 * 1e-9 / (ms * 1e-3)
        conv = best[(name[len("sgemm "):], threads)]
        shares = ", ".join(f"{k} {CONV_GFLOP[k] / (conv[k] * 1e-3):.1f} GFLOP/s = {100 * CONV_GFLOP[k] / (conv[k] * 1e-3) / rate:.0f} %"
                           for k in kinds)
        print(f"{name} ({threads} thread{'s' if threads > 1 else ''}): {rate:.1f} GFLOP/s; convolution {shares}")
    if peak > 0:  # deepsets: how far above PyTorch any implementation on this machine's cores could be
        for kind in kinds:
            pt = min(fastest(n, kind) for n in ("torch tuned", "torch default", "torch default, one core"))
            rate = SETS_GFLOP[kind] / (pt * 1e-3)
            print(f"{kind}: {SETS_GFLOP[kind]:.2f} GFLOP of products; PyTorch's fastest setup {rate:.1f} GFLOP/s; "
                  f"FMA peak {peak:.1f} GFLOP/s per core (measured in the same rounds): with every multiply-add at "
                  f"the peak of 2 cores and nothing else, at most {2 * peak / rate:.2f}x PyTorch's fastest setup")
    for kind in kinds:
        t, d = fastest("torch tuned", kind), min(fastest("torch default", kind), fastest("torch default, one core", kind))
        for name in benches:
            a = fastest(f"ace ({name})", kind)
            print(f"{kind}: ace ({name}) {a:.2f} ms; PyTorch tuned {t:.2f} ms (ratio {t / a:.2f}x), "
                  f"PyTorch default {d:.2f} ms (ratio {d / a:.2f}x); against PyTorch's fastest setup "
                  f"{min(t, d) / a:.2f}x")


if __name__ == "__main__":
    main()
