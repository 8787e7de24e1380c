"""A plain PyTorch CPL-S train step, the baseline of ``bench_cpl.py --torch``.

Written for this benchmark from Algorithm 1 of Meunier et al. (2022) with the
structure of the official implementation: one power-iteration step per layer per
training step on a persistent vector, ``h = 2 / sigma^2``, ``conv_transpose2d``
for ``W^T``, zero channel padding, a 4x4 average pool with divisor 4, dense CPLs
on the flattened features, a normalised last layer, Adam and
``multi_margin_loss(margin=0.7)``. Requires ``pip install torch``.
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from torch import nn


class ConvCPL(nn.Module):
    def __init__(self, channels: int, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(channels))
        u = torch.randn(1, channels, size, size)
        self.register_buffer("u", u / u.norm())

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                v = F.conv2d(self.u, self.weight, padding=1)
                v = v / v.norm()
                u = F.conv_transpose2d(v, self.weight, padding=1)
                self.u.copy_(u / u.norm())
        sigma = F.conv2d(self.u, self.weight, padding=1).norm()
        h = 2.0 / sigma**2
        activation = F.relu(F.conv2d(x, self.weight, self.bias, padding=1))
        return x - h * F.conv_transpose2d(activation, self.weight, padding=1)


class DenseCPL(nn.Module):
    def __init__(self, dim: int, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features, dim))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("u", F.normalize(torch.randn(1, dim)))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                v = F.normalize(self.u @ self.weight.T)
                self.u.copy_(F.normalize(v @ self.weight))
        sigma = (self.u @ self.weight.T).norm()
        return x - (2.0 / sigma**2) * (F.relu(F.linear(x, self.weight, self.bias)) @ self.weight)


class CPLS(nn.Module):
    def __init__(self, channels=45, conv_layers=20, linear_layers=7, features=2048, classes=10):
        super().__init__()
        self.channels = channels
        self.convs = nn.Sequential(*[ConvCPL(channels, 32) for _ in range(conv_layers)])
        dim = channels * 8 * 8
        self.dense = nn.Sequential(*[DenseCPL(dim, features) for _ in range(linear_layers)])
        self.head = nn.Parameter(torch.randn(classes, dim) / dim**0.5)

    def forward(self, x):
        x = F.pad(x, (0, 0, 0, 0, 0, self.channels - x.shape[1]))
        x = self.convs(x)
        x = F.avg_pool2d(x, 4, divisor_override=4).flatten(1)
        x = self.dense(x)
        return x @ F.normalize(self.head, dim=1).T


def cpl_s_step(batch: int, steps: int) -> float:
    """Images per second of CPL-S train steps on this CPU (after one warm-up step)."""
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = CPLS().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad()
        loss = F.multi_margin_loss(model(x), y, margin=0.7)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)
