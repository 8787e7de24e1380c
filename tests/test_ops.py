"""Power iteration, certified spectral bounds and the elementary ops.

The JAX ops are tested with and without ``jax.jit`` (``chex.variants``) in
:class:`OpsUnderJitAndEagerTest`; the spectral bounds are numpy/scipy code and are
tested once.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lipjax import ops
from lipjax.ops.spectral_bounds import circular_conv_spectral_norm, explicit_conv_matrix

PADDINGS = ["SAME", "VALID", "CIRCULAR", ((2, 1), (0, 3))]
STRIDES = [(1, 1), (2, 2), (3, 1)]


def explicit_operator(kernel, hw, strides, padding) -> np.ndarray:
    """The conv as a matrix, built by applying lipjax's own conv to the identity basis."""
    c = kernel.shape[2]
    n = hw[0] * hw[1] * c
    basis = jnp.eye(n, dtype=jnp.float32).reshape(n, *hw, c)
    return np.asarray(ops.conv(basis, jnp.asarray(kernel), strides, padding).reshape(n, -1), np.float64)


def test_dense_bound_is_sound_and_tight(rng):
    for shape in [(7, 3), (3, 9), (64, 64)]:
        w = rng.normal(size=shape).astype(np.float32)
        true = np.linalg.norm(w.astype(np.float64), 2)
        bound = ops.dense_spectral_norm_bound(w)
        assert true <= bound <= true * (1 + 2e-5)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("hw", [(6, 7), (8, 8)])
def test_conv_bound_is_sound_on_small_inputs(rng, padding, strides, hw):
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    true = np.linalg.norm(explicit_operator(kernel, hw, strides, padding), 2)
    bound = ops.conv_spectral_norm_bound(kernel, hw, strides, padding)
    assert bound >= true
    exact_path = padding != "CIRCULAR" or all(n % s == 0 for n, s in zip(hw, strides, strict=True))
    if exact_path:  # explicit matrix (zero padding) or exact DFT (circular)
        assert bound <= true * (1 + 2e-5)


def test_explicit_matrix_matches_lipjax_conv(rng):
    kernel = rng.normal(size=(3, 2, 2, 3)).astype(np.float32)
    for padding in ["SAME", "VALID", ((1, 2), (0, 1))]:
        for strides in STRIDES:
            ours = explicit_conv_matrix(kernel, (5, 6), strides, padding)
            np.testing.assert_allclose(ours, explicit_operator(kernel, (5, 6), strides, padding), atol=1e-5)


def test_dft_bound_on_larger_zero_padded_conv_is_within_one_percent(rng):
    """16x16x8 inputs (2048+ coordinates) use the DFT embedding; compare with converged power iteration."""
    kernel = (rng.normal(size=(3, 3, 8, 8)) / np.sqrt(72)).astype(np.float32)
    bound = ops.conv_spectral_norm_bound(kernel, (16, 17), (1, 1), "SAME")
    forward, transpose = ops.conv_operator(jnp.asarray(kernel), (16, 17, 8), (1, 1), "SAME")
    u0 = jnp.asarray(rng.normal(size=(16, 17, 8)), jnp.float32)
    _, sigma = jax.jit(lambda u: ops.power_iteration(forward, transpose, u, 2000))(u0)
    assert float(sigma) <= bound <= float(sigma) * 1.01


def test_circular_dft_norm_equals_explicit(rng):
    kernel = rng.normal(size=(3, 3, 2, 2))
    true = np.linalg.norm(explicit_operator(kernel.astype(np.float32), (5, 5), (1, 1), "CIRCULAR"), 2)
    assert circular_conv_spectral_norm(kernel, (5, 5)) == pytest.approx(true, rel=1e-5)


def test_bounds_reject_non_finite_weights():
    with pytest.raises(ValueError, match="NaN or inf"):
        ops.dense_spectral_norm_bound(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        ops.conv_spectral_norm_bound(np.full((3, 3, 1, 1), np.inf), (4, 4))


def test_invalid_padding_and_activation():
    with pytest.raises(ValueError, match="padding"):
        ops.normalize_padding("REFLECT")
    with pytest.raises(ValueError, match="unknown activation"):
        ops.get_activation("gelu")


def _lax_conv(x, kernel, strides, padding):
    if padding == "CIRCULAR":
        kh, kw = kernel.shape[:2]
        x = jnp.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)), mode="wrap")
        padding = "VALID"
    return jax.lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


