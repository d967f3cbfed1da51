"""The result of a calibration: what every report of a fit reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import xarray as xr

from .spec import Spec


@dataclass(frozen=True)
class FitResult:
    """Fit, targets, uncertainty and explanation of one calibration.

    Attributes
    ----------
    spec : Spec
    values : mapping
        Vensim name -> fitted value.
    payoff : float
        Sum of squared scaled residuals at the fit.
    nfev : int
        Simulation runs spent.
    success : bool
    message : str
    targets : tuple of dict
        ``target``, ``simulated``, ``residual``, ``satisfied`` per target.
    trajectories : xarray.Dataset
        The fitted run (dims ``run`` of size 1, ``time``) of the target variables.
    uncertainty : sd.calibration.uncertainty.Uncertainty or None
        None when interrupted before the intervals were computed.
    explanation : sd.calibration.counterfactuals.Explanation or None
    failures : tuple of dict
        Runs that produced NaN/inf during the fit (``parameters``, ``error``);
        penalised, never used as a fit.
    interrupted : bool
        Ctrl-C stopped the job; ``stage`` says where.
    stage : str
        ``"optimise"``, ``"uncertainty"`` or ``"explain"``: where an
        interrupted job stopped ("" when it finished).
    provenance : mapping
    """

    spec: Spec
    values: Mapping[str, float]
    payoff: float
    nfev: int
    success: bool
    message: str
    targets: tuple
    trajectories: xr.Dataset
    uncertainty: object
    explanation: object
    failures: tuple = ()
    interrupted: bool = False
    stage: str = ""
    provenance: Mapping = field(default_factory=dict)

    @property
    def n_met(self) -> int:
        return sum(t["satisfied"] for t in self.targets)
