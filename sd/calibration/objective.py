"""The calibration objective: residuals of a batch of parameter vectors.

The payoff is the sum of squared scaled residuals of the targets
(:mod:`sd.outcomes.targets`; Gaussian points: ``-2 log L`` up to a constant;
ranges and patterns: zero when met). Optimisers work in unit coordinates
``u = (x - low) / (high - low)`` so that a year and a fraction get comparable
steps, and evaluate vectors in batches: one batch is one
:func:`sd.simulation.run_many` call on the engine decided once for the fit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..outcomes import targets as outcomes
from ..scenarios import Scenario
from ..simulation import Simulator, failed_runs, read_at, run_many
from .spec import Spec

#: Residual given to every target of a run that produced NaN/inf: large enough
#: that no optimiser keeps it, finite so that least_squares can continue.
NAN_PENALTY = 1e3


class Objective:
    """Residuals of a batch of parameter vectors; remembers the best seen.

    Parameters
    ----------
    simulator : Simulator
        The model and its engine (:func:`sd.simulation.prepare`).
    spec : Spec
        Checked against the model (:func:`sd.calibration.spec.check_spec`).
    progress : callable, optional
        Called with the number of runs of every batch (a progress bar).
    """

    def __init__(self, simulator: Simulator, spec: Spec, progress=None):
        self.simulator, self.spec, self.progress = simulator, spec, progress
        self.variables = outcomes.variables(spec.targets)
        # data off the save grid are read between the integration steps around them
        time, self.times = read_at(simulator, outcomes.times(spec.targets))
        self.scenario = Scenario(name="fit", time=time) if time else None
        # range and pattern outcomes: constraints, not likelihoods (see uncertainty)
        self.hinge = np.array([t.kind != "point" for t in spec.targets], dtype=bool)
        self.nfev = 0
        self.best_u, self.best_payoff = None, np.inf
        self.failures: list[dict] = []

    def to_x(self, U) -> np.ndarray:
        U = np.atleast_2d(np.clip(U, 0.0, 1.0))
        return np.column_stack([p.from_unit(U[:, i]) for i, p in enumerate(self.spec.parameters)])

    def simulate(self, U) -> xr.Dataset:
        """Run the unit-coordinate vectors ``U`` (n, p): ``Dataset(run, time)``,
        failed runs recorded (:func:`sd.simulation.failed_runs`)."""
        X = self.to_x(U)
        samples = pd.DataFrame(X, columns=self.spec.names)
        fixed = {k: v for k, v in self.spec.fixed.items() if k not in samples.columns}
        if fixed:
            samples = samples.assign(**fixed)
        ds = run_many(self.simulator, samples, scenario=self.scenario, variables=self.variables,
                      times=self.times, on_failure="record")
        self.nfev += len(samples)
        if self.progress is not None:
            self.progress(len(samples))
        return ds

    def residuals(self, U) -> np.ndarray:
        """Residual matrix (n, n_targets) of the unit vectors ``U``."""
        U = np.atleast_2d(U)
        ds = self.simulate(U)
        res, _ = outcomes.evaluate(self.spec.targets, ds)
        failed = failed_runs(ds)
        for i, why in failed.items():
            # Reported in the FitResult; the penalty keeps optimisers away.
            self.failures.append({"parameters": dict(zip(self.spec.names, self.to_x(U[i])[0])),
                                  "error": why})
            res[i] = NAN_PENALTY
        payoff = (res ** 2).sum(axis=1)
        i = int(np.argmin(payoff))
        if payoff[i] < self.best_payoff and i not in failed:
            self.best_u, self.best_payoff = np.clip(U[i], 0, 1).copy(), float(payoff[i])
        return res

    def payoff(self, U) -> np.ndarray:
        """Sum of squared residuals of every row of ``U``."""
        return (self.residuals(U) ** 2).sum(axis=1)
