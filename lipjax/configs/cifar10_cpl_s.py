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

Data: TFDS `cifar10` (`pip install 'lipjax[tfds]'`, downloaded on first use; `--set download=False
data_dir=...` for an offline TFDS folder), or the CIFAR-10 JPEG tarball / any `<split>/<class>/<file>`
folder: `--set data_source=folder --set data_path=cifar10-jpeg.tar.gz`. JPEG
re-encoding is lossy and that tarball holds 8,000 of the 10,000 test images:
expect numbers close to, not equal to, the paper's.

`cifar10_cpl_s:smoke` runs the same code path in seconds on synthetic
images shaped like CIFAR10 (a tiny CPL, a few steps), for CI.
"""

from lipjax.training.config import cpl_cifar_recipe


def get_config(arg: str = ""):
    return cpl_cifar_recipe("cifar10", "S", arg)
