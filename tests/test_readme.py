"""The README's examples run as written."""

import pathlib
import re


def test_readme_example_runs(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 3
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
