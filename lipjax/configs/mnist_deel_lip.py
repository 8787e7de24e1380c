"""deel-lip's 10-class MNIST demo: SpectralConv + GroupSort2 + l2-norm pooling, multiclass HKR.

Command::

    lipjax train --config mnist_deel_lip --workdir runs/mnist_deel_lip

The network of deel-lip's first demo (two blocks of a spectrally normalised 3x3
convolution, GroupSort2 and a scaled l2-norm pooling, 16 then 32 channels; a 64-unit
spectral dense layer with GroupSort2; a row-normalised head), trained with the
multiclass HKR loss (alpha 50, margin 0.05) and Adam 1e-3 at batch 2048, as there. Inputs
are centred only: dividing by the MNIST std would multiply the certified constant by
1 / std (about 3.3). Expected: experiments/RESULTS.md.

``mnist_deel_lip:smoke`` runs a few steps on a few hundred images for CI.
"""

from lipjax.data.registry import MNIST_MEAN


def get_config(arg: str = ""):
    config = dict(
        name="mnist_deel_lip",
        dataset="mnist",
        model="deel_lip_mnist",
        model_kwargs={"mean": MNIST_MEAN, "std": (1.0,)},
        loss="multiclass_hkr",
        loss_kwargs={"alpha": 50.0, "min_margin": 0.05},
        optimizer="adam",
        learning_rate=1e-3,
        schedule="constant",
        batch_size=2048,
        epochs=30,
        eval_every_epochs=10,
    )
    if arg == "smoke":
        config.update(
            name="mnist_deel_lip:smoke",
            model_kwargs={"channels": (4,), "features": 16, "mean": MNIST_MEAN, "std": (1.0,)},
            batch_size=128,
            epochs=1,
            train_limit=512,
            test_limit=256,
            progress=False,
            plot=False,
        )
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use 'smoke')")
    return config
