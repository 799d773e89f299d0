#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch side of the DeepSets benchmark (benchmarks/nn/bench_sets.cpp): the same layer, the same shapes.

y_i = x_i L^T + mean_j(x_j) G^T + b on x [batch, set, features], float32, forward and forward+backward
(backward of <y, dy> for a fixed random dy: gradients of L, G, b and x, like ace's DeepSets::backward).
Prints one line per configuration: threads, forward ms, forward+backward ms (medians).

Run with Debian's python3-torch:  /usr/bin/python3 benchmarks/peers/deepsets_torch.py --threads 1 2
On a GPU:                          python3 benchmarks/peers/deepsets_torch.py --device cuda
"""
import argparse
import statistics
import time

import torch

from peer_common import blas_threads


class DeepSets(torch.nn.Module):
    def __init__(self, fin, fout):
        super().__init__()
        self.element = torch.nn.Linear(fin, fout, bias=True)
        self.pooled = torch.nn.Linear(fin, fout, bias=False)

    def forward(self, x):  # x: [batch, set, features]
        return self.element(x) + self.pooled(x.mean(dim=1, keepdim=True))


def median_ms(fn, repeats, inner, sync=lambda: None):
    fn()  # warm-up (allocator, thread pool)
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--set-size", type=int, default=100)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()

    torch.manual_seed(1)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32, as ace's default
        args.threads = args.threads[:1]
    layer = DeepSets(args.features, args.features).to(args.device)
    x = torch.randn(args.batch, args.set_size, args.features, device=args.device, requires_grad=True)
    dy = torch.randn(args.batch, args.set_size, args.features, device=args.device)

    def forward():
        with torch.no_grad():
            layer(x)

    def forward_backward():
        layer.zero_grad(set_to_none=False)
        x.grad = None
        layer(x).backward(dy)

    where = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"# torch {torch.__version__}, B={args.batch} N={args.set_size} F={args.features}, float32{where}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        f = median_ms(forward, args.repeats, args.inner, sync)
        fb = median_ms(forward_backward, args.repeats, args.inner, sync)
        print(f"threads={threads} blas_threads={blas_threads()} forward_ms={f:.2f} forward_backward_ms={fb:.2f}")


if __name__ == "__main__":
    main()
