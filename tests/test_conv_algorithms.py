"""The fast convolution path against autodiff of plain ``lax.conv_general_dilated``, and
forward-mode differentiation (jvp, jacfwd, linearize, hessian) through every layer."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import checkpoint_name
from test_layers import IMAGE, LAYERS

from lipjax import layers as L
from lipjax import ops
from lipjax.ops import winograd
from lipjax.ops.conv import circular_pads

PADDINGS = ["SAME", "VALID", "CIRCULAR", ((0, 2), (2, 0)), ((3, 0), (0, 1))]


def reference_conv(x, kernel, strides, padding):
    """Plain XLA convolution (circular padding by wrapping first), differentiated by JAX itself."""
    if padding == "CIRCULAR":
        x = jnp.pad(x, ((0, 0), *circular_pads(kernel.shape[:2]), (0, 0)), mode="wrap")
        padding = "VALID"
    return jax.lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"
    )


def _data(hw, c_in, c_out, seed=0):
    kx, kk, kt = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.normal(kx, (2, *hw, c_in)),
        0.3 * jax.random.normal(kk, (3, 3, c_in, c_out)),
        jax.random.normal(kt, (2, *hw, c_in)),
    )


def _close(a, b):
    for got, want in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("hw,strides", [((5, 7), (1, 1)), ((7, 6), (2, 2))], ids=str)
@pytest.mark.parametrize("algorithm", ["winograd", "auto"])
def test_conv_values_gradients_and_jvps_match_plain_autodiff(padding, hw, strides, algorithm):
    if algorithm == "winograd" and strides != (1, 1):
        pytest.skip("Winograd is stride 1 only (refusal tested below)")
    x, kernel, x_tangent = _data(hw, 3, 5)
    fast = jax.jit(lambda x, k: ops.conv(x, k, strides, padding, algorithm))
    plain = jax.jit(lambda x, k: reference_conv(x, k, strides, padding))
    y = plain(x, kernel)
    _close(fast(x, kernel), y)
    cotangent = jax.random.normal(jax.random.key(7), y.shape)
    _close(jax.vjp(fast, x, kernel)[1](cotangent), jax.vjp(plain, x, kernel)[1](cotangent))
    k_tangent = jax.random.normal(jax.random.key(8), kernel.shape)
    _close(
        jax.jvp(fast, (x, kernel), (x_tangent, k_tangent))[1],
        jax.jvp(plain, (x, kernel), (x_tangent, k_tangent))[1],
    )


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("algorithm", ["winograd", "direct"])
def test_conv_transpose_is_the_adjoint_and_differentiates_both_ways(padding, algorithm):
    x, kernel, _ = _data((5, 6), 3, 5, seed=1)
    plain = lambda x, k: reference_conv(x, k, (1, 1), padding)  # noqa: E731
    y = jax.random.normal(jax.random.key(3), plain(x, kernel).shape)
    adjoint = lambda y, k: ops.conv_transpose(y, k, x.shape[1:], (1, 1), padding, algorithm)  # noqa: E731
    _close(adjoint(y, kernel), jax.vjp(lambda v: plain(v, kernel), x)[1](y)[0])
    # Gradients and JVPs through the adjoint equal those of autodiff's own transpose.
    autodiff_adjoint = lambda y, k: jax.vjp(lambda v: plain(v, k), x)[1](y)[0]  # noqa: E731
    w = jax.random.normal(jax.random.key(4), x.shape)
    grad_fast = jax.grad(lambda y, k: jnp.vdot(adjoint(y, k), w), argnums=(0, 1))(y, kernel)
    grad_plain = jax.grad(lambda y, k: jnp.vdot(autodiff_adjoint(y, k), w), argnums=(0, 1))(y, kernel)
    _close(grad_fast, grad_plain)
    tangents = (
        jax.random.normal(jax.random.key(5), y.shape),
        jax.random.normal(jax.random.key(6), kernel.shape),
    )
    _close(jax.jvp(adjoint, (y, kernel), tangents)[1], jax.jvp(autodiff_adjoint, (y, kernel), tangents)[1])


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_cpl_conv_fast_and_direct_agree_in_value_gradient_and_jvp(activation):
    x, kernel, x_tangent = _data((8, 8), 5, 7)
    bias = jnp.linspace(-0.3, 0.3, 7)

    def layer(algorithm):
        return lambda x, k, b: ops.convex_potential_conv(
            x, k, b, 0.4, padding="SAME", activation=activation, algorithm=algorithm
        )

    fast, direct = jax.jit(layer("winograd")), jax.jit(layer("direct"))
    _close(fast(x, kernel, bias), direct(x, kernel, bias))
    cotangent = jax.random.normal(jax.random.key(9), x.shape)
    _close(jax.vjp(fast, x, kernel, bias)[1](cotangent), jax.vjp(direct, x, kernel, bias)[1](cotangent))
    _close(
        jax.jvp(lambda v: fast(v, kernel, bias), (x,), (x_tangent,))[1],
        jax.jvp(lambda v: direct(v, kernel, bias), (x,), (x_tangent,))[1],
    )


@pytest.mark.parametrize("batch,chunks_expected", [(40, 5), (32, 2), (12, 0), (18, 0)])
def test_map_batch_chunks_equals_the_whole_batch_in_value_gradient_and_jvp(batch, chunks_expected):
    # 40 -> 5 chunks of gcd(40, 16) = 8; 12 <= 16 and 18 (chunks of 2) are computed whole.
    x = jax.random.normal(jax.random.key(0), (batch, 3))
    w = jnp.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.1]])

    def fn(x, w):
        return jnp.tanh(x @ w) * x[:, :1]

    chunks = lambda x, w: ops.map_batch_chunks(fn, x, w, size=16)  # noqa: E731
    assert _chunk_count(chunks, x, w) == chunks_expected
    _close(chunks(x, w), fn(x, w))
    loss = lambda f: lambda x, w: (f(x, w) ** 2).sum()  # noqa: E731
    _close(jax.grad(loss(chunks), argnums=(0, 1))(x, w), jax.grad(loss(fn), argnums=(0, 1))(x, w))
    _close(jax.jvp(chunks, (x, w), (x, w))[1], jax.jvp(fn, (x, w), (x, w))[1])


def test_map_batch_chunks_keeps_the_named_intermediates_instead_of_recomputing_them():
    x = jax.random.normal(jax.random.key(0), (32, 3))
    w = jnp.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.1]])

    def fn(x, w):
        return jnp.tanh(checkpoint_name(x @ w, "product")) * x[:, :1]

    def dots(keep):
        chunks = lambda x, w: ops.map_batch_chunks(fn, x, w, size=16, keep=keep)  # noqa: E731
        grad = jax.grad(lambda x, w: (chunks(x, w) ** 2).sum(), argnums=(0, 1))
        names = list(_primitive_list(grad, x, w))
        _close(grad(x, w), jax.grad(lambda x, w: (fn(x, w) ** 2).sum(), argnums=(0, 1))(x, w))
        return names.count("dot_general")

    # Per chunk (2 of 16): forward x @ w, the backward's two products, and, without ``keep``,
    # x @ w once more.
    assert dots(keep=("product",)) == dots(keep=()) - 2 == 6


def test_auto_cpl_conv_runs_in_batch_chunks_and_matches_direct():
    kx, kk = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (48, 6, 6, 5))
    kernel, bias = 0.3 * jax.random.normal(kk, (3, 3, 5, 5)), jnp.linspace(-0.2, 0.2, 5)

    def layer(algorithm):
        return lambda x, k: ops.convex_potential_conv(x, k, bias, 0.4, algorithm=algorithm)

    auto, direct = layer("auto"), layer("direct")
    assert _chunk_count(auto, x, kernel) == (3 if jax.default_backend() == "cpu" else 0)  # 48 = 3 x 16
    assert _chunk_count(layer("winograd"), x, kernel) == 0
    _close(jax.jit(auto)(x, kernel), direct(x, kernel))
    loss = lambda f: lambda x, k: (f(x, k) ** 2).sum() / x.shape[0]  # noqa: E731
    gradient = lambda f: jax.jit(jax.grad(loss(f), argnums=(0, 1)))(x, kernel)  # noqa: E731
    _close(gradient(auto), gradient(direct))
    _close(jax.jvp(auto, (x, kernel), (x, kernel))[1], jax.jvp(direct, (x, kernel), (x, kernel))[1])


def _primitives(fn, *args) -> set[str]:
    return set(_primitive_list(fn, *args))


def _chunk_count(fn, *args) -> int:
    """Rematerialized batch chunks in ``fn``'s jaxpr (each is one ``jax.checkpoint``)."""
    return _primitive_list(fn, *args).count("remat2")


