#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch's conv2d at the shape of benchmarks/nn/bench_conv.cpp: 64 -> 64 channels, 32x32, kernel 5, padding 2,
batch 32, float32, channels-last (torch.channels_last): forward (no autograd) and forward+backward (input and weight
gradients). A C4 group convolution with 16 regular fields in and out is this dense convolution with a filter bank
built from shared weights. Prints forward_ms=... forward_backward_ms=... (best of the repetitions).

  /usr/bin/python3 benchmarks/peers/conv_torch.py --threads 1
  python3 benchmarks/peers/conv_torch.py --device cuda --precision tf32     # fp32 (default), tf32 or bf16 on a GPU
"""
import argparse
import time

import torch


def best_ms(fn, repeat, sync=lambda: None):
    fn()  # warm-up (and oneDNN primitive creation / cuDNN algorithm choice)
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                        help="on cuda: fp32 (TF32 off), tf32 (cuDNN's TF32 tensor cores) or bf16 (bfloat16 tensors)")
    args = parser.parse_args()
    if args.device != "cuda" and args.precision != "fp32":
        raise SystemExit("--precision tf32/bf16 needs --device cuda")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    sync = lambda: None
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        sync = torch.cuda.synchronize
    conv = torch.nn.Conv2d(64, 64, 5, padding=2).to(args.device, dtype).to(memory_format=torch.channels_last)
    x = torch.randn(32, 64, 32, 32).to(args.device, dtype).to(memory_format=torch.channels_last).requires_grad_(True)
    dy = torch.randn(32, 64, 32, 32).to(args.device, dtype).to(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad():
            conv(x)

    def forward_backward():
        conv.zero_grad(set_to_none=False)
        x.grad = None
        conv(x).backward(dy)

    where = f"{torch.cuda.get_device_name()} {args.precision} " if args.device == "cuda" else ""
    print(f"{where}forward_ms={best_ms(forward, args.repeat, sync):.3f} "
          f"forward_backward_ms={best_ms(forward_backward, args.repeat, sync):.3f}")


if __name__ == "__main__":
    main()
