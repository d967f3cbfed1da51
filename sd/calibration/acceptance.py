"""When a run reproduces the documented outcomes: the rule that defines the set.

Each documented outcome (:mod:`sd.outcomes.targets`) becomes a *violation*,
zero when the outcome is met:

``point``
    ``max(0, |sim - value| / sigma - k)``: a point is met within ``k``
    standard deviations (``[set] point_sigmas``, default 2, about 95 % for a
    Gaussian error). The sigma is the documented uncertainty of the number.
    With ``n`` point outcomes the true parameters meet every one only with
    probability ``q**n`` (``q`` = 95.4 % at 2 sigma: 1 % for a series of 96
    points), so a set defined point by point would exclude the truth. ``[set]
    points`` says how they combine: ``"each"`` (every point within ``k``),
    ``"family"`` (every point within ``k_n``, Sidak's level at which the truth
    meets all ``n`` with probability ``q``: 2.27 sigma for 2 points, 3.49 for
    96) or ``"auto"`` (the default: ``"family"`` once ``q**n`` falls below
    ``1 -`` :data:`AUTO_FAMILY_MISS`, i.e. from 3 points at 2 sigma; a
    documented count or two keeps the per-point rule).
``range``, ``peak``, ``trough``, ``peak_time``
    ``max(0, distance outside / tolerance - tau)``: a hard constraint; ``tau``
    (``[set] interval_tolerance``, default 0) is a stated interpretation
    tolerance in units of the outcome's tolerance (its ``sigma``, else its
    half-width).

A run is in the behaviour-consistent set when every violation is zero. The
sum of the violations is the run's *distance* to the set, used only to order
runs in the sequential search (:mod:`.waves`), never as a likelihood: no
chi-square rule is applied to these hinge distances. A run that fails (NaN)
is never in the set; its distance is infinite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..outcomes import targets as outcomes
from ..simulation import Simulator, failed_runs, read_at, run_many

#: A violation at most this is zero (rounding of window interpolation).
ZERO = 1e-12

#: ``[set] points``: how point outcomes combine (module docstring); the first is the default.
POINT_RULES = ("auto", "each", "family")

#: ``points = "auto"``: family-wise once the per-point rule would leave the true parameters
#: out of the set more often than this.
AUTO_FAMILY_MISS = 0.1


@dataclass(frozen=True)
class Rule:
    """The acceptance rule of a set-valued calibration."""

    targets: tuple
    point_sigmas: float = 2.0
    interval_tolerance: float = 0.0
    points: str = POINT_RULES[0]

    @property
    def point_limit(self) -> float:
        """Standard deviations within which each point outcome is met (``k`` or ``k_n``)."""
        from scipy.special import erf, erfinv

        n = sum(t.kind == "point" for t in self.targets)
        q = float(erf(self.point_sigmas / np.sqrt(2.0)))
        if self.points == "each" or n <= 1 or (
                self.points == "auto" and q ** n >= 1.0 - AUTO_FAMILY_MISS):
            return self.point_sigmas
        return float(np.sqrt(2.0) * erfinv(q ** (1.0 / n)))

    def violations(self, ds) -> tuple[np.ndarray, np.ndarray]:
        """Violations ``V`` and simulated summaries ``S``, both (runs, targets).

        ``S`` is what each target looks at (the value at the time, the peak,
        the worst value of a range, the peak time); NaN for a failed run,
        whose violations are infinite.
        """
        res, sim = outcomes.evaluate(self.targets, ds)
        V = np.empty_like(res)
        limit = self.point_limit
        for j, t in enumerate(self.targets):
            raw = res[:, j] / t.weight if t.weight > 0 else np.zeros(len(res))
            allowed = limit if t.kind == "point" else self.interval_tolerance
            V[:, j] = np.maximum(np.abs(raw) - allowed, 0.0)
        V[~np.isfinite(V)] = np.inf
        return V, sim

    def describe(self) -> str:
        """The rule in words, for the report."""
        tol = "hard constraints" if self.interval_tolerance == 0 else (
            f"met when missed by at most {self.interval_tolerance:g} of their tolerance")
        n, limit = sum(t.kind == "point" for t in self.targets), self.point_limit
        points = f"a point outcome is met within {self.point_sigmas:g} standard deviations of " \
                 "its documented value"
        if limit != self.point_sigmas:
            points = (f"each of the {n} point outcomes is met within {limit:.3g} standard "
                      "deviations of its documented value (family-wise: the true parameters "
                      f"meet all {n} as often as one point is met within {self.point_sigmas:g})")
        return f"{points}; range and pattern outcomes are {tol}."


def met(V: np.ndarray) -> np.ndarray:
    """Boolean (runs, targets): the outcome is met."""
    return V <= ZERO


def distance(V: np.ndarray) -> np.ndarray:
    """Distance of each run to the set (0 inside, inf for a failed run)."""
    return np.where(np.isfinite(V).all(axis=1), np.where(V <= ZERO, 0.0, V).sum(axis=1), np.inf)


class Runner:
    """Runs unit-cube rows of the uncertain inputs and applies the rule.

    Parameters
    ----------
    simulator : Simulator
    inputs : sd.calibration.inputs.Inputs
    rule : Rule
    progress : callable, optional
        Called with the number of runs of every batch.
    """

    def __init__(self, simulator: Simulator, inputs, rule: Rule, progress=None):
        from ..model.timing import settings

        self.simulator, self.inputs, self.rule = simulator, inputs, rule
        self.variables = outcomes.variables(rule.targets)
        self.progress = progress
        self.runs = 0
        self.failures: list[str] = []
        self.time = settings(simulator.model)
        self.simulator_start = self.time.initial_time
        # data off the save grid are read between the integration steps around them
        self.read_time, self.read_times = read_at(simulator, outcomes.times(rule.targets))

    def simulate(self, U, constants=None, variables=None, time=None, forced=None, times=None):
        """``Dataset(run, time)`` of the rows ``U`` with ``constants`` on top
        (a scenario's switches), optional time settings, saved ``times`` and variables
        held on given paths (``forced``, see :func:`sd.simulation.run_many`); failed
        runs blank."""
        from ..scenarios import Scenario

        frame = self.inputs.frame(U)
        for name, value in (constants or {}).items():
            frame[name] = value
        scenario = Scenario(name="set", time=dict(time or {})) if time else None
        extra = {"forced": forced} if forced else {}
        ds = run_many(self.simulator, frame, scenario=scenario, times=times,
                      variables=variables or self.variables, on_failure="record", **extra)
        self.runs += len(frame)
        if self.progress is not None:
            self.progress(len(frame))
        failed = failed_runs(ds)
        if failed and len(self.failures) < 5:
            self.failures.extend(list(failed.values())[:5 - len(self.failures)])
        return ds

    def __call__(self, U, constants=None) -> tuple[np.ndarray, np.ndarray]:
        """(violations, summaries) of the rows ``U``."""
        return self.rule.violations(self.simulate(U, constants, time=self.read_time,
                                                  times=self.read_times))


def frame_of(inputs, U) -> pd.DataFrame:
    """The input values of unit-cube rows ``U`` as a table (Vensim names)."""
    return pd.DataFrame(inputs.to_values(U), columns=inputs.names)
