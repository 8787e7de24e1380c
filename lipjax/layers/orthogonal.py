"""Orthogonal layers from skew-symmetric generators: Cayley and exponential (SOC), dense and conv.

These are the norm-preserving step of the convex potential flow (Meunier et
al., 2022, Section 3.3): the midpoint rule is the Cayley transform, the exact
flow the exponential of a skew-symmetric map. Maths in :mod:`lipjax.ops.cayley`,
:mod:`lipjax.ops.skew_exp`, :mod:`lipjax.ops.skew`.

* ``CayleyDense`` / ``SOCDense``: presets of :class:`ConstrainedDenseBase` with a
  square parameter ``V`` (``n = max(in, out)``), kernel ``cayley(V - V^T)`` or the
  truncated series ``T_n(V - V^T)``, cropped to (in, out); exported as the plain
  ``dense`` kind, certified by the float64 SVD of the exported kernel (1 plus its
  measured deviation from orthogonality, truncation error included).
* ``CayleyConv``: circular convolution built in the DFT domain (Trockman and
  Kolter, 2021); exported as per-frequency blocks (``frequency_conv``), certified by
  their largest singular value.
* ``SOCConv``: ``T_n(S) x`` with ``S`` the skew kernel ``K - flip(K)^T`` (odd kernel,
  ``"SAME"`` or ``"CIRCULAR"`` padding, stride 1); exported as ``skew_exp_conv`` with
  the certificate ``(e^mu + R)(1 + slack)``, ``R`` the Taylor remainder bound for
  ``||S|| <= a`` (a guaranteed bound on the exported kernel).

Channels: with ``features != C_in`` the square (``c = max``) map is applied to the
zero-padded input and its output truncated: an isometry then a projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.base import LipschitzLayer, check_conv_geometry, check_input, check_positive
from lipjax.layers.constrained import ConstrainedDenseBase
from lipjax.layers.kinds import ExportKind, Record, register
from lipjax.ops import cayley as cayley_ops
from lipjax.ops import rounding as fe
from lipjax.ops import skew_exp
from lipjax.ops.constraints import CAYLEY, KernelConstraint, soc
from lipjax.ops.skew import skew_conv_kernel
from lipjax.ops.spectral_bounds import conv_spectral_norm_bound


class CayleyDense(ConstrainedDenseBase):
    """Orthogonal dense layer ``y = x Q + b``, ``Q = cayley(V - V^T)`` cropped to (in, features).

    Square: orthogonal; ``in > features``: orthonormal columns; ``in < features``:
    an isometry. Every singular value of the Jacobian is 1 up to float error.
    """

    def kernel_constraint(self) -> KernelConstraint:
        return CAYLEY


class SOCDense(ConstrainedDenseBase):
    """Dense exponential (SOC) layer ``y = x T_n(A) + b``, ``A = V - V^T`` with ``||A|| <= max_norm``.

    Attributes:
      terms: ``n``, the highest power of the truncated series.
      max_norm: the generator is shrunk to this norm (guaranteed Frobenius bound) so
        that ``n`` terms are accurate.
    """

    terms: int = 12
    max_norm: float = 1.0

    def __post_init__(self):
        try:
            soc(self.terms, self.max_norm)
        except ValueError as err:
            raise ValueError(f"SOCDense: {err}") from None
        super().__post_init__()

    def kernel_constraint(self) -> KernelConstraint:
        return soc(self.terms, self.max_norm)


def _frequency_conv(x, a, c):
    return cayley_ops.frequency_conv(x, a["real"] + 1j * a["imag"])


FREQUENCY_CONV = register(
    ExportKind(
        "frequency_conv",
        apply=_frequency_conv,
        lipschitz=lambda a, c, shape: cayley_ops.frequency_conv_lipschitz_bound(a["real"], a["imag"]),
        arrays=("real", "imag"),
        # No rounding bound: the FFT library's algorithm (and so its error) is not fixed.
    )
)
"""A circular convolution given by its DFT blocks (H, W // 2 + 1, C_in, C_out), real and imaginary parts."""


def _soc_conv(x, a, c):
    kernel = a["skew_kernel"]
    y = skew_exp.skew_exp_conv(ops.channel_pad(x, kernel.shape[2]), kernel, c["terms"], c["padding"])
    return ops.channel_truncate(y, c["features"])


def _soc_bound(a, c, shape):
    return skew_exp.skew_exp_conv_lipschitz_bound(a["skew_kernel"], shape[:2], c["terms"], c["padding"])


def _soc_rounding(arrays, config, input_shape, input_norm, u):
    """``T_n(S) x = sum_{k<=n} t_k``, ``t_k = S t_{k-1} / k`` (channel pad and truncation are exact).

    Each step is a convolution with ``kh kw c`` taps (``||S||`` the certified bound on the
    input size, ``|| |S| ||`` the Schur bound), a division by the exact integer ``k`` and
    an addition to the running sum, each pushed through :mod:`lipjax.ops.rounding`:
    ``e_k = (||S|| e_{k-1} + gamma_{taps} || |S| || (n_{k-1} + e_{k-1})) / k + u (n_k + e_k')``,
    ``n_k = ||S||^k N / k!``; the sum adds ``u`` relative per step.
    ``output_norm = min(L N, sum_k n_k)``.
    """
    kernel = np.asarray(arrays["skew_kernel"], np.float64)
    kh, kw, channels, _ = kernel.shape
    norm = conv_spectral_norm_bound(kernel, input_shape[:2], (1, 1), config["padding"])
    abs_norm = fe.abs_conv_norm_bound(kernel)
    term = total = fe.start(input_norm)
    for k in range(1, int(config["terms"]) + 1):
        term = fe.scale(fe.linear(term, norm, abs_norm, kh * kw * channels, u), 1.0 / k, u)
        total = fe.add(total, term, u)
    exact_norm = _soc_bound(arrays, config, input_shape) * fe.check_input_norm(input_norm)
    return fe.Tracked(np.minimum(total.norm, exact_norm), total.error)


SKEW_EXP_CONV = register(
    ExportKind(
        "skew_exp_conv",
        apply=_soc_conv,
        lipschitz=_soc_bound,
        arrays=("skew_kernel",),
        config=("terms", "padding", "features"),
        rounding=_soc_rounding,
    )
)


class _SquareConv(LipschitzLayer):
    """Shared fields and checks of the square (``c = max(C_in, features)``) orthogonal convolutions."""

    features: int | None = None
    kernel_size: Sequence[int] = (3, 3)
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    def __post_init__(self):
        name = type(self).__name__
        if self.features is not None:
            check_positive("features", self.features, name)
        check_conv_geometry(self.kernel_size, (1, 1), self.padding, name)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(
                f"{name}: kernel_size must be odd (a centred skew kernel); got {self.kernel_size}"
            )
        super().__post_init__()

    def _channels(self, cin: int) -> tuple[int, int]:
        features = cin if self.features is None else self.features
        return features, max(cin, features)

    def _raw(self, cin: int):
        _, c = self._channels(cin)
        return self.param("kernel", self.kernel_init, (*self.kernel_size, c, c))


class CayleyConv(_SquareConv):
    """Orthogonal circular convolution by the Cayley transform in the DFT domain.

    Attributes:
      features: output channels (``None``: as many as the input).
      kernel_size: odd spatial size of the generator kernel (at most the image size).
      padding: must be ``"CIRCULAR"`` (the construction is orthogonal on a periodic image).
    """

    padding: str = "CIRCULAR"

    def __post_init__(self):
        if str(self.padding).upper() != "CIRCULAR":
            raise ValueError(f"CayleyConv: padding must be 'CIRCULAR'; got {self.padding!r}")
        super().__post_init__()

    def _blocks(self, raw, input_shape):
        features, _ = self._channels(input_shape[-1])
        blocks = cayley_ops.cayley_conv_frequency_matrices(raw, input_shape[:2])
        return blocks[..., : input_shape[-1], :features]

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "CayleyConv")
        return cayley_ops.frequency_conv(x, self._blocks(self._raw(x.shape[-1]), x.shape[1:]))

    def export_record(self, params, input_shape) -> Record:
        raw = jnp.asarray(params["kernel"], jnp.float32)
        blocks = np.asarray(self._blocks(raw, tuple(input_shape)))
        return FREQUENCY_CONV.record(real=blocks.real, imag=blocks.imag)


