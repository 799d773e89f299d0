# SPDX-License-Identifier: MIT
"""What the graph-model peer scripts share (egnn_torch.py, segnn_torch.py): the device and mode flags, a random batch
of N-body systems, the batched complete graph's edge lists, the result line, and the timing loop — a training step run eagerly or, on a GPU with mode "graph", captured once as a CUDA graph and
replayed; steps queue freely and the device is waited for every 50 steps; then the forward pass alone without
gradients. Also: how many threads the OpenBLAS under PyTorch runs its matrix products on (every peer script
reports it)."""
import ctypes
import time

import torch


def blas_threads():
    """The thread count of the OpenBLAS this process has loaded (PyTorch's CPU matrix products run on it where
    PyTorch was built against the system BLAS, as Debian's is), or 0 where none is loaded. torch.set_num_threads does
    not set it: Debian's OpenBLAS (pthreads) starts one thread per core unless OPENBLAS_NUM_THREADS (or
    GOTO_NUM_THREADS, OMP_NUM_THREADS) says otherwise, so a "1-thread" PyTorch still multiplies matrices on every
    core."""
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line and ".so" in line})
    for path in paths:
        try:
            get = ctypes.CDLL(path).openblas_get_num_threads
        except (OSError, AttributeError):
            continue
        get.restype = ctypes.c_int
        return int(get())
    return 0


def add_run_flags(parser):
    """--threads, --batch, --seconds, --device, --mode."""
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--mode", choices=("eager", "graph", "compile"), default="eager",
                        help="graph: the whole step captured in a CUDA graph (cuda only); compile: torch.compile")


def start(a):
    """Checks the mode against the device and PyTorch, sets the thread count and seed 0; returns the device."""
    if a.mode == "graph" and a.device != "cuda":
        raise SystemExit("--mode graph needs --device cuda")
    if a.mode == "compile" and not hasattr(torch, "compile"):
        raise SystemExit(f"--mode compile needs PyTorch 2 (this is {torch.__version__})")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return torch.device(a.device)


def random_nbody(batch, nodes, device):
    """(x, v, |v|, charges): standard normal positions, velocities of scale 0.5, charges +-1, [batch nodes, .]."""
    x = torch.randn(batch * nodes, 3).to(device)
    v = (0.5 * torch.randn(batch * nodes, 3)).to(device)
    q = (torch.randint(0, 2, (batch * nodes, 1)).float() * 2 - 1).to(device)
    return x, v, v.norm(dim=1, keepdim=True), q


def report(a, model, step_ms, forward_ms, steps_per_second):
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"threads={a.threads} blas_threads={blas_threads()}"
    print(f"{where} mode={a.mode} batch={a.batch} parameters={sum(p.numel() for p in model.parameters())} "
          f"forward_ms={forward_ms:.3f} train_step_ms={step_ms:.3f} "
          f"samples_per_second={a.batch * steps_per_second:.0f}")


def complete_edges(nodes, batch):
    """(rows, cols): every ordered pair i != j of each of `batch` graphs of `nodes` nodes, graph-major."""
    rows, cols = [], []
    for b in range(batch):
        for i in range(nodes):
            for j in range(nodes):
                if i != j:
                    rows.append(b * nodes + i)
                    cols.append(b * nodes + j)
    return torch.tensor(rows), torch.tensor(cols)


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
