"""Export, save/load and the exported model's certification."""

import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import train_a_few_steps

from lipjax import certify, export, models
from lipjax import layers as L


@pytest.fixture(scope="module")
def trained():
    model = models.cpl_mnist_conv(
        num_classes=4, conv_layers=2, channels=4, linear_layers=2, features=16, mean=(0.5,), std=(0.5,)
    )
    x = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1))
    variables = train_a_few_steps(model, model.init(jax.random.key(1), x), x, steps=3)
    return model, variables, x


def test_save_load_round_trip(tmp_path, trained):
    model, variables, x = trained
    exported = export.export(model, variables, (8, 8, 1))
    path = tmp_path / "model.npz"
    export.save(path, exported)
    loaded = export.load(path)
    np.testing.assert_array_equal(loaded.apply(x), exported.apply(x))
    assert loaded.lipschitz == pytest.approx(exported.lipschitz, rel=1e-12)
    np.testing.assert_array_equal(loaded.head, exported.head)
    assert loaded.body_lipschitz == pytest.approx(2.0 * 1.00001**6, rel=1e-4)  # 1 / std, rounding slack


def test_exported_certification_uses_head(trained):
    model, variables, x = trained
    exported = export.export(model, variables, (8, 8, 1))
    logits = exported.apply(x)
    labels = np.asarray(logits.argmax(1))
    expected = certify.certified_radius(logits, exported.body_lipschitz, head=exported.head, labels=labels)
    np.testing.assert_allclose(exported.certified_radius(logits, labels), expected)
    acc = exported.certified_accuracy(x, labels, [0.0, 0.01])
    assert float(acc[0]) == 1.0


def test_save_never_overwrites_silently(tmp_path, trained):
    model, variables, _ = trained
    exported = export.export(model, variables, (8, 8, 1))
    path = tmp_path / "model.npz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        export.save(path, exported)
    assert path.read_bytes() == b"precious"
    export.save(path, exported, overwrite=True)
    assert export.load(path).lipschitz == pytest.approx(exported.lipschitz)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_load_errors(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="no export file"):
        export.load(tmp_path / "missing.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid lipjax export"):
        export.load(tmp_path / "garbage.npz")
    np.savez(tmp_path / "plain.npz", W0=np.ones((2, 2)))
    with pytest.raises(ValueError, match="not a lipjax export"):
        export.load(tmp_path / "plain.npz")

    model, variables, _ = trained
    good = tmp_path / "good.npz"
    export.save(good, export.export(model, variables, (8, 8, 1)))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ValueError, match="not a valid lipjax export"):
        export.load(truncated)


def _rewrite(src, dst, edit):
    with np.load(src, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    meta = json.loads(contents["__lipjax__"].tobytes().decode())
    edit(meta, contents)
    contents["__lipjax__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(dst, **contents)


def test_tampered_export_is_refused(tmp_path, trained):
    model, variables, _ = trained
    good = tmp_path / "good.npz"
    export.save(good, export.export(model, variables, (8, 8, 1)))

    def inflate_kernel(meta, contents):
        index = next(i for i, l in enumerate(meta["layers"]) if l["kind"] == "convex_potential_dense")
        contents[f"{index}/kernel"] = contents[f"{index}/kernel"] * 10

    _rewrite(good, tmp_path / "bad1.npz", inflate_kernel)
    with pytest.raises(ValueError, match="altered or corrupted"):
        export.load(tmp_path / "bad1.npz")

    def drop_array(meta, contents):
        del contents["0/mean"]

    _rewrite(good, tmp_path / "bad2.npz", drop_array)
    with pytest.raises(ValueError, match="lacks array"):
        export.load(tmp_path / "bad2.npz")

    def unknown_kind(meta, contents):
        meta["layers"][1]["kind"] = "pickle_bomb"

    _rewrite(good, tmp_path / "bad3.npz", unknown_kind)
    with pytest.raises(ValueError, match="unknown layer kind"):
        export.load(tmp_path / "bad3.npz")


def test_export_file_holds_no_pickles(tmp_path, trained):
    model, variables, _ = trained
    path = tmp_path / "m.npz"
    export.save(path, export.export(model, variables, (8, 8, 1)))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as f:
                header = f.read(128)
            assert b"'descr': '|O'" not in header


def test_apply_input_errors(trained):
    model, variables, _ = trained
    exported = export.export(model, variables, (8, 8, 1))
    with pytest.raises(ValueError, match="shape"):
        exported.apply(jnp.ones((2, 8, 8, 3)))
    with pytest.raises(TypeError, match="floating"):
        exported.apply(jnp.ones((2, 8, 8, 1), jnp.int32))
    with pytest.raises(ValueError, match="NaN or inf"):
        exported.apply(jnp.full((2, 8, 8, 1), jnp.nan))
    assert exported.apply(jnp.ones((8, 8, 1))).shape == (4,)  # one unbatched input


def test_export_rejects_foreign_layers():
    import flax.linen as nn

    model = L.Sequential([L.Flatten(), nn.Dense(3)])
    x = jnp.ones((1, 2, 2, 1))
    with pytest.raises(TypeError, match="cannot be exported"):
        export.export(model, model.init(jax.random.key(0), x), (2, 2, 1))


def test_batched_apply_matches_single_call(trained):
    model, variables, _ = trained
    exported = export.export(model, variables, (8, 8, 1))
    x = jax.random.uniform(jax.random.key(5), (10, 8, 8, 1))
    np.testing.assert_allclose(exported.apply(x, batch_size=3), exported.apply(x), atol=1e-6)


def test_summary_lists_layers(trained):
    model, variables, _ = trained
    text = export.export(model, variables, (8, 8, 1)).summary()
    assert "convex_potential_conv" in text and "network Lipschitz constant" in text


def test_repeat_of_depth_one_exports():
    model = L.Sequential([L.Repeat(L.ConvexPotentialDense(4), 1), L.Repeat(L.ConvexPotentialDense(4), 2)])
    x = jax.random.normal(jax.random.key(0), (3, 5))
    variables = model.init(jax.random.key(1), x)
    converge = jax.jit(lambda v: model.apply(v, x, update_stats=True, mutable=[L.POWER_ITERATION])[1])
    for _ in range(100):  # power iteration converges, so the Flax model matches the export
        variables = {**variables, **converge(variables)}
    exported = export.export(model, variables, (5,))
    assert [l.depth for l in exported.layers] == [1, 2]
    np.testing.assert_allclose(exported.apply(x), model.apply(variables, x), atol=1e-4)


@pytest.mark.parametrize("layer", ["cpl", "sll", "cayley", "soc"])
def test_certified_forward_asks_for_full_float32_precision(layer):
    # On TPUs and recent GPUs the default precision of a float32 matmul or convolution uses
    # bf16 / TF32 passes; the lowered certified forward pass must ask for HIGHEST everywhere.
    # One conv layer of the family and a normalized head: the layer's own convolutions and matmuls.
    model = L.Sequential([models.LIPCONVNET_LAYERS[layer](4, 3), L.Flatten(), L.NormalizedDense(4)])
    x = jnp.zeros((2, 4, 4, 4))
    exported = export.export(model, model.init(jax.random.key(0), x), input_shape=(4, 4, 4))
    text = exported._jitted.lower(x, exported._arrays).as_text()
    ops = [
        line
        for line in text.splitlines()
        if "stablehlo.dot_general" in line or "stablehlo.convolution" in line
    ]
    assert ops, "no matmul or convolution found in the lowered forward pass"
    for line in ops:
        assert "DEFAULT" not in line and "HIGH," not in line, line
        assert "HIGHEST" in line, line