class SOCConv(_SquareConv):
    """Skew orthogonal convolution ``T_n(S) x``, ``S = K - flip(K)^T`` shrunk to ``||S|| <= max_norm``.

    Attributes:
      features: output channels (``None``: as many as the input).
      kernel_size: odd.
      padding: ``"SAME"`` or ``"CIRCULAR"``.
      terms: ``n``, highest power of the truncated exponential series.
      max_norm: target of the (guaranteed, loose) generator norm bound.
    """

    padding: str = "SAME"
    terms: int = 10
    max_norm: float = 1.0

    def __post_init__(self):
        skew_exp.check_terms(self.terms)
        if not isinstance(self.padding, str) or ops.normalize_padding(self.padding) not in (
            "SAME",
            "CIRCULAR",
        ):
            raise ValueError(f"SOCConv: padding must be 'SAME' or 'CIRCULAR'; got {self.padding!r}")
        if not (isinstance(self.max_norm, int | float) and self.max_norm > 0):
            raise ValueError(f"SOCConv: max_norm must be positive; got {self.max_norm!r}")
        super().__post_init__()

    def _generator(self, raw):
        return skew_exp.rescale_to_norm(skew_conv_kernel(raw), self.max_norm)

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "SOCConv")
        features, c = self._channels(x.shape[-1])
        generator = self._generator(self._raw(x.shape[-1]))
        padding = ops.normalize_padding(self.padding)
        y = skew_exp.skew_exp_conv(
            ops.channel_pad(x, c), generator.astype(x.dtype), self.terms, padding, algorithm="auto"
        )
        return ops.channel_truncate(y, features)

    def export_record(self, params, input_shape) -> Record:
        features, _ = self._channels(input_shape[-1])
        generator = self._generator(jnp.asarray(params["kernel"], jnp.float32))
        config = {"terms": self.terms, "padding": ops.normalize_padding(self.padding), "features": features}
        return SKEW_EXP_CONV.record(config, skew_kernel=np.asarray(generator))
