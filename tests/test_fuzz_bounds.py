"""Fuzz test: every certified convolution bound against the exact operator norm.

Random kernel sizes (even ones, and ones larger than the image), image sizes
(1..9, not divisible by the stride), strides 1..3 per axis, 1..5 channels and
every padding (SAME, VALID, CIRCULAR, explicit asymmetric, padding larger than
the kernel). Two levels are checked:

* ops: :func:`lipjax.ops.conv_spectral_norm_bound` against the largest singular
  value of the explicit float64 matrix of :func:`lipjax.ops.conv` (the op applied
  to the identity basis), both on the small-input path and, with the explicit
  limit lowered to 0, on the DFT-embedding path; and
  :func:`lipjax.ops.conv_transpose` against that matrix's transpose;
* layers: the constant that :func:`lipjax.export.export` certifies for
  ``ConvexPotentialConv`` / ``SpectralConv`` against the largest singular value
  of the exact Jacobian of the exported model's ``apply``.

The default run is small (16 conv and 5 layer configurations, plus the pinned findings);
``LIPJAX_FUZZ_CASES=N`` sets the number of random configurations per test, and
``LIPJAX_FUZZ_SLOW=1`` runs the larger sweeps (marked ``slow``, 400 + 200 cases).
Every failing configuration is collected and printed in the assertion.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipjax import export, ops
from lipjax import layers as L
from lipjax.ops import spectral_bounds
from lipjax.ops.conv import conv_output_hw

FAST_CASES = int(os.environ.get("LIPJAX_FUZZ_CASES", "16"))
SLOW_CASES = 400
large_sweep = pytest.mark.skipif(
    not os.environ.get("LIPJAX_FUZZ_SLOW"), reason="large sweep: set LIPJAX_FUZZ_SLOW=1 (minutes)"
)
# The exported constant already carries ROUNDING_SLACK (1e-5); the Jacobian of the
# float32 forward pass, taken by float32 autodiff, has its own rounding of ~1e-6.
JACOBIAN_TOLERANCE = 1e-4


def random_padding(rng: np.random.Generator):
    kind = rng.integers(4)
    if kind < 3:
        return ("SAME", "VALID", "CIRCULAR")[kind]
    return tuple(tuple(int(p) for p in rng.integers(0, 7, 2)) for _ in range(2))


def random_config(rng: np.random.Generator, max_channels: int = 5) -> dict:
    """One random convolution: kernel and image sizes 1..9 (so kernels may exceed the image)."""
    return {
        "kernel_hw": tuple(int(k) for k in rng.integers(1, 10, 2)),
        "input_hw": tuple(int(n) for n in rng.integers(1, 10, 2)),
        "strides": tuple(int(s) for s in rng.integers(1, 4, 2)),
        "cin": int(rng.integers(1, max_channels + 1)),
        "cout": int(rng.integers(1, max_channels + 1)),
        "padding": random_padding(rng),
    }


def random_kernel(rng: np.random.Generator, shape) -> np.ndarray:
    """Gaussian, or (to reach the highest frequencies, where aliasing hides) a
    Gaussian magnitude with checkerboard signs ``(-1)^(a + b)``, or all ones."""
    kind = rng.integers(3)
    kernel = rng.normal(size=shape)
    if kind == 1:
        a, b = np.indices(shape[:2])
        kernel = np.abs(kernel) * ((-1.0) ** (a + b))[..., None, None]
    elif kind == 2:
        kernel = np.ones(shape)
    return kernel.astype(np.float32)


def exact_conv_matrix(kernel: np.ndarray, input_hw, strides, padding) -> np.ndarray:
    """``lipjax.ops.conv`` as a float64 array (input coordinate, H', W', C_out), from the identity basis."""
    cin = kernel.shape[2]
    n = input_hw[0] * input_hw[1] * cin
    with jax.enable_x64(True):
        basis = jnp.eye(n, dtype=jnp.float64).reshape(n, *input_hw, cin)
        return np.asarray(ops.conv(basis, jnp.asarray(kernel, jnp.float64), strides, padding))


def exact_adjoint_matrix(kernel: np.ndarray, input_hw, output_hw, strides, padding) -> np.ndarray:
    """``lipjax.ops.conv_transpose`` as a float64 matrix (rows: output coordinates)."""
    cin, cout = kernel.shape[2:]
    m = output_hw[0] * output_hw[1] * cout
    with jax.enable_x64(True):
        basis = jnp.eye(m, dtype=jnp.float64).reshape(m, *output_hw, cout)
        out = ops.conv_transpose(basis, jnp.asarray(kernel, jnp.float64), (*input_hw, cin), strides, padding)
    if out.shape != (m, *input_hw, cin):
        raise ValueError(f"conv_transpose returned shape {out.shape[1:]}, not the input's {(*input_hw, cin)}")
    return np.asarray(out, np.float64).reshape(m, int(np.prod(out.shape[1:])))


def is_exact_path(config: dict, explicit_limit: int) -> bool:
    """Whether the bound is documented as exact (up to the rounding slack) for this configuration."""
    h, w = config["input_hw"]
    divides = h % config["strides"][0] == 0 and w % config["strides"][1] == 0
    small = h * w * config["cin"] <= explicit_limit
    return small or (config["padding"] == "CIRCULAR" and divides)


def _norm(matrix: np.ndarray) -> float:
    return float(np.linalg.norm(matrix, 2)) if matrix.size else 0.0


def check_conv_config(config: dict, rng: np.random.Generator) -> str | None:
    """Returns a description of the failure for this configuration, or None when sound."""
    kh, kw = config["kernel_hw"]
    kernel = random_kernel(rng, (kh, kw, config["cin"], config["cout"]))
    hw, strides, padding = config["input_hw"], config["strides"], config["padding"]
    try:
        image = exact_conv_matrix(kernel, hw, strides, padding)
    except ValueError as err:  # the op itself refuses: then so may the bound
        return _expect_refusal(kernel, config, f"conv refused: {err}")
    out_hw = image.shape[1:3]
    matrix = image.reshape(image.shape[0], -1)
    exact = _norm(matrix)
    problems = []
    try:
        adjoint = exact_adjoint_matrix(kernel, hw, out_hw, strides, padding)
        if not np.allclose(adjoint, matrix.T, atol=1e-9):
            problems.append("conv_transpose is not the adjoint of conv")
    except Exception as err:  # noqa: BLE001 - any crash of the adjoint is a finding
        problems.append(f"conv_transpose failed: {type(err).__name__}: {err}")
    for limit in (spectral_bounds.EXPLICIT_LIMIT, 0):  # explicit-matrix path, then DFT path
        original = spectral_bounds.EXPLICIT_LIMIT
        spectral_bounds.EXPLICIT_LIMIT = limit
        try:
            bound = ops.conv_spectral_norm_bound(kernel, hw, strides, padding)
        except Exception as err:  # noqa: BLE001 - any crash of the bound is a finding
            problems.append(f"bound (explicit limit {limit}) failed: {type(err).__name__}: {err}")
            continue
        finally:
            spectral_bounds.EXPLICIT_LIMIT = original
        if not exact <= bound:
            problems.append(f"exact norm {exact:.6f} > bound {bound:.6f} (explicit limit {limit})")
        elif is_exact_path(config, limit) and bound > exact * (1 + 2e-5) + 1e-12:
            problems.append(f"bound {bound:.6f} not exact: norm {exact:.6f} (explicit limit {limit})")
    return "; ".join(problems) or None


def _expect_refusal(kernel, config, why: str) -> str | None:
    try:
        ops.conv_spectral_norm_bound(kernel, config["input_hw"], config["strides"], config["padding"])
    except ValueError:
        return None
    return f"{why}, but the bound returned a value"


def _failures(check, cases: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    failures = []
    for _ in range(cases):
        config = random_config(rng)
        problem = check(config, rng)
        if problem:
            failures.append(f"{config}: {problem}")
    return failures


def _report(failures: list[str], cases: int) -> str:
    return f"{len(failures)} of {cases} configurations fail:\n" + "\n".join(failures)


def test_conv_bound_fuzz():
    failures = _failures(check_conv_config, FAST_CASES, seed=0)
    assert not failures, _report(failures, FAST_CASES)


@pytest.mark.slow
@large_sweep
def test_conv_bound_fuzz_large_sweep():
    failures = _failures(check_conv_config, SLOW_CASES, seed=1)
    assert not failures, _report(failures, SLOW_CASES)


# --- through the public layers and export ------------------------------------------------


def _layer(config: dict, rng: np.random.Generator):
    common = {
        "features": config["cout"],
        "kernel_size": config["kernel_hw"],
        "strides": config["strides"],
        "padding": config["padding"],
    }
    choice = rng.integers(3)
    if choice == 0:
        return "cpl", L.ConvexPotentialConv(**common)
    if choice == 1:
        return "spectral", L.SpectralConv(**common)
    return "spectral_bjorck", L.SpectralConv(**common, bjorck_iters=5)


def _adversarial(variables, kernel: np.ndarray, all_active: bool):
    """Sets the kernel; bias +100 puts every ReLU of a CPL in its active part, where
    the Jacobian is ``I - h K^T K``, whose norm exceeds 1 exactly when ``h ||K||^2 > 2``."""
    params = {**variables["params"], "kernel": jnp.asarray(kernel)}
    if all_active:
        params["bias"] = jnp.full_like(params["bias"], 100.0)
    return {**variables, "params": params}


def check_layer_config(config: dict, rng: np.random.Generator) -> str | None:
    """Exports one random conv layer and compares its certified constant with its exact Jacobian."""
    name, module = _layer(config, rng)
    shape = (*config["input_hw"], config["cin"])
    x = jnp.asarray(rng.normal(size=(1, *shape)), jnp.float32)
    kernel = random_kernel(rng, (*config["kernel_hw"], config["cin"], config["cout"]))
    try:
        conv_output_hw(config["input_hw"], config["kernel_hw"], config["strides"], config["padding"])
    except ValueError:  # no output pixel: the layer must refuse it clearly
        return _expect_layer_refusal(module, x, name)
    try:  # every other configuration can be bounded: a refusal is a finding too
        variables = module.init(jax.random.key(int(rng.integers(1 << 30))), x)
        variables = _adversarial(variables, kernel, all_active=name == "cpl")
        exported = export.export(module, variables, shape)
    except Exception as err:  # noqa: BLE001 - any crash is a finding
        return f"{name}: init or export failed: {type(err).__name__}: {str(err)[:160]}"
    claimed = exported.lipschitz
    points = jnp.asarray(rng.normal(size=(2, *shape)), jnp.float32)
    jac = jax.vmap(jax.jacrev(lambda v: exported.apply(v[None])[0]))(points)
    jac = np.asarray(jac, np.float64).reshape(2, -1, int(np.prod(shape)))
    exact = max(_norm(j) for j in jac)
    if exact > claimed * (1 + JACOBIAN_TOLERANCE):
        return f"{name}: exact Jacobian norm {exact:.6f} > certified {claimed:.6f}"
    return None


def _expect_layer_refusal(module, x, name: str) -> str | None:
    try:
        module.init(jax.random.key(0), x)
    except ValueError as err:
        return None if "no output pixel" in str(err) else f"{name}: unclear refusal: {err}"
    return f"{name}: a convolution without output pixels was accepted"


def test_exported_conv_layers_fuzz():
    cases = max(FAST_CASES // 3, 4)
    failures = _failures(check_layer_config, cases, seed=2)
    assert not failures, _report(failures, cases)


@pytest.mark.slow
@large_sweep
def test_exported_conv_layers_fuzz_large_sweep():
    cases = SLOW_CASES // 2
    failures = _failures(check_layer_config, cases, seed=3)
    assert not failures, _report(failures, cases)


# --- the configurations the fuzzer found, pinned --------------------------------------


def checkerboard(kh: int, kw: int, cin: int = 1, cout: int = 1) -> np.ndarray:
    """``K[a, b] = (-1)^(a + b)``: all its energy at the highest frequency."""
    a, b = np.indices((kh, kw))
    return np.broadcast_to(((-1.0) ** (a + b))[..., None, None], (kh, kw, cin, cout)).astype(np.float32)


def test_fold_kernel_aliases_taps_onto_the_torus():
    kernel = np.arange(5.0).reshape(5, 1, 1, 1)  # taps 0..4 on a 2-pixel axis
    folded = spectral_bounds.fold_kernel(kernel, (2, 1))
    np.testing.assert_array_equal(folded[:, 0, 0, 0], [0 + 2 + 4, 1 + 3])


@pytest.mark.parametrize("limit", [spectral_bounds.EXPLICIT_LIMIT, 0])
def test_circular_kernel_larger_than_image_is_bounded_exactly(monkeypatch, limit):
    """A 3x3 checkerboard on a 2x2 torus folds to [[4, -2], [-2, 1]], norm 9 at
    frequency (pi, pi); the DFT on a 3x3 grid (the old bound) gave 4."""
    monkeypatch.setattr(spectral_bounds, "EXPLICIT_LIMIT", limit)
    kernel = checkerboard(3, 3)
    exact = _norm(exact_conv_matrix(kernel, (2, 2), (1, 1), "CIRCULAR").reshape(4, -1))
    assert exact == pytest.approx(9.0, rel=1e-12)
    assert ops.conv_spectral_norm_bound(kernel, (2, 2), (1, 1), "CIRCULAR") == pytest.approx(9.0, rel=2e-5)


def test_cpl_with_circular_kernel_larger_than_image_is_one_lipschitz():
    """Before the fix this layer was certified 1-Lipschitz with an exact Jacobian norm of 9.12."""
    module = L.ConvexPotentialConv(1, (3, 3), padding="CIRCULAR")
    x = jnp.zeros((1, 2, 2, 1))
    variables = _adversarial(module.init(jax.random.key(0), x), checkerboard(3, 3), all_active=True)
    exported = export.export(module, variables, (2, 2, 1))
    jac = jax.jacrev(lambda v: exported.apply(v[None])[0])(jnp.ones((2, 2, 1)))
    exact = _norm(np.asarray(jac, np.float64).reshape(4, 4))
    assert exported.lipschitz == pytest.approx(1.0, rel=2e-5)
    assert exact <= exported.lipschitz * (1 + JACOBIAN_TOLERANCE)


def test_circular_adjoint_when_kernel_wraps_more_than_once():
    """7x7 kernel on a 2x3 torus: the wrap padding (3, 3) exceeds the image (it used to crash)."""
    kernel = np.random.default_rng(0).normal(size=(7, 7, 2, 3)).astype(np.float32)
    for strides in [(1, 1), (2, 2)]:
        image = exact_conv_matrix(kernel, (2, 3), strides, "CIRCULAR")
        adjoint = exact_adjoint_matrix(kernel, (2, 3), image.shape[1:3], strides, "CIRCULAR")
        np.testing.assert_allclose(adjoint, image.reshape(12, -1).T, atol=1e-12)


def test_kernel_larger_than_padded_input_is_refused():
    kernel = checkerboard(5, 5)
    with pytest.raises(ValueError, match="no output pixel"):
        ops.conv(jnp.zeros((1, 3, 3, 1)), jnp.asarray(kernel), (1, 1), "VALID")
    with pytest.raises(ValueError, match="no output pixel"):
        ops.conv_spectral_norm_bound(kernel, (3, 3), (1, 1), ((0, 1), (1, 0)))
    for module in [
        L.ConvexPotentialConv(1, (5, 5), padding="VALID"),
        L.SpectralConv(1, (5, 5), padding="VALID"),
    ]:
        with pytest.raises(ValueError, match="no output pixel"):
            module.init(jax.random.key(0), jnp.zeros((1, 3, 3, 1)))


def test_padding_that_hides_the_image_from_every_window_is_refused():
    """Found by the fuzzer: the operator is identically 0, its bound 0, and export divided by it."""
    config = {"kernel_hw": (7, 4), "input_hw": (4, 1), "strides": (1, 3), "padding": ((5, 1), (4, 0))}
    with pytest.raises(ValueError, match="no output pixel sees the input"):
        conv_output_hw(config["input_hw"], config["kernel_hw"], config["strides"], config["padding"])
    module = L.SpectralConv(3, config["kernel_hw"], config["strides"], config["padding"])
    with pytest.raises(ValueError, match="no output pixel sees the input"):
        module.init(jax.random.key(0), jnp.zeros((1, *config["input_hw"], 3)))
