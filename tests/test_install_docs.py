"""CI installs and tests exactly as the README says."""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).parents[1]


def _readme_bash_commands(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_commands = [line.replace(" -q", "") for line in ci if not line.startswith("#")]
    install = _readme_bash_commands("Install")
    assert install == ['python -m pip install ".[test,tfds]"']
    assert install[0] in ci_commands
    assert _readme_bash_commands("Tests") == ["python -m pytest"]
    assert ci_commands[-1] == "python -m pytest"


def test_extras_hold_what_the_tests_import():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    test = {re.split(r"[<>=;\[ ]", r)[0] for r in extras["test"]}
    assert {"pytest", "chex", "nbclient", "nbformat", "ipykernel"} <= test
    assert any(r.startswith("tensorflow-datasets") for r in extras["tfds"])
