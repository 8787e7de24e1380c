"""deel-lip's MNIST 0-vs-8 demo: a binary 1-Lipschitz network trained with HKR.

Command::

    lipjax train --config mnist_hkr_0v8 --workdir runs/mnist_hkr_0v8

Serrurier et al. (2021) / deel-lip demo: digits 0 (label 0) and 8 (label 1)
of MNIST, SpectralDense + GroupSort2 layers (256, 128, 64) and a FrobeniusDense
single-logit head, loss HKR(alpha=10, min_margin=1); the
certified radius of x is |f(x)| / L. Expected (measured 2026-11-22, jax 0.10.2: 5,836
training images of the embedded subset, 1,954 test images, certification in float64):
98.98% clean; certified 98.21 / 96.26 / 92.07 / 85.62% at eps 0.5 / 1 / 1.58 / 2;
training 173 s on 2 CPU cores shared with another job (varies by host). The
adversarial-distance experiment built on it: ``experiments/mnist_0v8_distance.py``.

``mnist_hkr_0v8:smoke`` runs a few steps on a few hundred images for CI.
"""


def get_config(arg: str = ""):
    config = dict(
        name="mnist_hkr_0v8",
        dataset="mnist",
        classes=(0, 8),
        model="deel_lip_mnist_binary",
        model_kwargs={"hidden": (256, 128, 64)},
        loss="hkr",
        loss_kwargs={"alpha": 10.0, "min_margin": 1.0},
        batch_size=128,
        epochs=10,
        learning_rate=1e-3,
        eps=(0.5, 1.0, 1.58, 2.0),
    )
    if arg == "smoke":
        config.update(
            name="mnist_hkr_0v8:smoke",
            model_kwargs={"hidden": (32,)},
            epochs=1,
            train_limit=512,
            test_limit=256,
            progress=False,
            plot=False,
        )
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use 'smoke')")
    return config