def _primitive_list(fn, *args) -> list[str]:
    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            yield eqn.primitive.name
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                yield from walk(sub)

    return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("hw", [(3, 3), (4, 5), (9, 6), (11, 13)], ids=str)
def test_winograd_tiles_match_the_valid_correlation_in_value_gradient_and_jvp(tile, hw):
    """Every output size, whole tiles or not, against XLA's convolution: F(2x2, 3x3) and F(4x4, 3x3)."""
    x, kernel, _ = _data(hw, 5, 3)
    fast = lambda x, k: winograd.correlate3x3_valid(x, k, tile)  # noqa: E731
    plain = lambda x, k: reference_conv(x, k, (1, 1), "VALID")  # noqa: E731
    _close(fast(x, kernel), plain(x, kernel))
    cotangent = jax.random.normal(jax.random.key(1), plain(x, kernel).shape)
    _close(jax.vjp(fast, x, kernel)[1](cotangent), jax.vjp(plain, x, kernel)[1](cotangent))
    tangents = (jnp.flip(x, 1), 0.1 * kernel**2)
    _close(jax.jvp(fast, (x, kernel), tangents), jax.jvp(plain, (x, kernel), tangents))


@pytest.mark.parametrize("channels,outputs", [(15, 31), (30, 16)])
def test_winograd_with_lane_padded_channels_matches_the_valid_correlation(channels, outputs):
    """Channel counts padded to whole vectors inside the transform (15 -> 16, 30 and 31 -> 32)."""
    assert winograd.lane_padded(channels) > channels or winograd.lane_padded(outputs) > outputs
    kx, kk = jax.random.split(jax.random.key(5))
    x = jax.random.normal(kx, (2, 9, 7, channels))
    kernel = 0.2 * jax.random.normal(kk, (3, 3, channels, outputs))
    fast = jax.jit(winograd.correlate3x3_valid)
    plain = lambda x, k: reference_conv(x, k, (1, 1), "VALID")  # noqa: E731
    assert fast(x, kernel).shape == plain(x, kernel).shape
    _close(fast(x, kernel), plain(x, kernel))
    cotangent = jax.random.normal(jax.random.key(1), plain(x, kernel).shape)
    _close(jax.vjp(fast, x, kernel)[1](cotangent), jax.vjp(plain, x, kernel)[1](cotangent))
    _close(jax.jvp(fast, (x, kernel), (x, kernel)), jax.jvp(plain, (x, kernel), (x, kernel)))


