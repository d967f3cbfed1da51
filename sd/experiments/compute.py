"""Run an experiment: every case's policies over its behaviour-consistent set.

The phases: check every name against the models (:mod:`.plan`); obtain each
case's set (:mod:`.sets`: a matching calibration reused, else run); run each
cell (policy, or policy with a variation) on every member through
:func:`sd.calibration.run_over_set` (one batched ``run_many`` per cell);
tabulate the outputs as distributions over the set, with the probability
that each policy beats the baseline; answer the statements
(:mod:`.statements`), also over draws from the prior when asked, which shows
whether the documented outcomes, or only the assumed ranges, decide them.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import provenance
from .._common import safe_name
from ..calibration import AcceptedSet, run_over_set
from ..calibration.estimates import grouped
from ..errors import SdRuntimeError
from ..simulation import prepare
from . import sets as sets_mod
from .plan import CasePlan, metric_name, plan
from .result import NO_SET, NOT_APPLICABLE, ExperimentResult, Verdict
from .spec import ExperimentSpec, load_spec
from .statements import answer, column

#: Where ``sd calibrate`` writes a spec's output by default (relative to the working folder):
#: ``(folder, prefix)`` -> ``folder / (prefix + spec stem)``.
DEFAULT_SEARCH = ((Path("results"), "calibration-"),)


def experiment(spec, *, search=DEFAULT_SEARCH, on_calibrated=None, log=None) -> ExperimentResult:
    """Run an experiment spec.

    Parameters
    ----------
    spec : str, Path or ExperimentSpec
    search : sequence of (Path, str)
        Where a finished calibration of a case may be, in order of preference:
        ``(folder, prefix)`` names ``folder / (prefix + stem)``, ``stem`` the
        calibration spec's file stem (as a safe file name). The first folder
        made from the same files is reused.
    on_calibrated : callable, optional
        ``on_calibrated(case, SetResult) -> folder``: keeps a calibration that
        had to run (see :func:`sd.experiments.sets.obtain`).
    log : callable, optional
        Receives one line per case (where its set came from), for a terminal.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    SdInputError
        A bad spec, or a name that does not exist in a case's model or
        scenario file (before anything runs).
    SdRuntimeError
        A member's run failed under a policy.
    """
    spec = spec if isinstance(spec, ExperimentSpec) else load_spec(spec)
    plans = plan(spec)                                         # every name checked first
    rng = np.random.default_rng(spec.seed)
    seconds = {"calibration": 0.0, "runs": 0.0}
    sources, tables, verdicts, members, runs = [], [], [], {}, 0
    for p in plans:
        t0 = time.perf_counter()
        stem = safe_name(p.case.calibration.stem)
        folders = [Path(folder) / f"{prefix}{stem}" for folder, prefix in search]
        if log:
            log(f"{p.case.name}: looking for its set ({p.case.calibration.name})")
        acc, source = sets_mod.obtain(p.case.name, p.calibration, folders, on_calibrated)
        if log:
            log(f"{p.case.name}: " + (f"reused {source.folder}" if source.how == "reused" else
                                      f"calibrated in {time.perf_counter() - t0:.1f} s")
                + f"; {len(acc):,} members")
        acc = sets_mod.subsample(acc, spec.max_members, rng)
        source = _used(source, len(acc))
        sources.append(source)
        t1 = time.perf_counter()
        seconds["calibration"] += t1 - t0
        if not len(acc):
            tables.append(_table(spec, p, None, None))
            verdicts += [_no_set(p, s) for s in spec.statements]
            continue
        draws = sets_mod.prior(acc, spec.prior_draws, rng) if spec.prior_draws else None
        values, n = _run_cells(p, acc)
        prior_values, n_prior = _run_cells(p, draws) if draws is not None else (None, 0)
        runs += n + n_prior
        tables.append(_table(spec, p, values, acc.groups))
        for st in spec.statements:
            if st.id in p.statements:
                verdicts.append(answer(st, p, values, acc.groups, acc.values, spec.agree,
                                       prior_values))
            else:
                verdicts.append(Verdict(p.case.name, st.id, NOT_APPLICABLE,
                                        reason=st.not_applicable[p.case.name]))
        members[p.case.name] = pd.concat(
            [pd.DataFrame({"group": acc.groups}), acc.values.add_prefix("input | "), values],
            axis=1)
        seconds["runs"] += time.perf_counter() - t1
    return ExperimentResult(spec, tuple(sources), pd.concat(tables, ignore_index=True),
                            tuple(verdicts), members, runs, seconds,
                            _provenance(spec, plans, sources))


def _used(source, used: int):
    from dataclasses import replace

    return replace(source, used=used)


def _run_cells(p: CasePlan, acc: AcceptedSet) -> tuple[pd.DataFrame, int]:
    """Every cell's metrics on every member: one column per cell and metric."""
    sim = prepare(p.model, acc.engine)
    out = {}
    for key, scenario in p.cells.items():
        dist = run_over_set(acc, scenario, p.metrics[key], model=sim)
        if dist.failed:
            where = scenario.source or "the model as written"
            raise SdRuntimeError(
                f"case {p.case.name!r}: the runs of {dist.failed} of {len(acc)} members "
                f"({acc.source}) failed under {key!r} ({where}); run one with sd run to see "
                "where (the members are the rows of the calibration's accepted.csv).")
        for m in p.metrics[key]:
            out[column(key, m.name)] = dist.values[m.name].to_numpy(dtype=float)
    return pd.DataFrame(out), len(acc) * len(p.cells)


