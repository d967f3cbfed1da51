"""Run anything over the accepted set of a calibration: the public building blocks.

:func:`accepted_set` gives the behaviour-consistent set of a set-valued
calibration, from its :class:`~sd.calibration.result.SetResult` or from the
output folder ``sd calibrate`` wrote (``accepted.csv`` and ``fit.json``);
:func:`run_over_set` runs a scenario (a policy, a counterfactual) on every
member and returns the distribution of its metrics, from which statements
are answered as shares with standard errors that account for the members'
correlation (:meth:`SetDistribution.share`).

Example::

    acc = sd.calibration.accepted_set("results/calibration-juarez_propane")
    late = Metric("late share", "Propane Share", "mean", start=1996, end=2000)
    kept = run_over_set(acc, "subsidy_kept@models/juarez_scenarios.toml", [late])
    kept.share(kept.values["late share"] > 0.15)     # Share(share, se, n, groups)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._common import read_json
from ..errors import SdInputError
from .estimates import Share, grouped

#: Members per batch of :func:`run_over_set`.
CHUNK = 2000


@dataclass(frozen=True)
class AcceptedSet:
    """The members of a behaviour-consistent set.

    Attributes
    ----------
    model : Path
        The Vensim model the calibration used.
    values : pandas.DataFrame
        One row per member, one column per uncertain input (Vensim names).
    groups : ndarray
        The independent group (chain start) of each member: standard errors
        are computed from group means.
    fixed : mapping
        Constants the calibration fixed (applied to every run).
    engine : str
        The engine the calibration ran on.
    source : str
        Where the set came from.
    ranges : mapping
        The prior range ``(low, high)`` of each uncertain input (uniform
        priors): what the set is a part of.
    """

    model: Path
    values: pd.DataFrame
    groups: np.ndarray
    fixed: dict = field(default_factory=dict)
    engine: str = "auto"
    source: str = ""
    ranges: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class SetDistribution:
    """Metrics of a scenario on every member of an accepted set.

    Attributes
    ----------
    scenario : str
    values : pandas.DataFrame
        One row per member, one column per metric (NaN for a failed run).
    groups : ndarray
    failed : int
        Members whose run failed.
    """

    scenario: str
    values: pd.DataFrame
    groups: np.ndarray
    failed: int = 0

    def share(self, holds) -> Share:
        """Share of members where ``holds`` (a boolean per member) is true, with its SE."""
        holds = np.asarray(holds, dtype=bool)
        if holds.shape != (len(self.values),):
            raise SdInputError(f"share: expected one truth value per member "
                               f"({len(self.values)}), got shape {holds.shape}.")
        return grouped(holds, self.groups)

    def mean(self, metric: str) -> Share:
        """Mean of ``metric`` over the members with its SE (as a :class:`Share`)."""
        x = self.values[metric].to_numpy(dtype=float)
        ok = np.isfinite(x)
        return grouped(x[ok], self.groups[ok])

    def summary(self) -> pd.DataFrame:
        """Median and 90 % interval of every metric over the set."""
        q = self.values.quantile([0.05, 0.5, 0.95]).T
        q.columns = ["q05", "median", "q95"]
        return q


def accepted_set(source) -> AcceptedSet:
    """The accepted set of a calibration.

    Parameters
    ----------
    source : SetResult or str or Path
        A result of :func:`sd.calibrate`, or the output folder of
        ``sd calibrate`` (reads ``accepted.csv`` and ``fit.json``).

    Raises
    ------
    SdInputError
        The folder holds no set-valued calibration, or its files disagree.
    """
    from .result import SetResult

    if isinstance(source, SetResult):
        return AcceptedSet(source.spec.model, source.values, np.asarray(source.groups),
                           dict(source.inputs.fixed), source.provenance.get("engine", "auto"),
                           str(source.spec.path),
                           {i.name: (i.low, i.high) for i in source.inputs.inputs})
    folder = Path(source)
    fit, csv = folder / "fit.json", folder / "accepted.csv"
    if not fit.is_file() or not csv.is_file():
        raise SdInputError(f"{folder}: expected accepted.csv and fit.json of a set-valued "
                           "calibration (sd calibrate SPEC --out FOLDER).")
    try:
        info = read_json(fit)
        members = info["set"]
        groups = np.asarray(members["groups"], dtype=int)
        model = Path(info["provenance"]["model_file"])
        ranges = {str(k): (float(v["low"]), float(v["high"]))
                  for k, v in info.get("parameters", {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SdInputError(f"{fit}: not the fit.json of a set-valued calibration "
                           f"({type(exc).__name__}: {exc}).") from None
    values = pd.read_csv(csv)
    if len(values) != len(groups):
        raise SdInputError(f"{folder}: accepted.csv has {len(values)} rows but fit.json lists "
                           f"{len(groups)} members.")
    return AcceptedSet(model, values, groups, dict(members.get("fixed", {})),
                       info["provenance"].get("engine", "auto"), str(folder), ranges)


def run_over_set(accepted: AcceptedSet, scenario=None, metrics=(), *, engine=None,
                 model=None) -> SetDistribution:
    """Run ``scenario`` on every member of ``accepted`` and compute ``metrics``.

    Parameters
    ----------
    accepted : AcceptedSet
    scenario : Scenario or str, optional
        A :class:`~sd.scenarios.Scenario`, or a name resolved as ``sd run
        --scenario`` does (``NAME`` beside the model, ``NAME@FILE.toml``,
        a ``.cin``). Its constants are applied on top of each member (a
        scenario that sets an uncertain input overrides it in every member).
    metrics : sequence of sd.outcomes.metrics.Metric
    engine : str, optional
        Default: the engine of the calibration.
    model : Model or Simulator, optional
        Already loaded model (default: load ``accepted.model``).

    Returns
    -------
    SetDistribution
    """
    from ..outcomes.metrics import matrix, values as metric_values
    from ..scenarios import Scenario, resolve
    from ..simulation import failed_runs, prepare, run_many

    sim = prepare(model or accepted.model, engine or accepted.engine)
    if scenario is None:
        scenario = Scenario()
    elif isinstance(scenario, str):
        scenario = resolve(scenario, Path(sim.model.path))
    if not metrics:
        raise SdInputError("run_over_set: give at least one metric (sd.outcomes.metrics.Metric).")
    variables = list(dict.fromkeys(m.variable for m in metrics))
    frame = accepted.values.copy()
    for k, v in accepted.fixed.items():
        frame[k] = v
    for k, v in scenario.constants.items():
        frame[k] = v          # the scenario wins over a member's value
    rest = Scenario(name=scenario.name, lookups=dict(scenario.lookups), time=dict(scenario.time),
                    description=scenario.description, source=scenario.source)
    out = {m.name: [] for m in metrics}
    failed = 0
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start:start + CHUNK].reset_index(drop=True)
        ds = run_many(sim, part, scenario=rest, variables=variables, on_failure="record")
        failed += len(failed_runs(ds))
        times = ds["time"].values
        for m in metrics:
            out[m.name].append(metric_values(m, times,
                                             matrix(ds, m.variable)))
    return SetDistribution(scenario.name, pd.DataFrame({k: np.concatenate(v)
                                                        for k, v in out.items()}),
                           np.asarray(accepted.groups), failed)
