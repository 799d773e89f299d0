#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch's conv2d at the shape of benchmarks/nn/bench_conv.cpp: 64 -> 64 channels, 32x32, kernel 5, padding 2,
batch 32, float32, channels-last (torch.channels_last): forward (no autograd) and forward+backward (input and weight
gradients). A C4 group convolution with 16 regular fields in and out is this dense convolution with a filter bank
built from shared weights. Prints forward_ms=... forward_backward_ms=... (best of the repetitions).

  /usr/bin/python3 benchmarks/peers/conv_torch.py --threads 1
"""
import argparse
import time

import torch


def best_ms(fn, repeat):
    fn()  # warm-up (and oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(64, 64, 5, padding=2).to(memory_format=torch.channels_last)
    x = torch.randn(32, 64, 32, 32).to(memory_format=torch.channels_last).requires_grad_(True)
    dy = torch.randn(32, 64, 32, 32).to(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad():
            conv(x)

    def forward_backward():
        conv.zero_grad(set_to_none=False)
        x.grad = None
        conv(x).backward(dy)

    print(f"forward_ms={best_ms(forward, args.repeat):.3f} "
          f"forward_backward_ms={best_ms(forward_backward, args.repeat):.3f}")


if __name__ == "__main__":
    main()