def test_lane_padding_adds_at_most_an_eighth_of_the_channels():
    assert [winograd.lane_padded(c) for c in (3, 5, 16, 30, 33, 45, 48, 100, 120)] == [
        3,
        5,
        16,
        32,
        33,
        48,
        48,
        112,
        128,
    ]


def test_winograd_tile_follows_the_dtype_and_bad_tiles_are_refused():
    assert winograd.tile_for(jnp.float32) == winograd.tile_for(jnp.float64) == 4
    assert winograd.tile_for(jnp.bfloat16) == winograd.tile_for(jnp.float16) == 2
    x, kernel, _ = _data((6, 6), 3, 4)
    with pytest.raises(ValueError, match="tile must be one of"):
        winograd.correlate3x3_valid(x, kernel, 3)
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        winograd.correlate3x3_valid(x[:, :2], kernel)


def test_auto_takes_winograd_for_3x3_stride_1_on_cpu_and_direct_otherwise():
    x, kernel, _ = _data((6, 6), 3, 4)
    grad = lambda strides: jax.grad(lambda k: ops.conv(x, k, strides, "SAME", "auto").sum())  # noqa: E731
    on_cpu = jax.default_backend() == "cpu"  # GPUs keep cuDNN (benchmarks/README.md, H100)
    assert ("conv_general_dilated" not in _primitives(grad((1, 1)), kernel)) == on_cpu
    assert "conv_general_dilated" in _primitives(grad((2, 2)), kernel)
    assert "conv_general_dilated" in _primitives(lambda k: ops.conv(x, k, (1, 1), "SAME"), kernel)


def test_bad_algorithm_and_winograd_outside_its_domain_are_refused():
    x, kernel, _ = _data((6, 6), 3, 4)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        ops.conv(x, kernel, algorithm="fft")
    with pytest.raises(ValueError, match="3x3 kernel and stride 1"):
        ops.conv(x, kernel, (2, 2), algorithm="winograd")
    with pytest.raises(ValueError, match="3x3 kernel and stride 1"):
        ops.conv(x, jnp.ones((5, 5, 3, 4)), algorithm="winograd")
    with pytest.raises(ValueError, match="ConvexPotentialConv: algorithm"):
        L.ConvexPotentialConv(4, algorithm="fast")


# --- forward mode through every layer -------------------------------------------------------


# one row per layer class (the Jacobian table has several configurations of some)
ONE_PER_CLASS = list({type(row[1]): row for row in reversed(LAYERS)}.values())


