"""docs/notebooks/quickstart.ipynb runs from top to bottom (nbclient) and shows what it claims."""

import json
import os
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).parents[1]
NOTEBOOK = ROOT / "docs" / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT_S = 600  # the time budget of any one cell (the notebook takes about a minute in all)


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    # The kernel is a subprocess: give it this checkout's lipjax whether or not it is installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # The run certified the test set: clean accuracy well above chance, certified accuracy decreasing.
    accuracies = [float(a) for a in re.findall(r"certified accuracy at eps = [\d.]+: +([\d.]+)%", text)]
    assert len(accuracies) == 4 and accuracies[0] > 80
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[1] > 0
    assert re.search(r"body \(every layer but the head\): Lipschitz constant <= 1\.0\d*", text)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the certified-accuracy curve
    bounds_lines = dict(re.findall(r"^ *(K_star|K|K1|K3|K4|K5|lower): +([\d.]+)$", text, re.M))
    values = {k: float(v) for k, v in bounds_lines.items()}
    assert set(values) == {"K_star", "K", "K1", "K3", "K4", "K5", "lower"}
    assert values["lower"] <= values["K"] <= values["K5"] <= values["K4"] <= min(values["K1"], values["K3"])
    assert min(values["K1"], values["K3"]) <= values["K_star"]
    json.dumps(nb)  # executed notebook is still valid JSON
