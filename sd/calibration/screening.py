"""Before fitting: what each documented outcome can tell (prior screening).

Independent uniform draws of every uncertain input are run in chunks (one
:func:`sd.simulation.run_many` batch and one checkpoint piece each). For each
target: the share of draws that meet it, whether it is informative (a target
met by nearly every draw, such as one true by construction, tells nothing),
the share of draws meeting all the *other* targets (how much the target
narrows the set given the rest), and which inputs it responds to at all:
the rank correlation of its simulated summary with each input, and the
Kolmogorov-Smirnov distance between the inputs of draws that meet it and of
those that do not (regional sensitivity, Hornberger & Spear 1981). The draws
meeting every target are exact draws from the behaviour-consistent set; their
share estimates its prior mass, with a binomial standard error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import acceptance
from .estimates import Share, binomial, ks, spearman

#: Random streams (the second seed word) of each phase; see :mod:`.checkpoint`.
STREAM = 1

#: |rank correlation| or KS distance from which a target "responds" to an input.
RESPONDS = 0.1


@dataclass(frozen=True)
class Screening:
    """The prior screening.

    Attributes
    ----------
    draws : int
    met_share : ndarray (targets,)
        Share of draws meeting each target.
    others_share : ndarray (targets,)
        Share of draws meeting every other target.
    informative : ndarray of bool (targets,)
    mass : Share
        Share of draws meeting every target: the prior mass of the set.
    accepted : ndarray (k, inputs)
        Unit-cube coordinates of the draws meeting every target.
    accepted_index : ndarray (k,)
        Their draw numbers (for provenance and checks).
    correlation, ks : ndarray (targets, inputs)
    failed : int
        Draws whose run failed (NaN); never in the set.
    """

    draws: int
    met_share: np.ndarray
    others_share: np.ndarray
    informative: np.ndarray
    mass: Share
    accepted: np.ndarray
    accepted_index: np.ndarray
    correlation: np.ndarray
    ks: np.ndarray
    failed: int = 0

    def responds(self, j: int, names, limit: int = 5) -> list[tuple[str, float, float]]:
        """The inputs target ``j`` responds to: (name, rank correlation, KS), strongest first."""
        score = np.fmax(np.abs(self.correlation[j]), np.nan_to_num(self.ks[j]))
        order = [i for i in np.argsort(-score) if score[i] >= RESPONDS]
        return [(names[i], float(self.correlation[j, i]), float(self.ks[j, i]))
                for i in order[:limit]]


def draws(seed: int, chunk: int, size: int, d: int) -> np.ndarray:
    """The unit-cube draws of screening chunk ``chunk`` (a pure function of the seed)."""
    return np.random.default_rng([seed, STREAM, chunk]).random((size, d))


def screen(runner, store, seed: int, n: int, chunk: int, informative_share: float,
           constants=None, key: str = "screen") -> Screening:
    """Run ``n`` prior draws in chunks of ``chunk`` (checkpointed) and summarise them.

    ``constants`` (a variant's switches) are applied on top of every draw;
    ``key`` names the checkpoint pieces.
    """
    d, T = len(runner.inputs.inputs), len(runner.rule.targets)
    blocks = []
    for c, start in enumerate(range(0, n, chunk)):
        size = min(chunk, n - start)
        U = draws(seed, c, size, d)
        piece = store.get(f"{key}-{c}", {"V": (size, T), "S": (size, T)})
        if piece is None:
            V, S = runner(U, constants)
            store.put(f"{key}-{c}", V=V, S=S)
        else:
            V, S = piece["V"], piece["S"]
        blocks.append((U, V, S))
    U = np.vstack([b[0] for b in blocks])
    V = np.vstack([b[1] for b in blocks])
    S = np.vstack([b[2] for b in blocks])
    return summarise(U, V, S, informative_share)


def summarise(U, V, S, informative_share: float) -> Screening:
    """The :class:`Screening` of draws ``U`` with violations ``V`` and summaries ``S``."""
    ok = acceptance.met(V)
    n, T = ok.shape
    count = ok.sum(axis=1)
    every = count == T
    met_share = ok.mean(axis=0)
    # all the others met: every target met, or only target j missed
    others = np.array([(every | ((count == T - 1) & ~ok[:, j])).mean() for j in range(T)])
    order = np.argsort(U, axis=0, kind="stable")
    dist = np.vstack([ks(U, ok[:, j], order) for j in range(T)])
    return Screening(
        draws=n, met_share=met_share, others_share=others,
        informative=met_share < informative_share, mass=binomial(int(every.sum()), n),
        accepted=U[every], accepted_index=np.flatnonzero(every),
        correlation=spearman(U, S), ks=dist,
        failed=int((~np.isfinite(V)).any(axis=1).sum()))
