#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""SEGNN in the ACE paper's N-body configuration in plain PyTorch, at the shapes of benchmarks/nn/bench_segnn.cpp:
hidden 32x0e + 32x1o, attributes Y^{<=1} (1x0e + 1x1o), 4 layers, 5 particles, complete graph, batch 100, float32,
147 424 parameters (printed: the count of the authors' model). Features are kept as a scalar block [N, m] and a
vector block [N, m, 3]; each weighted tensor product forms its Clebsch-Gordan products per path (for l <= 1: products
with the attribute's scalar, the attribute's vector, and the dot product / sqrt(3)) and multiplies them by its
weights, the swish gate normalises SiLU and sigmoid to unit second moment. The e3nn library the authors use is not
installable here (no network); this is the same model and arithmetic, written with PyTorch tensors.
Times the forward pass and one training step (forward, MSE, backward, Adam 9e-4) and prints them.

  /usr/bin/python3 benchmarks/peers/segnn_torch.py --threads 1
  python3 benchmarks/peers/segnn_torch.py --device cuda --mode graph
"""
import argparse
import math

import torch
from torch import nn

from peer_common import add_run_flags, complete_edges, random_nbody, report, start, time_step_and_forward

C_SILU, C_SIGMOID = 1.676532470331178, 1.8462285453386738  # (E[f(z)^2])^(-1/2), z ~ N(0, 1)


class TensorProduct(nn.Module):
    """Fully connected tensor product of feature blocks (scalar [N, m] and vector [N, m, 3] blocks) with attributes
    (a0 [N], a1 [N, 3]) onto n0 scalars and n1 vectors; U(-1/sqrt(K), 1/sqrt(K)) weights, biases on the scalars."""

    def __init__(self, blocks, n0, n1):
        super().__init__()
        k = sum(m for _, m in blocks)  # every block reaches both output irreps once (l <= 1, Y^{<=1})
        bound = 1 / math.sqrt(k)
        self.w0 = nn.Parameter(torch.empty(k, n0).uniform_(-bound, bound)) if n0 else None
        self.b0 = nn.Parameter(torch.empty(n0).uniform_(-bound, bound)) if n0 else None
        self.w1 = nn.Parameter(torch.empty(k, n1).uniform_(-bound, bound)) if n1 else None

    def forward(self, blocks, a0, a1):
        out0 = out1 = None
        if self.w0 is not None:  # 0e x 0e -> 0e, 1o x 1o -> 0e
            z0 = torch.cat([b * a0[:, None] if b.dim() == 2 else (b * a1[:, None, :]).sum(-1) / math.sqrt(3)
                            for b in blocks], 1)
            out0 = z0 @ self.w0 + self.b0
        if self.w1 is not None:  # 0e x 1o -> 1o, 1o x 0e -> 1o
            z1 = torch.cat([b[:, :, None] * a1[:, None, :] if b.dim() == 2 else b * a0[:, None, None]
                            for b in blocks], 1)
            n, k, _ = z1.shape  # one GEMM for the three components: [n 3, k] x [k, w]
            out1 = (z1.transpose(1, 2).reshape(n * 3, k) @ self.w1).reshape(n, 3, -1).transpose(1, 2)
        return out0, out1


class GatedTensorProduct(nn.Module):
    """The tensor product onto m scalars + m gates and m vectors, then the swish gate: m scalars and m vectors."""

    def __init__(self, blocks, m):
        super().__init__()
        self.m = m
        self.tp = TensorProduct(blocks, 2 * m, m)

    def forward(self, blocks, a0, a1):
        s, v = self.tp(blocks, a0, a1)
        return C_SILU * nn.functional.silu(s[:, :self.m]), v * (C_SIGMOID * torch.sigmoid(s[:, self.m:]))[:, :, None]


class SEGNN(nn.Module):
    def __init__(self, m=32, layers=4):
        super().__init__()
        self.embedding = TensorProduct([("v", 2), ("s", 1)], m, m)
        hidden = [("s", m), ("v", m)]
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleList([GatedTensorProduct(hidden + hidden + [("s", 2)], m),
                                              GatedTensorProduct(hidden, m), GatedTensorProduct(hidden + hidden, m),
                                              TensorProduct(hidden, m, m)]))
        self.head1 = GatedTensorProduct(hidden, m)
        self.head2 = TensorProduct(hidden, 0, 1)

    def forward(self, x, v, h, q, row, col, nodes):
        n = x.shape[0]
        y0, y1 = 0.5 / math.sqrt(math.pi), math.sqrt(3 / (4 * math.pi))  # "integral" normalisation
        rel = x[col] - x[row]
        dist = rel.norm(dim=1, keepdim=True)
        e0 = torch.full((rel.shape[0],), y0, device=x.device)
        e1 = y1 * rel / dist.clamp(min=1e-12)
        degree = torch.zeros(n, device=x.device).index_add_(0, row, torch.ones_like(e0))
        n1 = torch.zeros_like(x).index_add_(0, row, e1) / degree[:, None] + y1 * v / v.norm(dim=1, keepdim=True)
        n0 = torch.ones(n, device=x.device)  # the 0e entry set to 1
        centered = x - x.view(-1, nodes, 3).mean(1).repeat_interleave(nodes, 0)
        s, vec = self.embedding([torch.stack([centered, v], 1), h], n0, n1)
        scalars = torch.cat([dist, q[row] * q[col]], 1)
        for message1, message2, update1, update2 in self.layers:
            ms, mv = message1([s[row], vec[row], s[col], vec[col], scalars], e0, e1)
            ms, mv = message2([ms, mv], e0, e1)
            agg_s = torch.zeros_like(s).index_add_(0, row, ms)
            agg_v = torch.zeros_like(vec).index_add_(0, row, mv)
            us, uv = update1([s, vec, agg_s, agg_v], n0, n1)
            us, uv = update2([us, uv], n0, n1)
            s, vec = s + us, vec + uv
        s, vec = self.head1([s, vec], n0, n1)
        return x + self.head2([s, vec], n0, n1)[1][:, 0, :]


def main():
    p = argparse.ArgumentParser()
    add_run_flags(p)
    a = p.parse_args()
    dev = start(a)
    n = 5
    model = SEGNN().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=9e-4, **({"capturable": True} if a.mode == "graph" else {}))
    row, col = (e.to(dev) for e in complete_edges(n, a.batch))
    x, v, h, q = random_nbody(a.batch, n, dev)
    target = x + v
    net = torch.compile(model) if a.mode == "compile" else model

    def step():
        opt.zero_grad(set_to_none=a.mode != "graph")
        loss = ((net(x, v, h, q, row, col, n) - target) ** 2).mean()
        loss.backward()
        opt.step()

    report(a, model, *time_step_and_forward(step, lambda: net(x, v, h, q, row, col, n), a.device, a.mode, a.seconds,
                                            warmup=3))

if __name__ == "__main__":
    main()
