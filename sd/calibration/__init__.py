"""5a CALIBRATION: what the documented outcomes say about a model.

:func:`calibrate` reads a spec and takes one of two approaches:

- ``approach = "set"`` (the default): the set of parameter vectors
  consistent with the documented outcomes, and every question of the spec
  answered as a probability over it (:mod:`.set_valued`) -> :class:`SetResult`;
- ``approach = "point"``: spec -> model and engine -> objective -> optimise
  -> uncertainty -> counterfactual explanation -> :class:`FitResult`, for
  data-rich cases (series with known errors) and synthetic recovery.

Public functions built on a set (:mod:`.over_set`): :func:`accepted_set`
(the accepted set of a calibration, from its result or its output folder)
and :func:`run_over_set` (a scenario run over the accepted set -> a
distribution). Reporting is in :mod:`sd.report.calibration` and
:mod:`sd.report.set_calibration`.
"""
from __future__ import annotations

from pathlib import Path

from .. import provenance
from ..errors import SdRuntimeError
from ..model import load
from ..outcomes import targets as outcomes
from ..simulation import failed_runs, prepare
from . import counterfactuals, uncertainty
from .objective import Objective
from .optimisers import optimise
from .over_set import AcceptedSet, SetDistribution, accepted_set, run_over_set
from .result import FitResult, SetResult
from .spec import Spec, check_spec, load_spec

__all__ = ["calibrate", "FitResult", "SetResult", "Spec", "load_spec", "accepted_set",
           "run_over_set", "AcceptedSet", "SetDistribution"]


def calibrate(spec_path, *, data=None, checkpoint=None, resume=False,
              progress=True) -> FitResult | SetResult:
    """Calibrate the spec's model against its documented outcomes.

    Parameters
    ----------
    spec_path : str or Path
        Calibration spec (TOML).
    data : str or Path, optional
        Outcomes file replacing the spec's ``data``.
    checkpoint : Path, optional
        Folder where finished pieces of work are saved as the job progresses
        (:mod:`.checkpoint`; a point fit keeps ``optimiser.json`` there).
    resume : bool
        Continue from ``checkpoint``, after validating it against the spec,
        data and model.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    SetResult or FitResult
        By the spec's ``approach``. A point fit's ``interrupted`` is True when
        Ctrl-C stopped it (the values are then the best fit seen so far); a
        set-valued calibration interrupted raises ``KeyboardInterrupt`` with
        its checkpoint saved.
    """
    spec = load_spec(spec_path, data)                                     # 1. spec and data
    sim = prepare(load(spec.model), spec.engine)                          # 2. model, engine
    spec = check_spec(spec, sim.model)
    if spec.approach == "set":
        from .set_valued import calibrate_set

        with _progress_bar(progress, spec) as bar:
            return calibrate_set(spec, sim, checkpoint, resume, bar)
    if checkpoint is not None:
        checkpoint = Path(checkpoint) / "optimiser.json"
    with _progress_bar(progress, spec) as bar:
        objective = Objective(sim, spec, progress=bar)                    # 3. objective
        run = optimise(objective, spec, checkpoint, resume)               # 4. optimise
        values = dict(zip(spec.names, objective.to_x(run.u)[0]))
        unc, why, stage = _explore(objective, run, sim, spec, values)     # 5. and 6.
    return _result(objective, run, values, unc, why, stage)


def _explore(objective, run, sim, spec, values):
    """Intervals (5) and the counterfactual explanation (6) of the fit.

    Ctrl-C here (most of a calibration's wall time) keeps the fit: the result
    says which stage was cut short, and ``--resume`` finishes it.
    """
    if run.interrupted:
        return None, None, "optimise"
    unc = why = None
    stage = "uncertainty"
    try:
        unc = uncertainty.analyse(objective, run.u)
        stage = "explain"
        why = counterfactuals.explain(sim, spec, values)
    except KeyboardInterrupt:
        return unc, why, stage
    return unc, why, ""


def _result(objective: Objective, run, values, unc, why, stage: str) -> FitResult:
    spec = objective.spec
    best = objective.simulate(run.u[None, :])
    failed = failed_runs(best)
    if failed:
        raise SdRuntimeError(f"the best fit does not simulate: {next(iter(failed.values()))}")
    res, sim = outcomes.evaluate(spec.targets, best)
    ok = outcomes.met(spec.targets, res[0])
    targets = tuple({"target": t, "simulated": float(sim[0, j]), "residual": float(res[0, j]),
                     "satisfied": bool(ok[j])} for j, t in enumerate(spec.targets))
    record = provenance.record(objective.simulator.model, sha256=dict(spec.sha256),
                               seed=spec.seed, method=spec.method, spec=str(spec.path),
                               data=str(spec.data), resumed=run.resumed,
                               **objective.simulator.provenance())
    interrupted = run.interrupted or bool(stage)
    message = run.message if not stage or stage == "optimise" else \
        f"{run.message}; interrupted (Ctrl-C) during the {stage} stage"
    return FitResult(spec=spec, values={k: float(v) for k, v in values.items()},
                     payoff=float((res[0] ** 2).sum()), nfev=objective.nfev,
                     success=run.success and not interrupted, message=message,
                     targets=targets, trajectories=best, uncertainty=unc, explanation=why,
                     failures=tuple(objective.failures), interrupted=interrupted, stage=stage,
                     provenance=record)


class _progress_bar:
    """A tqdm bar on stderr counting simulations (no-op when disabled)."""

    def __init__(self, enabled: bool, spec: Spec):
        self.enabled, self.spec, self.bar = enabled, spec, None

    def __enter__(self):
        if not self.enabled:
            return None
        from tqdm import tqdm

        self.bar = tqdm(total=_budget(self.spec), unit="run", desc="calibrate",
                        leave=False, dynamic_ncols=True)
        return self.bar.update

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _budget(spec: Spec) -> int:
    """Rough number of runs, for the progress bar only."""
    if spec.approach == "set":
        o = spec.set
        return o.draws + o.max_starts * o.replicas * (o.steps + o.steps // o.thin * 10)
    p = len(spec.parameters)
    if spec.method == "differential_evolution":
        fit = max(5, spec.popsize * p) * (spec.maxiter + 1)
    else:
        fit = spec.starts * 40 * (p + 1)
    # An optimised profile point re-fits the other p - 1 parameters: a few
    # least-squares iterations, each a batch of about p runs (measured ~24 a point for p = 6).
    per_point = 5 * max(p - 1, 1) if spec.profile == "optimised" else 1
    return int(min(fit, spec.max_evals) + spec.profile_points * p * per_point + 2 * p + 2)
