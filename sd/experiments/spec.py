"""An experiment over calibrated sets, as read from its TOML spec.

``sd experiment SPEC`` runs policies (named scenarios of each case's model)
over every member of each case's behaviour-consistent set, tabulates their
outputs as distributions, and answers testable statements as shares of the
set. The spec (paths relative to it)::

    description = "..."
    seed = 2016            # sub-sampling of members and prior draws
    agree = 0.9            # a statement is decided when this share of the set agrees
    prior_draws = 1000     # the statements also over prior draws (0: not)
    max_members = 0        # at most this many members per case (whole chains; 0: all)
    baseline = "baseline"  # the scenario every policy is compared with in the table
    policies = ["command_and_control", "incentives_only"]
    table_years = ["judge", "last"]            # names of years every case defines

    [outputs."Clean Share"]                    # the table's outputs
    better = "higher"                          # higher | lower
    margin = 0.01                              # beats the baseline by more than this
    [outputs.Workshops]
    better = "higher"
    relative_margin = 0.01                     # ... by more than this share of it

    [variations.concentrated]                  # constants applied on top of a policy
    description = "..."
    constants = {"Number of Clusters" = 3}

    [cases.leon_tanneries]
    calibration = "leon_tanneries.toml"        # its set-valued calibration spec
    scenarios = "../models/leon_scenarios.toml"   # optional: default beside the model
    label = "Leon tanneries"
    years = {judge = 2014, last = 2025}
    mechanism = {punishment_fails = ["Forbearance"]}   # optional, per statement

    [[statements]]
    id = "punishment_fails"
    claim = "Punishment alone fails against a resistant cluster"
    source = "S16, Table 1"
    variable = "Clean Share"
    policy = "command_and_control"             # [variation = ...]
    against = "no_policy"                      # [against_variation = ...]
    year = "judge"                             # [against_year = ...]; a name or a number
    below = 0.05           # holds when (policy - against) < 0.05; or above = ...
    # or several conditions that must all hold: [[statements.clauses]] with the same keys
    mechanism = ["Enforcement Intensity"]      # variables reported beside the verdict
    not_applicable = {juarez = "why the statement cannot be asked of this model"}

Every key is checked when the spec loads (a misspelt key, case, year or
variation name is refused with its line and the nearest valid name); names
that need the models (scenarios, variables, constants, years within the run)
are checked by :func:`sd.experiments.plan.plan` before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .._common import (TomlLines, distinct_names, file_sha256, input_file, number, read_text,
                      read_toml, seed, whole)
from ..errors import SdInputError, suggest

TOP = ("description", "seed", "agree", "prior_draws", "max_members", "baseline", "policies",
       "table_years", "outputs", "variations", "cases", "statements")
OUTPUT_KEYS = ("better", "margin", "relative_margin")
VARIATION_KEYS = ("description", "constants")
CASE_KEYS = ("calibration", "scenarios", "label", "years", "mechanism")
CLAUSE_KEYS = ("variable", "policy", "variation", "year", "against", "against_variation",
               "against_year", "above", "below")
STATEMENT_KEYS = ("id", "claim", "source", "clauses", "mechanism", "not_applicable",
                  "note") + CLAUSE_KEYS
BETTER = ("higher", "lower")


@dataclass(frozen=True)
class Output:
    """An output of the table and the direction in which a policy beats the baseline."""

    variable: str
    better: str = "higher"
    margin: float = 0.0
    relative: bool = False

    def beats(self, value, base):
        """Per member: ``value`` better than ``base`` by more than the margin."""
        gain = (value - base) if self.better == "higher" else (base - value)
        return gain > (self.margin * abs(base) if self.relative else self.margin)

    def describe(self) -> str:
        margin = f"{self.margin:.0%} of the baseline" if self.relative else f"{self.margin:g}"
        return f"{self.better} is better; beats the baseline by more than {margin}"


@dataclass(frozen=True)
class Variation:
    """Constants applied on top of a policy (a structural counterfactual)."""

    name: str
    constants: Mapping[str, float]
    description: str = ""


@dataclass(frozen=True)
class Case:
    """One case: its calibration, scenario file and named years."""

    name: str
    calibration: Path
    years: Mapping[str, float]
    label: str = ""
    scenarios: Path | None = None
    mechanism: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a policy (and variation) at a year (a name or a number)."""

    policy: str
    variation: str | None
    year: str | float

    def describe(self) -> str:
        year = self.year if isinstance(self.year, str) else f"{self.year:g}"
        return f"{self.policy}{'+' + self.variation if self.variation else ''} at {year}"


