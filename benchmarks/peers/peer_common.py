# SPDX-License-Identifier: MIT
"""The timing loop the model peer scripts share (egnn_torch.py, segnn_torch.py): a training step run eagerly or, on a
GPU with mode "graph", captured once as a CUDA graph and replayed; steps queue freely and the device is waited for
every 50 steps; then the forward pass alone without gradients."""
import time

import torch


def time_step_and_forward(step, forward, device, mode, seconds, warmup=5):
    """Returns (training step ms, forward ms, steps per second)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    run = step
    if mode == "graph":  # warm up on a side stream, then capture forward, loss, backward and the optimiser once
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    for _ in range(warmup):
        run()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        steps += 1
        if steps % 50 == 0:
            sync()
    sync()
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        for _ in range(3):
            forward()
        sync()
        fsteps, fstart = 0, time.perf_counter()
        while time.perf_counter() - fstart < seconds / 3:
            forward()
            fsteps += 1
        sync()
        felapsed = time.perf_counter() - fstart
    return 1e3 * elapsed / steps, 1e3 * felapsed / fsteps, steps / elapsed
