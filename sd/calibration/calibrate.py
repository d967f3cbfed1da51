"""Calibrate a model against documented outcomes.

``calibrate(spec)`` reads as the pipeline: load the spec -> load the model ->
build the objective -> optimise -> uncertainty -> counterfactual explanation
-> :class:`FitResult`. Reporting lives in :mod:`sd.report.calibration`.

The payoff is the sum of squared scaled residuals of :mod:`sd.outcomes.targets`
(Gaussian points: ``-2 log L`` up to a constant; ranges and patterns: zero when
met). Optimisers work in unit coordinates ``u = (x - low) / (high - low)`` so
that a year and a fraction get comparable steps. Every optimiser evaluates
parameter vectors in batches through :meth:`Objective.residuals`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from ..outcomes import targets as outcomes
from ..simulation.batch import simulate_batch
from ..errors import SdInputError, SdRuntimeError, suggest
from .._common import read_toml

METHODS = ("differential_evolution", "least_squares", "powell")

#: Residual given to every target of a run that produced NaN/inf: large enough
#: that no optimiser keeps it, finite so that least_squares can continue.
NAN_PENALTY = 1e3


@dataclass(frozen=True)
class Parameter:
    """An uncertain constant: Vensim name, bounds and initial value."""

    name: str
    low: float
    high: float
    init: float

    def to_unit(self, x):
        return (np.asarray(x, dtype=float) - self.low) / (self.high - self.low)

    def from_unit(self, u):
        return self.low + np.asarray(u, dtype=float) * (self.high - self.low)


@dataclass(frozen=True)
class Spec:
    """A calibration problem as read from a TOML spec (see ``calibration/``)."""

    path: Path
    model: Path
    data: Path
    targets: tuple
    parameters: tuple
    method: str = "differential_evolution"
    seed: int = 0
    starts: int = 4
    popsize: int = 8
    maxiter: int = 20
    max_evals: int = 3000
    polish: bool = True
    fixed: Mapping[str, float] = field(default_factory=dict)
    profile_points: int = 13
    mcmc_steps: int = 0
    mcmc_walkers: int = 0
    profile: str = "optimised"     # [confidence] profile: optimised | conditional
    explain: Mapping = field(default_factory=dict)
    engine: str = "auto"
    sha256: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


# -- spec ----------------------------------------------------------------------
def load_spec(path: str | Path, data: str | Path | None = None) -> Spec:
    """Read a calibration spec (TOML) and the files it names.

    Parameters
    ----------
    path : str or Path
        The spec. Keys: ``model``, ``data`` (outcomes CSV, or a ``.vpd`` with
        ``data_file``), ``parameters`` (a table or a ``.voc`` file), ``seed``,
        ``[optimizer]``, ``[fixed]``, ``[confidence]``, ``[explain]``. Paths
        are relative to the spec.
    data : str or Path, optional
        Replaces the spec's ``data`` (``sd calibrate --data``).

    Raises
    ------
    SdInputError
        Unknown keys, missing files, bad bounds; the message names the spec.
    """
    from . import vensim_files

    path = Path(path)
    raw = read_toml(path, "Calibration spec")
    known = {"model", "data", "data_file", "parameters", "seed", "engine", "optimizer", "fixed",
             "confidence", "explain", "description"}
    for key in raw:
        if key not in known:
            raise SdInputError(f"{path}: unknown key {key!r}." + suggest(key, known)
                               + f" Known keys: {', '.join(sorted(known))}.")
    base = path.parent
    model = _file(base, raw, "model", path)
    options: dict = {}
    if data is not None:
        data_path = Path(data)
        if not data_path.is_file():
            raise SdInputError(f"--data: file not found: {data_path}.")
    else:
        data_path = _file(base, raw, "data", path)
    if data_path.suffix.lower() == ".vpd":
        table = _file(base, raw, "data_file", path)
        targets = vensim_files.read_vpd(data_path, table)
    else:
        targets = outcomes.load(data_path)
    if isinstance(raw.get("parameters"), str):
        voc = _file(base, raw, "parameters", path)
        parameters, options = vensim_files.read_voc(voc)
        hashed = [path, model, data_path, voc]
    else:
        parameters = _parameters(raw.get("parameters"), path)
        hashed = [path, model, data_path]
    opt = {**options, **_table(raw, "optimizer", path)}
    conf, explain = _table(raw, "confidence", path), _table(raw, "explain", path)
    method = str(opt.get("method", "differential_evolution")).lower()
    if method not in METHODS:
        raise SdInputError(f"{path}: [optimizer] method {method!r} is not one of "
                           f"{', '.join(METHODS)}." + suggest(method, METHODS))
    num = _Numbers(path)
    engine = str(raw.get("engine", "auto"))
    if engine not in ("auto", "fast", "pysd"):
        raise SdInputError(f"{path}: engine = {engine!r}; use auto, fast or pysd.")
    return Spec(engine=engine, path=path.resolve(), model=model, data=data_path, targets=targets,
                parameters=parameters, method=method,
                seed=num.int(raw.get("seed", opt.get("seed", 0)), "seed"),
                starts=num.int(opt.get("starts", 4), "[optimizer] starts", 1),
                popsize=num.int(opt.get("popsize", 8), "[optimizer] popsize", 1),
                maxiter=num.int(opt.get("maxiter", 20), "[optimizer] maxiter", 0),
                max_evals=num.int(opt.get("max_evals", 3000), "[optimizer] max_evals", 0),
                polish=bool(opt.get("polish", True)),
                fixed={str(k): num.float(v, f"[fixed] {k!r}")
                       for k, v in _table(raw, "fixed", path).items()},
                profile_points=num.int(conf.get("profile_points", 13),
                                       "[confidence] profile_points", 3),
                mcmc_steps=num.int(conf.get("mcmc_steps", 0), "[confidence] mcmc_steps", 0),
                mcmc_walkers=num.int(conf.get("mcmc_walkers", 0), "[confidence] mcmc_walkers", 0),
                profile=_profile_kind(conf.get("profile"), path),
                explain=explain, sha256={str(p): _sha256(p) for p in hashed})


def _profile_kind(value, path: Path) -> str:
    from .uncertainty import PROFILE_KINDS

    if value is None:
        return PROFILE_KINDS[0]
    if value not in PROFILE_KINDS:
        raise SdInputError(f"{path}: [confidence] profile = {value!r} is not one of "
                           f"{', '.join(map(repr, PROFILE_KINDS))}." + suggest(str(value), PROFILE_KINDS))
    return value


class _Numbers:
    """Convert spec values, naming the spec and key when one is not a number."""

    def __init__(self, spec: Path):
        self.spec = spec

    def int(self, value, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise SdInputError(f"{self.spec}: {key} = {value!r} must be a whole number.")
        if minimum is not None and value < minimum:
            raise SdInputError(f"{self.spec}: {key} = {value} must be at least {minimum}.")
        return int(value)

    def float(self, value, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SdInputError(f"{self.spec}: {key} = {value!r} must be a number.")
        return float(value)


def _file(base: Path, raw: dict, key: str, spec: Path) -> Path:
    if key not in raw:
        raise SdInputError(f"{spec}: missing key {key!r} (a path relative to the spec).")
    target = (base / str(raw[key])).resolve()
    if not target.is_file():
        raise SdInputError(f"{spec}: {key} = {raw[key]!r}: file not found ({target}).")
    return target


def _table(raw: dict, key: str, spec: Path) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SdInputError(f"{spec}: {key!r} must be a table [{key}].")
    return value


def _parameters(table, spec: Path) -> tuple[Parameter, ...]:
    if not table:
        raise SdInputError(f"{spec}: no [parameters] table; give at least one "
                           '"Vensim name" = {low = .., high = .., init = ..}.')
    out = []
    for name, bounds in table.items():
        where = f"{spec}: [parameters] {name!r}"
        if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds):
            raise SdInputError(f"{where}: expected {{low = .., high = .., init = ..}}.")
        extra = set(bounds) - {"low", "high", "init"}
        if extra:
            raise SdInputError(f"{where}: unknown field(s) {', '.join(sorted(extra))}.")
        num = _Numbers(spec)
        low = num.float(bounds["low"], f"[parameters] {name!r} low")
        high = num.float(bounds["high"], f"[parameters] {name!r} high")
        init = num.float(bounds.get("init", (low + high) / 2), f"[parameters] {name!r} init")
        out.append(make_parameter(name, low, high, init, where))
    return tuple(out)


def make_parameter(name: str, low: float, high: float, init: float, where: str) -> Parameter:
    """A checked :class:`Parameter`; ``where`` prefixes error messages."""
    if not all(np.isfinite([low, high, init])):
        raise SdInputError(f"{where}: bounds and init must be finite numbers.")
    if not low < high:
        raise SdInputError(f"{where}: low {low:g} must be below high {high:g} (reversed bounds?).")
    if not low <= init <= high:
        raise SdInputError(f"{where}: init {init:g} is outside [{low:g}, {high:g}].")
    return Parameter(" ".join(name.split()), low, high, init)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_spec(spec: Spec, model) -> Spec:
    """Resolve every name of ``spec`` in ``model``; check target times."""
    where = f" (in {spec.path.name})"
    params = tuple(replace(p, name=model.variable(p.name, kinds=("constant",), what="constant",
                                                   where=where).name) for p in spec.parameters)
    fixed = {model.variable(k, kinds=("constant",), what="constant", where=where).name: v
             for k, v in spec.fixed.items()}
    t0, t1 = _time_range(model)
    targets = outcomes.check_against(spec.targets, model, t0, t1)
    from .counterfactuals import check as check_explain

    check_explain(model, spec)      # before the fit, not after minutes of it
    return replace(spec, parameters=params, fixed=fixed, targets=targets)


def _time_range(model) -> tuple[float, float]:
    fresh = model.fresh()
    return float(fresh.components.initial_time()), float(fresh.components.final_time())


# -- objective -----------------------------------------------------------------
class Objective:
    """Residuals of a batch of parameter vectors; remembers the best seen.

    Parameters
    ----------
    model : Model
    spec : Spec
        Checked against ``model`` (:func:`check_spec`).
    progress : callable, optional
        Called with the number of runs of every batch (a progress bar).
    """

    def __init__(self, model, spec: Spec, progress=None):
        self.model, self.spec, self.progress = model, spec, progress
        self.variables = outcomes.variables(spec.targets)
        self.nfev = 0
        self.best_u, self.best_payoff = None, np.inf
        self.failures: list[dict] = []
        self.engines: set[str] = set()

    def to_x(self, U) -> np.ndarray:
        U = np.atleast_2d(np.clip(U, 0.0, 1.0))
        return np.column_stack([p.from_unit(U[:, i]) for i, p in enumerate(self.spec.parameters)])

    def simulate(self, U):
        """Run the unit-coordinate vectors ``U`` (n, p); a BatchResult."""
        X = self.to_x(U)
        rows = [{**self.spec.fixed, **dict(zip(self.spec.names, x))} for x in X]
        batch = simulate_batch(self.model, rows, self.variables, self.spec.engine)
        self.engines.add(batch.engine)
        self.nfev += len(rows)
        if self.progress is not None:
            self.progress(len(rows))
        return batch

    def residuals(self, U) -> np.ndarray:
        """Residual matrix (n, n_targets) of the unit vectors ``U``."""
        U = np.atleast_2d(U)
        batch = self.simulate(U)
        res, _ = outcomes.evaluate(self.spec.targets, batch.times, batch.series)
        for i, why in batch.failed.items():
            # Reported in the FitResult; the penalty keeps optimisers away.
            self.failures.append({"parameters": dict(zip(self.spec.names, self.to_x(U[i])[0])),
                                  "error": why})
            res[i] = NAN_PENALTY
        payoff = (res ** 2).sum(axis=1)
        i = int(np.argmin(payoff))
        if payoff[i] < self.best_payoff and i not in batch.failed:
            self.best_u, self.best_payoff = np.clip(U[i], 0, 1).copy(), float(payoff[i])
        return res

    def payoff(self, U) -> np.ndarray:
        """Sum of squared residuals of every row of ``U``."""
        return (self.residuals(U) ** 2).sum(axis=1)


# -- result ----------------------------------------------------------------------
@dataclass(frozen=True)
class FitResult:
    """Everything a report needs: fit, targets, uncertainty, explanation."""

    spec: Spec
    values: Mapping[str, float]
    payoff: float
    nfev: int
    success: bool
    message: str
    targets: tuple            # of dicts: target, simulated, residual, satisfied
    trajectories: object      # BatchResult of the best fit
    uncertainty: object       # sd.calibration.uncertainty.Uncertainty
    explanation: object       # sd.calibration.counterfactuals.Explanation or None
    failures: tuple = ()
    interrupted: bool = False
    provenance: Mapping = field(default_factory=dict)

    @property
    def n_met(self) -> int:
        return sum(t["satisfied"] for t in self.targets)


def calibrate(spec_path, *, data=None, checkpoint=None, resume=False,
              progress=True) -> FitResult:
    """Fit the spec's parameters to its documented outcomes.

    Parameters
    ----------
    spec_path : str or Path
        Calibration spec (TOML).
    data : str or Path, optional
        Outcomes file replacing the spec's ``data``.
    checkpoint : Path, optional
        JSON file updated atomically as the optimiser progresses.
    resume : bool
        Continue from ``checkpoint`` (skip finished starts, restart from
        the best point).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    FitResult
        ``interrupted`` is True when Ctrl-C stopped the fit; the values are
        then the best seen so far.
    """
    from . import uncertainty as confidence, counterfactuals as explain
    from ..model.model import load as load_model
    from .optimisers import optimise

    spec = load_spec(spec_path, data)                                 # 1. spec and data
    model = load_model(spec.model)                                    # 2. model
    spec = check_spec(spec, model)
    with _progress_bar(progress, spec) as bar:
        objective = Objective(model, spec, progress=bar)              # 3. objective
        run = optimise(objective, spec, checkpoint, resume)           # 4. optimise
        unc = None if run.interrupted else confidence.analyse(objective, run.u)  # 5. intervals
    values = dict(zip(spec.names, objective.to_x(run.u)[0]))
    why = None if run.interrupted else explain.explain(model, spec, values)  # 6. the collapse
    return _result(objective, run, values, unc, why)


def _result(objective: Objective, run, values, unc, why) -> FitResult:
    from .. import provenance

    spec = objective.spec
    best = objective.simulate(run.u[None, :])
    if best.failed:
        raise SdRuntimeError(f"the best fit does not simulate: {best.failed[0]}")
    res, sim = outcomes.evaluate(spec.targets, best.times, best.series)
    ok = outcomes.met(spec.targets, res[0])
    targets = tuple({"target": t, "simulated": float(sim[0, j]), "residual": float(res[0, j]),
                     "satisfied": bool(ok[j])} for j, t in enumerate(spec.targets))
    record = provenance.record(objective.model, sha256=dict(spec.sha256), seed=spec.seed,
                               method=spec.method, spec=str(spec.path), data=str(spec.data),
                               engine=sorted(objective.engines))
    return FitResult(spec=spec, values={k: float(v) for k, v in values.items()},
                     payoff=float((res[0] ** 2).sum()), nfev=objective.nfev,
                     success=run.success and not run.interrupted, message=run.message,
                     targets=targets, trajectories=best, uncertainty=unc, explanation=why,
                     failures=tuple(objective.failures), interrupted=run.interrupted,
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
    p = len(spec.parameters)
    if spec.method == "differential_evolution":
        fit = max(5, spec.popsize * p) * (spec.maxiter + 1)
    else:
        fit = spec.starts * 40 * (p + 1)
    # An optimised profile point re-fits the other p - 1 parameters: a few
    # least-squares iterations, each a batch of about p runs (measured ~24 a point for p = 6).
    per_point = 5 * max(p - 1, 1) if spec.profile == "optimised" else 1
    return int(min(fit, spec.max_evals) + spec.profile_points * p * per_point + 2 * p + 2)


def spec_digest(spec: Spec) -> str:
    """A hash of the spec's files and settings, to match checkpoints."""
    return hashlib.sha256(json.dumps(sorted(spec.sha256.items())).encode()).hexdigest()
