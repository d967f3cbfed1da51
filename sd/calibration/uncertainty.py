"""Uncertainty of a fit: profile-likelihood intervals, correlations, optional MCMC.

Intervals use the chi-square threshold for Gaussian payoffs: a bound is
where the payoff (sum of squared scaled residuals, i.e. ``-2 log L`` up to a
constant) rises by :data:`CHI2_95` = 3.84 above the optimum, the 95 % point
of chi-square with one degree of freedom. Two kinds of profile, chosen by
``profile`` in the spec's ``[confidence]`` table:

``"optimised"`` (default)
    A true profile likelihood, ``PL(theta_i) = min over theta_-i of payoff``:
    at every grid value of the profiled parameter the others are re-fitted
    within their bounds (bounded ``least_squares``, warm-started from the
    neighbouring grid point, walking outward from the fit). This is the
    interval Wilks' theorem justifies; it is never narrower than the
    conditional one and is wider for correlated parameters.
``"conditional"``
    Vensim's default sensitivity bounds: one parameter moved with the others
    held at the fit. Cheap (one batch), but too narrow whenever parameters
    are correlated, because the others cannot compensate.

A profile that never rises by the threshold anywhere within the bounds is
*flat*: the data do not identify that parameter, and its interval is
reported as null with a warning. A profile that rises on one side only bounds
the parameter on that side (the interval is open at the other bound): the
data give a bound, not a value, and the parameter is reported as not
identified (practical non-identifiability, Raue et al. 2009), unless the
interval is narrow (at most :data:`OPEN_IDENTIFIED_WIDTH` of the range: a
value the data push against a physical bound, such as a rate near 0).

Only point outcomes (Gaussian errors) enter the deviance the threshold is
applied to. Range and pattern outcomes are hard constraints, not
likelihoods: a parameter vector that misses one has infinite deviance (its
hinge distance is never scored against a chi-square quantile); where the
profile crosses such a boundary between two grid points, the crossing is
put halfway.

Correlations come from the Jacobian of the residuals at the optimum
(central differences in unit coordinates): ``cov = pinv(J^T J)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy import optimize

from .optimisers import JAC_STEP
from .spec import PROFILE_KINDS

#: Rise of -2 log L that bounds a 95 % interval (chi-square, 1 d.o.f.).
CHI2_95 = 3.84

#: Central-difference step for the correlation Jacobian, in unit coordinates.
CORR_STEP = 0.02

#: least_squares function evaluations per profile point (each also costs a
#: batched Jacobian). Warm starts make a handful enough; the cap bounds the
#: cost when a switch-time parameter makes the payoff a staircase.
POINT_MAX_NFEV = 20

#: Simulation runs allowed per parameter's profile, per grid point; beyond
#: it, remaining points are evaluated at the warm start only (an upper bound
#: on the profile, so the interval may come out too narrow: a warning says so).
PROFILE_RUNS_PER_POINT = 100

#: Bisections of the grid cell where the profile crosses the threshold, each
#: one more re-fit. None by default: interpolating the signed root deviance
#: (:func:`_interpolate`) is exact for quadratic profiles and moved the teacup
#: intervals by < 0.5 % when one bisection was added, at 30 % more runs.
BISECTIONS = 0

#: An interval open at one bound identifies its parameter only when it spans at most
#: this share of the range (the set-valued default ``identified_width``).
OPEN_IDENTIFIED_WIDTH = 0.25


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
        Vensim name -> (values, payoffs) of the profile points evaluated
        (an optimised profile stops walking outward once it has crossed).
    correlations : ndarray or None
        Parameter correlation matrix (NaN for unidentified parameters).
    warnings : tuple of str
    mcmc : ndarray or None
        Posterior sample (n, p) in model units, when requested and available.
    kind : str
        ``"optimised"`` or ``"conditional"`` (see :data:`PROFILE_KINDS`).
    profile_nfev : mapping
        Vensim name -> simulation runs spent on that parameter's profile.
    """

    ci: Mapping
    open_ends: Mapping
    profiles: Mapping
    correlations: np.ndarray | None
    warnings: tuple = ()
    mcmc: np.ndarray | None = field(default=None, repr=False)
    kind: str = "optimised"
    profile_nfev: Mapping = field(default_factory=dict)


