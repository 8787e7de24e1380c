"""CPL-S on CIFAR10 (Meunier et al. 2022, section 5.1 and Table 2).

Command::

    lipjax train --config cifar10_cpl_s --workdir runs/cifar10_cpl_s

Recipe: batch 256, 200 epochs, Adam lr 1e-3 without weight decay, piecewise
triangular schedule, random crop (4-pixel padding) and horizontal flip, multi-class
margin hinge loss with margin 0.7, no last layer normalization (truncation head),
inputs centred by the dataset mean inside the model (dividing by the std would
multiply the certified Lipschitz constant by 1/min(std), about 4).

Expected (paper, Table 2, mean of 3 runs on a GPU): 75.6% clean, 62.3 / 46.9 / 32.2% certified
at eps = 36/255, 72/255, 108/255; 21.9 s per epoch on their GPU.

Data: the CIFAR-10 JPEG tarball (`--set data_path=...` to point elsewhere; any
`<split>/<class>/<file>` folder or tarball works, or `--set data_source=tfds`).
JPEG re-encoding is lossy and the tarball holds 8,000 of the 10,000 test images:
expect numbers close to, not equal to, the paper's.

`cifar10_cpl_s:smoke` runs the same code path in seconds on synthetic
images shaped like CIFAR10 (a tiny CPL, a few steps), for CI.
"""


def get_config(arg: str = ""):
    config = dict(
        name="cifar10_cpl_s",
        dataset="cifar10",
        data_source="folder",
        data_path="../shared/data/cifar10-jpeg.tar.gz",
        model="cpl",
        model_kwargs={
            "size": "S",
            "head": "truncate",
            "mean": (0.4914, 0.4822, 0.4465),
            "std": (1.0, 1.0, 1.0),
        },
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
    if arg == "smoke":
        config.update(
            name="cifar10_cpl_s:smoke",
            data_source="synthetic",
            data_path=None,
            model="cpl_network",
            model_kwargs={
                "conv_layers": 2,
                "channels": 8,
                "linear_layers": 2,
                "features": 32,
                "head": "truncate",
                "mean": (0.4914, 0.4822, 0.4465),
                "std": (1.0, 1.0, 1.0),
            },
            batch_size=64,
            epochs=1,
            progress=False,
            plot=False,
            eval_every_epochs=0,
        )
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use 'smoke')")
    return config
