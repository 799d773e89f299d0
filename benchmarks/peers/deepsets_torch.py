#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch side of the DeepSets benchmark (benchmarks/nn/bench_sets.cpp): the same layer, the same shapes.

y_i = x_i L^T + mean_j(x_j) G^T + b on x [batch, set, features], float32, forward and forward+backward
(backward of <y, dy> for a fixed random dy: gradients of L, G, b and x, like ace's DeepSets::backward).
Prints one line per configuration: threads, forward ms, forward+backward ms (medians).

Run with Debian's python3-torch:  /usr/bin/python3 benchmarks/peers/deepsets_torch.py --threads 1 2
"""
import argparse
import statistics
import time

import torch


class DeepSets(torch.nn.Module):
    def __init__(self, fin, fout):
        super().__init__()
        self.element = torch.nn.Linear(fin, fout, bias=True)
        self.pooled = torch.nn.Linear(fin, fout, bias=False)

    def forward(self, x):  # x: [batch, set, features]
        return self.element(x) + self.pooled(x.mean(dim=1, keepdim=True))


def median_ms(fn, repeats, inner):
    fn()  # warm-up (allocator, thread pool)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
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
    args = parser.parse_args()

    torch.manual_seed(1)
    layer = DeepSets(args.features, args.features)
    x = torch.randn(args.batch, args.set_size, args.features, requires_grad=True)
    dy = torch.randn(args.batch, args.set_size, args.features)

    def forward():
        with torch.no_grad():
            layer(x)

    def forward_backward():
        layer.zero_grad(set_to_none=False)
        x.grad = None
        layer(x).backward(dy)

    print(f"# torch {torch.__version__}, B={args.batch} N={args.set_size} F={args.features}, float32")
    for threads in args.threads:
        torch.set_num_threads(threads)
        f = median_ms(forward, args.repeats, args.inner)
        fb = median_ms(forward_backward, args.repeats, args.inner)
        print(f"threads={threads} forward_ms={f:.2f} forward_backward_ms={fb:.2f}")


if __name__ == "__main__":
    main()
