"""Training configs: plain dicts, loaded from ``lipjax/configs/<name>.py`` or a user's file.

A config file defines ``get_config(arg: str = "")`` returning a dict whose keys
are a subset of :data:`DEFAULTS`. ``--config NAME:ARG`` passes ``ARG`` (e.g.
``smoke``) to ``get_config``; ``NAME`` is a config shipped in the package
(found from any working directory) or a path to a ``.py`` file. ``--set key=value``
overrides a key; dotted keys reach into nested dicts (``--set loss_kwargs.margin=1.5``); values are parsed
as Python literals when they can be (``3``, ``1e-3``, ``(0, 8)``, ``None``),
otherwise kept as strings.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from pathlib import Path
from typing import Any

from lipjax.data.registry import CIFAR10_MEAN, CIFAR100_MEAN

DEFAULTS: dict[str, Any] = {
    "name": "",
    # data
    "dataset": "mnist",  # mnist, fashion_mnist, cifar10, cifar100
    "data_source": "auto",  # auto, embedded, idx, folder, npz, tfds
    "data_path": None,  # file or folder for idx / folder / npz
    "data_dir": None,  # TFDS data_dir
    "download": False,  # let TFDS download and prepare a dataset missing from data_dir
    "classes": None,  # keep these classes only, relabelled 0..k-1 (binary demos)
    "train_limit": None,  # use the first N training examples
    "test_limit": None,  # use the first N test examples
    "augment": False,  # random crop + horizontal flip (the paper's CIFAR recipe)
    "crop_padding": 4,
    "flip": True,
    # model: lipjax.models.<model>(num_classes=..., **model_kwargs)
    "model": "cpl_mnist_dense",
    "model_kwargs": {},
    # loss: lipjax.losses.<loss>(logits, labels, **loss_kwargs)
    "loss": "multi_margin",
    "loss_kwargs": {"margin": 0.7},
    # optimization (Meunier et al. 2022, sec. 5.1)
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "schedule": "triangular",  # triangular (the paper's), constant, cosine
    "batch_size": 256,
    "epochs": 10,
    "num_train_steps": None,  # stop after this many steps (the schedule still spans the epochs)
    "seed": 0,
    # evaluation / certification
    "eps": None,  # None: the dataset's standard eps values
    "eval_every_epochs": 1,  # 0: only at the end
    "eval_limit": None,  # test examples used by per-epoch evals (None: all)
    "eval_batch_size": 1000,
    # checkpoints and logs
    "checkpoint_every_steps": 0,  # 0: once per epoch
    "keep_checkpoints": 3,
    "log_every_steps": 50,
    "progress": True,
    "plot": True,
}


class ConfigError(ValueError):
    """Unknown config name, key or bad override."""


CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def available_configs() -> list[str]:
    """Names of the configs shipped in ``lipjax/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def _find(name: str) -> Path:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"config file {name!r} not found (from {Path.cwd()})")
        return path
    path = CONFIG_DIR / f"{name}.py"
    if name.startswith("_") or "/" in name or not path.is_file():
        raise ConfigError(
            f"unknown config {name!r}; available: {', '.join(available_configs())}, "
            "or a path to your own config .py file"
        )
    return path


