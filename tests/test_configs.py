"""Configs: shipped in the package, found from any directory; user files; clear errors."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lipjax.training import load_config
from lipjax.training.config import CONFIG_DIR, ConfigError, available_configs

ROOT = Path(__file__).resolve().parents[1]


def test_configs_load_and_override():
    names = available_configs()
    for name in ("mnist", "mnist_hkr_0v8", "cifar10_cpl_s", "cifar100_cpl_xl"):
        assert name in names
    for name in names:
        cfg = load_config(name)
        smoke = load_config(f"{name}:smoke")
        assert smoke["epochs"] <= cfg["epochs"]
    cfg = load_config("cifar100_cpl_m", ["epochs=3", "loss_kwargs.margin=1.5", "data_dir=/x"])
    assert cfg["epochs"] == 3 and cfg["loss_kwargs"]["margin"] == 1.5 and cfg["data_dir"] == "/x"
    assert cfg["model_kwargs"]["head"] == "lln" and cfg["batch_size"] == 256
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config("mnist", ["epoch=3"])
    proxy, baseline = (load_config(f"cifar10_cpl_s:{v}") for v in ("proxy", "proxy_spectral"))
    assert proxy["data_source"] == "folder" and proxy["epochs"] == 1
    assert (proxy["model_kwargs"]["conv_layer"], baseline["model_kwargs"]["conv_layer"]) == (
        "cpl",
        "spectral",
    )
    assert {**proxy["model_kwargs"], "conv_layer": "spectral"} == baseline["model_kwargs"]


def test_configs_ship_inside_the_package_and_experiments_links_there():
    assert CONFIG_DIR == ROOT / "lipjax" / "configs"
    assert (CONFIG_DIR / "__init__.py").is_file()  # a subpackage: installed with lipjax
    link = ROOT / "experiments" / "configs"
    assert link.is_symlink() and link.resolve() == CONFIG_DIR  # one copy only


def test_configs_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("mnist")["epochs"] == 44
    assert load_config("mnist:smoke")["name"] == "mnist:smoke"


def test_user_config_file(tmp_path, monkeypatch):
    (tmp_path / "my_config.py").write_text(
        textwrap.dedent(
            """
            def get_config(arg=""):
                return dict(name="mine", epochs=2 if arg == "short" else 7, batch_size=32)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config("my_config.py", ["seed=3"])
    assert (cfg["name"], cfg["epochs"], cfg["batch_size"], cfg["seed"]) == ("mine", 7, 32, 3)
    assert load_config(str(tmp_path / "my_config.py") + ":short")["epochs"] == 2
    (tmp_path / "bad.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="defines no get_config"):
        load_config("bad.py")
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    with pytest.raises(ConfigError, match="not valid Python"):
        load_config("broken.py")
    with pytest.raises(ConfigError, match="not found"):
        load_config("missing.py")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mnist:typo", "unknown variant 'typo'"),
        ("cifar10_cpl_s:typo", "unknown variant 'typo'"),
        ("nosuch", "unknown config 'nosuch'; available: cifar100_cpl_l"),
        ("../lipjax/configs/mnist", "unknown config"),
    ],
)
def test_bad_config_names_are_clear_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_config(spec)


def _lipjax(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "lipjax", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_command_from_another_directory(tmp_path):
    """``lipjax train`` from outside the checkout: shipped config, errors without traceback."""
    for spec, message in (("mnist:typo", "unknown variant 'typo'"), ("nosuch", "unknown config 'nosuch'")):
        proc = _lipjax(["train", "--config", spec], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
    sets = ["--set", "train_limit=128", "--set", "test_limit=64", "--set", "batch_size=64"]
    proc = _lipjax(["train", "--config", "mnist:smoke", *sets], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "mnist_smoke" / "model.lipjax").is_file()
    assert "clean accuracy" in proc.stdout


class _Loaded(Exception):
    """Stops load_datasets once it has asked for the data."""


def test_tfds_configs_download_unless_told_not_to(monkeypatch):
    from lipjax.training import loop

    calls = []

    def fake_load(name, split, **kwargs):
        calls.append(kwargs)
        raise _Loaded

    monkeypatch.setattr(loop.data_lib, "load", fake_load)
    cfg = load_config("cifar10_cpl_s")
    assert cfg["data_source"] == "tfds" and cfg["download"] is True
    with pytest.raises(_Loaded):
        loop.load_datasets(cfg)
    assert calls[-1]["download"] is True
    with pytest.raises(_Loaded):
        loop.load_datasets(load_config("cifar10_cpl_s", ["download=False"]))
    assert calls[-1]["download"] is False
    assert load_config("mnist")["download"] is False  # nothing downloads unless a config asks
