"""A ReLU network with a known Lipschitz constant, to test the bounds against."""

from __future__ import annotations

import numpy as np

from lipjax.bounds.common import Array


def hat_network(depth: int, representation: str = "slides") -> tuple[list[Array], list[Array]]:
    """ReLU network of ``f(x) = x - sum_{r=1}^{l} g_r(x) / 4^r`` (``l = depth``).

    ``g(x) = 2x`` on ``[0, 1/2]``, ``2(1 - x)`` on ``[1/2, 1]`` and
    ``g_r = g o ... o g`` (r times); ``f`` interpolates ``x^2`` on ``[0, 1]`` at the
    points ``k / 2^l`` (Yarotsky 2017). Its exact constant is
    ``L = max |f'| = 1 + sum_{r=1}^{l} 2^-r = 2 - 2^-l``. The bounds depend on how
    ``g`` is written with ReLUs (``R``); each hidden layer has three neurons.

    * ``"slides"`` (Després-Pintore's table): ``g(y) = 1 - R(2y - 1) - R(1 - 2y)``.
      Hidden layer r holds ``(R(2y - 1), R(1 - 2y), R(s))`` with ``y = g_{r-1}(x)``
      (``g_0(x) = x``) and the partial sum ``s = x - sum_{k<r} g_k(x) / 4^k``; the
      output is ``s - g_l(x) / 4^l``. In the l-inf norm it reproduces every entry
      of the slides' table: ``K* = 2^(2l-1) + 1`` (``||W_0|| = 2``, hidden layers 4,
      output ``1 + 2/4^l``), ``K3 = l + 1`` (each ``|g_r|`` path carries ``4^r / 4^r``),
      and ``K = K4 = L``.
    * ``"ramp"``: ``g(y) = 2 R(y) - 4 R(y - 1/2)`` (``+ 2 R(x - 1)`` on the first
      layer, which also carries ``x = R(x)``); hidden layers ``(R(y), R(y - 1/2),
      R(s))``. Here ``K = L`` but ``K4 > L`` for ``l >= 2``: "K4 = L" is a property
      of the representation, not of the function.

    Args:
      depth: number of hidden layers ``l >= 1``.
      representation: ``"slides"`` or ``"ramp"``.

    Returns:
      ``(weights, biases)`` with ``weights = [W_0, ..., W_l]``.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if representation == "slides":
        weights = [np.array([[2.0], [-2.0], [1.0]])]
        biases = [np.array([-1.0, 1.0, 0.0])]
        for r in range(1, depth):
            q = 4.0**-r  # s_r = s_{r-1} - (1 - a - b) / 4^r, with a, b the layer's ramps
            weights.append(np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [q, q, 1.0]]))
            biases.append(np.array([1.0, -1.0, -q]))
        q = 4.0**-depth
        weights.append(np.array([[q, q, 1.0]]))
        biases.append(np.array([-q]))
        return weights, biases
    if representation != "ramp":
        raise ValueError(f"representation must be 'slides' or 'ramp'; got {representation!r}")
    weights = [np.array([[1.0], [1.0], [1.0]])]
    biases = [np.array([0.0, -0.5, -1.0])]
    y = np.array([2.0, -4.0, 2.0])  # g_1 as a form on layer-1 neurons
    s = np.array([1.0, 0.0, 0.0]) - y / 4
    for r in range(2, depth + 1):
        weights.append(np.stack([y, y, s]))
        biases.append(np.array([0.0, -0.5, 0.0]))
        y = np.array([2.0, -4.0, 0.0])
        s = np.array([0.0, 0.0, 1.0]) - y / 4**r
    weights.append(s[None, :])
    biases.append(np.zeros(1))
    return weights, biases