def _table(spec: ExperimentSpec, p: CasePlan, values, groups) -> pd.DataFrame:
    rows = []
    for policy in (spec.baseline, *spec.policies):
        for out in spec.outputs:
            var = p.model.variable(out.variable).name
            for name in spec.table_years:
                year = p.year(name)
                row = {"case": p.case.name, "policy": policy, "output": var, "year_name": name,
                       "year": year, "median": np.nan, "q05": np.nan, "q95": np.nan,
                       "p_beats": np.nan, "p_beats_se": np.nan, "n": 0, "groups": 0}
                if values is not None:
                    x = values[column(policy, metric_name(var, year))].to_numpy(dtype=float)
                    row.update(median=float(np.median(x)), q05=float(np.quantile(x, 0.05)),
                               q95=float(np.quantile(x, 0.95)), n=len(x),
                               groups=len(np.unique(groups)))
                    if policy != spec.baseline:
                        base = values[column(spec.baseline, metric_name(var, year))].to_numpy()
                        s = grouped(out.beats(x, base), groups)
                        row.update(p_beats=s.share, p_beats_se=s.se)
                rows.append(row)
    return pd.DataFrame(rows)


def _no_set(p: CasePlan, st) -> Verdict:
    if st.id not in p.statements:
        return Verdict(p.case.name, st.id, NOT_APPLICABLE, reason=st.not_applicable[p.case.name])
    return Verdict(p.case.name, st.id, NO_SET, reason="no parameter set within the ranges "
                   "meets every documented outcome of the case: its calibration rejects the "
                   "model as written, so nothing can be concluded from it")


def _provenance(spec: ExperimentSpec, plans, sources) -> dict:
    from .._common import file_sha256

    cases = {}
    for p, s in zip(plans, sources):
        cases[p.case.name] = {
            "model": str(p.model.path), "model_sha256": p.model.sha256,
            "calibration": str(p.case.calibration), "calibration_files": dict(p.calibration.sha256),
            "scenario_files": {str(f): file_sha256(f) for f in p.scenario_files},
            "set": {"how": s.how, "folder": s.folder, "reason": s.reason, "members": s.members,
                    "groups": s.groups, "used": s.used, "prior_mass": s.prior_mass,
                    "prior_mass_se": s.prior_mass_se},
            "span": list(p.span),
        }
    return provenance.record(spec=str(spec.path), spec_sha256=spec.sha256, seed=spec.seed,
                             settings={"agree": spec.agree, "prior_draws": spec.prior_draws,
                                       "max_members": spec.max_members},
                             cases=cases)
