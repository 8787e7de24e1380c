"""Convex Potential Layers (Meunier et al., 2022): ``z = x - (2/||W||^2) W^T sigma(W x + b)``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.base import (
    LipschitzLayer,
    PowerIterationMixin,
    check_conv_geometry,
    check_input,
    check_positive,
)
from lipjax.layers.kinds import (
    ExportKind,
    Record,
    conv_kernel_bound,
    conv_operator,
    dense_kernel_bound,
    dense_operator,
    padding_from_json,
    padding_to_json,
    register,
    residual_rounding,
)
from lipjax.ops.conv import PaddingLike, check_algorithm
from lipjax.ops.convex_potential import convex_potential_lipschitz
from lipjax.ops.spectral_bounds import with_rounding_slack


def _cpl_bound(kernel_bound):
    """``max(1, h ||W||^2 - 1)`` with the exported step ``h`` and a certified ``||W||`` bound."""

    def bound(arrays, config, input_shape):
        norm = kernel_bound(arrays, config, input_shape)
        return with_rounding_slack(convex_potential_lipschitz(arrays["scale"], norm))

    return bound


CONVEX_POTENTIAL_DENSE = register(
    ExportKind(
        "convex_potential_dense",
        apply=lambda x, a, c: ops.convex_potential_dense(
            x, a["kernel"], a["bias"], a["scale"], c["activation"]
        ),
        lipschitz=_cpl_bound(dense_kernel_bound),
        arrays=("kernel", "bias", "scale"),
        config=("activation",),
        rounding=residual_rounding(dense_operator, _cpl_bound(dense_kernel_bound), scale_first=False),
    )
)

CONVEX_POTENTIAL_CONV = register(
    ExportKind(
        "convex_potential_conv",
        apply=lambda x, a, c: ops.convex_potential_conv(
            x, a["kernel"], a["bias"], a["scale"], c["strides"], padding_from_json(c), c["activation"]
        ),
        lipschitz=_cpl_bound(conv_kernel_bound),
        arrays=("kernel", "bias", "scale"),
        config=("strides", "padding", "activation"),
        rounding=residual_rounding(conv_operator, _cpl_bound(conv_kernel_bound), scale_first=False),
    )
)


def _scale(sigma, eps: float):
    return 2.0 / (sigma**2 + eps)


def _exported_scale(step: float | None, bound: float) -> np.float32:
    """The normalised step (``step is None``), or the relaxed layer's fixed step as is:
    its export then certifies ``max(1, h ||W||^2 - 1)``, which may exceed 1."""
    return certified_scale(bound) if step is None else np.float32(step)


def _check_step(step: float | None, layer: str) -> None:
    if step is not None:
        check_positive("step", step, layer)
        if not np.isfinite(step):
            raise ValueError(f"{layer}: step must be finite; got {step!r}")


def certified_scale(bound: float) -> np.float32:
    """The exported step ``h = 2 / bound^2``, rounded *down* to float32 so that
    ``h bound^2 <= 2`` still holds after rounding."""
    exact = 2.0 / float(bound) ** 2
    h = np.float32(exact)
    return np.nextafter(h, np.float32(0)) if float(h) > exact else h


class ConvexPotentialDense(LipschitzLayer, PowerIterationMixin):
    """Dense Convex Potential Layer, 1-Lipschitz in l2; output size = input size.

    ``z = x - h W^T sigma(W x + b)``, ``h = 2 / (||W||_2^2 + eps)``, with
    ``W in R^{features x d}``. ``||W||_2`` is estimated by power iteration
    (Algorithm 1) during training; export replaces it by a guaranteed upper
    bound, so the exported layer is provably 1-Lipschitz.

    Attributes:
      features: rows of ``W`` (the width of the hidden potential).
      activation: a monotone, 1-Lipschitz activation name (``lipjax.ops.ACTIVATIONS``).
      power_iters: power-iteration steps per training update.
      eps: the paper's guard against a zero norm.
      step: ``None`` (the normalised layer), or a fixed step ``h`` (the relaxed layer of
        the paper's appendix D.2: no power iteration, Lipschitz ``max(1, h ||W||^2 - 1)``,
        which export certifies from a guaranteed bound of ``||W||`` and which may exceed 1).
    """

    features: int
    activation: str = "relu"
    power_iters: int = 1
    eps: float = 1e-6
    step: float | None = None
    kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()

    def __post_init__(self):
        check_positive("features", self.features, "ConvexPotentialDense")
        check_positive("power_iters", self.power_iters, "ConvexPotentialDense", allow_zero=True)
        check_positive("eps", self.eps, "ConvexPotentialDense")
        _check_step(self.step, "ConvexPotentialDense")
        ops.get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, "ConvexPotentialDense")
        d = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (d, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.step is None:
            sigma = self.spectral_estimate(ops.dense_operator, kernel, (d,), self.power_iters, update_stats)
            scale = _scale(sigma, self.eps)
        else:
            scale = jnp.asarray(self.step, x.dtype)
        return ops.convex_potential_dense(x, kernel, bias, scale, self.activation)

    def export_record(self, params, input_shape) -> Record:
        kernel = np.asarray(params["kernel"])
        bound = ops.dense_spectral_norm_bound(kernel)
        return CONVEX_POTENTIAL_DENSE.record(
            {"activation": self.activation},
            kernel=kernel,
            bias=params["bias"],
            scale=_exported_scale(self.step, bound),
        )


class ConvexPotentialConv(LipschitzLayer, PowerIterationMixin):
    """Convolutional Convex Potential Layer on NHWC images; output shape = input shape.

    ``z = x - h K^T sigma(K x + b)`` where ``K`` is the convolution with
    ``features`` output channels, this ``kernel_size``, ``strides`` and
    ``padding``, and ``K^T`` its exact adjoint. The power iteration runs on the
    layer's real input size with the same stride and padding. ``algorithm``
    (:data:`lipjax.ops.conv.ALGORITHMS`) is how training computes the two
    convolutions; the export always certifies the direct convolution. ``step``: as in
    :class:`ConvexPotentialDense` (a fixed step makes the relaxed layer of appendix D.2).
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: PaddingLike = "SAME"
    activation: str = "relu"
    power_iters: int = 1
    eps: float = 1e-6
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    algorithm: str = "auto"
    step: float | None = None

    def __post_init__(self):
        layer = "ConvexPotentialConv"
        check_algorithm(self.algorithm, layer)
        check_positive("features", self.features, layer)
        check_positive("power_iters", self.power_iters, layer, allow_zero=True)
        check_positive("eps", self.eps, layer)
        _check_step(self.step, layer)
        check_conv_geometry(self.kernel_size, self.strides, self.padding, layer)
        ops.get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "ConvexPotentialConv")
        cin = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        operator = partial(
            ops.conv_operator,
            input_shape=x.shape[1:],
            strides=self.strides,
            padding=self.padding,
            algorithm=self.algorithm,
        )
        if self.step is None:
            sigma = self.spectral_estimate(operator, kernel, x.shape[1:], self.power_iters, update_stats)
            scale = _scale(sigma, self.eps)
        else:
            scale = jnp.asarray(self.step, x.dtype)
        return ops.convex_potential_conv(
            x, kernel, bias, scale, self.strides, self.padding, self.activation, self.algorithm
        )

    def export_record(self, params, input_shape) -> Record:
        kernel = np.asarray(params["kernel"])
        bound = ops.conv_spectral_norm_bound(kernel, input_shape[:2], self.strides, self.padding)
        config = {
            "strides": list(self.strides),
            "padding": padding_to_json(self.padding),
            "activation": self.activation,
        }
        return CONVEX_POTENTIAL_CONV.record(
            config, kernel=kernel, bias=params["bias"], scale=_exported_scale(self.step, bound)
        )
