"""lipjax: 1-Lipschitz neural networks in JAX/Flax, with sound certification."""

__version__ = "0.1.0"
