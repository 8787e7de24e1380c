"""The README's example runs as written."""

import pathlib
import re


def test_readme_example_runs(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace("/tmp/cpl_mnist.npz", str(tmp_path / "cpl_mnist.npz"))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["exported"].lipschitz > 0
    assert namespace["radii"].shape == (16,)
