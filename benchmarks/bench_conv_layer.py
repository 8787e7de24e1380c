"""One conv CPL layer, forward + backward: the levers of the convolution path, one by one.

Run:  PYTHONPATH=. python benchmarks/bench_conv_layer.py [--batch 64] [--channels 45] [--torch]

Times ``x - h K^T relu(K x + b)`` with its gradient (w.r.t. x, K, b) on a
batch x 32 x 32 x channels input, 3x3 kernel, SAME padding, for each formulation,
alone and (Winograd and direct NHWC) inside a 4-layer ``lax.scan`` (per layer), and prints GFLOP/s counting
the 6 direct convolutions' FLOPs (so Winograd's lower count shows as a higher
figure):

- ``direct NHWC`` / ``direct NCHW``: XLA convolutions, differentiated by JAX;
- ``... +pad16``: channels zero-padded to a multiple of 16 inside the layer (exact);
- ``winograd``: :mod:`lipjax.ops.winograd`, F(4x4, 3x3) in float32 (``algorithm="winograd"``);
- ``winograd, chunks of 16``: the same layer over batch chunks of 16 images
  (:func:`lipjax.ops.map_batch_chunks`, what ``algorithm="auto"`` does on CPU), so that its
  transformed tiles (6.6 MB at 45 channels) stay in the L3 cache;
- ``winograd F(2x2), chunks of 16``: the same with F(2x2, 3x3) tiles (11.8 MB), the previous default;
- ``im2col``: each convolution as one matmul of the 9 shifted copies of its input
  (``(N H W, 9 C) @ (9 C, O)``), differentiated by JAX;
- ``--torch``: the same layer in PyTorch (``conv2d`` / ``conv_transpose2d``), same process.

``--diagnose`` first prints where the time of these formulations goes on the host: the
streaming bandwidth of an elementwise op on an array that fits the cache and on one that does
not, the cost of materializing 9 shifted copies (im2col's patches), and Winograd's batched
matmul ``16 x (M, C) @ (C, C)`` at a size that fits the cache and at the layer's size.

Each figure is the fastest of ``--reps`` runs after a warm-up: the machine's
other load inflates medians more than minima. Figures vary by host and versions.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
from bench_common import fastest, machine
from jax import lax

from lipjax import ops
from lipjax.ops import winograd as winograd_ops

SIZE = 32


def _pad_to(c: int, multiple: int) -> int:
    return -(-c // multiple) * multiple


def direct(layout: str, pad16: bool):
    """CPL with XLA convolutions in ``layout``; optionally channel-padded to a multiple of 16."""
    spec = ("NHWC", "HWIO", "NHWC") if layout == "NHWC" else ("NCHW", "HWIO", "NCHW")
    axis = 3 if layout == "NHWC" else 1

    def conv(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=spec)

    def layer(x, k, b):
        c = x.shape[axis]
        if pad16:
            extra = _pad_to(c, 16) - c
            widths = [(0, 0)] * 4
            widths[axis] = (0, extra)
            x, k, b = (
                jnp.pad(x, widths),
                jnp.pad(k, ((0, 0), (0, 0), (0, extra), (0, extra))),
                jnp.pad(b, (0, extra)),
            )
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        pre = jax.nn.relu(conv(x, k) + b.reshape(shape))
        adjoint = jax.vjp(lambda z: conv(z, k), x)[1](pre)[0]
        out = x - 0.5 * adjoint
        return lax.slice_in_dim(out, 0, c, axis=axis) if pad16 else out

    return layer


def winograd(x, k, b):
    return ops.convex_potential_conv(x, k, b, 0.5, algorithm="winograd")


def winograd_in_chunks(x, k, b):
    return ops.map_batch_chunks(winograd, x, k, b, size=16)


def _same_f2x2(x, k):
    """SAME 3x3 correlation by Winograd F(2x2, 3x3), the tile lipjax used before F(4x4, 3x3)."""
    return winograd_ops.correlate3x3_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, tile=2)


def winograd_f2x2_in_chunks(x, k, b):
    def layer(x, k, b):
        pre = jax.nn.relu(_same_f2x2(x, k) + b)
        return x - 0.5 * _same_f2x2(pre, jnp.flip(k, (0, 1)).swapaxes(2, 3))

    return ops.map_batch_chunks(layer, x, k, b, size=16)


def _im2col_conv(x, k):
    """SAME 3x3 correlation as one matmul of the 9 shifted copies of ``x``."""
    n, h, w, c = x.shape
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([p[:, a : a + h, b : b + w, :] for a in range(3) for b in range(3)], -1)
    return patches @ k.reshape(9 * c, -1)


def im2col(x, k, b):
    pre = jax.nn.relu(_im2col_conv(x, k) + b)
    return x - 0.5 * _im2col_conv(pre, jnp.flip(k, (0, 1)).swapaxes(2, 3))


def time_jax(name, layer, nchw: bool, in_scan: bool, batch: int, channels: int, reps: int, flops: float):
    key = jax.random.key(0)
    shape = (batch, channels, SIZE, SIZE) if nchw else (batch, SIZE, SIZE, channels)
    x = jax.random.normal(key, shape)
    k = 0.05 * jax.random.normal(jax.random.key(1), (3, 3, channels, channels))
    b = jnp.zeros(channels)
    weights = jax.random.normal(jax.random.key(2), shape)

    def loss(x, k, b, w):
        return jnp.vdot(layer(x, k, b), w)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))

    def scanned(x, ks, b, w):
        out, _ = lax.scan(lambda c, kk: (layer(c, kk, b), None), x, ks)
        return jnp.vdot(out, w)

    scan_grad = jax.jit(jax.grad(scanned, argnums=(0, 1, 2)))
    forward_fn = jax.jit(layer)
    forward = fastest(lambda: jax.block_until_ready(forward_fn(x, k, b)), reps)
    both = fastest(lambda: jax.block_until_ready(grad(x, k, b, weights)), reps)
    line = f"{name:<24} fwd {forward * 1e3:6.0f} ms | fwd+bwd {both * 1e3:6.0f} ms, "
    line += f"{flops / both / 1e9:5.0f} GFLOP/s"
    if in_scan:
        kernels = jnp.stack([k] * 4)
        scanned_s = fastest(lambda: jax.block_until_ready(scan_grad(x, kernels, b, weights)), 1) / 4
        line += f" | in scan {scanned_s * 1e3:6.0f} ms/layer, {flops / scanned_s / 1e9:5.0f} GFLOP/s"
    print(line, flush=True)


def diagnose(batch: int, channels: int, reps: int) -> None:
    """Prints the host's streaming bandwidth in and out of cache, the cost of im2col's patches and
    Winograd's batched matmul in and out of cache (see the module docstring)."""

    def seconds(fn, *args):
        jitted = jax.jit(fn)
        return fastest(lambda: jax.block_until_ready(jitted(*args)), reps)

    small = jnp.ones((batch, SIZE, SIZE, channels))
    large = jnp.ones((9, *small.shape))
    for name, array in (("layer input", small), ("9x layer input", large)):
        t = seconds(lambda a: a * 2, array)
        rate = 2 * array.nbytes / t / 1e9
        print(f"elementwise a * 2 on the {name} ({array.nbytes / 1e6:.0f} MB): {rate:.1f} GB/s")
    t = seconds(lambda a: jnp.concatenate([a * (i + 1) for i in range(9)], -1), small)
    print(f"9 shifted copies (im2col patches, {large.nbytes / 1e6:.0f} MB): {t * 1e3:.0f} ms")
    kernel = jnp.ones((16, channels, channels))
    for tiles in (4096, batch * (SIZE // 2) ** 2):
        v = jnp.ones((16, tiles, channels))
        t = seconds(lambda v, u: v @ u, v, kernel)
        print(
            f"Winograd batched matmul 16 x ({tiles}, {channels}) @ ({channels}, {channels}), "
            f"{v.nbytes / 1e6:.0f} MB of tiles: {2 * 16 * tiles * channels**2 / t / 1e9:.0f} GFLOP/s"
        )


def time_torch(batch: int, channels: int, reps: int, flops: float) -> None:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.randn(batch, channels, SIZE, SIZE, requires_grad=True)
    k = (0.05 * torch.randn(channels, channels, 3, 3)).requires_grad_()
    b = torch.zeros(channels, requires_grad=True)
    weights = torch.randn_like(x)

    def step():
        pre = F.relu(F.conv2d(x, k, b, padding=1))
        ((x - 0.5 * F.conv_transpose2d(pre, k, padding=1)) * weights).sum().backward()

    t = fastest(step, reps)
    print(
        f"{'PyTorch ' + torch.__version__:<24} fwd+bwd {t * 1e3:6.0f} ms, {flops / t / 1e9:5.0f} GFLOP/s",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=45)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--torch", action="store_true")
    parser.add_argument("--diagnose", action="store_true", help="bandwidth and matmul lines first")
    parser.add_argument("--variants", nargs="*", help="names of the formulations to time (default: all)")
    args = parser.parse_args(argv)
    flops = 6 * 2 * args.batch * SIZE * SIZE * 9 * args.channels**2
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    print(
        f"layer: {args.batch}x{SIZE}x{SIZE}x{args.channels}, 3x3 SAME, "
        f"{flops / 1e9:.1f} GFLOP (6 direct convs)"
    )
    if args.diagnose:
        diagnose(args.batch, args.channels, args.reps)
    # (name, layer, NCHW?, also inside scan?): one direct variant in scan, where the others cost minutes
    variants = [
        ("winograd", winograd, False, True),
        ("winograd, chunks of 16", winograd_in_chunks, False, True),
        ("winograd F(2x2), chunks of 16", winograd_f2x2_in_chunks, False, True),
        ("im2col", im2col, False, True),
        ("direct NHWC", direct("NHWC", False), False, True),
        ("direct NHWC +pad16", direct("NHWC", True), False, False),
        ("direct NCHW", direct("NCHW", False), True, False),
        ("direct NCHW +pad16", direct("NCHW", True), True, False),
    ]
    for name, layer, nchw, in_scan in variants:
        if args.variants and name not in args.variants:
            continue
        time_jax(name, layer, nchw, in_scan, args.batch, args.channels, args.reps, flops)
    if args.torch:
        time_torch(args.batch, args.channels, args.reps, flops)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