@dataclass(frozen=True)
class Clause:
    """``variable`` under ``left`` minus under ``right``, above or below ``bound``."""

    variable: str
    left: Side
    right: Side
    bound: float
    above: bool
    where: str = ""

    def holds(self, left, right):
        d = left - right
        return d > self.bound if self.above else d < self.bound

    def difference(self) -> str:
        return f"{self.variable}: {self.left.describe()} minus {self.right.describe()}"

    def describe(self) -> str:
        return f"{self.difference()} {'above' if self.above else 'below'} {self.bound:g}"


@dataclass(frozen=True)
class Statement:
    """A testable statement: every clause holds (per member of a set)."""

    id: str
    claim: str
    clauses: tuple[Clause, ...]
    source: str = ""
    mechanism: tuple[str, ...] = ()
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    where: str = ""


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment (see the module docstring for the TOML)."""

    path: Path
    cases: tuple[Case, ...]
    policies: tuple[str, ...]
    outputs: tuple[Output, ...]
    table_years: tuple[str, ...]
    statements: tuple[Statement, ...] = ()
    variations: Mapping[str, Variation] = field(default_factory=dict)
    baseline: str = "baseline"
    description: str = ""
    seed: int = 0
    agree: float = 0.9
    prior_draws: int = 1000
    max_members: int = 0
    sha256: str = ""
    lines: Mapping[str, str] = field(default_factory=dict)

    def case(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)

    def located(self, key: str) -> str:
        """``spec.toml:12 policies``: where a top-level key is, for messages."""
        return self.lines.get(key, f"{self.path.name} {key}")


#: The file of each case's members in the output folder.
MEMBERS_FILE = "members-{}.csv"


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and check an experiment spec (without its models: see :mod:`.plan`).

    Raises
    ------
    SdInputError
        A missing file, an unknown key, case, year or variation name (with its
        line and the nearest valid name), a bad number.
    """
    path = Path(path)
    raw = read_toml(path, "Experiment spec")
    lines = TomlLines(path, read_text(path, "Experiment spec"))
    _keys(raw, TOP, lines, ())
    for key in ("cases", "policies", "outputs", "table_years"):
        if key not in raw:
            raise SdInputError(f"{lines.where()}: missing {key!r} (see 'sd experiment --help' "
                               "and calibration/policy_matrix.toml for an example).")
    variations = _variations(raw.get("variations", {}), lines)
    cases = _cases(raw["cases"], path, lines)
    # two case names one file name (members-<case>.csv) would share: refused now, before
    # any calibration runs, not when the report is written
    distinct_names([c.name for c in cases], MEMBERS_FILE, f"{path.name} [cases]")
    table_years = _names(raw["table_years"], lines, (), "table_years")
    for c in cases:
        for y in table_years:
            _year_name(y, c, lines.where((), "table_years"))
    statements = tuple(_statement(s, i, cases, variations, lines)
                       for i, s in enumerate(_array(raw.get("statements", []), lines)))
    ids = [s.id for s in statements]
    for i, s in enumerate(statements):
        if s.id in ids[:i]:
            raise SdInputError(f"{s.where}: id {s.id!r} is used twice; ids name the statements "
                               "in the report.")
    for c in cases:
        for ident in c.mechanism:
            if ident not in ids:
                raise SdInputError(f"{lines.where(('cases', c.name), 'mechanism')}: no statement "
                                   f"{ident!r}." + suggest(ident, ids))
    agree = number(raw.get("agree", 0.9), lines.where((), "agree"))
    if not 0.5 < agree <= 1:
        raise SdInputError(f"{lines.where((), 'agree')}: {agree:g} must be above 0.5 and at "
                           "most 1 (the share of the set that must agree).")
    return ExperimentSpec(
        path=path.resolve(), cases=cases,
        policies=_names(raw["policies"], lines, (), "policies"),
        outputs=_outputs(raw["outputs"], lines), table_years=table_years,
        statements=statements, variations=variations,
        baseline=_text(raw.get("baseline", "baseline"), lines.where((), "baseline")),
        description=_text(raw.get("description", ""), lines.where((), "description")),
        seed=seed(raw.get("seed", 0), lines.where((), "seed")), agree=agree,
        prior_draws=whole(raw.get("prior_draws", 1000), lines.where((), "prior_draws"), 0,
                          10**6),
        max_members=whole(raw.get("max_members", 0), lines.where((), "max_members"), 0),
        sha256=file_sha256(path),
        lines={k: lines.where((), k) for k in ("baseline", "policies", "table_years")})


