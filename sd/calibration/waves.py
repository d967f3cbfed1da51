"""Sequential search for a small set: subset simulation in waves.

When the documented outcomes leave a tiny share of the prior (structural
variants that are nearly ruled out; models where the screening finds too few
members), plain Monte Carlo needs too many runs to find the set or to bound
its size. Subset simulation (Au & Beck 2001) reaches it in waves: draw
``n`` points from the prior; keep the fraction ``p0`` closest to the set (by
the distance of :mod:`.acceptance`), which defines a level ``eps``; grow
``1/p0`` states from each kept point with the Markov chain of
:mod:`.sampler` restricted to ``{distance <= eps}``; repeat until at least a
fraction ``p0`` of a wave lies in the set. The prior mass of the set is the
product of the waves' fractions. Its coefficient of variation follows Au &
Beck's formula, which accounts for the correlation of states along each
chain (it neglects the correlation between waves, so it is approximate).

If no wave reaches the set within ``max_levels`` waves, or the levels stop
falling (an outcome the variant cannot meet anywhere puts a floor under the
distance), the search reports that no parameter set within the ranges was
found to meet every outcome, the estimated mass of the last level (an upper
bound on the set's), and the closest run (its violations).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sampler
from .acceptance import distance, met

#: Random stream of the search (see :mod:`.checkpoint`).
STREAM = 5
#: Fraction of each wave kept as seeds of the next.
P0 = 0.1
#: A level that falls by less than this fraction of the previous one has stalled.
STALL = 0.01


@dataclass(frozen=True)
class Search:
    """The outcome of a sequential search.

    Attributes
    ----------
    found : bool
        A wave reached the set.
    mass : float
        Estimated prior mass of the set (an upper bound when not found).
    cov : float
        Coefficient of variation of ``mass`` (NaN when not found).
    levels : tuple of float
        The distance levels of the waves.
    met_share : ndarray (targets,)
        Per-target pass share among the first wave (prior draws).
    members : ndarray (k, d)
        States of the last wave inside the set (unit cube).
    members_V : ndarray (k, T)
    groups : ndarray (k,)
        The chain of the last wave each member belongs to.
    closest : ndarray (T,)
        Violations of the closest run found.
    runs : int
    """

    found: bool
    mass: float
    cov: float
    levels: tuple
    met_share: np.ndarray
    members: np.ndarray
    members_V: np.ndarray
    groups: np.ndarray
    closest: np.ndarray
    runs: int


def search(violate, d: int, n: int, seed: int, store, key: str, max_levels: int = 8,
           first=None, stop_below: float = 0.0) -> Search:
    """Subset simulation of the set ``{distance = 0}`` with ``n`` states per wave.

    ``first`` gives the first wave (unit rows and violations) when the caller
    already ran those prior draws. The search stops, not found, once the
    level's mass, an upper bound on the set's, is below ``stop_below`` even
    at two coefficients of variation above its estimate (the caller's
    verdict no longer depends on going further).
    """
    if first is None:
        U = np.random.default_rng([seed, STREAM, 0]).random((n, d))
        piece = store.get(f"{key}-0", {"V": (n, None)})
        V = piece["V"] if piece is not None else violate(U)
        if piece is None:
            store.put(f"{key}-0", V=V)
    else:
        U, V = first
    n = len(U)
    chains = np.arange(n)[None, :]          # the first wave: n independent draws
    met_share = met(V).mean(axis=0)
    log_mass, cov2, levels, runs = 0.0, 0.0, [], n
    best = V[int(np.argmin(distance(V)))]
    for level in range(max_levels + 1):
        D = distance(V)
        inside = D <= 0
        frac = float(inside.mean())
        gamma = _gamma(inside, chains)
        if frac >= P0 or (level == max_levels and frac > 0):
            log_mass += np.log(frac)
            cov2 += (1 - frac) / (frac * n) * (1 + gamma)
            return Search(True, float(np.exp(log_mass)), float(np.sqrt(cov2)), tuple(levels),
                          met_share, U[inside], V[inside], _group_of(chains, n)[inside], best,
                          runs)
        if level == max_levels or not np.isfinite(D).any():
            break
        nc = max(int(round(P0 * n)), 2)
        order = np.argsort(D, kind="stable")
        eps = float(D[order[nc - 1]])
        if not np.isfinite(eps):
            break                                # most runs fail: no level to build on
        if levels and eps > (1 - STALL) * levels[-1]:
            break                                # the distance has a floor above 0
        keep = D <= eps
        p = float(keep.mean())
        log_mass += np.log(p)
        cov2 += (1 - p) / (p * n) * (1 + _gamma(keep, chains))
        levels.append(eps)
        if np.exp(log_mass + 2 * np.sqrt(cov2)) < stop_below:
            break
        seeds, seeds_V = U[order[:nc]], V[order[:nc]]
        length = int(np.ceil(n / nc))
        ch = sampler.run(violate, seeds, seeds_V, replicas=1, steps=length - 1, thin=1,
                         seed=seed, store=store, key=f"{key}-{level + 1}", eps=eps,
                         stream=STREAM + 1 + level) if length > 1 else None
        U = seeds if ch is None else np.vstack([seeds, ch.states])
        V = seeds_V if ch is None else np.vstack([seeds_V, ch.V])
        runs += 0 if ch is None else len(ch.states)
        # row r of step s is chain r: lay the wave out as (steps, chains)
        chains = np.arange(len(U)).reshape(length, nc)
        D_new = distance(V)
        if D_new.min() < distance(best[None, :])[0]:
            best = V[int(np.argmin(D_new))]
    return Search(False, float(np.exp(log_mass)), float("nan"), tuple(levels), met_share,
                  np.zeros((0, d)), np.zeros((0, V.shape[1])), np.zeros(0, dtype=int), best,
                  runs)


def _group_of(chains: np.ndarray, n: int) -> np.ndarray:
    """The chain (column of ``chains``) each state of a wave belongs to."""
    out = np.empty(n, dtype=int)
    for j in range(chains.shape[1]):
        out[chains[:, j]] = j
    return out


def _gamma(indicator: np.ndarray, chains: np.ndarray) -> float:
    """Au & Beck's correlation factor of an indicator along the chains of a wave.

    ``chains`` is (steps, chains) of row indices; a first wave of independent
    draws has one step and gives 0.
    """
    steps, nc = chains.shape
    if steps < 2:
        return 0.0
    I = indicator[chains].astype(float)               # (steps, chains)
    p = I.mean()
    r0 = p * (1 - p)
    if r0 <= 0:
        return 0.0
    gamma = 0.0
    for lag in range(1, steps):
        r = (I[:-lag] * I[lag:]).mean() - p * p
        gamma += 2 * (1 - lag / steps) * r / r0
    return max(gamma, 0.0)