@pytest.mark.parametrize("name,module,shape,orthogonal", ONE_PER_CLASS, ids=[p[0] for p in ONE_PER_CLASS])
def test_forward_mode_through_every_layer(name, module, shape, orthogonal):
    """``jax.jvp`` and ``jax.linearize`` give the tangent whose inner product with any
    cotangent equals the reverse-mode one: <J t, c> = <t, J^T c>."""
    x = jax.random.uniform(jax.random.key(0), (2, *shape))
    variables = module.init(jax.random.key(1), x)
    fn = lambda v: module.apply(variables, v)  # noqa: E731
    tangent = jax.random.normal(jax.random.key(2), x.shape)
    cotangent = jax.random.normal(jax.random.key(3), jax.eval_shape(fn, x).shape)

    @jax.jit
    def both_modes(x, tangent, cotangent):
        jvp_out = jax.jvp(fn, (x,), (tangent,))[1]
        linearized = jax.linearize(fn, x)[1](tangent)
        (vjp_out,) = jax.vjp(fn, x)[1](cotangent)
        return jvp_out, linearized, vjp_out

    jvp_out, linearized, vjp_out = both_modes(x, tangent, cotangent)
    np.testing.assert_allclose(jnp.vdot(jvp_out, cotangent), jnp.vdot(tangent, vjp_out), rtol=2e-4, atol=2e-4)
    _close(linearized, jvp_out)


def test_jacfwd_equals_jacrev_and_hessian_is_symmetric_for_a_conv_network():
    model = L.Sequential(
        [
            L.ConvexPotentialConv(4, activation="softplus"),
            L.SLLConv(4, activation="softplus"),
            L.Flatten(),
            L.NormalizedDense(3),
        ]
    )
    x = jax.random.uniform(jax.random.key(0), (1, 4, 2, 2))
    variables = model.init(jax.random.key(1), x)
    fn = lambda v: model.apply(variables, v[None])[0]  # noqa: E731
    _close(jax.jit(jax.jacfwd(fn))(x[0]), jax.jit(jax.jacrev(fn))(x[0]))
    hessian = jax.jit(jax.hessian(lambda v: fn(v)[0]))(x[0]).reshape(x[0].size, x[0].size)
    assert float(jnp.abs(hessian).max()) > 0  # softplus: a non-trivial second derivative
    _close(hessian, hessian.T)


def test_every_layer_family_member_is_in_the_forward_mode_table():
    covered = {type(module).__name__ for _, module, _, _ in ONE_PER_CLASS}
    assert {"ConvexPotentialConv", "SLLConv", "SpectralConv", "CayleyConv", "SOCConv"} <= covered
    assert IMAGE[0] % 2 == 0  # the conv rows exercise the Winograd path (3x3, stride 1)


def _equivalent_training_signals(models_, x):
    """Asserts that ``models_`` (same variable tree) give one training signal on ``x``: the loss
    ``sum(out^2)``, its parameter gradients and the power-iteration updates, from shared variables."""
    variables = models_[0].init(jax.random.key(1), x)
    for model in models_[1:]:
        assert jax.tree.structure(variables) == jax.tree.structure(model.init(jax.random.key(1), x))

    def loss(model, params):
        out, updates = model.apply(
            {**variables, "params": params}, x, update_stats=True, mutable=[L.POWER_ITERATION]
        )
        return jnp.sum(out**2), updates

    first, *others = (
        jax.jit(jax.value_and_grad(lambda p, m=m: loss(m, p), has_aux=True))(variables["params"])
        for m in models_
    )
    for result in others:
        _close(result, first)


def test_repeat_with_remat_matches_without_in_outputs_gradients_and_power_iteration():
    from lipjax import models

    x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 3))
    _equivalent_training_signals(
        [models.cpl_network(2, 4, 1, 8, pool=2, remat=flag) for flag in (False, True)], x
    )


@pytest.mark.parametrize("unroll", [2, 3])
def test_unrolled_repeat_matches_the_loop_in_outputs_gradients_and_power_iteration(unroll):
    x = jax.random.uniform(jax.random.key(0), (4, 6))
    _equivalent_training_signals([L.Repeat(L.ConvexPotentialDense(5), 3, unroll=u) for u in (1, unroll)], x)


def test_cpl_network_unrolls_its_conv_stack_on_cpu_and_a_partial_unroll_matches_the_loop():
    from lipjax import models

    conv_stack = models.cpl_network(5, 4, 1, 8, pool=2).layers[1]
    assert isinstance(conv_stack, L.Repeat) and isinstance(conv_stack.layer, L.ConvexPotentialConv)
    assert conv_stack.unroll == (models.CPU_CONV_UNROLL if jax.default_backend() == "cpu" else 1)
    # 5 layers, 4 per iteration: one whole iteration and a remainder.
    x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 4))
    conv = L.ConvexPotentialConv(4, (3, 3))
    _equivalent_training_signals([L.Repeat(conv, 5, unroll=u) for u in (1, 4)], x)


def test_repeat_refuses_a_bad_unroll():
    with pytest.raises(ValueError, match="unroll must be a positive int"):
        L.Repeat(L.ConvexPotentialDense(5), 3, unroll=0)
