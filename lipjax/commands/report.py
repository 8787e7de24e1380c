"""How a certified constant is printed, so that every command says the same true thing."""

from __future__ import annotations

import math
from typing import Any


def lipschitz_statement(exported: Any) -> str:
    """One line saying which constant certifies ``exported`` and through which formula.

    With a normalized (LLN) head, the whole network's product of layer constants
    is not what certifies it: the body's constant ``L`` does, and the head's rows
    enter through ``r = min_{j != y} (f_y - f_j) / (L ||w_y - w_j||)``. Without
    one, ``r = (f_y - max_{j != y} f_j) / (sqrt(2) L)`` (``|f| / L`` for one logit).

    Args:
      exported: a :class:`lipjax.export.Exported` model.

    Returns:
      The sentence, without a trailing newline.
    """
    if exported.has_head:
        return (
            f"certified Lipschitz constant of the body L = {exported.body_lipschitz:.4f}; the normalized "
            "head enters through the pairwise formula r = min_j (f_y - f_j) / (L ||w_y - w_j||)"
        )
    if math.prod(exported.layers[-1].output_shape) == 1:
        formula = "r = |f| / L"
    else:
        formula = "r = (f_y - max_j f_j) / (sqrt(2) L)"
    return f"certified Lipschitz constant L = {exported.lipschitz:.4f} (radius {formula})"
