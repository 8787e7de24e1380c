"""The dynamical-system layer family's maths: AOL, SLL, Cayley, SOC (skew exponential), centering.

Every Lipschitz claim is checked against the singular values of the exact
Jacobian (reverse mode over the flattened input) on small inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from lipjax.ops import aol, cayley, centering, skew, skew_exp, sll
from lipjax.ops.conv import conv
from lipjax.ops.spectral_bounds import dense_spectral_norm_bound

# float32 forward passes: a 1-Lipschitz map measures at most 1 + a few ulps.
FLOAT32_TOL = 1e-5
IMAGE = (8, 8, 3)


def operator_matrix(linear_fn, shape) -> np.ndarray:
    """The matrix (out, in) of a linear batched map ``linear_fn`` (N, *shape) -> (N, ...).

    Applied to the identity basis in one call: for a linear map this is its exact Jacobian."""
    n = int(np.prod(shape))
    basis = jnp.eye(n, dtype=jnp.float32).reshape(n, *shape)
    return np.asarray(linear_fn(basis), np.float64).reshape(n, -1).T


def jacobian_norms(fn, points) -> np.ndarray:
    """Largest singular value of the exact Jacobian of ``fn`` at each point."""
    jac = jax.jit(jax.vmap(jax.jacrev(fn)))(points)
    n = points.shape[0]
    mats = np.asarray(jac, np.float64).reshape(n, -1, int(np.prod(points.shape[1:])))
    return np.linalg.svd(mats, compute_uv=False)


# ---------------------------------------------------------------- AOL


def test_conv_input_gram_kernel_matches_brute_force(rng):
    k = rng.normal(size=(3, 2, 2, 4))
    p = np.asarray(aol.conv_input_gram_kernel(jnp.asarray(k, jnp.float32)), np.float64)
    assert p.shape == (5, 3, 2, 2)
    brute = np.zeros_like(p)
    for sh in range(-2, 3):
        for sw in range(-1, 2):
            for a in range(3):
                for b in range(2):
                    if 0 <= a + sh < 3 and 0 <= b + sw < 2:
                        brute[sh + 2, sw + 1] += k[a, b] @ k[a + sh, b + sw].T
    np.testing.assert_allclose(p, brute, atol=1e-5)


@pytest.mark.parametrize("shape", [(16, 16), (16, 5), (5, 16)])
def test_aol_dense_norm_at_most_one_and_not_trivial(rng, shape):
    for _ in range(3):
        kernel = jnp.asarray(rng.normal(size=shape), jnp.float32)
        scaled = np.asarray(aol.aol_dense_kernel(kernel), np.float64)
        norm = np.linalg.norm(scaled, 2)
        assert norm <= 1 + FLOAT32_TOL
        assert norm > 0.5


@pytest.mark.parametrize(
    ("padding", "strides"), [("SAME", (1, 1)), ("CIRCULAR", (1, 1)), ("VALID", (1, 1)), ("SAME", (2, 2))]
)
def test_aol_conv_operator_norm_at_most_one(rng, padding, strides):
    for _ in range(2):
        kernel = aol.aol_conv_kernel(jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32))
        matrix = operator_matrix(lambda x, k=kernel: conv(x, k, strides, padding), IMAGE)
        norm = np.linalg.norm(matrix, 2)
        assert norm <= 1 + FLOAT32_TOL
        # stride keeps a subset of the rows that the stride-1 rescaling accounts for: looser
        assert norm > (0.5 if strides == (1, 1) else 0.25)


def test_aol_circular_conv_on_tiny_grid_with_aliasing(rng):
    # a 5x5 kernel on a 3x3 periodic grid: shifts wrap onto one another
    kernel = aol.aol_conv_kernel(jnp.asarray(rng.normal(size=(5, 5, 2, 2)), jnp.float32))
    matrix = operator_matrix(lambda x: conv(x, kernel, (1, 1), "CIRCULAR"), (3, 3, 2))
    assert np.linalg.norm(matrix, 2) <= 1 + FLOAT32_TOL


def test_aol_bad_shapes_raise():
    with pytest.raises(ValueError, match="dense AOL kernel must be 2-D"):
        aol.aol_dense_kernel(jnp.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="conv AOL kernel"):
        aol.aol_conv_kernel(jnp.ones((3, 3)))


# ---------------------------------------------------------------- SLL


def _sll_dense_setup(rng, d, features):
    kernel = jnp.asarray(rng.normal(size=(d, features)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(features,)), jnp.float32)
    q = jnp.exp(jnp.asarray(rng.normal(size=(features,)), jnp.float32))
    return kernel, bias, sll.sll_dense_scale(kernel, q)


@pytest.mark.parametrize("features", [8, 16, 24])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_sll_dense_is_1_lipschitz_and_bound_covers_it(rng, features, activation):
    kernel, bias, scale = _sll_dense_setup(rng, 16, features)
    points = jnp.asarray(rng.normal(size=(6, 16)), jnp.float32)
    svs = jacobian_norms(lambda x: sll.sll_dense(x, kernel, bias, scale, activation), points)
    assert svs.max() <= 1 + FLOAT32_TOL
    assert svs.min() < 0.9  # the layer is not the identity
    bound = sll.sll_dense_lipschitz_bound(kernel, scale)
    assert svs.max() <= bound <= 1 + 1e-4


def test_sll_too_large_step_is_caught_by_the_bound(rng):
    # t halved (what an epsilon that shrinks t does, in the extreme): not 1-Lipschitz any more
    kernel, bias, scale = _sll_dense_setup(rng, 16, 16)
    points = jnp.asarray(rng.normal(size=(6, 16)), jnp.float32)
    svs = jacobian_norms(lambda x: sll.sll_dense(x, kernel, bias * 0 + 5.0, 2 * scale), points)
    bound = sll.sll_dense_lipschitz_bound(kernel, 2 * scale)
    assert svs.max() > 1.05
    assert svs.max() <= bound * (1 + FLOAT32_TOL)


@pytest.mark.parametrize(
    ("padding", "strides"), [("SAME", (1, 1)), ("CIRCULAR", (1, 1)), ("VALID", (1, 1)), ("SAME", (2, 2))]
)
def test_sll_conv_is_1_lipschitz_and_bound_covers_it(rng, padding, strides):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 5)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(5,)), jnp.float32)
    q = jnp.exp(jnp.asarray(rng.normal(size=(5,)), jnp.float32))
    scale = sll.sll_conv_scale(kernel, q)
    points = jnp.asarray(rng.normal(size=(3, *IMAGE)), jnp.float32)

    def layer(x):
        return sll.sll_conv(x[None], kernel, bias, scale, strides, padding)[0]

    svs = jacobian_norms(layer, points)
    assert svs.max() <= 1 + FLOAT32_TOL
    assert svs.min() < 0.9
    bound = sll.sll_conv_lipschitz_bound(kernel, scale, IMAGE[:2], strides, padding)
    assert svs.max() <= bound <= 1 + 1e-4


def test_sll_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"SLL q must have shape \(4,\)"):
        sll.sll_dense_scale(jnp.ones((3, 4)), jnp.ones((3,)))
    with pytest.raises(ValueError, match="SLL dense kernel must be 2-D"):
        sll.sll_dense_scale(jnp.ones((3,)), jnp.ones((3,)))
    with pytest.raises(ValueError, match="SLL conv kernel must be HWIO"):
        sll.sll_conv_scale(jnp.ones((3, 4)), jnp.ones((4,)))
    with pytest.raises(ValueError, match="SLL scale must be finite and non-negative"):
        sll.sll_dense_lipschitz_bound(np.ones((3, 4)), -np.ones(4))


# ---------------------------------------------------------------- skew generators and Cayley

ORTHOGONAL_TOL = 1e-5  # float32 deviation of all singular values from 1


def test_skew_generators_are_exactly_skew(rng):
    a = np.asarray(skew.skew_symmetric(jnp.asarray(rng.normal(size=(16, 16)), jnp.float32)))
    np.testing.assert_array_equal(a, -a.T)
    m = jnp.asarray(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)), jnp.complex64)
    h = np.asarray(skew.skew_hermitian(m))
    np.testing.assert_array_equal(h, -h.conj().T)


@pytest.mark.parametrize("padding", ["SAME", "CIRCULAR"])
def test_skew_conv_operator_matrix_is_antisymmetric(rng, padding):
    s = skew.skew_conv_kernel(jnp.asarray(rng.normal(size=(3, 3, 3, 3)), jnp.float32))
    matrix = operator_matrix(lambda x: conv(x, s, (1, 1), padding), IMAGE)
    assert np.abs(matrix).max() > 0.1
    np.testing.assert_allclose(matrix, -matrix.T, atol=1e-6)


def test_dense_cayley_is_orthogonal_and_invertible(rng):
    w = jnp.asarray(rng.normal(size=(16, 16)), jnp.float32)
    q = np.asarray(cayley.cayley_dense_kernel(w), np.float64)
    svs = np.linalg.svd(q, compute_uv=False)
    assert np.abs(svs - 1).max() <= ORTHOGONAL_TOL
    assert dense_spectral_norm_bound(q) >= svs.max()
    # the inverse is the Cayley transform of -A
    a = skew.skew_symmetric(w)
    inverse = np.asarray(cayley.cayley(-a), np.float64)
    np.testing.assert_allclose(q @ inverse, np.eye(16), atol=1e-5)
    # midpoint step of Meunier et al.: (I - A/2)^{-1}(I + A/2) = cayley(-A/2)
    eye = np.eye(16)
    a64 = np.asarray(a, np.float64)
    midpoint = np.linalg.solve(eye - a64 / 2, eye + a64 / 2)
    np.testing.assert_allclose(np.asarray(cayley.cayley(-a / 2)), midpoint, atol=1e-5)


def test_cayley_conv_is_orthogonal_and_the_bound_covers_it(rng):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 3)), jnp.float32)
    matrix = operator_matrix(lambda x: cayley.cayley_conv(x, kernel), IMAGE)
    svs = np.linalg.svd(matrix, compute_uv=False)
    assert np.abs(svs - 1).max() <= ORTHOGONAL_TOL
    # not a trivial operator: far from the identity
    assert np.abs(matrix - np.eye(matrix.shape[0])).max() > 0.1
    blocks = cayley.cayley_conv_frequency_matrices(kernel, IMAGE[:2])
    bound = cayley.frequency_conv_lipschitz_bound(np.real(blocks), np.imag(blocks))
    assert svs.max() <= bound <= 1 + 1e-4
    # invertible: the conjugate-transposed blocks undo it
    x = jnp.asarray(rng.normal(size=(2, *IMAGE)), jnp.float32)
    y = cayley.frequency_conv(x, blocks)
    back = cayley.frequency_conv(y, jnp.conj(jnp.swapaxes(blocks, -1, -2)))
    np.testing.assert_allclose(np.asarray(back), np.asarray(x), atol=1e-5)


def test_frequency_bound_matches_explicit_operator_of_exported_blocks(rng):
    # arbitrary (non-unitary) blocks that break the Hermitian symmetry: the bound still covers
    blocks = rng.normal(size=(4, 3, 2, 2)) + 1j * rng.normal(size=(4, 3, 2, 2))
    blocks = jnp.asarray(blocks, jnp.complex64)
    matrix = operator_matrix(lambda x: cayley.frequency_conv(x, blocks), (4, 4, 2))
    bound = cayley.frequency_conv_lipschitz_bound(np.real(blocks), np.imag(blocks))
    assert np.linalg.norm(matrix, 2) <= bound


def test_cayley_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match=r"must be square \(n, n\)"):
        cayley.cayley_dense_kernel(jnp.ones((4, 3)))
    x = jnp.ones((1, 8, 8, 3))
    with pytest.raises(ValueError, match="Cayley conv padding must be 'CIRCULAR'"):
        cayley.cayley_conv(x, jnp.ones((3, 3, 3, 3)), padding="SAME")
    with pytest.raises(ValueError, match="as many input as output channels"):
        cayley.cayley_conv(x, jnp.ones((3, 3, 3, 4)))
    with pytest.raises(ValueError, match="larger than the image grid"):
        cayley.cayley_conv(jnp.ones((1, 2, 2, 3)), jnp.ones((3, 3, 3, 3)))
    with pytest.raises(ValueError, match="input has 2 channels"):
        cayley.cayley_conv(jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 3, 3)))
    with pytest.raises(ValueError, match="real and imaginary parts"):
        cayley.frequency_conv_lipschitz_bound(np.ones((2, 2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="needs odd spatial sizes"):
        skew.skew_conv_kernel(jnp.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="skew conv padding must be one of"):
        skew.check_skew_conv(jnp.ones((3, 3, 3, 3)), "VALID")


def test_cayley_conv_is_differentiable_in_the_kernel(rng):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
    grad = jax.jit(jax.grad(lambda k: jnp.sum((cayley.cayley_conv(x, k) - target) ** 2)))(kernel)
    assert grad.shape == kernel.shape and grad.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).max()) > 0


# ---------------------------------------------------------------- SOC (skew exponential)


def _dense_generator(rng, norm):
    a = skew.skew_symmetric(jnp.asarray(rng.normal(size=(16, 16)), jnp.float32))
    return a * (norm / float(np.linalg.norm(np.asarray(a, np.float64), 2)))


@pytest.mark.parametrize("terms", [2, 4, 8, 12])
def test_soc_dense_bound_covers_the_truncation(rng, terms):
    a = _dense_generator(rng, 1.5)
    matrix = operator_matrix(lambda x: skew_exp.skew_exp_dense(x, a, terms), (16,))
    svs = np.linalg.svd(matrix, compute_uv=False)
    exact = scipy.linalg.expm(np.asarray(a, np.float64))
    remainder = np.linalg.norm(matrix - exact.T, 2)  # row-vector layout: x @ T_n(A)
    a_bound = dense_spectral_norm_bound(np.asarray(a))
    assert remainder <= skew_exp.taylor_remainder_bound(a_bound, terms) + 1e-5
    bound = skew_exp.skew_exp_dense_lipschitz_bound(np.asarray(a), terms)
    assert svs.max() <= bound
    if terms == 2:
        assert svs.max() > 1.05  # plain truncation is genuinely above 1; the bound says so
    if terms == 12:
        assert np.abs(svs - 1).max() <= ORTHOGONAL_TOL
        assert bound <= 1 + 1e-4
    # the matrix form exported as a plain dense kernel is the same map
    np.testing.assert_allclose(np.asarray(skew_exp.taylor_exp_matrix(a, terms)), matrix.T, atol=1e-5)


@pytest.mark.parametrize("padding", ["SAME", "CIRCULAR"])
def test_soc_conv_is_orthogonal_and_the_bound_covers_it(rng, padding):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 3)), jnp.float32)
    s = skew_exp.rescale_to_norm(skew.skew_conv_kernel(kernel), 1.0)
    matrix = operator_matrix(lambda x: skew_exp.skew_exp_conv(x, s, 12, padding), IMAGE)
    svs = np.linalg.svd(matrix, compute_uv=False)
    assert np.abs(svs - 1).max() <= ORTHOGONAL_TOL
    assert np.abs(matrix - np.eye(matrix.shape[0])).max() > 0.05  # not the identity
    generator = operator_matrix(lambda x: conv(x, s, (1, 1), padding), IMAGE)
    exact = scipy.linalg.expm(generator)
    a_bound = skew_exp.generator_norm_estimate(s)
    assert np.linalg.norm(generator, 2) <= float(a_bound) * (1 + 1e-6)
    # the rescale reaches its target up to float32 rounding (2 ulps over it on an H100)
    assert float(a_bound) <= 1 + 1e-6
    remainder = np.linalg.norm(matrix - exact, 2)
    assert remainder <= skew_exp.taylor_remainder_bound(float(a_bound), 12) + 1e-5
    bound = skew_exp.skew_exp_conv_lipschitz_bound(np.asarray(s), IMAGE[:2], 12, padding)
    assert svs.max() <= bound <= 1 + 1e-4


def test_soc_conv_few_terms_large_generator_bound_is_honest(rng):
    s = skew.skew_conv_kernel(jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32))
    matrix = operator_matrix(lambda x: skew_exp.skew_exp_conv(x, s, 3), (6, 6, 2))
    measured = np.linalg.norm(matrix, 2)
    assert measured > 1.05
    assert measured <= skew_exp.skew_exp_conv_lipschitz_bound(np.asarray(s), (6, 6), 3)


def test_soc_bound_accounts_for_a_non_skew_generator(rng):
    a = np.asarray(_dense_generator(rng, 0.5), np.float64) + 0.05 * np.eye(16)
    t = scipy.linalg.expm(a)
    assert np.linalg.norm(t, 2) > 1.04
    assert np.linalg.norm(t, 2) <= skew_exp.skew_exp_dense_lipschitz_bound(a, 30)


def test_soc_bad_hyperparameters_raise():
    x = jnp.ones((1, 8, 8, 3))
    with pytest.raises(ValueError, match="SOC terms must be an integer >= 1"):
        skew_exp.skew_exp_dense(jnp.ones((2, 4)), jnp.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="SOC terms must be an integer >= 1"):
        skew_exp.taylor_remainder_bound(1.0, 2.5)
    with pytest.raises(ValueError, match=r"SOC generator A must be square"):
        skew_exp.skew_exp_dense(jnp.ones((2, 4)), jnp.zeros((4, 3)), 4)
    with pytest.raises(ValueError, match="skew conv padding must be one of"):
        skew_exp.skew_exp_conv(x, jnp.zeros((3, 3, 3, 3)), 4, "VALID")
    with pytest.raises(ValueError, match="needs odd spatial sizes"):
        skew_exp.skew_exp_conv(x, jnp.zeros((2, 2, 3, 3)), 4)
    with pytest.raises(ValueError, match="as many input as output channels"):
        skew_exp.skew_exp_conv(x, jnp.zeros((3, 3, 3, 4)), 4)
    with pytest.raises(ValueError, match="input has 3 channels"):
        skew_exp.skew_exp_conv(x, jnp.zeros((3, 3, 2, 2)), 4)
    with pytest.raises(ValueError, match="SOC max_norm must be positive"):
        skew_exp.rescale_to_norm(jnp.ones((3, 3)), 0.0)


def test_soc_conv_is_differentiable_in_the_kernel(rng):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)

    def loss(k):
        s = skew_exp.rescale_to_norm(skew.skew_conv_kernel(k), 1.0)
        return jnp.sum(skew_exp.skew_exp_conv(x, s, 6) * x[..., ::-1])

    grad = jax.jit(jax.grad(loss))(kernel)
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).max()) > 0


# ---------------------------------------------------------------- centering


@pytest.mark.parametrize(
    ("shape", "axes", "groups"), [((16,), (-1,), 1), (IMAGE, (1, 2), IMAGE[2]), (IMAGE, (1, 2, 3), 1)]
)
def test_layer_centering_is_a_projection_with_lipschitz_one(rng, shape, axes, groups):
    matrix = operator_matrix(lambda x: centering.layer_centering(x, axes), shape)
    svs = np.linalg.svd(matrix, compute_uv=False)
    assert (
        svs.max() == pytest.approx(1.0, abs=FLOAT32_TOL)
        and svs.max() <= centering.centering_lipschitz_bound()
    )
    np.testing.assert_allclose(matrix @ matrix, matrix, atol=1e-6)  # idempotent
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-7)  # symmetric: orthogonal projection
    assert np.sum(svs < 0.5) == groups  # one constant direction removed per group


def test_batch_centering_is_a_translation(rng):
    x = jnp.asarray(rng.normal(size=(5, *IMAGE)), jnp.float32)
    mean = centering.batch_mean(x, (0, 1, 2))
    assert mean.shape == (3,)
    np.testing.assert_allclose(
        np.asarray(centering.batch_mean(centering.batch_centering(x, mean), (0, 1, 2))), 0, atol=1e-6
    )
    running = centering.update_running_mean(jnp.zeros(3), mean, 0.9)
    np.testing.assert_allclose(np.asarray(running), 0.1 * np.asarray(mean), rtol=1e-6)
    # an affine map: its exact Jacobian (not the basis images) is the identity
    jac = jax.jacrev(lambda v: centering.batch_centering(v, running))(x[0])
    np.testing.assert_array_equal(np.asarray(jac).reshape(192, 192), np.eye(192))


def test_centering_bad_arguments_raise():
    x = jnp.ones((2, 4, 4, 3))
    with pytest.raises(ValueError, match="must not average over the batch axis 0"):
        centering.layer_centering(x, (0, 1))
    with pytest.raises(ValueError, match="axis 5 out of range"):
        centering.layer_centering(x, (5,))
    with pytest.raises(ValueError, match="must reduce the batch axis 0"):
        centering.batch_mean(x, (1, 2))
    with pytest.raises(ValueError, match="does not broadcast"):
        centering.batch_centering(x, jnp.zeros(4))
    with pytest.raises(ValueError, match="momentum must be in"):
        centering.update_running_mean(jnp.zeros(3), jnp.zeros(3), 1.5)


def test_soc_rescale_with_a_given_norm_estimate(rng):
    a = _dense_generator(rng, 3.0)
    scaled = skew_exp.rescale_to_norm(a, 1.0, norm=jnp.asarray(3.0))
    assert np.linalg.norm(np.asarray(scaled, np.float64), 2) == pytest.approx(1.0, rel=1e-5)
    guaranteed = skew_exp.rescale_to_norm(a, 1.0)
    assert np.linalg.norm(np.asarray(guaranteed, np.float64), 2) <= 1.0 + 1e-6
    np.testing.assert_array_equal(np.asarray(skew_exp.rescale_to_norm(a / 10, 1.0)), np.asarray(a / 10))
