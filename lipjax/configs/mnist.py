"""The default run: a CPL network on the embedded MNIST subset, certified at eps 0.5/1.0/1.58.

Command (the README's main command; offline, no dataset download)::

    lipjax train --config mnist

(workdir defaults to ``runs/mnist``). Trains on the 30,000 MNIST training
images embedded in the package, then exports the network, certifies it on the
full 10,000-image MNIST test set, prints clean accuracy and certified accuracy
at eps = 0.5, 1.0 and 1.58, and saves ``certified_accuracy.png``.

Expected (measured, experiments/README_training.md): 97.94% clean accuracy;
certified accuracy 93.47% / 82.08% / 51.85% at eps = 0.5 / 1.0 / 1.58 on the 10,000
MNIST test images; 6 min 51 s for the whole command on an idle 2-core x86_64 host (the
time varies by host).

``mnist:smoke`` runs the same code path in seconds for CI.
"""

from lipjax.data.registry import MNIST_MEAN


def get_config(arg: str = ""):
    config = dict(
        name="mnist",
        dataset="mnist",
        data_source="auto",  # the embedded subset; --set data_source=idx --set data_path=DIR for files
        model="cpl_mnist_dense",
        # 8 dense CPLs (256 hidden units each: as accurate as 1024, a quarter of the FLOPs)
        # + LLN head; centring only (std 1), so the input layer leaves the certified
        # Lipschitz constant at 1.
        model_kwargs={"depth": 8, "features": 256, "head": "lln", "mean": MNIST_MEAN, "std": (1.0,)},
        # hinge on (f_y - f_j) / ||w_y - w_j||: the margins the LLN certificate uses.
        loss="lln_margin",
        loss_kwargs={"margin": 1.45},
        batch_size=512,  # better CPU throughput than 256 (44 epochs x 58 steps)
        epochs=44,
        learning_rate=4e-3,
        schedule="triangular",
        eval_every_epochs=10,  # clean + certified accuracy of the exported model, full test set
        log_every_steps=50,
    )
    if arg == "smoke":
        config.update(
            name="mnist:smoke",
            model_kwargs={"depth": 2, "features": 32, "head": "lln", "mean": MNIST_MEAN, "std": (1.0,)},
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
