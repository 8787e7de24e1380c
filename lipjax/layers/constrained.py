"""Dense and conv layers whose kernel goes through a :class:`lipjax.ops.KernelConstraint`.

They export to the plain ``dense`` / ``conv`` kinds declared here, whose
Lipschitz bound is computed on the exported kernel (float64 SVD, DFT /
polyphase or explicit-matrix bound for convolutions), so the certificate
never relies on the constraint being exact. Presets (spectral, Björck,
Frobenius, LLN, AOL, Cayley, ...) subclass the bases and only say which
constraint they use.
"""

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
    linear_rounding,
    padding_from_json,
    padding_to_json,
    register,
)
from lipjax.ops.constraints import KernelConstraint
from lipjax.ops.conv import PaddingLike, check_algorithm


def _add_bias(y, arrays):
    return y + arrays["bias"] if "bias" in arrays else y


DENSE = register(
    ExportKind(
        "dense",
        apply=lambda x, a, c: _add_bias(x @ a["kernel"], a),
        lipschitz=dense_kernel_bound,
        arrays=("kernel",),
        optional_arrays=("bias",),
        rounding=linear_rounding(dense_operator),
    )
)

NORMALIZED_HEAD = register(
    ExportKind(
        "normalized_head",
        apply=DENSE.apply,
        lipschitz=dense_kernel_bound,
        arrays=("kernel",),
        optional_arrays=("bias",),
        rounding=linear_rounding(dense_operator),
    )
)
"""A dense last layer with unit-norm outputs; certification uses the LLN radius with its rows."""

CONV = register(
    ExportKind(
        "conv",
        apply=lambda x, a, c: _add_bias(ops.conv(x, a["kernel"], c["strides"], padding_from_json(c)), a),
        lipschitz=conv_kernel_bound,
        arrays=("kernel",),
        optional_arrays=("bias",),
        config=("strides", "padding"),
        rounding=linear_rounding(conv_operator),
    )
)


def _bias_array(params):
    return np.asarray(params["bias"]) if "bias" in params else None


class ConstrainedDenseBase(LipschitzLayer, PowerIterationMixin):
    """``y = x W + b`` with ``W`` = :meth:`kernel_constraint` applied to the raw parameter.

    Attributes:
      features: output size (``None``: the input size).
      use_bias: add a bias.
      power_iters: power-iteration steps per training update (constraints that
        divide by the operator norm).
    """

    features: int | None
    use_bias: bool = True
    power_iters: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    export_kind = DENSE

    def kernel_constraint(self) -> KernelConstraint:
        raise NotImplementedError

    def __post_init__(self):
        name = type(self).__name__
        if self.features is not None:
            check_positive("features", self.features, name)
        check_positive("power_iters", self.power_iters, name, allow_zero=True)
        super().__post_init__()

    def _features(self, d: int) -> int:
        return d if self.features is None else self.features

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, type(self).__name__)
        d = x.shape[-1]
        constraint = self.kernel_constraint()
        shape = (d, self._features(d))
        prepared = constraint.prepare(
            self.param("kernel", self.kernel_init, constraint.raw_shape(shape)), shape
        )
        sigma = None
        if constraint.operator_norm:
            sigma = self.spectral_estimate(ops.dense_operator, prepared, (d,), self.power_iters, update_stats)
        y = x @ constraint.finish(prepared, sigma).astype(x.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (shape[1],))
        return y

    def export_record(self, params, input_shape) -> Record:
        constraint = self.kernel_constraint()
        shape = (input_shape[-1], self._features(input_shape[-1]))
        prepared = constraint.prepare(jnp.asarray(params["kernel"]), shape)
        norm = ops.dense_spectral_norm_bound(np.asarray(prepared)) if constraint.operator_norm else None
        kernel = constraint.finish(prepared, None if norm is None else np.float32(norm))
        return self.export_kind.record(kernel=np.asarray(kernel), bias=_bias_array(params))


class ConstrainedDense(ConstrainedDenseBase):
    """A dense layer with any :class:`lipjax.ops.KernelConstraint` (default: spectral normalisation).

    Example::

        ConstrainedDense(64, constraint=lipjax.ops.spectral(bjorck_iters=10))
    """

    constraint: KernelConstraint = ops.spectral()

    def kernel_constraint(self) -> KernelConstraint:
        return self.constraint


class ConstrainedConvBase(LipschitzLayer, PowerIterationMixin):
    """NHWC convolution whose HWIO kernel is :meth:`kernel_constraint` of the raw parameter.

    A constraint with ``operator_norm`` divides by the norm of the *convolution
    operator* on the layer's real input size, stride and padding (power
    iteration while training, a guaranteed bound at export). ``algorithm``
    (:data:`lipjax.ops.conv.ALGORITHMS`) is how training convolves; the export
    certifies the direct convolution.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: PaddingLike = "SAME"
    use_bias: bool = True
    power_iters: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    algorithm: str = "auto"

    def kernel_constraint(self) -> KernelConstraint:
        raise NotImplementedError

    def __post_init__(self):
        name = type(self).__name__
        check_positive("features", self.features, name)
        check_positive("power_iters", self.power_iters, name, allow_zero=True)
        check_conv_geometry(self.kernel_size, self.strides, self.padding, name)
        check_algorithm(self.algorithm, name)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, type(self).__name__)
        constraint = self.kernel_constraint()
        shape = (*self.kernel_size, x.shape[-1], self.features)
        prepared = constraint.prepare(
            self.param("kernel", self.kernel_init, constraint.raw_shape(shape)), shape
        )
        sigma = None
        if constraint.operator_norm:
            operator = partial(
                ops.conv_operator,
                input_shape=x.shape[1:],
                strides=self.strides,
                padding=self.padding,
                algorithm=self.algorithm,
            )
            sigma = self.spectral_estimate(operator, prepared, x.shape[1:], self.power_iters, update_stats)
        y = ops.conv(x, constraint.finish(prepared, sigma), self.strides, self.padding, self.algorithm)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y

    def export_record(self, params, input_shape) -> Record:
        constraint = self.kernel_constraint()
        shape = (*self.kernel_size, input_shape[-1], self.features)
        prepared = np.asarray(constraint.prepare(jnp.asarray(params["kernel"]), shape))
        norm = None
        if constraint.operator_norm:
            norm = ops.conv_spectral_norm_bound(prepared, input_shape[:2], self.strides, self.padding)
        kernel = constraint.finish(jnp.asarray(prepared), None if norm is None else np.float32(norm))
        config = {"strides": list(self.strides), "padding": padding_to_json(self.padding)}
        return CONV.record(config, kernel=np.asarray(kernel), bias=_bias_array(params))


class ConstrainedConv(ConstrainedConvBase):
    """A convolution with any :class:`lipjax.ops.KernelConstraint` (default: spectral normalisation)."""

    constraint: KernelConstraint = ops.spectral()

    def kernel_constraint(self) -> KernelConstraint:
        return self.constraint


__all__ = [
    "CONV",
    "DENSE",
    "NORMALIZED_HEAD",
    "ConstrainedConv",
    "ConstrainedConvBase",
    "ConstrainedDense",
    "ConstrainedDenseBase",
]