def load_config(spec: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Loads ``NAME[:ARG]`` and applies ``key=value`` overrides over :data:`DEFAULTS`.

    Raises:
      ConfigError: unknown name or file, unknown variant ``ARG``, a file without
        ``get_config``, an unknown key or a malformed override.
    """
    name, _, arg = spec.partition(":")
    path = _find(name)
    module_spec = importlib.util.spec_from_file_location(f"lipjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ConfigError(f"config {path} is not valid Python: {err}") from err
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config()")
    try:
        cfg = module.get_config(arg) if arg else module.get_config()
    except (ValueError, TypeError, KeyError) as err:  # e.g. an unknown variant
        raise ConfigError(f"config {spec!r}: {err}") from err
    cfg = make_config(cfg)
    if not cfg["name"]:
        cfg["name"] = spec
    return apply_overrides(cfg, overrides or [])


def make_config(values: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """DEFAULTS updated with ``values`` and ``kwargs``; unknown keys are errors."""
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in {**(values or {}), **kwargs}.items():
        if key not in DEFAULTS:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(DEFAULTS)}")
        cfg[key] = copy.deepcopy(value)
    return cfg


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() in ("none", "null"):
            return None
        return text


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``key=value`` strings (dotted keys reach into dict values)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        parts = key.strip().split(".")
        if parts[0] not in DEFAULTS:
            raise ConfigError(f"unknown config key {parts[0]!r}; known: {', '.join(DEFAULTS)}")
        target = cfg
        for p in parts[:-1]:
            if target.get(p) is None:
                target[p] = {}
            if not isinstance(target[p], dict):
                raise ConfigError(f"cannot set {key!r}: {p!r} is not a dict")
            target = target[p]
        target[parts[-1]] = parse_value(text.strip())
    return cfg


CIFAR_MEANS = {"cifar10": CIFAR10_MEAN, "cifar100": CIFAR100_MEAN}


def cpl_cifar_recipe(dataset: str, size: str, variant: str = "") -> dict[str, Any]:
    """The paper's CIFAR recipe for CPL-``size`` (Meunier et al. 2022, section 5.1).

    Batch 256, 200 epochs, Adam 1e-3 without weight decay, piecewise triangular
    schedule, random crop (4-pixel padding) and horizontal flip, multi-class margin
    hinge with margin 0.7; LLN head on CIFAR-100, truncation head on CIFAR-10.
    Inputs are centred by the dataset mean inside the model; they are not divided
    by the std, which would multiply the certified constant by ``1 / min(std)``
    (about 4). Data from TFDS by default, downloaded on first use (offline:
    ``--set download=False --set data_dir=...`` on a prepared TFDS folder, or
    ``--set data_source=folder --set data_path=cifar10-jpeg.tar.gz`` for an image
    folder or tarball).

    Args:
      dataset: ``"cifar10"`` or ``"cifar100"``.
      size: ``"S"``, ``"M"``, ``"L"`` or ``"XL"`` (Table 1).
      variant: ``""``; ``"smoke"``: a tiny CPL on synthetic CIFAR-shaped images that
        runs the same code path in seconds; ``"proxy"`` / ``"proxy_spectral"``: the
        one-epoch CPU proxy of ``experiments/RESULTS.md`` (small CPL, or the same
        shape with spectral convolutions), on local data given by ``data_path``.
    """
    if dataset not in CIFAR_MEANS:
        raise ConfigError(f"dataset must be one of {sorted(CIFAR_MEANS)}; got {dataset!r}")
    name = f"{dataset}_cpl_{size.lower()}"
    head = "lln" if dataset == "cifar100" else "truncate"
    centring = {"head": head, "mean": CIFAR_MEANS[dataset], "std": (1.0, 1.0, 1.0)}
    config = dict(
        name=name,
        dataset=dataset,
        data_source="tfds",
        download=True,  # a Colab / TPU user gets the data; offline: --set download=False data_dir=...
        model="cpl",
        model_kwargs={"size": size, **centring},
        loss="multi_margin",
        loss_kwargs={"margin": 0.7},
        batch_size=256,
        epochs=200,
        learning_rate=1e-3,
        schedule="triangular",
        augment=True,
        crop_padding=4,
        flip=True,
        eval_every_epochs=10,
        checkpoint_every_steps=0,
    )
    if variant == "smoke":
        config.update(
            name=f"{name}:smoke",
            data_source="synthetic",
            model="cpl_network",
            model_kwargs={"conv_layers": 2, "channels": 8, "linear_layers": 2, "features": 32, **centring},
            batch_size=64,
            epochs=1,
            progress=False,
            plot=False,
            eval_every_epochs=0,
        )
    elif variant in ("proxy", "proxy_spectral"):
        # The CPU proxy of experiments/RESULTS.md: a small CPL (or, same shape, spectral
        # conv + MaxMin) network, one epoch; needs local data (--set data_path=...).
        config.update(
            name=f"{name}:{variant}",
            data_source="folder",
            model="cpl_network",
            model_kwargs={
                "conv_layers": 5,
                "channels": 16,
                "linear_layers": 2,
                "features": 512,
                "conv_layer": "spectral" if variant == "proxy_spectral" else "cpl",
                **centring,
            },
            batch_size=128,
            epochs=1,
            eval_every_epochs=0,
        )
    elif variant:
        raise ConfigError(f"unknown variant {variant!r} (use 'smoke', 'proxy' or 'proxy_spectral')")
    return config