# -- tables ---------------------------------------------------------------------------
def _keys(raw, allowed, lines: TomlLines, table: tuple, index: int = 0, label=None) -> None:
    for key in raw:
        if key not in allowed:
            raise SdInputError(f"{lines.where(table, key, index, label)}: unknown key {key!r}."
                               + suggest(key, allowed) + f" Known keys: {', '.join(allowed)}.")


def _table(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise SdInputError(f"{where}: expected a table of {what}, got {type(value).__name__}.")
    return value


def _array(value, lines: TomlLines) -> list:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SdInputError(f"{lines.where((), 'statements')}: expected [[statements]] tables.")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise SdInputError(f"{where}: expected text, got {value!r}.")
    return value


def _names(value, lines: TomlLines, table: tuple, key: str) -> tuple[str, ...]:
    where = lines.where(table, key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SdInputError(f"{where}: expected a non-empty list of names, got {value!r}.")
    if len(set(value)) != len(value):
        raise SdInputError(f"{where}: a name is listed twice ({value!r}).")
    return tuple(value)


def _entries(raw, key: str, allowed, lines: TomlLines, what: str, required: bool = True):
    """``(name, table, options)`` of each ``[key.NAME]`` table, its keys checked."""
    raw = _table(raw, lines.where((), key), f"{what}s ([{key}.NAME])")
    if required and not raw:
        raise SdInputError(f"{lines.where((), key)}: name at least one {what}.")
    for name, opts in raw.items():
        table = (key, name)
        opts = _table(opts, lines.where(table), f"settings of the {what} {name!r}")
        _keys(opts, allowed, lines, table)
        yield name, table, opts


def _outputs(raw, lines: TomlLines) -> tuple[Output, ...]:
    out = []
    for name, table, opts in _entries(raw, "outputs", OUTPUT_KEYS, lines, "output"):
        better = opts.get("better", "higher")
        if better not in BETTER:
            raise SdInputError(f"{lines.where(table, 'better')}: {better!r} is not one of "
                               f"{', '.join(BETTER)}." + suggest(str(better), BETTER))
        if "margin" in opts and "relative_margin" in opts:
            raise SdInputError(f"{lines.where(table, 'relative_margin')}: give margin or "
                               "relative_margin, not both.")
        key = "relative_margin" if "relative_margin" in opts else "margin"
        margin = number(opts.get(key, 0.0), lines.where(table, key))
        if margin < 0:
            raise SdInputError(f"{lines.where(table, key)}: {margin:g} must not be negative.")
        out.append(Output(name, better, margin, key == "relative_margin"))
    return tuple(out)


def _variations(raw, lines: TomlLines) -> dict[str, Variation]:
    out = {}
    for name, table, opts in _entries(raw, "variations", VARIATION_KEYS, lines, "variation",
                                      required=False):
        constants = _table(opts.get("constants", {}), lines.where(table, "constants"),
                           "constants (\"Vensim name\" = value)")
        if not constants:
            raise SdInputError(f"{lines.where(table, 'constants')}: a variation sets at least "
                               "one constant.")
        out[name] = Variation(name, {k: number(v, f"{lines.where(table, 'constants')} {k!r}")
                                     for k, v in constants.items()},
                              _text(opts.get("description", ""), lines.where(table)))
    return out


def _cases(raw, path: Path, lines: TomlLines) -> tuple[Case, ...]:
    out = []
    for name, table, opts in _entries(raw, "cases", CASE_KEYS, lines, "case"):
        if "calibration" not in opts:
            raise SdInputError(f"{lines.where(table)}: missing 'calibration' (the case's "
                               "set-valued calibration spec, e.g. \"leon_tanneries.toml\").")
        calibration = _file(path, opts["calibration"], lines.where(table, "calibration"))
        scenarios = (_file(path, opts["scenarios"], lines.where(table, "scenarios"))
                     if "scenarios" in opts else None)
        years = _table(opts.get("years", {}), lines.where(table, "years"),
                       "named years (judge = 2014)")
        mechanism = _table(opts.get("mechanism", {}), lines.where(table, "mechanism"),
                           "statement ids -> variables")
        out.append(Case(
            name, calibration,
            {str(k): number(v, f"{lines.where(table, 'years')} {k!r}") for k, v in years.items()},
            _text(opts.get("label", name), lines.where(table, "label")), scenarios,
            {str(k): _names(v, lines, table, "mechanism") for k, v in mechanism.items()},
            lines.where(table)))
    return tuple(out)


def _file(spec: Path, value, where: str) -> Path:
    return input_file(spec.parent, _text(value, where), where)


# -- statements -------------------------------------------------------------------------
def _statement(raw: dict, i: int, cases, variations, lines: TomlLines) -> Statement:
    table = ("statements",)
    label = f"[[statements]] {i + 1}" + (f" ({raw['id']})" if isinstance(raw.get("id"), str)
                                         else "")
    where = lines.where(table, None, i, label)
    _keys(raw, STATEMENT_KEYS, lines, table, i, label)
    for key in ("id", "claim"):
        if key not in raw:
            raise SdInputError(f"{where}: missing {key!r}.")
    ident = _text(raw["id"], lines.where(table, "id", i, label))
    names = [c.name for c in cases]
    na = _table(raw.get("not_applicable", {}), lines.where(table, "not_applicable", i, label),
                "case -> reason")
    for case, reason in na.items():
        if case not in names:
            raise SdInputError(f"{lines.where(table, 'not_applicable', i, label)}: no case "
                               f"{case!r}." + suggest(case, names) + f" Cases: {', '.join(names)}.")
        if not isinstance(reason, str) or not reason.strip():
            raise SdInputError(f"{lines.where(table, 'not_applicable', i, label)}: say why "
                               f"the statement cannot be asked of {case!r}.")
    comparison = [k for k in CLAUSE_KEYS if k in raw and k != "variable"]
    if "clauses" in raw:
        if comparison:
            raise SdInputError(f"{lines.where(table, comparison[0], i, label)}: with "
                               "[[statements.clauses]] the comparison keys go in the clauses.")
        rows = raw["clauses"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise SdInputError(f"{lines.where(table, 'clauses', i, label)}: expected "
                               "[[statements.clauses]] tables.")
    else:
        rows = [{k: raw[k] for k in CLAUSE_KEYS if k in raw}]
    clauses = []
    for j, row in enumerate(rows):
        here = f"{where}" + (f" clause {j + 1}" if "clauses" in raw else "")
        if "clauses" in raw:
            _keys(row, CLAUSE_KEYS, lines, table, i, f"{label} clause {j + 1}")
        row = {"variable": raw.get("variable"), **row}
        clauses.append(_clause(row, here, variations))
    applies = [c for c in cases if c.name not in na]
    for c in applies:
        for cl in clauses:
            for side in (cl.left, cl.right):
                if isinstance(side.year, str):
                    _year_name(side.year, c, f"{cl.where}")
    mech = raw.get("mechanism", [])
    return Statement(ident, _text(raw["claim"], where), tuple(clauses),
                     _text(raw.get("source", ""), where),
                     _names(mech, lines, table, "mechanism") if mech else (),
                     {str(k): v for k, v in na.items()}, _text(raw.get("note", ""), where), where)


def _clause(row: dict, where: str, variations) -> Clause:
    for key in ("variable", "policy", "against", "year"):
        if row.get(key) is None:
            raise SdInputError(f"{where}: missing {key!r}.")
    bounds = [k for k in ("above", "below") if k in row]
    if len(bounds) != 1:
        raise SdInputError(f"{where}: give exactly one of 'above' or 'below' (the statement "
                           "holds when the policy minus the comparison is above or below it).")
    for key in ("variation", "against_variation"):
        v = row.get(key)
        if v is not None and v not in variations:
            raise SdInputError(f"{where} {key}: no variation {v!r}." + suggest(str(v), variations)
                               + (f" Variations: {', '.join(variations)}." if variations else
                                  " Define it in [variations.NAME]."))
    year = _year(row["year"], f"{where} year")
    return Clause(
        _text(row["variable"], f"{where} variable"),
        Side(_text(row["policy"], f"{where} policy"), row.get("variation"), year),
        Side(_text(row["against"], f"{where} against"), row.get("against_variation"),
             _year(row.get("against_year", row["year"]), f"{where} against_year")),
        number(row[bounds[0]], f"{where} {bounds[0]}"), bounds[0] == "above", where)


def _year(value, where: str):
    if isinstance(value, str):
        return value
    return number(value, where)


def _year_name(name: str, case: Case, where: str) -> None:
    if name not in case.years:
        raise SdInputError(f"{where}: case {case.name!r} has no year named {name!r}."
                           + suggest(name, case.years)
                           + f" Its years ({case.where} years): "
                           + (", ".join(f"{k} = {v:g}" for k, v in case.years.items()) or "none")
                           + ".")