class OpsUnderJitAndEagerTest(chex.TestCase):
    """Each op runs through ``self.variant``: once under ``jax.jit`` and once eagerly."""

    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_power_iteration_dense_matches_svd(self):
        w = self.rng.normal(size=(20, 12)).astype(np.float32)
        iterate = self.variant(lambda w, u: ops.power_iteration(*ops.dense_operator(w), u, 300))
        u, sigma = iterate(jnp.asarray(w), jnp.ones(20))
        true = np.linalg.norm(w.astype(np.float64), 2)
        chex.assert_shape(u, (20,))
        assert float(sigma) <= true * (1 + 1e-5)
        assert float(sigma) == pytest.approx(true, rel=1e-4)
        assert float(jnp.linalg.norm(u)) == pytest.approx(1.0, abs=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(padding=PADDINGS, strides=STRIDES)
    def test_power_iteration_conv_matches_explicit_svd(self, padding, strides):
        kernel = self.rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
        hw = (6, 7)
        true = np.linalg.norm(explicit_operator(kernel, hw, strides, padding), 2)

        def iterate(kernel, u):
            forward, transpose = ops.conv_operator(kernel, (*hw, 2), strides, padding)
            return ops.power_iteration(forward, transpose, u, 500)

        u0 = jnp.asarray(self.rng.normal(size=(*hw, 2)), jnp.float32)
        u, sigma = self.variant(iterate)(jnp.asarray(kernel), u0)
        chex.assert_shape(u, (*hw, 2))
        assert float(sigma) <= true * (1 + 1e-5)
        assert float(sigma) == pytest.approx(true, rel=2e-3)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(padding=PADDINGS, strides=STRIDES)
    def test_conv_transpose_is_the_adjoint(self, padding, strides):
        """<conv(x), y> = <x, conv_transpose(y)>."""
        kernel = jnp.asarray(self.rng.normal(size=(3, 3, 2, 3)), jnp.float32)
        x = jnp.asarray(self.rng.normal(size=(1, 6, 7, 2)), jnp.float32)
        conv = self.variant(lambda x, k: ops.conv(x, k, strides, padding))
        adjoint = self.variant(lambda y, k: ops.conv_transpose(y, k, (6, 7, 2), strides, padding))
        y = jnp.asarray(self.rng.normal(size=conv(x, kernel).shape), jnp.float32)
        x_back = adjoint(y, kernel)
        chex.assert_equal_shape([x_back, x])
        lhs = jnp.vdot(conv(x, kernel), y)
        rhs = jnp.vdot(x, x_back)
        assert float(lhs) == pytest.approx(float(rhs), rel=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(padding=PADDINGS, strides=STRIDES, kernel_hw=[(3, 3), (2, 3)])
    def test_conv_and_adjoint_gradients_match_autodiff_of_lax(self, padding, strides, kernel_hw):
        """The custom VJPs (plain-layout backward convolutions) equal JAX's own autodiff."""
        kernel = jnp.asarray(self.rng.normal(size=(*kernel_hw, 2, 3)), jnp.float32)
        x = jnp.asarray(self.rng.normal(size=(2, 7, 5, 2)), jnp.float32)
        y = _lax_conv(x, kernel, strides, padding)
        g = jnp.asarray(self.rng.normal(size=y.shape), jnp.float32)
        conv = self.variant(lambda x, k: ops.conv(x, k, strides, padding))
        chex.assert_trees_all_close(conv(x, kernel), y, atol=1e-5)

        ours = self.variant(jax.grad(lambda x, k: jnp.vdot(ops.conv(x, k, strides, padding), g), (0, 1)))(
            x, kernel
        )
        ref = jax.grad(lambda x, k: jnp.vdot(_lax_conv(x, k, strides, padding), g), (0, 1))(x, kernel)

        def ref_adjoint(y, k):
            return jax.linear_transpose(lambda v: _lax_conv(v, k, strides, padding), x)(y)[0]

        ours_t = self.variant(
            jax.grad(lambda y, k: jnp.vdot(ops.conv_transpose(y, k, (7, 5, 2), strides, padding), x), (0, 1))
        )(g, kernel)
        ref_t = jax.grad(lambda y, k: jnp.vdot(ref_adjoint(y, k), x), (0, 1))(g, kernel)
        chex.assert_trees_all_equal_shapes(ours + ours_t, ref + ref_t)
        chex.assert_trees_all_close(ours + ours_t, ref + ref_t, atol=1e-4, rtol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_bjorck_orthonormalises(self):
        w = self.rng.normal(size=(16, 8)).astype(np.float32)
        q = self.variant(lambda w: ops.bjorck(w, 30))(jnp.asarray(w / np.linalg.norm(w, 2)))
        chex.assert_shape(q, (16, 8))
        chex.assert_trees_all_close(q.T @ q, jnp.eye(8), atol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_group_sort_sorts_groups(self):
        x = jnp.array([[3.0, 1.0, 2.0, 5.0, 4.0, 0.0]])
        sort2 = self.variant(lambda x: ops.group_sort(x, 2))
        sort3 = self.variant(lambda x: ops.group_sort(x, 3))
        np.testing.assert_array_equal(sort2(x), [[1.0, 3.0, 2.0, 5.0, 0.0, 4.0]])
        np.testing.assert_array_equal(sort3(x), [[1.0, 2.0, 3.0, 0.0, 4.0, 5.0]])
        np.testing.assert_array_equal(self.variant(ops.full_sort)(x), [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
        with pytest.raises(ValueError, match="divide"):
            self.variant(lambda x: ops.group_sort(x, 4))(x)

    @chex.variants(with_jit=True, without_jit=True)
    def test_scaled_pools_and_unshuffle_on_known_values(self):
        x = jnp.arange(16.0).reshape(1, 4, 4, 1)
        pooled = self.variant(lambda x: ops.scaled_avg_pool(x, 2))(x)
        chex.assert_shape(pooled, (1, 2, 2, 1))
        np.testing.assert_allclose(pooled[0, :, :, 0], [[10 / 2, 18 / 2], [42 / 2, 50 / 2]])
        l2 = self.variant(lambda x: ops.scaled_l2_norm_pool(x, 2))(x)
        assert float(l2[0, 0, 0, 0]) == pytest.approx(np.sqrt(0 + 1 + 16 + 25), abs=1e-5)
        unshuffled = self.variant(lambda x: ops.pixel_unshuffle(x, 2))(x)
        chex.assert_shape(unshuffled, (1, 2, 2, 4))
        np.testing.assert_array_equal(np.sort(np.asarray(unshuffled).ravel()), np.arange(16.0))
