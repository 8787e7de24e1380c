"""deel-lip style normalised linear layers: spectral / Björck, Frobenius, and the LLN head."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.base import PowerIterationMixin, Record, check_input, check_positive
from lipjax.layers.convex_potential import _padding_json
from lipjax.ops.conv import PaddingLike
from lipjax.ops.orthogonal import reshaped_kernel_matrix


def _bias(module: nn.Module, use_bias: bool, features: int):
    return module.param("bias", nn.initializers.zeros, (features,)) if use_bias else None


def _bias_array(params) -> dict[str, np.ndarray]:
    return {"bias": np.asarray(params["bias"])} if "bias" in params else {}


class SpectralDense(nn.Module, PowerIterationMixin):
    """Dense layer with ``W / ||W||_2`` (power iteration), then optional Björck steps.

    With ``bjorck_iters > 0`` the normalised kernel is orthonormalised, so the
    layer preserves gradient norms (an isometry when square). Export divides by
    a guaranteed upper bound of ``||W||_2`` instead of the power-iteration estimate.

    Attributes:
      features: output size.
      use_bias: add a bias.
      bjorck_iters: Björck iterations after spectral normalisation (0: none).
      power_iters: power-iteration steps per training update.
    """

    features: int
    use_bias: bool = True
    bjorck_iters: int = 15
    power_iters: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.orthogonal()

    def __post_init__(self):
        check_positive("features", self.features, "SpectralDense")
        check_positive("bjorck_iters", self.bjorck_iters, "SpectralDense", allow_zero=True)
        check_positive("power_iters", self.power_iters, "SpectralDense", allow_zero=True)
        super().__post_init__()

    def _orthonormalise(self, kernel):
        return ops.bjorck(kernel, self.bjorck_iters) if self.bjorck_iters else kernel

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, "SpectralDense")
        d = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (d, self.features))
        sigma = self.spectral_estimate(ops.dense_operator, kernel, (d,), self.power_iters, update_stats)
        y = x @ self._orthonormalise(kernel / sigma)
        bias = _bias(self, self.use_bias, self.features)
        return y if bias is None else y + bias

    def export_record(self, params, state, input_shape) -> Record:
        kernel = np.asarray(params["kernel"])
        normalised = kernel / np.float32(ops.dense_spectral_norm_bound(kernel))
        effective = np.asarray(self._orthonormalise(jnp.asarray(normalised)))
        return "dense", {}, {"kernel": effective, **_bias_array(params)}


class SpectralConv(nn.Module, PowerIterationMixin):
    """Convolution normalised by its operator norm on the real input size.

    With ``bjorck_iters > 0`` the reshaped ``(kh kw C_in, C_out)`` kernel is first
    orthonormalised (deel-lip's SpectralConv2D), then the result is divided by the
    power-iteration estimate of the *convolution operator* norm, so the layer stays
    1-Lipschitz whatever the kernel size (deel-lip instead divides by a fixed
    ``sqrt(kh kw)``-type factor).
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: PaddingLike = "SAME"
    use_bias: bool = True
    bjorck_iters: int = 0
    power_iters: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        check_positive("features", self.features, "SpectralConv")
        check_positive("bjorck_iters", self.bjorck_iters, "SpectralConv", allow_zero=True)
        check_positive("power_iters", self.power_iters, "SpectralConv", allow_zero=True)
        ops.normalize_padding(self.padding)
        super().__post_init__()

    def _prepared_kernel(self, kernel):
        if not self.bjorck_iters:
            return kernel
        matrix = reshaped_kernel_matrix(kernel)
        matrix = ops.bjorck(matrix / jnp.linalg.norm(matrix), self.bjorck_iters)
        return matrix.reshape(kernel.shape)

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "SpectralConv")
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        kernel = self._prepared_kernel(kernel)
        operator = partial(
            ops.conv_operator, input_shape=x.shape[1:], strides=self.strides, padding=self.padding
        )
        sigma = self.spectral_estimate(operator, kernel, x.shape[1:], self.power_iters, update_stats)
        y = ops.conv(x, kernel / sigma, self.strides, self.padding)
        bias = _bias(self, self.use_bias, self.features)
        return y if bias is None else y + bias

    def export_record(self, params, state, input_shape) -> Record:
        kernel = np.asarray(self._prepared_kernel(jnp.asarray(params["kernel"])))
        bound = ops.conv_spectral_norm_bound(kernel, input_shape[:2], self.strides, self.padding)
        config = {"strides": list(self.strides), "padding": _padding_json(self.padding)}
        return "conv", config, {"kernel": kernel / np.float32(bound), **_bias_array(params)}


class FrobeniusDense(nn.Module):
    """Dense layer with ``W / ||W||_F`` (``||W||_2 <= ||W||_F``: 1-Lipschitz, no state).

    With one output it is exactly norm-preserving on the gradient, the usual head
    of a binary HKR network (deel-lip's FrobeniusDense).
    """

    features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        check_positive("features", self.features, "FrobeniusDense")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, "FrobeniusDense")
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        y = x @ (kernel / jnp.linalg.norm(kernel))
        bias = _bias(self, self.use_bias, self.features)
        return y if bias is None else y + bias

    def export_record(self, params, state, input_shape) -> Record:
        kernel = np.asarray(params["kernel"])
        return "dense", {}, {"kernel": kernel / np.linalg.norm(kernel), **_bias_array(params)}


def normalize_columns(kernel: jax.Array) -> jax.Array:
    """Each output's weight vector (a column of a Flax kernel) scaled to unit l2 norm."""
    return kernel / jnp.maximum(jnp.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)


class NormalizedDense(nn.Module):
    """Last Layer Normalisation (LLN): logits ``f_j = <w_j, x> / ||w_j|| + b_j``.

    Certification with this head uses the tighter radius
    ``min_{j != y} (f_y - f_j) / (L ||w_y - w_j||)`` (see :mod:`lipjax.certify`),
    with ``L`` the constant of the network body feeding it.
    """

    features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        check_positive("features", self.features, "NormalizedDense")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 2, "NormalizedDense")
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        y = x @ normalize_columns(kernel)
        bias = _bias(self, self.use_bias, self.features)
        return y if bias is None else y + bias

    def export_record(self, params, state, input_shape) -> Record:
        kernel = np.asarray(normalize_columns(jnp.asarray(params["kernel"])))
        return "normalized_head", {}, {"kernel": kernel, **_bias_array(params)}
