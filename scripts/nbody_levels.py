#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""When each run's deployed model first reaches given validation levels, from the experiments' CSV logs.

  scripts/nbody_levels.py [--steps] [--levels 12,10,9,8.5] OUT [OUT ...]

OUT is an --out directory of nbody or mocap (OUT/<method>/seed<s>/log.csv). For every run it prints the best
validation MSE and its epoch, the test MSE at that epoch, the first epoch whose validation MSE is below each level
(x 1e-3; "-": never), the final max |gamma| and the number of evaluated epochs. With --steps the best point and the
levels are given in training steps instead of epochs (to compare runs on training sets of different sizes). Plain
Python, no dependencies.
"""
import csv
import math
import sys
from pathlib import Path


def runs(out):
    for log in sorted(Path(out).glob("*/seed*/log.csv")):
        yield log.parent.parent.name, log.parent.name[len("seed"):], log


def number(text):
    try:
        return float(text)
    except ValueError:
        return math.nan


def main():
    args = sys.argv[1:]
    levels = [12.0, 10.0, 9.0, 8.5]
    when = "epoch"
    while args and args[0] in ("--levels", "--steps"):
        if args[0] == "--steps":
            when = "steps"
            args = args[1:]
        elif len(args) >= 2:
            levels = [float(v) for v in args[1].split(",")]
            args = args[2:]
        else:
            sys.exit(__doc__)
    if not args:
        sys.exit(__doc__)
    print(f"| run | method | seed | best valid x1e-3 | best {when} | test at best x1e-3 | "
          + " | ".join(f"first < {v:g}" for v in levels) + " | final max abs gamma | evaluations |")
    print("|" + "---|" * (8 + len(levels)))
    for out in args:
        for method, seed, log in runs(out):
            with open(log, newline="") as f:
                rows = list(csv.DictReader(f))
            evaluated = [r for r in rows if not math.isnan(number(r.get("valid_mse", "")))]
            if not evaluated:
                print(f"| {out} | {method} | {seed} | (no evaluation) |")
                continue
            best = min(evaluated, key=lambda r: number(r["valid_mse"]))
            firsts = []
            for level in levels:
                hit = next((r[when] for r in evaluated if number(r["valid_mse"]) * 1e3 < level), "-")
                firsts.append(hit)
            gammas = [abs(number(v)) for k, v in rows[-1].items() if k.startswith("gamma_") and v != ""]
            gamma = max(gammas) if gammas else 0.0
            print(f"| {out} | {method} | {seed} | {number(best['valid_mse']) * 1e3:.2f} | {best[when]} | "
                  f"{number(best['test_mse_at_best']) * 1e3:.2f} | " + " | ".join(firsts)
                  + f" | {gamma:.2e} | {len(evaluated)} |")


if __name__ == "__main__":
    main()
