"""What an experiment runs in each case, checked against the case's model before any run.

For every case: its calibration spec (read by :func:`sd.calibration.spec.load_spec`),
its model, the scenarios (policies, with variations applied) and, for each,
the metrics it needs: the table's outputs at the table's years, the
statements' variables at their years, the mechanism variables. Every name
is checked here, with the spec's line and the nearest valid name: a misspelt
policy, variable, constant or year never surfaces half-way through a run.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from ..calibration.spec import Spec as CalibrationSpec
from ..calibration.spec import load_spec as load_calibration
from ..errors import SdInputError, suggest
from ..outcomes.metrics import Metric
from ..scenarios import Scenario, beside, load_toml, validate
from .spec import Case, ExperimentSpec, Side, Statement


@dataclass(frozen=True)
class CasePlan:
    """The runs of one case.

    Attributes
    ----------
    case : Case
    calibration : sd.calibration.spec.Spec
    model : sd.model.Model
    cells : mapping
        Cell key (``policy`` or ``policy+variation``) -> validated Scenario.
    metrics : mapping
        Cell key -> the metrics computed on it.
    statements : tuple of str
        Ids of the statements asked of this case.
    scenario_files : tuple of Path
    span : (float, float)
        The run's INITIAL TIME and FINAL TIME.
    """

    case: Case
    calibration: CalibrationSpec
    model: object
    cells: Mapping[str, Scenario]
    metrics: Mapping[str, tuple[Metric, ...]]
    statements: tuple[str, ...]
    scenario_files: tuple[Path, ...]
    span: tuple[float, float]

    def year(self, year) -> float:
        """A year of a statement or the table: a name of the case's years, or a number."""
        return float(self.case.years[year]) if isinstance(year, str) else float(year)


def cell_key(policy: str, variation: str | None = None) -> str:
    return f"{policy}+{variation}" if variation else policy


def metric_name(variable: str, year: float) -> str:
    return f"{variable} @ {year:g}"


def plan(spec: ExperimentSpec) -> tuple[CasePlan, ...]:
    """Check every case's names against its model; what each case runs."""
    return tuple(_plan_case(spec, case) for case in spec.cases)


def _plan_case(spec: ExperimentSpec, case: Case) -> CasePlan:
    from ..model import load
    from ..model.timing import settings

    calibration = load_calibration(case.calibration)
    if calibration.approach != "set":
        raise SdInputError(f"{case.where} calibration: {case.calibration.name} is a point fit "
                           "(approach = \"point\"); an experiment runs over a behaviour-"
                           "consistent set: use a set-valued calibration spec.")
    model = load(calibration.model)
    files = _scenario_files(case, calibration)
    known = _known_scenarios(files)
    applies = tuple(s.id for s in spec.statements if case.name not in s.not_applicable)
    base = _scenario(spec.baseline, known, files, case, spec.located("baseline"))
    span = _span(settings(model, base.time, base.constants))
    wanted: dict[str, dict[str, Metric]] = {}
    cells: dict[str, tuple] = {}

    def need(side: Side, variable: str, where: str) -> None:
        key = cell_key(side.policy, side.variation)
        var = model.variable(variable, where=f" ({where})").name
        year = _in_span(side.year, case, span, where)
        wanted.setdefault(key, {})[metric_name(var, year)] = Metric(
            metric_name(var, year), var, "at", time=year)
        cells.setdefault(key, (side.policy, side.variation, where))

    for policy in (spec.baseline, *spec.policies):
        for out in spec.outputs:
            for name in spec.table_years:
                need(Side(policy, None, name), out.variable,
                     spec.located("baseline" if policy == spec.baseline else "policies"))
    for st in spec.statements:
        if st.id not in applies:
            continue
        for cl in st.clauses:
            need(cl.left, cl.variable, cl.where)
            need(cl.right, cl.variable, cl.where)
        for var in case.mechanism.get(st.id, st.mechanism):
            for side in sides(st):
                need(side, var, f"{st.where} mechanism")
    scenarios = {}
    for key, (policy, variation, where) in cells.items():
        sc = _scenario(policy, known, files, case, where)
        if variation:
            v = spec.variations[variation]
            sc = sc.merged(Scenario(key, v.constants, description=v.description,
                                    source=f"{spec.path.name} [variations.{variation}]"))
        scenarios[key] = validate(replace(sc, name=key), model)
    return CasePlan(case, calibration, model, scenarios,
                    {k: tuple(v.values()) for k, v in wanted.items()}, applies,
                    tuple(files), span)


def _scenario_files(case: Case, calibration: CalibrationSpec) -> list[Path]:
    if case.scenarios is not None:
        return [case.scenarios]
    own, _ = beside(Path(calibration.model))
    if not own:
        raise SdInputError(f"{case.where}: no scenario file named after "
                           f"{Path(calibration.model).name} beside it; name one with "
                           "scenarios = \"FILE.toml\".")
    return own


def _known_scenarios(files: list[Path]) -> dict[str, Scenario]:
    known: dict[str, Scenario] = {}
    for f in files:
        for name, sc in load_toml(f).items():
            known.setdefault(name, sc)
    return known


def _scenario(name: str, known: dict, files, case: Case, where: str) -> Scenario:
    if name in known:
        return known[name]
    if name == "baseline":
        return Scenario(name="baseline", description="the model as written")
    raise SdInputError(f"{where}: case {case.name!r} has no scenario {name!r} in "
                       f"{', '.join(str(f) for f in files)}." + suggest(name, known)
                       + (f" Its scenarios: {', '.join(known)}." if len(known) <= 30 else ""))


def _span(s) -> tuple[float, float]:
    return float(s.initial_time), float(s.final_time)


def _in_span(year, case: Case, span, where: str) -> float:
    t = float(case.years[year]) if isinstance(year, str) else float(year)
    if not span[0] <= t <= span[1]:
        label = f"{year} = {t:g}" if isinstance(year, str) else f"{t:g}"
        raise SdInputError(f"{where}: year {label} of case {case.name!r} is outside its run "
                           f"({span[0]:g} to {span[1]:g}).")
    return t


def sides(st: Statement) -> list[Side]:
    """The distinct (policy, variation, year) sides of a statement's clauses, in order."""
    out: list[Side] = []
    for cl in st.clauses:
        for side in (cl.left, cl.right):
            if side not in out:
                out.append(side)
    return out
