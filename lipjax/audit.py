"""The audit: attack every certified point inside its certified radius.

A certificate says that no perturbation of l2 norm below the radius changes the
class. The audit tries hard to find one anyway (PGD with several losses,
restarts and large steps, no clipping to the data range since the certificate
holds in the whole input space); every success is a *violation*, a wrong
certificate. A sound library has none, for every model it ships; a violation
points at an unsound Lipschitz bound, a forward pass that differs from the one
certified, or float rounding larger than the margin.

Example::

    report = audit.audit_certificates(exported.apply, x, y, exported.certify(x, y))
    assert report.violations == 0, report.summary()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from lipjax import attacks

# The attack is confined to radius * (1 - RADIUS_SHRINK): projecting onto a sphere in float32 can land
# a relative 1e-7 outside it, which must not count as a violation.
RADIUS_SHRINK = 1e-5


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """What the audit tried and found.

    Attributes:
      examples: points given.
      certified: points correctly classified with a positive certified radius (the ones attacked).
      violations: certified points the attack moved to another class inside their radius.
      violating_indices: their indices in the input.
      tightness: per certified point, the fraction of the clean margin the attack removed
        (1 - attacked margin / clean margin): 0 = the attack did nothing, 1 = it reached the boundary.
    """

    examples: int
    certified: int
    violations: int
    violating_indices: np.ndarray
    tightness: np.ndarray

    def summary(self) -> str:
        tight = f"{np.median(self.tightness):.3f}" if self.tightness.size else "n/a"
        return (
            f"audit: {self.violations} violations among {self.certified} certified points "
            f"({self.examples} examples); median margin removed by the attack inside the radius: {tight}"
        )


def audit_certificates(
    apply_fn: attacks.ApplyFn,
    x: np.ndarray,
    y: np.ndarray,
    radii: np.ndarray,
    steps: int = 50,
    restarts: int = 3,
    losses: Sequence[str] = ("margin", "ce"),
    batch_size: int = 256,
    key: jax.Array | None = None,
) -> AuditReport:
    """Attacks every certified point inside its radius and counts the successes.

    Args:
      apply_fn: pure, hashable function from inputs to logits (e.g. ``Exported.apply``).
      x: ``(N, ...)`` inputs.
      y: ``(N,)`` true labels.
      radii: ``(N,)`` certified radii with respect to ``y`` (negative or zero: not certified).
      steps: PGD steps per restart; the step is a quarter of the radius, so that the
        iterate can turn around the sphere within the budget.
      restarts: random starts per loss.
      losses: attack losses to run (each a :data:`lipjax.attacks.LOSSES` name).
      batch_size: points attacked at once.
      key: PRNG key.

    Returns:
      An :class:`AuditReport`.
    """
    x, y, radii = np.asarray(x), np.asarray(y), np.asarray(radii, np.float32)
    if radii.shape != y.shape or x.shape[:1] != y.shape:
        raise ValueError(
            f"x, y and radii need one entry per example; got {x.shape}, {y.shape}, {radii.shape}"
        )
    certified = np.flatnonzero(radii > 0)
    key = jax.random.key(0) if key is None else key
    worst = np.full(certified.size, np.inf, np.float32)
    clean = np.empty(certified.size, np.float32)
    for start in range(0, certified.size, batch_size):
        index = certified[start : start + batch_size]
        chunk = slice(start, start + index.size)
        labels = jax.numpy.asarray(y[index])
        clean[chunk] = np.asarray(attacks.attack_margin(apply_fn(x[index]), labels))
        eps = radii[index] * (1.0 - RADIUS_SHRINK)
        for loss in losses:
            key, sub = jax.random.split(key)
            x_adv = attacks.pgd_l2(
                apply_fn, x[index], y[index], eps, steps, eps / 4, restarts, sub, clip=None, loss=loss
            )
            margin = np.asarray(attacks.attack_margin(apply_fn(x_adv), labels))
            worst[chunk] = np.minimum(worst[chunk], margin)
    # A violation: the attacked point leaves the true class (ties count against the certificate).
    violating = certified[worst <= 0]
    tightness = 1.0 - worst / np.where(clean > 0, clean, 1.0)
    return AuditReport(
        examples=int(y.size),
        certified=int(certified.size),
        violations=int(violating.size),
        violating_indices=violating,
        tightness=tightness,
    )
