"""Uncertainty of a fit: profile intervals, correlations, optional MCMC.

Profiles follow Vensim's sensitivity-bounds convention for Gaussian payoffs:
a bound is where the payoff (sum of squared scaled residuals, i.e. ``-2 log
L`` up to a constant) rises by :data:`CHI2_95` = 3.84 above the optimum, the
95 % point of chi-square with one degree of freedom. Like Vensim's default
search, each parameter is moved on its own with the others held at the
optimum (a conditional profile; re-optimising the others would widen the
intervals of correlated parameters). A profile that never rises by the
threshold anywhere within the bounds is *flat*: the data do not identify
that parameter, and its interval is reported as null with a warning.

Correlations come from the Jacobian of the residuals at the optimum
(central differences in unit coordinates): ``cov = pinv(J^T J)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

#: Rise of -2 log L that bounds a 95 % interval (chi-square, 1 d.o.f.).
CHI2_95 = 3.84

#: Central-difference step for the correlation Jacobian, in unit coordinates.
CORR_STEP = 0.02


@dataclass(frozen=True)
class Uncertainty:
    """Intervals, profiles and correlations of a fit.

    Attributes
    ----------
    ci : mapping
        Vensim name -> (low, high), or None when the profile is flat.
    open_ends : mapping
        Vensim name -> list of "low"/"high" ends where the interval reaches
        the parameter's bound without the payoff crossing the threshold.
    profiles : mapping
        Vensim name -> (values, payoffs) of the profile grid.
    correlations : ndarray or None
        Parameter correlation matrix (NaN for unidentified parameters).
    warnings : tuple of str
    mcmc : ndarray or None
        Posterior sample (n, p) in model units, when requested and available.
    """

    ci: Mapping
    open_ends: Mapping
    profiles: Mapping
    correlations: np.ndarray | None
    warnings: tuple = ()
    mcmc: np.ndarray | None = field(default=None, repr=False)


def analyse(objective, u_best: np.ndarray) -> Uncertainty:
    """Profile intervals, correlations and (if asked) MCMC around ``u_best``."""
    spec = objective.spec
    f0 = float(objective.payoff(u_best[None, :])[0])
    ci, ends, profiles, notes = {}, {}, {}, []
    grids = _profile_batch(objective, u_best, spec.profile_points)
    for i, p in enumerate(spec.parameters):
        grid, payoffs = grids[i]
        profiles[p.name] = (p.from_unit(grid), payoffs)
        lo, hi, open_ = _crossings(grid, payoffs, u_best[i], f0)
        if lo is None:
            ci[p.name] = None
            notes.append(f"{p.name}: profile is flat (payoff rises by less than {CHI2_95} "
                         f"over [{p.low:g}, {p.high:g}]): the documented outcomes do not "
                         "identify this parameter; its value is one of many that fit.")
        else:
            ci[p.name] = (float(p.from_unit(lo)), float(p.from_unit(hi)))
            ends[p.name] = open_
    corr = correlations(objective, u_best)
    sample, note = _mcmc(objective, u_best)
    if note:
        notes.append(note)
    return Uncertainty(ci, ends, profiles, corr, tuple(notes), sample)


def _profile_batch(objective, u_best, n):
    """Payoff along each axis through ``u_best``; all in one batch."""
    p = len(u_best)
    grid = np.unique(np.concatenate([np.linspace(0, 1, max(n, 3))]))
    rows, index = [], []
    for i in range(p):
        g = np.unique(np.concatenate([grid, [u_best[i]]]))
        for v in g:
            u = u_best.copy()
            u[i] = v
            rows.append(u)
        index.append(g)
    payoffs = objective.payoff(np.array(rows))
    out, k = [], 0
    for g in index:
        out.append((g, payoffs[k:k + len(g)]))
        k += len(g)
    return out


def _crossings(grid, payoffs, u0, f0):
    """Where the payoff first exceeds ``f0 + CHI2_95`` on each side of ``u0``."""
    level = f0 + CHI2_95
    if np.all(payoffs < level):
        return None, None, []
    open_ = []
    bounds = []
    for side in (-1, 1):
        idx = np.flatnonzero(grid < u0) [::-1] if side < 0 else np.flatnonzero(grid > u0)
        prev_u, prev_f, found = u0, f0, None
        for j in idx:
            if payoffs[j] >= level:
                # Linear interpolation between the last point below and this one.
                frac = (level - prev_f) / (payoffs[j] - prev_f) if payoffs[j] != prev_f else 1
                found = prev_u + frac * (grid[j] - prev_u)
                break
            prev_u, prev_f = grid[j], payoffs[j]
        if found is None:
            found = 0.0 if side < 0 else 1.0
            open_.append("low" if side < 0 else "high")
        bounds.append(found)
    return bounds[0], bounds[1], open_


def correlations(objective, u_best) -> np.ndarray | None:
    """Correlation matrix from the residual Jacobian at ``u_best``."""
    p = len(u_best)
    h = np.minimum(CORR_STEP, np.maximum(np.minimum(u_best, 1 - u_best), 1e-3))
    probes = np.vstack([u_best + np.diag(h), u_best - np.diag(h)])
    res = objective.residuals(probes)
    jac = ((res[:p] - res[p:]) / (2 * h[:, None])).T
    return _corr_from_jacobian(jac)


def _corr_from_jacobian(jac: np.ndarray) -> np.ndarray | None:
    """Correlations of the parameters the residuals identify; NaN elsewhere.

    A parameter whose column of ``jac`` is (numerically) zero has no local
    effect; when the remaining columns are rank-deficient (fewer informative
    residuals than parameters), ``J^T J`` is singular and no correlation is
    defined: the matrix is all NaN rather than the +-1 a pseudo-inverse gives.
    """
    p = jac.shape[1]
    corr = np.full((p, p), np.nan)
    norms = np.linalg.norm(jac, axis=0)
    if not np.any(norms):
        return None
    live = np.flatnonzero(norms > 1e-6 * norms.max())
    sub = jac[:, live]
    if np.linalg.matrix_rank(sub, tol=1e-8 * norms.max()) < len(live):
        return corr
    cov = np.linalg.inv(sub.T @ sub)
    sd = np.sqrt(np.diag(cov))
    corr[np.ix_(live, live)] = np.clip(cov / np.outer(sd, sd), -1, 1)
    return corr


def _mcmc(objective, u_best):
    """Posterior sample with emcee (uniform prior on the bounds), if asked."""
    spec = objective.spec
    if spec.mcmc_steps <= 0:
        return None, ""
    try:
        import emcee
    except ImportError:
        return None, ("MCMC skipped: emcee is not installed "
                      "(pip install 'sd[mcmc]' or pip install emcee).")
    p = len(u_best)
    walkers = max(spec.mcmc_walkers, 2 * p + 2)
    rng = np.random.default_rng(spec.seed)
    start = np.clip(u_best + 0.01 * rng.standard_normal((walkers, p)), 0, 1)

    def log_prob(U):
        U = np.atleast_2d(U)
        inside = np.all((U >= 0) & (U <= 1), axis=1)
        out = np.full(len(U), -np.inf)
        if inside.any():
            out[inside] = -0.5 * objective.payoff(U[inside])
        return out

    sampler = emcee.EnsembleSampler(walkers, p, log_prob, vectorize=True)
    # emcee draws from its own RandomState; seed it so a spec reproduces.
    sampler.random_state = np.random.RandomState(spec.seed).get_state()
    sampler.run_mcmc(start, spec.mcmc_steps, progress=False)
    chain = sampler.get_chain(discard=spec.mcmc_steps // 2, flat=True)
    return objective.to_x(chain), ""