def identified(unc, parameter) -> bool:
    """Whether the fit identifies ``parameter``: its interval is closed on both
    sides, or open at one bound but narrow (see the module docstring)."""
    ci = None if unc is None else unc.ci.get(parameter.name)
    if ci is None:
        return False
    if not unc.open_ends.get(parameter.name):
        return True
    return ci[1] - ci[0] <= OPEN_IDENTIFIED_WIDTH * (parameter.high - parameter.low)


def deviance(objective, res) -> np.ndarray:
    """``-2 log L`` (up to a constant) of residual rows: the squared point
    residuals, infinite where a range or pattern outcome is missed."""
    res = np.atleast_2d(res)
    hinge = getattr(objective, "hinge", None)
    if hinge is None or not np.any(hinge):
        return (res ** 2).sum(axis=1)
    out = (res[:, ~hinge] ** 2).sum(axis=1)
    out[np.abs(res[:, hinge]).max(axis=1) > 1e-9] = np.inf
    return out


def _payoff(objective, U) -> np.ndarray:
    return deviance(objective, objective.residuals(np.atleast_2d(U)))


def profile_kind(spec) -> str:
    """The spec's ``[confidence] profile`` (checked when the spec was loaded)."""
    return getattr(spec, "profile", None) or PROFILE_KINDS[0]


def analyse(objective, u_best: np.ndarray) -> Uncertainty:
    """Profile intervals, correlations and (if asked) MCMC around ``u_best``.

    Parameters
    ----------
    objective : sd.calibration.objective.Objective
        Or any object with ``spec`` (``parameters``, ``profile_points``,
        ``mcmc_steps``), ``nfev`` and batched ``residuals``/``payoff``.
    u_best : ndarray
        The fit in unit coordinates.

    Returns
    -------
    Uncertainty
    """
    spec = objective.spec
    kind = profile_kind(spec)
    u_best = np.clip(np.asarray(u_best, dtype=float), 0.0, 1.0)
    f0 = float(_payoff(objective, u_best[None, :])[0])
    ci, ends, profiles, runs, notes = {}, {}, {}, {}, []
    if not np.isfinite(f0):
        notes.append("the fit misses a range or pattern outcome (a hard constraint): no "
                     "interval is defined; use approach = \"set\" for sparse outcomes.")
        return Uncertainty({p.name: None for p in spec.parameters}, {}, {}, None, tuple(notes),
                           None, kind, {})
    if kind == "conditional":
        grids = _profile_batch(objective, u_best, spec.profile_points)
    for i, p in enumerate(spec.parameters):
        if kind == "conditional":
            grid, payoffs = grids[i]
            runs[p.name] = len(grid)
            lo, hi, open_ = _crossings(grid, payoffs, u_best[i], f0)
        else:
            start = objective.nfev
            grid, payoffs, lo, hi, open_, note = _optimised_profile(
                objective, u_best, i, f0, spec.profile_points)
            runs[p.name] = objective.nfev - start
            if note:
                notes.append(f"{p.name}: {note}")
        profiles[p.name] = (p.from_unit(grid), payoffs)
        if payoffs.min() < f0 - 0.1:
            notes.append(f"{p.name}: the profile reaches payoff {payoffs.min():.4g}, below the "
                         f"fit's {f0:.4g}: the optimiser stopped short of the best fit.")
        if lo is None:
            ci[p.name] = None
            notes.append(f"{p.name}: profile is flat (payoff rises by less than {CHI2_95} "
                         f"over [{p.low:g}, {p.high:g}]): the documented outcomes do not "
                         "identify this parameter; its value is one of many that fit.")
        else:
            ci[p.name] = (float(p.from_unit(lo)), float(p.from_unit(hi)))
            ends[p.name] = open_
            if open_ and hi - lo > OPEN_IDENTIFIED_WIDTH:
                side = "below" if open_ == ["high"] else "above"
                notes.append(f"{p.name}: the profile rises by {CHI2_95} on one side only: the "
                             f"data bound it {side} (95% interval [{ci[p.name][0]:.4g}, "
                             f"{ci[p.name][1]:.4g}], open at the {open_[0]} bound) but do not "
                             "identify a value.")
    corr = correlations(objective, u_best)
    sample, note = _mcmc(objective, u_best)
    if note:
        notes.append(note)
    return Uncertainty(ci, ends, profiles, corr, tuple(notes), sample, kind, runs)


