"""Pure ``jax.numpy`` / ``numpy`` maths behind every lipjax layer.

Layers in :mod:`lipjax.layers` and the exported-model interpreter in
:mod:`lipjax.export` only call these functions, so each formula lives here once.
The layer family's maths are in submodules: :mod:`lipjax.ops.aol`,
:mod:`lipjax.ops.sll`, :mod:`lipjax.ops.cayley`, :mod:`lipjax.ops.skew`,
:mod:`lipjax.ops.skew_exp`, :mod:`lipjax.ops.centering`; weight constraints
(kernel maps) in :mod:`lipjax.ops.constraints`.
"""

from lipjax.ops.activations import ACTIVATIONS, get_activation
from lipjax.ops.constraints import (
    AOL_CONV,
    AOL_DENSE,
    CAYLEY,
    FROBENIUS,
    LLN_ROWS,
    KernelConstraint,
    bjorck_reshaped,
    bjorck_then_spectral,
    frobenius_normalize,
    normalize_columns,
    soc,
    spectral,
)
from lipjax.ops.conv import conv, conv_transpose, map_batch_chunks, normalize_padding
from lipjax.ops.convex_potential import convex_potential_conv, convex_potential_dense
from lipjax.ops.orthogonal import bjorck
from lipjax.ops.power_iteration import (
    conv_operator,
    dense_operator,
    l2_normalize,
    power_iteration,
)
from lipjax.ops.reshape import (
    channel_pad,
    channel_truncate,
    flatten,
    pixel_unshuffle,
    scaled_avg_pool,
    scaled_l2_norm_pool,
)
from lipjax.ops.sort import full_sort, group_sort, householder
from lipjax.ops.spectral_bounds import (
    ROUNDING_SLACK,
    conv_spectral_norm_bound,
    dense_spectral_norm_bound,
)

__all__ = [
    "ACTIVATIONS",
    "AOL_CONV",
    "AOL_DENSE",
    "CAYLEY",
    "FROBENIUS",
    "LLN_ROWS",
    "ROUNDING_SLACK",
    "KernelConstraint",
    "bjorck",
    "bjorck_reshaped",
    "bjorck_then_spectral",
    "channel_pad",
    "channel_truncate",
    "conv",
    "conv_operator",
    "conv_spectral_norm_bound",
    "conv_transpose",
    "convex_potential_conv",
    "convex_potential_dense",
    "dense_operator",
    "dense_spectral_norm_bound",
    "flatten",
    "frobenius_normalize",
    "full_sort",
    "get_activation",
    "group_sort",
    "householder",
    "l2_normalize",
    "map_batch_chunks",
    "normalize_columns",
    "normalize_padding",
    "pixel_unshuffle",
    "power_iteration",
    "scaled_avg_pool",
    "scaled_l2_norm_pool",
    "soc",
    "spectral",
]
