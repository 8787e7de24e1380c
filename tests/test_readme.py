"""The README's examples run as written."""

import pathlib
import re


def test_readme_example_runs(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 4
    code = blocks[0].replace("/tmp/cpl_mnist.npz", str(tmp_path / "cpl_mnist.npz"))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["exported"].lipschitz > 0
    assert namespace["radii"].shape == (16,)
    code = blocks[1].replace("/tmp/cpl_curves", str(tmp_path / "cpl_curves"))
    exec(compile(code, "README.md", "exec"), namespace)  # continues the first example
    assert namespace["check"].violations == 0 and namespace["check"].certified > 0
    assert (tmp_path / "cpl_curves.png").exists() and (tmp_path / "cpl_curves.csv").exists()
    namespace = {}
    exec(compile(blocks[2], "README.md", "exec"), namespace)
    assert namespace["weights"][0].shape == (10, 8)
    namespace = {}
    exec(compile(blocks[3], "README.md", "exec"), namespace)  # forward mode through a conv CPL
    import jax
    import numpy as np

    fn = lambda v: namespace["layer"].apply(namespace["variables"], v)  # noqa: E731
    x, tangent = namespace["x"], namespace["tangent"]
    cotangent = jax.random.normal(jax.random.key(1), tangent.shape)
    (pulled,) = jax.vjp(fn, x)[1](cotangent)
    np.testing.assert_allclose(float((tangent * cotangent).sum()), float((x * pulled).sum()), rtol=1e-4)
