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
        Vensim name -> the optimiser's point, for every parameter: an estimate
        only where :attr:`identified` (see :attr:`estimates`), elsewhere one of
        many equally good values.
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

    @property
    def identified(self) -> dict:
        """Vensim name -> whether the data identify the parameter
        (:func:`sd.calibration.uncertainty.identified`)."""
        from .uncertainty import identified

        return {p.name: identified(self.uncertainty, p) for p in self.spec.parameters}

    @property
    def estimates(self) -> dict:
        """Vensim name -> the fitted value where the data identify it, else None."""
        return {k: self.values[k] if known else None for k, known in self.identified.items()}


@dataclass(frozen=True)
class SetResult:
    """A set-valued calibration: the behaviour-consistent set and what it decides.

    Attributes
    ----------
    spec : Spec
    inputs : sd.calibration.inputs.Inputs
        The uncertain inputs (uniform priors), fixed values, held constants.
    rule : sd.calibration.acceptance.Rule
    screening : sd.calibration.screening.Screening
        Prior draws: per-target pass shares, sensitivity, the mass estimate.
    mass : sd.calibration.estimates.Share
        Prior mass of the set (share of the prior meeting every outcome).
    search : sd.calibration.waves.Search or None
        The sequential search, when the screening found too few members.
    members : ndarray (n, inputs)
        The set's members used for every conclusion (unit coordinates).
    groups : ndarray (n,)
        Independent group (chain start) of each member.
    acceptance : float
        Share of the chains' proposals accepted.
    marginals : list of sd.calibration.marginals.Marginal
    representative : int
        Row of ``members`` nearest the set's medians (for a ``.cin``).
    questions : sd.calibration.questions.Questions or None
    outcomes : sd.calibration.conclusions.Outcomes
        Reference (and counterfactual) numbers and trajectories of the members.
    conclusions : tuple of sd.calibration.conclusions.Conclusion
    shapley : list
        Per cause: mean Shapley value and mean share of the total, with SEs.
    data_value : mapping
        Question -> ranked candidate observations (undecided questions).
    variants : tuple of sd.calibration.variants.Variant
    halving : sd.calibration.numerics.Halving or None
    outflows : list of sd.calibration.numerics.Outflow
    runs : int
    seconds : mapping
        Phase -> wall seconds.
    resumed : bool
        Finished pieces were loaded from a checkpoint.
    notes : tuple of str
        Warnings for the report.
    provenance : mapping
    units : mapping
        Vensim units of the variables in ``outcomes.paths``.
    """

    spec: Spec
    inputs: object
    rule: object
    screening: object
    mass: object
    members: object
    groups: object
    acceptance: float
    marginals: list
    representative: int
    questions: object
    outcomes: object
    conclusions: tuple
    shapley: list = field(default_factory=list)
    data_value: Mapping = field(default_factory=dict)
    variants: tuple = ()
    halving: object = None
    outflows: list = field(default_factory=list)
    search: object = None
    runs: int = 0
    seconds: Mapping = field(default_factory=dict)
    resumed: bool = False
    notes: tuple = ()
    provenance: Mapping = field(default_factory=dict)
    units: Mapping = field(default_factory=dict)

    @property
    def values(self):
        """The members in model units, one column per input (a DataFrame)."""
        from .acceptance import frame_of

        return frame_of(self.inputs, self.members)

    @property
    def found(self) -> bool:
        """Whether any parameter set met every documented outcome."""
        return len(self.members) > 0
