# SPDX-License-Identifier: MIT
"""Merges the motion capture runs of scripts/mocap-results into one markdown summary (standard library only).

usage: python3 scripts/mocap_summary.py RUN_DIR...   (each RUN_DIR holds results.csv and <method>/seed<s>/log.csv)

Prints the results table over all seeds (test MSE x 1e-2 of the deployed model at its best validation epoch), and
for the ACE methods the final gamma, multiplier and slack of every branch (mean over seeds) and how often each
gamma swung through 0 (sign changes between epochs where |gamma| > 0.01, as examples/graph_experiment.hpp counts).
"""
import csv
import statistics
import sys
from pathlib import Path

LAYERS_BRANCHES = ("h", "x")


def branch_name(i):
    return f"layer {i // 2} {LAYERS_BRANCHES[i % 2]}"


def swings(log, i):
    """Sign changes of gamma_i between epochs where |gamma_i| > 0.01."""
    values = [float(e[f"gamma_{i}"]) for e in log if abs(float(e[f"gamma_{i}"])) > 0.01]
    return sum(1 for a, b in zip(values, values[1:]) if (a > 0) != (b > 0))


def max_swings(log):
    return max((swings(log, i) for i in range(sum(1 for k in log[-1] if k.startswith("gamma_")))), default=0)


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(dirs):
    rows, logs = [], {}
    for d in map(Path, dirs):
        for r in csv.DictReader(open(d / "results.csv")):
            rows.append(r)
            with open(d / r["method"] / f"seed{r['seed']}" / "log.csv") as f:
                logs[(r["method"], r["seed"])] = list(csv.DictReader(f))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    print("| method | test MSE x 1e-2 (mean ± std) | seeds | best epoch (mean) | E(3) error of the deployed model "
          "(max) | final max abs γ (mean) | γ swings through 0 (mean of the max per run) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        t = mean_std([100 * float(r["test_mse"]) for r in rs])
        print(f"| {m} | {t[0]:.1f} ± {t[1]:.1f} | {len(rs)} | "
              f"{statistics.mean(float(r['best_epoch']) for r in rs):.0f} | "
              f"{max(float(r['equivariance_error']) for r in rs):.1e} | "
              f"{statistics.mean(float(r['max_abs_gamma']) for r in rs):.2f} | "
              f"{statistics.mean(max_swings(logs[(r['method'], r['seed'])]) for r in rs):.1f} |")
    for m in ("equality", "resilient"):
        runs = [logs[(r["method"], r["seed"])] for r in rows if r["method"] == m]
        if not runs:
            continue
        n = sum(1 for k in runs[0][-1] if k.startswith("gamma_"))
        slack = "u_0" in runs[0][-1]
        print(f"\n{m}, per branch (mean over {len(runs)} seeds): final γ, λ{', u' if slack else ''}; "
              "swings of γ through 0 over the run (mean)")
        print(f"\n| branch | γ | λ |{' u |' if slack else ''} γ swings through 0 |")
        print(f"|---|---:|---:|{'---:|' if slack else ''}---:|")
        for i in range(n):
            last = [run[-1] for run in runs]
            crossings = [swings(run, i) for run in runs]
            cells = [statistics.mean(float(e[f"gamma_{i}"]) for e in last),
                     statistics.mean(float(e[f"lambda_{i}"]) for e in last)]
            if slack:
                cells.append(statistics.mean(float(e[f"u_{i}"]) for e in last))
            print(f"| {branch_name(i)} | " + " | ".join(f"{c:.3f}" for c in cells) +
                  f" | {statistics.mean(crossings):.1f} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
