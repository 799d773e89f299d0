#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs an example once with --device cpu and once with --device cuda, with the same flags, and compares the two
results.csv tables: every numeric column but the timings must agree within a relative tolerance (float arithmetic in
a different order on each backend), or an absolute one given per column. Exits 77 (CTest's "skipped") when the CUDA
run reports that there is no device or no CUDA build.

  compare_devices.py --out DIR [--rtol X] [--tol COLUMN=ABS ...] [--cuda-launcher "mpiexec -n 1"]
                     [--expect TEXT] -- EXAMPLE FLAGS...

--cuda-launcher starts the CUDA run through a launcher (e.g. mpiexec, whose ranks reduce with NCCL); --expect
requires a text in the CUDA run's output (e.g. which reduction it used).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys


def run(command, device, out, launcher=(), expect=None):
    full = list(launcher) + command + ["--device", device, "--out", out]
    print("running:", " ".join(full), flush=True)
    done = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout, end="", flush=True)
    if done.returncode == 0 and expect is not None and expect not in done.stdout:
        print(f"the {device} run did not print \"{expect}\"")
        return 1
    return done.returncode


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a directory for the two runs' outputs")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--tol", action="append", default=[], help="COLUMN=ABS: an absolute tolerance for a column")
    parser.add_argument("--skip", action="append", default=["seconds"], help="columns not compared")
    parser.add_argument("--cuda-launcher", default="", help="a command that starts the CUDA run (e.g. mpiexec -n 1)")
    parser.add_argument("--expect", help="a text the CUDA run must print")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"]
    absolute = {}
    for t in args.tol:
        column, value = t.split("=")
        absolute[column] = float(value)

    cuda_out, cpu_out = os.path.join(args.out, "cuda"), os.path.join(args.out, "cpu")
    shutil.rmtree(args.out, ignore_errors=True)  # new runs: the examples refuse to start over another run's state
    code = run(command, "cuda", cuda_out, args.cuda_launcher.split(), args.expect)  # first: is there a device?
    if code == 77:
        print("skipped: no CUDA device or no CUDA build")
        return 77
    if code != 0:
        print(f"the CUDA run failed with exit code {code}")
        return 1
    code = run(command, "cpu", cpu_out)
    if code != 0:
        print(f"the CPU run failed with exit code {code}")
        return 1

    cpu, cuda = read(os.path.join(cpu_out, "results.csv")), read(os.path.join(cuda_out, "results.csv"))
    if len(cpu) != len(cuda) or not cpu:
        print(f"the tables differ in length: {len(cpu)} rows on the CPU, {len(cuda)} on the GPU")
        return 1
    failures = 0
    for i, (a, b) in enumerate(zip(cpu, cuda)):
        for column in a:
            if column in args.skip:
                continue
            x, y = number(a[column]), number(b[column])
            if x is None or y is None:
                ok = a[column] == b[column]
            elif column in absolute:
                ok = abs(x - y) <= absolute[column]
            else:
                ok = abs(x - y) <= args.rtol * max(abs(x), abs(y), 1e-12)
            if not ok:
                failures += 1
                print(f"row {i} ({a.get('method', '')}), {column}: cpu {a[column]}, cuda {b[column]}")
    print(f"{len(cpu)} rows compared, {failures} differences beyond the tolerance")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
