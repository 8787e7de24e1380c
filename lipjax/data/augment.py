"""Data augmentation in JAX, deterministic for a given PRNG key.

The paper's CIFAR recipe (Meunier et al. 2022, section 5.1; Trockman et al.
2021): random crop of the image zero-padded by 4 pixels, and random
horizontal flip. Both run inside the jitted training step, per example, from
a key derived from the run seed and the step number, so a resumed run draws
the same augmentations, and a sharded batch draws the same values as an
unsharded one (JAX's partitionable threefry).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_crop(key: jax.Array, images: jax.Array, padding: int = 4) -> jax.Array:
    """Random ``H x W`` crops of ``images`` (NHWC) zero-padded by ``padding`` pixels."""
    if padding <= 0:
        return images
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Flips each image of ``images`` (NHWC) left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def augment(key: jax.Array, images: jax.Array, *, crop_padding: int = 4, flip: bool = True) -> jax.Array:
    """Random crop (``crop_padding`` pixels, 0 disables) then random horizontal flip."""
    key_crop, key_flip = jax.random.split(key)
    images = random_crop(key_crop, images, crop_padding)
    if flip:
        images = random_flip(key_flip, images)
    return images