def _grid(n, centre):
    """``n`` evenly spaced unit values plus the fit's own value."""
    return np.unique(np.concatenate([np.linspace(0, 1, max(n, 3)), [centre]]))


def _profile_batch(objective, u_best, n):
    """Conditional payoff along each axis through ``u_best``; all in one batch."""
    rows, index = [], []
    for i in range(len(u_best)):
        g = _grid(n, u_best[i])
        for v in g:
            u = u_best.copy()
            u[i] = v
            rows.append(u)
        index.append(g)
    payoffs = _payoff(objective, np.array(rows))
    out, k = [], 0
    for g in index:
        out.append((g, payoffs[k:k + len(g)]))
        k += len(g)
    return out


def _optimised_profile(objective, u_best, i, f0, n):
    """Profile likelihood of parameter ``i``: the others re-fitted at each point.

    Walks outward from the fit on each side, warm-starting every point from
    its inner neighbour, and stops a side once the payoff crosses the
    threshold (only the first crossing bounds the interval); the crossing
    cell is then bisected :data:`BISECTIONS` times before interpolating.

    Returns
    -------
    grid, payoffs : ndarray
        The unit values evaluated (sorted) and their profile payoffs.
    lo, hi : float or None
        Interval in unit coordinates (None, None when flat).
    open_ : list of str
    note : str
        Why the profile may be inexact (evaluation budget), or "".
    """
    level = f0 + CHI2_95
    grid = _grid(n, u_best[i])
    budget = objective.nfev + PROFILE_RUNS_PER_POINT * len(grid)
    fitter = _Refit(objective, i, budget)
    points = {float(u_best[i]): (f0, u_best)}
    bounds, open_ = [], []
    for side in (-1, 1):
        idx = np.flatnonzero(grid < u_best[i])[::-1] if side < 0 else \
            np.flatnonzero(grid > u_best[i])
        prev_v, (prev_f, prev_u) = float(u_best[i]), points[float(u_best[i])]
        found = None
        for j in idx:
            v = float(grid[j])
            f, u = fitter(v, prev_u)
            points[v] = (f, u)
            if f >= level:
                # Bisect the crossing cell, warm-starting from its inner end.
                for _ in range(BISECTIONS):
                    mid = 0.5 * (prev_v + v)
                    fm, um = fitter(mid, prev_u)
                    points[mid] = (fm, um)
                    if fm >= level:
                        v, f = mid, fm
                    else:
                        prev_v, prev_f, prev_u = mid, fm, um
                found = _interpolate(prev_v, prev_f, v, f, f0)
                break
            prev_v, prev_f, prev_u = v, f, u
        if found is None:
            found = 0.0 if side < 0 else 1.0
            open_.append("low" if side < 0 else "high")
        bounds.append(found)
    values = np.array(sorted(points))
    payoffs = np.array([points[v][0] for v in values])
    note = "" if not fitter.exhausted else (
        f"profile budget ({PROFILE_RUNS_PER_POINT} runs a grid point) exhausted; later points "
        "were not re-optimised, so the interval may be too narrow.")
    if len(open_) == 2:
        return values, payoffs, None, None, [], note
    return values, payoffs, bounds[0], bounds[1], open_, note


