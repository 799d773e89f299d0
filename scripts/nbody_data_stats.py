#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tail statistics of N-body data sets at the input and target frames, to compare draws and generators.

  scripts/nbody_data_stats.py ace DIR SEED [SEED ...]   ace's cached splits (build/nbody_data, data seeds)
  scripts/nbody_data_stats.py reference DIR            the EGNN reference generator's *_charged5_initvel1small.npy

For each data set and split (train: the first 3000 systems, valid 2000, test 2000) it prints the test-MSE of the two
trivial predictors (no motion, constant velocity), the displacement |x(40) - x(30)| per particle (mean, 99th
percentile, max), the closest approach of two particles at the input and target frames (1st percentile, min, the
share of systems with a pair closer than 0.1), the speed |v(30)| (mean, 99th percentile, max) and the share of
same-sign charge pairs. Needs numpy (Debian: python3-numpy).
"""
import sys
from pathlib import Path

import numpy as np

SIZES = {"train": 3000, "valid": 2000, "test": 2000}


def ace_split(directory, seed, split):
    """positions, velocities, targets [n, 5, 3] and charges [n, 5] of one cached split (data::load_or_make_nbody)."""
    count = SIZES[split]
    name = {"train": "train", "valid": "valid", "test": "test"}[split]
    matches = sorted(Path(directory).glob(f"nbody5_{name}{count}_seed{seed}_field0_*.positions.npy"))
    if not matches:
        sys.exit(f"no cached {split} split of {count} systems for data seed {seed} in {directory}: "
                 f"run nbody --data {directory} --data-seed {seed} with the paper's sizes first")
    stem = str(matches[0])[: -len(".positions.npy")]
    get = lambda what: np.load(f"{stem}.{what}.npy")
    return get("positions"), get("velocities"), get("targets"), get("charges")


def reference_split(directory, split):
    """The same from the reference generator's arrays [n, frames, 3, particles], frames 30 and 40."""
    suffix = "_charged5_initvel1small"
    loc = np.load(Path(directory) / f"loc_{split}{suffix}.npy")[: SIZES[split]]
    vel = np.load(Path(directory) / f"vel_{split}{suffix}.npy")[: SIZES[split]]
    charges = np.load(Path(directory) / f"charges_{split}{suffix}.npy")[: SIZES[split], :, 0]
    t = lambda a: np.transpose(a, (0, 2, 1))
    return t(loc[:, 30]), t(vel[:, 30]), t(loc[:, 40]), charges


def closest(x):
    d = np.linalg.norm(x[:, :, None, :] - x[:, None, :, :], axis=-1)
    d[:, np.arange(x.shape[1]), np.arange(x.shape[1])] = np.inf
    return d.min(axis=(1, 2))


def row(name, split, data):
    x, v, y, q = data
    move = np.linalg.norm(y - x, axis=-1).ravel()
    speed = np.linalg.norm(v, axis=-1).ravel()
    c0, c1 = closest(x), closest(y)
    same = (q[:, :, None] * q[:, None, :] > 0)[:, ~np.eye(q.shape[1], dtype=bool)].mean()
    cells = [name, split, f"{np.mean((y - x) ** 2) * 1e3:.1f}", f"{np.mean((y - x - v) ** 2) * 1e3:.1f}",
             f"{move.mean():.3f}", f"{np.percentile(move, 99):.3f}", f"{move.max():.2f}",
             f"{np.percentile(c0, 1):.3f}", f"{c0.min():.4f}", f"{np.percentile(c1, 1):.3f}", f"{c1.min():.4f}",
             f"{np.mean(np.minimum(c0, c1) < 0.1) * 100:.2f}", f"{speed.mean():.3f}", f"{np.percentile(speed, 99):.3f}",
             f"{speed.max():.2f}", f"{same:.3f}"]
    print("| " + " | ".join(cells) + " |")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("ace", "reference") or (sys.argv[1] == "ace" and len(sys.argv) < 4):
        sys.exit(__doc__)
    print("| data | split | MSE no motion x1e-3 | MSE const. velocity x1e-3 | mean move | p99 move | max move | "
          "p1 closest (in) | min closest (in) | p1 closest (target) | min closest (target) | % systems < 0.1 | "
          "mean speed | p99 speed | max speed | same-sign pairs |")
    print("|" + "---|" * 16)
    for split in SIZES:
        if sys.argv[1] == "reference":
            row("reference generator", split, reference_split(sys.argv[2], split))
        else:
            for seed in sys.argv[3:]:
                row(f"ace, data seed {seed}", split, ace_split(sys.argv[2], seed, split))


if __name__ == "__main__":
    main()
