"""CPL-XL on CIFAR100 (Meunier et al. 2022, section 5.1 and Table 3).

Command::

    lipjax train --config cifar100_cpl_xl --workdir runs/cifar100_cpl_xl

Recipe: batch 256, 200 epochs, Adam lr 1e-3 without weight decay, piecewise
triangular schedule, random crop (4-pixel padding) and horizontal flip, multi-class
margin hinge loss with margin 0.7, last layer normalization (LLN),
inputs centred by the dataset mean inside the model (dividing by the std would
multiply the certified Lipschitz constant by 1/min(std), about 4).

Expected (paper, Table 3, mean of 3 runs on a GPU): 47.8% clean, 33.4 / 20.9 / 12.6% certified
at eps = 36/255, 72/255, 108/255; 164 s per epoch on their GPU.

Data: TFDS `cifar100` (`pip install 'lipjax[tfds]'`, downloaded on first use; `--set download=False
data_dir=...` for an offline TFDS folder), or `--set data_source=npz --set data_path=cifar100.npz`.

`cifar100_cpl_xl:smoke` runs the same code path in seconds on synthetic
images shaped like CIFAR100 (a tiny CPL, a few steps), for CI.
"""

from lipjax.training.config import cpl_cifar_recipe


def get_config(arg: str = ""):
    return cpl_cifar_recipe("cifar100", "XL", arg)