def _interpolate(v_in, f_in, v_out, f_out, f0):
    """Where the profile reaches ``f0 + CHI2_95`` between an inner and an outer point.

    Linear in the signed root deviance ``z = sqrt(f - f0)`` (as R's
    ``MASS::confint`` does), not in the payoff: ``z`` is linear in the
    parameter for a quadratic (Gaussian) profile, so the crossing is exact
    there however coarse the grid, where linear interpolation of the payoff
    would put it too close to the fit.
    """
    if not np.isfinite(f_out):      # a hard constraint's boundary: halfway
        return 0.5 * (v_in + v_out)
    z_in, z_out = np.sqrt(max(f_in - f0, 0.0)), np.sqrt(max(f_out - f0, 0.0))
    frac = (np.sqrt(CHI2_95) - z_in) / (z_out - z_in) if z_out > z_in else 1.0
    return v_in + float(np.clip(frac, 0.0, 1.0)) * (v_out - v_in)


class _Refit:
    """Minimise the payoff over all parameters but ``i``, with ``u[i]`` fixed.

    Bounded ``least_squares`` (trust-region reflective) on the residual
    vector; the forward-difference Jacobian (step :data:`sd.calibration.optimisers.JAC_STEP`,
    large because switch times move outputs only across a TIME STEP) is one
    batch of the base point and its perturbations.
    """

    def __init__(self, objective, i, budget):
        self.objective, self.i, self.budget = objective, i, budget
        self.exhausted = False

    def __call__(self, value, warm):
        u = np.asarray(warm, dtype=float).copy()
        u[self.i] = value
        free = np.flatnonzero(np.arange(len(u)) != self.i)
        if not len(free) or self.objective.nfev >= self.budget:
            self.exhausted |= len(free) > 0
            return float(_payoff(self.objective, u[None, :])[0]), u
        cache: dict[bytes, np.ndarray] = {}

        def full(v):
            x = u.copy()
            x[free] = v
            return x

        def fun(v):
            key = np.asarray(v, dtype=float).tobytes()
            if key not in cache:
                cache[key] = self.objective.residuals(full(v)[None, :])[0]
            return cache[key]

        def jac(v):
            v = np.asarray(v, dtype=float)
            key = v.tobytes()
            # Step inward at the upper bound so every probe stays in the cube.
            h = np.where(v + JAC_STEP <= 1.0, JAC_STEP, -JAC_STEP)
            probes = [full(v + step) for step in np.diag(h)]
            rows = probes if key in cache else [full(v)] + probes
            res = self.objective.residuals(np.array(rows))
            if key not in cache:
                cache[key], res = res[0], res[1:]
            return ((res - cache[key][None, :]) / h[:, None]).T

        # Tolerances 1e-3: the payoff is needed only to compare with a 3.84 rise.
        fit = optimize.least_squares(fun, np.clip(u[free], 0, 1), jac=jac, bounds=(0.0, 1.0),
                                     method="trf", max_nfev=POINT_MAX_NFEV, x_scale=1.0,
                                     ftol=1e-3, xtol=1e-3, gtol=1e-8)
        return float(deviance(self.objective, fit.fun[None, :])[0]), full(fit.x)


def _crossings(grid, payoffs, u0, f0):
    """Where the payoff first exceeds ``f0 + CHI2_95`` on each side of ``u0``."""
    level = f0 + CHI2_95
    if np.all(payoffs < level):
        return None, None, []
    open_, bounds = [], []
    for side in (-1, 1):
        idx = np.flatnonzero(grid < u0)[::-1] if side < 0 else np.flatnonzero(grid > u0)
        prev_u, prev_f, found = u0, f0, None
        for j in idx:
            if payoffs[j] >= level:
                found = _interpolate(prev_u, prev_f, grid[j], payoffs[j], f0)
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
            out[inside] = -0.5 * _payoff(objective, U[inside])
        return out

    sampler = emcee.EnsembleSampler(walkers, p, log_prob, vectorize=True)
    # emcee draws from its own RandomState; seed it so a spec reproduces.
    sampler.random_state = np.random.RandomState(spec.seed).get_state()
    sampler.run_mcmc(start, spec.mcmc_steps, progress=False)
    chain = sampler.get_chain(discard=spec.mcmc_steps // 2, flat=True)
    return objective.to_x(chain), ""
