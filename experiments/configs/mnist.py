"""The default run: a CPL network on the embedded MNIST subset, certified at eps 0.5/1.0/1.58.

Command (the README's main command; offline, no dataset download)::

    lipjax train --config mnist

(workdir defaults to ``runs/mnist``). Trains on the 20,000 MNIST training
images embedded in the package, then exports the network, certifies it on the
full 10,000-image MNIST test set, prints clean accuracy and certified accuracy
at eps = 0.5, 1.0 and 1.58, and saves ``certified_accuracy.png``.

Expected: see experiments/README_training.md for the measured numbers and time.

``mnist:smoke`` runs the same code path in seconds for CI.
"""


def get_config(arg: str = ""):
    config = dict(
        name="mnist",
        dataset="mnist",
        data_source="auto",  # the embedded subset; --set data_source=idx --set data_path=DIR for files
        model="cpl_mnist_dense",
        model_kwargs={"depth": 4, "features": 1024, "head": "lln", "mean": (0.1307,), "std": (1.0,)},
        loss="multi_margin",
        loss_kwargs={"margin": 2.0},
        batch_size=256,
        epochs=30,
        learning_rate=1e-3,
        schedule="triangular",
        eval_every_epochs=0,
        log_every_steps=50,
    )
    if arg == "smoke":
        config.update(
            name="mnist:smoke",
            model_kwargs={"depth": 2, "features": 32, "head": "lln", "mean": (0.1307,), "std": (1.0,)},
            train_limit=1024,
            test_limit=512,
            batch_size=128,
            epochs=1,
            progress=False,
            plot=False,
        )
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use 'smoke')")
    return config
