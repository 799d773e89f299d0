#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The N-body EGNN (velocity variant) in PyTorch, written the way the reference research code writes it
(E_GCL_vel: index_select of h[row], h[col], concatenation, scatter-add/mean aggregation), at the shapes of
benchmarks/nn/bench_egnn.cpp: 5 particles, complete graph (20 edges), hidden 64, 4 layers, batch 100, float32.
Times the forward pass and one training step (forward, MSE, backward, Adam); prints them and samples per second.
On a GPU (--device cuda) the step runs eagerly, as one captured CUDA graph replayed (static inputs, Adam with
capturable=True), or through torch.compile (--mode eager|graph|compile).

  /usr/bin/python3 benchmarks/peers/egnn_torch.py --threads 1
  python3 benchmarks/peers/egnn_torch.py --device cuda --mode graph --batch 1000
  build/release/benchmarks/egnn_export /tmp/egnn && /usr/bin/python3 benchmarks/peers/egnn_torch.py --check /tmp/egnn
"""
import argparse
import pathlib

import torch
from torch import nn

from peer_common import add_run_flags, complete_edges, random_nbody, report, start, time_step_and_forward


class EGCLVel(nn.Module):
    def __init__(self, hidden, edge_features):
        super().__init__()
        act = nn.SiLU()
        self.edge_mlp = nn.Sequential(nn.Linear(2 * hidden + 1 + edge_features, hidden), act,
                                      nn.Linear(hidden, hidden), act)
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), act, nn.Linear(hidden, hidden))
        last = nn.Linear(hidden, 1, bias=False)
        nn.init.xavier_uniform_(last.weight, gain=0.001)
        self.coord_mlp = nn.Sequential(nn.Linear(hidden, hidden), act, last)
        self.coord_mlp_vel = nn.Sequential(nn.Linear(hidden, hidden), act, nn.Linear(hidden, 1))

    def forward(self, h, edges, x, v, edge_attr):
        row, col = edges
        diff = x[row] - x[col]
        radial = (diff ** 2).sum(1, keepdim=True)
        m = self.edge_mlp(torch.cat([h[row], h[col], radial, edge_attr], dim=1))
        trans = torch.clamp(diff * self.coord_mlp(m), min=-100, max=100)
        count = torch.zeros(x.size(0), 1, device=x.device).index_add_(
            0, row, torch.ones(row.size(0), 1, device=x.device)).clamp(min=1)
        x = x + torch.zeros_like(x).index_add_(0, row, trans) / count
        x = x + self.coord_mlp_vel(h) * v
        agg = torch.zeros(h.size(0), m.size(1), device=h.device).index_add_(0, row, m)
        h = h + self.node_mlp(torch.cat([h, agg], dim=1))
        return h, x


class EGNNVel(nn.Module):
    def __init__(self, hidden=64, layers=4, edge_features=2):
        super().__init__()
        self.embedding = nn.Linear(1, hidden)
        self.layers = nn.ModuleList([EGCLVel(hidden, edge_features) for _ in range(layers)])

    def forward(self, h, x, edges, v, edge_attr):
        h = self.embedding(h)
        for layer in self.layers:
            h, x = layer(h, edges, x, v, edge_attr)
        return x


def check(directory):
    """Loads the parameters and batch written by egnn_export (benchmarks/peers/egnn_export.cpp) into this model, in
    double precision, and compares the predictions, the loss and every parameter gradient with ace's."""
    import numpy as np
    d = pathlib.Path(directory)
    load = lambda name: torch.from_numpy(np.load(d / name))
    torch.set_default_dtype(torch.float64)
    model = EGNNVel(64, 4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(load(f"param.{name}.npy").reshape(p.shape))
    h, x, v, edge_attr, target = (load(f"{n}.npy") for n in ("h", "x", "v", "edge_attr", "target"))
    edges = complete_edges(5, x.shape[0] // 5)
    prediction = model(h, x, edges, v, edge_attr)
    loss = ((prediction - target) ** 2).mean()
    loss.backward()
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))
    # the last layer's node MLP never reaches the output: PyTorch leaves its gradient None, ace leaves it 0
    grad = lambda p: p.grad if p.grad is not None else torch.zeros_like(p)
    worst_grad = max(float((load(f"grad.{n}.npy").reshape(p.shape) - grad(p)).abs().max()) /
                     max(float(grad(p).abs().max()), 1e-12) for n, p in model.named_parameters())
    report = {"prediction": rel(load("prediction.npy"), prediction), "loss": rel(load("loss.npy"), loss.reshape(1)),
              "gradients": worst_grad}
    print(" ".join(f"{k}_max_relative_difference={v:.3g}" for k, v in report.items()))
    return max(report.values()) < 1e-10


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--check", metavar="DIR", help="compare with ace's EGNN exported by egnn_export DIR, then exit")
    add_run_flags(p)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    a = p.parse_args()
    if a.check:
        raise SystemExit(0 if check(a.check) else 1)
    dev = start(a)
    n = 5
    model = EGNNVel(a.hidden, a.layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=1e-12,
                           **({"capturable": True} if a.mode == "graph" else {}))
    edges = tuple(e.to(dev) for e in complete_edges(n, a.batch))
    x, v, h, q = random_nbody(a.batch, n, dev)
    edge_attr = torch.cat([q[edges[0]] * q[edges[1]], ((x[edges[0]] - x[edges[1]]) ** 2).sum(1, keepdim=True)], 1)
    target = x + v
    net = torch.compile(model) if a.mode == "compile" else model

    def step():
        opt.zero_grad(set_to_none=a.mode != "graph")
        loss = ((net(h, x, edges, v, edge_attr) - target) ** 2).mean()
        loss.backward()
        opt.step()

    report(a, model, *time_step_and_forward(step, lambda: net(h, x, edges, v, edge_attr), a.device, a.mode,
                                            a.seconds, warmup=5))

if __name__ == "__main__":
    main()
