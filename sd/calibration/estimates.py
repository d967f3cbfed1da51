"""Monte Carlo estimates and their standard errors; distances between samples.

Members of the behaviour-consistent set come from Markov chains
(:mod:`.sampler`) grouped by the independent draw they started from. Every
chain state is an exact draw from the set (the chains start from exact
draws and each step leaves the distribution unchanged), but states of one
group are correlated. So a share is estimated by the mean over all members
and its standard error from the *group means*, which are independent and
identically distributed: ``se = sd(group means) / sqrt(groups)`` (the method
of independent replications; equal group sizes). No autocorrelation model is
needed, and the effective sample size follows as ``p (1 - p) / se^2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Share:
    """A share with its Monte Carlo standard error.

    Attributes
    ----------
    share : float
    se : float
        Standard error (0 when every group agrees: then ``bound`` matters).
    n : int
        Members (or draws) the share is computed from.
    groups : int
        Independent groups behind it (= n for independent draws).
    """

    share: float
    se: float
    n: int
    groups: int

    @property
    def ess(self) -> float:
        """Effective sample size: independent draws giving the same precision."""
        p = self.share
        if self.se > 0:
            return float(p * (1 - p) / self.se ** 2)
        return float(self.groups)

    @property
    def bound(self) -> float:
        """95 % bound on the other side's share when all groups agree (rule of three)."""
        return 3.0 / max(self.groups, 1)


def verdict(share: Share, agree: float) -> str:
    """``"holds"``, ``"does not hold"``, ``"undecided"`` (fewer than ``agree`` of the
    sets agree either way) or ``"too few sets"`` (``agree`` or more do, but the
    Monte Carlo error leaves it possible that they do not: the 95 % bound on the
    disagreeing share, or 3 / groups when every group agrees, exceeds 1 - agree)."""
    s = share.share
    if 1 - agree < s < agree:
        return "undecided"
    other = min(s, 1 - s)
    bound = other + 1.96 * share.se if share.se > 0 else share.bound
    if bound > 1 - agree + 1e-12:
        return "too few sets"
    return "holds" if s >= agree else "does not hold"


def binomial(k: int, n: int) -> Share:
    """Share of ``k`` successes in ``n`` independent draws."""
    p = k / n if n else float("nan")
    return Share(p, float(np.sqrt(p * (1 - p) / n)) if n else float("nan"), n, n)


def grouped(h, groups) -> Share:
    """Share of members where ``h`` holds, its SE from the group means.

    Parameters
    ----------
    h : array of bool or float, shape (n,)
    groups : array of int, shape (n,)
        The independent group (chain start) of each member.
    """
    h = np.asarray(h, dtype=float)
    groups = np.asarray(groups)
    labels, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=h, minlength=len(labels))
    sizes = np.bincount(index, minlength=len(labels))
    means = sums / sizes
    share = float(h.mean()) if len(h) else float("nan")
    k = len(labels)
    if k < 2:
        return Share(share, float("nan"), len(h), k)
    # group means weighted by size (equal sizes in practice): ratio-estimator SE
    w = sizes / sizes.mean()
    se = float(np.sqrt(np.sum((w * (means - share)) ** 2) / (k * (k - 1))))
    return Share(share, se, len(h), k)


def mean_se(x, groups) -> tuple[float, float]:
    """Mean of ``x`` over members and its SE from the group means."""
    x = np.asarray(x, dtype=float)
    s = grouped(x, groups)
    return s.share, s.se


# -- distances between input distributions ------------------------------------------------
def ks(U: np.ndarray, mask: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Kolmogorov-Smirnov distance, per column of ``U``, between the rows where
    ``mask`` holds and the others (NaN when either side is empty).

    The regional-sensitivity statistic: how differently an input is
    distributed where a statement holds and where it does not. ``order``
    (``argsort(U, axis=0)``) saves sorting again for every mask.
    """
    mask = np.asarray(mask, dtype=bool)
    n1, n0 = int(mask.sum()), int((~mask).sum())
    if n1 == 0 or n0 == 0:
        return np.full(U.shape[1], np.nan)
    if order is None:
        order = np.argsort(U, axis=0, kind="stable")
    m = mask[order]
    F1 = np.cumsum(m, axis=0) / n1
    F0 = np.cumsum(~m, axis=0) / n0
    return np.abs(F1 - F0).max(axis=0)


def spearman(U: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Rank correlation (targets x inputs) of each column of ``S`` with each of
    ``U``, over the rows where that column of ``S`` is finite."""
    from scipy.stats import rankdata

    out = np.full((S.shape[1], U.shape[1]), np.nan)
    ru = rankdata(U, axis=0)
    for j in range(S.shape[1]):
        ok = np.isfinite(S[:, j])
        if ok.sum() < 3:
            continue
        rs = rankdata(S[ok, j])
        a = ru[ok] if ok.all() else rankdata(U[ok], axis=0)
        a = a - a.mean(axis=0)
        b = rs - rs.mean()
        denom = np.sqrt((a ** 2).sum(axis=0) * (b ** 2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            out[j] = np.where(denom > 0, (a * b[:, None]).sum(axis=0) / denom, 0.0)
    return out


# -- information ---------------------------------------------------------------------------
def entropy(p) -> np.ndarray:
    """Binary entropy in bits."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)


def information(h: np.ndarray, y: np.ndarray, bins: int = 4, agree: float = 0.9):
    """What observing ``y`` (to within its quantile bin) tells about ``h``.

    Returns
    -------
    gain : float
        Expected reduction of the entropy of ``h`` in bits (mutual
        information of ``h`` and the binned ``y``).
    settle : float
        Probability that the observation settles ``h``: the share of members
        whose bin has at least ``agree`` agreeing on ``h`` one way or the other.
    """
    h = np.asarray(h, dtype=bool)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 2 * bins:
        return 0.0, 0.0
    h, y = h[ok], y[ok]
    edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1]))
    b = np.searchsorted(edges, y, side="right")
    counts = np.bincount(b)
    hits = np.bincount(b, weights=h.astype(float))
    used = counts > 0
    pb = counts[used] / counts.sum()
    share = hits[used] / counts[used]
    gain = float(entropy(h.mean()) - np.sum(pb * entropy(share)))
    settle = float(np.sum(pb[(share >= agree) | (share <= 1 - agree)]))
    return max(gain, 0.0), settle
