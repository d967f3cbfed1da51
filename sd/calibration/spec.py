"""A calibration problem as read from a TOML spec, checked against its model.

Spec keys (paths relative to the spec): ``model``, ``data`` (outcomes CSV, or
a ``.vpd`` with ``data_file``), ``approach``, ``seed``, ``engine``,
``description``, and the tables:

- set-valued calibration (``approach = "set"``, the default without
  ``[parameters]``): ``[uncertain]`` (:mod:`.inputs`), ``[set]``
  (:class:`SetOptions`), ``[variants]`` (structural hypotheses), ``[explain]``
  (:mod:`.questions`), ``[fixed]``;
- point fitting (``approach = "point"``, the default with ``[parameters]``):
  ``parameters`` (a table or a ``.voc`` file), ``[optimizer]``,
  ``[confidence]``, ``[fixed]``, ``[explain]``.

Every key of every table is checked when the spec loads: a misspelt option is
refused with the nearest valid key, never silently replaced by its default.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from .._common import (file_sha256, flag, input_file, known_keys, number, read_toml, run_limit,
                       seed, table, whole)
from ..errors import SdInputError, suggest
from ..outcomes import targets as outcomes
from ..simulation import ENGINES
from . import counterfactuals, vensim_files
from .acceptance import POINT_RULES

METHODS = ("differential_evolution", "least_squares", "powell")

#: ``approach``: the set of parameter vectors consistent with the documented
#: outcomes, or one point fitted by an optimiser (data-rich cases).
APPROACHES = ("set", "point")

#: Values of ``[confidence] profile``; the first is the default (see
#: :mod:`sd.calibration.uncertainty`).
PROFILE_KINDS = ("optimised", "conditional")

_TOP = ("model", "data", "data_file", "parameters", "seed", "engine", "optimizer", "fixed",
        "confidence", "explain", "description", "approach", "uncertain", "set", "variants")
UNCERTAIN_KEYS = ("exclude", "ranges")
VARIANT_KEYS = ("scenarios", "names")
OPTIMIZER_KEYS = ("method", "seed", "starts", "popsize", "maxiter", "max_evals", "polish")
CONFIDENCE_KEYS = ("profile", "profile_points", "mcmc_steps", "mcmc_walkers")


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
class SetOptions:
    """The ``[set]`` table: how the behaviour-consistent set is found and read.

    Attributes
    ----------
    draws : int
        Prior draws of the screening (every uncertain input, uniform).
    chunk : int
        Runs per batch (and per checkpoint) of the screening.
    point_sigmas : float
        A point outcome is met within this many standard deviations.
    points : str
        How point outcomes combine: ``"auto"``, ``"each"`` or ``"family"``
        (:mod:`sd.calibration.acceptance`).
    interval_tolerance : float
        A range or pattern outcome is met when it is missed by at most this
        much, in units of its tolerance (its ``sigma``, else its half-width);
        0 = a hard constraint.
    max_starts : int
        Screening members that start Markov chains (at most).
    replicas : int
        Chains from each start (independent proposals).
    steps : int
        Steps of every chain.
    thin : int
        Conclusions are computed on the chain states every ``thin`` steps.
    informative_share : float
        A target met by at least this share of prior draws is flagged
        uninformative.
    identified_width : float
        An input is identified when its 90 % accepted interval spans at most
        this fraction of its prior range.
    agree : float
        A conclusion is decided when at least this share of sets agree.
    level_draws : int
        Particles per level of the sequential (subset-simulation) search, used
        for structural variants and when the screening finds too few sets.
    min_starts : int
        Fewer screening members than this: the set is found by the
        sequential search instead.
    check_members : int
        Members (spread over the chains) rerun with half the TIME STEP, and
        on which mediator questions are answered (their runs go one by one).
    """

    draws: int = 100_000
    chunk: int = 12_500
    point_sigmas: float = 2.0
    points: str = "auto"
    interval_tolerance: float = 0.0
    max_starts: int = 100
    replicas: int = 8
    steps: int = 30
    thin: int = 10
    informative_share: float = 0.95
    identified_width: float = 0.25
    agree: float = 0.9
    level_draws: int = 1000
    min_starts: int = 10
    check_members: int = 150


SET_KEYS = tuple(SetOptions.__dataclass_fields__)


@dataclass(frozen=True)
class Spec:
    """A calibration problem (see the module docstring for the TOML)."""

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
    approach: str = "point"
    uncertain: Mapping = field(default_factory=dict)
    set: SetOptions = field(default_factory=SetOptions)
    variants: Mapping = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


def load_spec(path: str | Path, data: str | Path | None = None) -> Spec:
    """Read a calibration spec (TOML) and the files it names.

    Parameters
    ----------
    path : str or Path
    data : str or Path, optional
        Replaces the spec's ``data`` (``sd calibrate --data``).

    Raises
    ------
    SdInputError
        Unknown keys (with the nearest valid one), missing files, bad bounds
        or numbers; the message names the spec.
    """
    path = Path(path)
    raw = read_toml(path, "Calibration spec")
    known_keys(raw, _TOP, str(path))
    model = _file(path.parent, raw, "model", path)
    data_path = _data_path(path, raw, data)
    if data_path.suffix.lower() == ".vpd":
        targets = vensim_files.read_vpd(data_path, _file(path.parent, raw, "data_file", path))
    else:
        targets = outcomes.load(data_path)
    approach = _choice(raw.get("approach", "point" if "parameters" in raw else "set"),
                       APPROACHES, f"{path}: approach")
    if approach == "set":
        if "parameters" in raw:
            raise SdInputError(f"{path}: [parameters] belongs to point fitting (approach = "
                               '"point"); a set-valued calibration samples every constant with '
                               "a range in the .mdl: narrow ranges in [uncertain.ranges].")
        parameters, options, hashed = (), {}, [path, model, data_path]
    else:
        parameters, options, hashed = _parameters_of(path, raw, model, data_path)
    hashed += _side_files(path, raw)
    opt = {**options, **table(raw, "optimizer", str(path), OPTIMIZER_KEYS)}
    conf = table(raw, "confidence", str(path), CONFIDENCE_KEYS)
    return Spec(
        path=path.resolve(), model=model, data=data_path, targets=targets, parameters=parameters,
        engine=_choice(raw.get("engine", "auto"), ENGINES, f"{path}: engine"),
        method=_choice(str(opt.get("method", METHODS[0])).lower(), METHODS,
                       f"{path}: [optimizer] method"),
        seed=seed(raw.get("seed", opt.get("seed", 0)), f"{path}: seed"),
        starts=whole(opt.get("starts", 4), f"{path}: [optimizer] starts", 1, 10**4),
        popsize=whole(opt.get("popsize", 8), f"{path}: [optimizer] popsize", 1, 10**4),
        maxiter=whole(opt.get("maxiter", 20), f"{path}: [optimizer] maxiter", 0, run_limit()),
        max_evals=whole(opt.get("max_evals", 3000), f"{path}: [optimizer] max_evals", 0,
                        run_limit()),
        polish=flag(opt.get("polish", True), f"{path}: [optimizer] polish"),
        fixed={str(k): _float(v, f"{path}: [fixed] {k!r}")
               for k, v in table(raw, "fixed", str(path)).items()},
        profile_points=whole(conf.get("profile_points", 13),
                             f"{path}: [confidence] profile_points", 3, 10**4),
        **_mcmc(conf, path),
        profile=_choice(conf.get("profile", PROFILE_KINDS[0]), PROFILE_KINDS,
                        f"{path}: [confidence] profile"),
        explain=table(raw, "explain", str(path)),
        sha256={str(p): file_sha256(p) for p in hashed},
        approach=approach,
        uncertain=table(raw, "uncertain", str(path), UNCERTAIN_KEYS),
        set=_set_options(table(raw, "set", str(path), SET_KEYS), path),
        variants=table(raw, "variants", str(path), VARIANT_KEYS))


def _set_options(raw: dict, path: Path) -> SetOptions:
    """The ``[set]`` table, every value checked (whole numbers, shares in (0, 1))."""
    default = SetOptions()
    out = {}
    for key in SET_KEYS:
        where = f"{path}: [set] {key}"
        value = raw.get(key, getattr(default, key))
        if isinstance(getattr(default, key), str):
            out[key] = _choice(value, POINT_RULES, where)
        elif isinstance(getattr(default, key), int):
            out[key] = whole(value, where, 1, run_limit())  # counts of runs, draws, steps
        else:
            out[key] = _float(value, where)
    for key in ("informative_share", "agree", "identified_width"):
        if not 0 < out[key] <= 1:
            raise SdInputError(f"{path}: [set] {key} = {out[key]:g} must be in (0, 1].")
    if out["point_sigmas"] <= 0 or out["interval_tolerance"] < 0:
        raise SdInputError(f"{path}: [set] point_sigmas must be positive and "
                           "interval_tolerance at least 0.")
    if out["thin"] > out["steps"]:
        raise SdInputError(f"{path}: [set] thin = {out['thin']} is more than steps = "
                           f"{out['steps']}: no chain state would be used.")
    chain_runs = out["max_starts"] * out["replicas"] * out["steps"]
    if chain_runs > run_limit():
        raise SdInputError(f"{path}: [set] max_starts x replicas x steps = {out['max_starts']} x "
                           f"{out['replicas']} x {out['steps']} = {chain_runs} chain runs, beyond "
                           f"the limit of {run_limit()}; use fewer, or raise the limit with the "
                           "environment variable SD_RUN_LIMIT.")
    if out["level_draws"] < 100:
        raise SdInputError(f"{path}: [set] level_draws = {out['level_draws']} must be at "
                           "least 100.")
    return SetOptions(**out)


def _side_files(path: Path, raw: dict) -> list[Path]:
    """Scenario files the spec reads ([explain], [variants]): hashed with the spec."""
    out = []
    for key in ("explain", "variants"):
        sub = raw.get(key)
        if isinstance(sub, dict) and "scenarios" in sub:
            out.append(input_file(path.parent, sub["scenarios"], f"{path}: [{key}] scenarios"))
    return out


def _mcmc(conf: dict, path: Path) -> dict:
    """``mcmc_steps`` and ``mcmc_walkers``, whose product (the runs, and the
    chain held in memory) is bounded by :func:`sd._common.run_limit`."""
    steps = whole(conf.get("mcmc_steps", 0), f"{path}: [confidence] mcmc_steps", 0)
    walkers = whole(conf.get("mcmc_walkers", 0), f"{path}: [confidence] mcmc_walkers", 0)
    if steps * walkers > run_limit():
        raise SdInputError(f"{path}: [confidence] mcmc_steps x mcmc_walkers = {steps} x {walkers} "
                           f"runs, beyond the limit of {run_limit()}; use fewer, or raise the "
                           "limit with the environment variable SD_RUN_LIMIT.")
    return {"mcmc_steps": steps, "mcmc_walkers": walkers}


def _data_path(spec: Path, raw: dict, data) -> Path:
    if data is None:
        return _file(spec.parent, raw, "data", spec)
    return input_file(Path.cwd(), str(data), "--data")


def _parameters_of(spec: Path, raw: dict, model: Path, data: Path):
    """(parameters, optimizer options a .voc implies, files to hash)."""
    if isinstance(raw.get("parameters"), str):
        voc = _file(spec.parent, raw, "parameters", spec)
        rows, options = vensim_files.read_voc(voc)
        return tuple(make_parameter(*row) for row in rows), options, [spec, model, data, voc]
    return _parameters(raw.get("parameters"), spec), {}, [spec, model, data]


def _choice(value, choices, where: str) -> str:
    if value not in choices:
        raise SdInputError(f"{where} = {value!r} is not one of {', '.join(map(repr, choices))}."
                           + suggest(str(value), choices))
    return value


def _float(value, where: str) -> float:
    """A finite number (TOML accepts ``nan`` and ``inf``; neither is a setting)."""
    return number(value, where)


def _file(base: Path, raw: dict, key: str, spec: Path) -> Path:
    if key not in raw:
        raise SdInputError(f"{spec}: missing key {key!r} (a path relative to the spec).")
    return input_file(base, raw[key], f"{spec}: {key}")


def _parameters(entries, spec: Path) -> tuple[Parameter, ...]:
    if not entries:
        raise SdInputError(f"{spec}: no [parameters] table; give at least one "
                           '"Vensim name" = {low = .., high = .., init = ..}.')
    out = []
    for name, bounds in entries.items():
        where = f"{spec}: [parameters] {name!r}"
        if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds):
            raise SdInputError(f"{where}: expected {{low = .., high = .., init = ..}}.")
        known_keys(bounds, ("low", "high", "init"), where)
        low = _float(bounds["low"], f"{where} low")
        high = _float(bounds["high"], f"{where} high")
        init = _float(bounds.get("init", (low + high) / 2), f"{where} init")
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


def check_spec(spec: Spec, model) -> Spec:
    """Resolve every name of ``spec`` in ``model``; check target times and
    ``[explain]`` before the fit, not after minutes of it."""
    where = f" (in {spec.path.name})"
    params = tuple(replace(p, name=model.variable(p.name, kinds=("constant",), what="constant",
                                                   where=where).name) for p in spec.parameters)
    fixed = {model.variable(k, kinds=("constant",), what="constant", where=where).name: v
             for k, v in spec.fixed.items()}
    seen = set()
    for p, given in zip(params, spec.parameters):
        if p.name in seen:
            raise SdInputError(f"{spec.path.name}: the constant {p.name!r} is fitted twice (as "
                               f"{given.name!r} too; Vensim names ignore case, blanks and "
                               "underscores); give it once.")
        seen.add(p.name)
    both = sorted({p.name for p in params} & set(fixed))
    if both:
        raise SdInputError(f"{spec.path.name}: {both[0]!r} is both fitted ([parameters]) and held "
                           "([fixed]); keep it in one of them.")
    t0, t1 = time_range(model)
    targets = outcomes.check_against(spec.targets, model, t0, t1)
    if spec.approach == "point":
        counterfactuals.check(model, spec)
    return replace(spec, parameters=params, fixed=fixed, targets=targets)


def time_range(model) -> tuple[float, float]:
    """INITIAL TIME and FINAL TIME of the model as written."""
    from ..model.timing import settings

    s = settings(model)
    return s.initial_time, s.final_time


def spec_digest(spec: Spec) -> str:
    """A hash of the spec's files (spec, model, data, scenario files), to match
    checkpoints. Paths are not part of it: a moved project resumes."""
    return hashlib.sha256(json.dumps(sorted(spec.sha256.values())).encode()).hexdigest()
