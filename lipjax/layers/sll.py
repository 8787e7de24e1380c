"""SDP-based Lipschitz layers (SLL, Araujo et al., 2023): ``y = x - 2 W T^{-1} sigma(W^T x + b)``.

The maths and the proof that the layer is 1-Lipschitz are in :mod:`lipjax.ops.sll`.
Training computes ``T`` from the kernel and ``q = exp(p)`` (positive by
construction); export stores the step ``scale = 2 / t`` as an array, and the
certificate ``max(1, ||W diag(scale)^{1/2}||^2 - 1)`` is computed on the exported
arrays, so it holds for whatever ``scale`` the file contains.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lipjax.layers.base import LipschitzLayer, check_conv_geometry, check_input, check_positive
from lipjax.layers.kinds import (
    ExportKind,
    Record,
    conv_operator,
    dense_operator,
    padding_from_json,
    padding_to_json,
    register,
    residual_rounding,
)
from lipjax.ops import get_activation
from lipjax.ops import sll as sll_ops
from lipjax.ops.conv import PaddingLike, check_algorithm


def _sll_dense_bound(arrays, config, input_shape):
    return sll_ops.sll_dense_lipschitz_bound(arrays["kernel"], arrays["scale"])


def _sll_conv_bound(arrays, config, input_shape):
    return sll_ops.sll_conv_lipschitz_bound(
        arrays["kernel"], arrays["scale"], input_shape[:2], config["strides"], padding_from_json(config)
    )


SLL_DENSE = register(
    ExportKind(
        "sll_dense",
        apply=lambda x, a, c: sll_ops.sll_dense(x, a["kernel"], a["bias"], a["scale"], c["activation"]),
        lipschitz=_sll_dense_bound,
        arrays=("kernel", "bias", "scale"),
        config=("activation",),
        rounding=residual_rounding(dense_operator, _sll_dense_bound, scale_first=True),
    )
)

SLL_CONV = register(
    ExportKind(
        "sll_conv",
        apply=lambda x, a, c: sll_ops.sll_conv(
            x, a["kernel"], a["bias"], a["scale"], c["strides"], padding_from_json(c), c["activation"]
        ),
        lipschitz=_sll_conv_bound,
        arrays=("kernel", "bias", "scale"),
        config=("strides", "padding", "activation"),
        rounding=residual_rounding(conv_operator, _sll_conv_bound, scale_first=True),
    )
)


class SLLDense(LipschitzLayer):
    """Dense SLL, 1-Lipschitz in l2 (proof in :mod:`lipjax.ops.sll`); output size = input size.

    Attributes:
      features: width of the hidden layer (columns of ``W``).
      activation: a monotone 1-Lipschitz activation name.
    """

    features: int
    activation: str = "relu"
    kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()

    def __post_init__(self):
        check_positive("features", self.features, "SLLDense")
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, "SLLDense")
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        log_q = self.param("log_q", nn.initializers.zeros, (self.features,))
        scale = sll_ops.sll_dense_scale(kernel, jnp.exp(log_q))
        return sll_ops.sll_dense(x, kernel, bias, scale, self.activation)

    def export_record(self, params, input_shape) -> Record:
        kernel = jnp.asarray(params["kernel"])
        scale = sll_ops.sll_dense_scale(kernel, jnp.exp(jnp.asarray(params["log_q"])))
        return SLL_DENSE.record(
            {"activation": self.activation}, kernel=kernel, bias=params["bias"], scale=np.asarray(scale)
        )


class SLLConv(LipschitzLayer):
    """Convolutional SLL on NHWC images, ``x - C^T (2 / t) sigma(C x + b)``; output shape = input shape.

    Attributes:
      features: output channels of the inner convolution ``C``.
      kernel_size, strides, padding: of ``C`` (its exact adjoint is used, so any works).
      activation: a monotone 1-Lipschitz activation name.
      algorithm: how training computes the convolutions (:data:`lipjax.ops.conv.ALGORITHMS`);
        the export certifies the direct convolution.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: PaddingLike = "SAME"
    activation: str = "relu"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    algorithm: str = "auto"

    def __post_init__(self):
        check_positive("features", self.features, "SLLConv")
        check_algorithm(self.algorithm, "SLLConv")
        check_conv_geometry(self.kernel_size, self.strides, self.padding, "SLLConv")
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "SLLConv")
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        log_q = self.param("log_q", nn.initializers.zeros, (self.features,))
        scale = sll_ops.sll_conv_scale(kernel, jnp.exp(log_q))
        return sll_ops.sll_conv(
            x, kernel, bias, scale, self.strides, self.padding, self.activation, self.algorithm
        )

    def export_record(self, params, input_shape) -> Record:
        kernel = jnp.asarray(params["kernel"])
        scale = sll_ops.sll_conv_scale(kernel, jnp.exp(jnp.asarray(params["log_q"])))
        config = {
            "strides": list(self.strides),
            "padding": padding_to_json(self.padding),
            "activation": self.activation,
        }
        return SLL_CONV.record(config, kernel=kernel, bias=params["bias"], scale=np.asarray(scale))
