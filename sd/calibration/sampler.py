"""Populate the behaviour-consistent set with Markov chains.

Target distribution: the prior (uniform over the inputs' ranges, i.e. the
unit cube) restricted to the set ``{distance <= eps}`` (``eps = 0``: every
documented outcome met; ``eps > 0``: a level of the sequential search,
:mod:`.waves`). Kernel: a Gaussian random walk in unit coordinates with
independent coordinates, reflected at the faces of the cube, accepted when
the proposed run lies in the set; the Metropolis ratio of a uniform target
is 1 inside and 0 outside. Reflection keeps the proposal symmetric only for
independent coordinates (a correlated Gaussian reflected coordinate by
coordinate is not symmetric, and biased a test share by 7 %), so the
proposal is diagonal: each input's spread among the starts times
``SCALE * 2.38 / sqrt(d)`` (Roberts, Gelman & Gilks 1997; ``SCALE`` below 1
because the set is thin in some directions: on the Juarez set it gave the
acceptance of ~0.25 and decorrelated fastest of the values tried). The
scale is fixed before the chains start, so the kernel is non-adaptive.

Chains start from exact draws of the target (screening draws that met every
outcome). A kernel that leaves the target unchanged then keeps every later
state an exact draw as well: no burn-in is needed and no state is biased;
states of one chain are merely correlated, which the standard errors account
for by grouping chains by their start (:mod:`.estimates`). Several chains
(``replicas``) leave each start with independent proposals, so one batch of
runs advances all of them and the few screening members are spread far.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .acceptance import distance

#: Random stream of the chains (see :mod:`.checkpoint`).
STREAM = 3
#: Proposal scale relative to the 2.38 / sqrt(d) rule.
SCALE = 0.5


@dataclass(frozen=True)
class Chains:
    """States of the chains at the recorded steps.

    Attributes
    ----------
    states : ndarray (members, inputs)
        Unit-cube coordinates, recorded every ``thin`` steps (chain-major
        within a step: row ``i`` of a step belongs to chain ``i``).
    V : ndarray (members, targets)
        Their violations.
    groups : ndarray (members,)
        The start each member's chain left from (independent groups).
    chain : ndarray (members,)
    step : ndarray (members,)
    acceptance : float
        Share of proposals accepted.
    scale : ndarray (inputs,)
        Proposal standard deviation per input (unit coordinates).
    """

    states: np.ndarray
    V: np.ndarray
    groups: np.ndarray
    chain: np.ndarray
    step: np.ndarray
    acceptance: float
    scale: np.ndarray


def reflect(U: np.ndarray) -> np.ndarray:
    """Fold values into [0, 1] by reflection at the faces (a symmetric map)."""
    U = np.mod(U, 2.0)
    return np.where(U > 1.0, 2.0 - U, U)


def scale_of(starts: np.ndarray, floor: float = 0.02) -> np.ndarray:
    """Proposal standard deviation per input: its spread among the starts (at
    least ``floor``; the prior's with too few starts) times the scale rule."""
    d = starts.shape[1]
    spread = np.maximum(starts.std(axis=0, ddof=1), floor) if len(starts) > 2 else \
        np.full(d, np.sqrt(1 / 12))
    return SCALE * 2.38 / np.sqrt(d) * spread


def step(violate, X, VX, eps: float, rng, scale):
    """One Metropolis step of every chain; returns (X, VX, accepted mask)."""
    Y = reflect(X + rng.standard_normal(X.shape) * scale)
    VY = violate(Y)
    ok = distance(VY) <= eps
    return np.where(ok[:, None], Y, X), np.where(ok[:, None], VY, VX), ok


def run(violate, starts, V0, *, replicas: int, steps: int, thin: int, seed: int, store,
        key: str = "chain", eps: float = 0.0, stream: int = STREAM) -> Chains:
    """Run ``replicas`` chains from each start for ``steps`` steps (checkpointed per step).

    Parameters
    ----------
    violate : callable
        Unit-cube rows -> violations (rows, targets).
    starts : ndarray (m, d)
        Exact draws of the target.
    V0 : ndarray (m, T)
        Their violations.
    """
    m, d = starts.shape
    scale = scale_of(starts)
    X = np.repeat(starts, replicas, axis=0)
    VX = np.repeat(V0, replicas, axis=0)
    groups = np.repeat(np.arange(m), replicas)
    n, T = X.shape[0], VX.shape[1]
    rec, accepted = [], 0
    for t in range(1, steps + 1):
        piece = store.get(f"{key}-{t}", {"X": (n, d), "V": (n, T), "ok": (n,)})
        if piece is None:
            X, VX, ok = step(violate, X, VX, eps, np.random.default_rng([seed, stream, t]), scale)
            store.put(f"{key}-{t}", X=X, V=VX, ok=ok)
        else:
            X, VX, ok = piece["X"], piece["V"], piece["ok"].astype(bool)
        accepted += int(ok.sum())
        if t % thin == 0:
            rec.append((X.copy(), VX.copy(), t))
    states = np.vstack([r[0] for r in rec])
    return Chains(states=states, V=np.vstack([r[1] for r in rec]),
                  groups=np.tile(groups, len(rec)), chain=np.tile(np.arange(n), len(rec)),
                  step=np.repeat([r[2] for r in rec], n),
                  acceptance=accepted / max(n * steps, 1), scale=scale)
