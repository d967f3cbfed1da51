"""Scenarios: what a run changes in a model, read from TOML or Vensim ``.cin``.

A :class:`Scenario` holds overrides of constants, lookup tables (x/y points)
and time settings. It is plain data: :func:`validate` checks it against a
:class:`~sd.model.Model` (names, kinds, values) before anything runs.

TOML layout (one table per scenario; every sub-table optional)::

    [subsidy_kept]
    description = "The municipality keeps subsidising propane."
    base = "baseline"                 # start from another scenario
    [subsidy_kept.constants]
    "Subsidy End Year" = 2100
    [subsidy_kept.lookups]
    "Effect of Profit on Adoption" = { x = [-1, 0, 1], y = [0, 1, 2] }
    [subsidy_kept.time]
    final_time = 2005

Vensim ``.cin`` files hold one assignment per line, as Vensim writes them:
``Name = 3.5`` for a constant and ``Name((0,0),(1,2))`` (optionally with a
``[(xmin,ymin)-(xmax,ymax)]`` range first) or ``Name = WITH LOOKUP``-free
table for a lookup; ``:`` comments and blank lines are ignored.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ._common import (TIME_KEYS, atomic_write_text, known_keys, number, read_text, read_toml,
                      time_key)
from .errors import SdInputError, suggest


@dataclass(frozen=True)
class Scenario:
    """Overrides applied to one run of a model.

    Attributes
    ----------
    name : str
        Label used in outputs.
    constants : Mapping[str, float]
        Vensim name -> value.
    lookups : Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]
        Vensim name -> (x points, y points), x increasing.
    time : Mapping[str, float]
        Keys of :data:`TIME_KEYS` -> value.
    description : str
        What the scenario means, for reports.
    source : str
        Where it was read from (file and table), for error messages.
    """

    name: str = "baseline"
    constants: Mapping[str, float] = field(default_factory=dict)
    lookups: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    time: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def __post_init__(self):
        for attr in ("constants", "lookups", "time"):
            object.__setattr__(self, attr, MappingProxyType(dict(getattr(self, attr))))

    def __reduce__(self):
        # Read-only mappings do not pickle; a scenario travels to Dask workers.
        return (Scenario, (self.name, dict(self.constants), dict(self.lookups), dict(self.time),
                           self.description, self.source))

    def merged(self, other: "Scenario") -> "Scenario":
        """A scenario with ``other``'s overrides applied on top of this one."""
        return replace(
            self,
            name=other.name,
            constants={**self.constants, **other.constants},
            lookups={**self.lookups, **other.lookups},
            time={**self.time, **other.time},
            description=other.description or self.description,
            source=other.source or self.source,
        )


# -- reading ---------------------------------------------------------------
def load_toml(path: str | Path) -> dict[str, Scenario]:
    """Read every scenario of a TOML file, resolving ``base`` references."""
    path = Path(path)
    data = read_toml(path, "Scenario file")
    raw = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise SdInputError(
                f"{path}: top-level key {name!r} must be a table [{name}] describing a scenario.")
        raw[name] = table
    return {name: _resolve(name, raw, path, ()) for name in raw}


def _resolve(name: str, raw: dict, path: Path, chain: tuple[str, ...]) -> Scenario:
    if name in chain:
        raise SdInputError(f"{path}: scenario {name!r} has a circular 'base' chain: "
                           + " -> ".join(chain + (name,)) + ".")
    table = raw[name]
    where = f"{path} [{name}]"
    known_keys(table, ("description", "base", "constants", "lookups", "time"), where)
    own = Scenario(
        name=name,
        constants={k: _number(v, f"{where}.constants {k!r}") for k, v in
                   _table(table, "constants", where).items()},
        lookups={k: _points(v, f"{where}.lookups {k!r}") for k, v in
                 _table(table, "lookups", where).items()},
        time=_time(_table(table, "time", where), where),
        description=str(table.get("description", "")),
        source=where,
    )
    base = table.get("base")
    if base is None:
        return own
    if not isinstance(base, str):
        raise SdInputError(f"{where}: base must be the name of another scenario (text), "
                           f"got {base!r}.")
    if base not in raw:
        raise SdInputError(f"{where}: base scenario {base!r} is not in {path.name}."
                           + suggest(base, raw))
    return _resolve(base, raw, path, chain + (name,)).merged(own)


def _table(table: dict, key: str, where: str) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise SdInputError(f"{where}: '{key}' must be a table of \"Vensim name\" = value.")
    return value


def _time(table: dict, where: str) -> dict[str, float]:
    return {time_key(key, f"{where}.time"): _number(value, f"{where}.time {key!r}")
            for key, value in table.items()}


def _number(value, where: str) -> float:
    return number(value, where, strings=True)


def _points(value, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if isinstance(value, dict) and set(value) == {"x", "y"}:
        xs, ys = value["x"], value["y"]
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2
                                                  for p in value):
        xs, ys = [p[0] for p in value], [p[1] for p in value]
    else:
        raise SdInputError(f"{where}: expected {{ x = [...], y = [...] }} or [[x, y], ...].")
    xs = tuple(_number(x, where) for x in xs)
    ys = tuple(_number(y, where) for y in ys)
    if len(xs) != len(ys) or len(xs) < 2:
        raise SdInputError(f"{where}: x and y need the same number of points, at least 2 "
                           f"(got {len(xs)} and {len(ys)}).")
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise SdInputError(f"{where}: x points must increase strictly, got {list(xs)}.")
    return xs, ys


_CIN_CONST = re.compile(r"^\s*(?P<name>[^=()]+?)\s*=\s*(?P<value>[^=]+?)\s*$")
_CIN_LOOKUP = re.compile(r"^\s*(?P<name>[^=()]+?)\s*(?:=\s*)?\(\s*(?P<body>.*)\)\s*$")
_PAIR = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)")


def load_cin(path: str | Path) -> Scenario:
    """Read a Vensim changes file (``.cin``) into a :class:`Scenario`."""
    path = Path(path)
    if not path.is_file():
        raise SdInputError(f"Changes file not found: {path}.")
    constants: dict[str, float] = {}
    lookups: dict[str, tuple] = {}
    time: dict[str, float] = {}
    by_vensim = {v.lower(): k for k, v in TIME_KEYS.items()}
    for lineno, text in _cin_statements(path):
        where = f"{path}:{lineno}"
        lk = _CIN_LOOKUP.match(text)
        if lk and _PAIR.search(lk.group("body")):
            body = re.sub(r"^\s*\[[^\]]*\]\s*,?", "", lk.group("body"))  # drop the range
            pairs = _PAIR.findall(body)
            lookups[lk.group("name").strip()] = _points(pairs, where)  # text: checked there
            continue
        const = _CIN_CONST.match(text)
        if not const:
            raise SdInputError(f"{where}: expected 'Name = number' or 'Name((x,y),...)', got {text!r}.")
        name = " ".join(const.group("name").split())
        value = _number(const.group("value"), f"{where} {name!r}")
        if name.lower() in by_vensim:
            time[by_vensim[name.lower()]] = value
        else:
            constants[name] = value
    return Scenario(name=path.stem, constants=constants, lookups=lookups, time=time,
                    description=f"Vensim changes file {path.name}", source=str(path))


def _cin_statements(path: Path):
    """Yield (line number, statement) with comments dropped and ``\\`` continuations joined."""
    pending, start = "", 0
    # Vensim writes .cin files in UTF-8 or, in older versions, Latin-1: both are read.
    text = read_text(path, "Changes file", latin1=True)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(":", 1)[0] if raw.lstrip().startswith(":") else raw
        line = line.strip()
        if not line:
            continue
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def write_cin(path: str | Path, constants: Mapping[str, float], header: str = "") -> None:
    """Write constants as a Vensim changes file, atomically."""
    lines = [f":{line}" for line in header.splitlines()] if header else []
    lines += [f"{name} = {value:.10g}" for name, value in constants.items()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def from_assignments(items: list[str]) -> Scenario:
    """Build a scenario from ``--set NAME=VALUE`` strings."""
    constants = {}
    for item in items:
        if "=" not in item:
            raise SdInputError(f"--set {item!r}: expected NAME=VALUE, e.g. --set \"Subsidy End Year=1993\".")
        name, value = item.split("=", 1)
        name = " ".join(name.split())
        constants[name] = _number(value.strip(), f"--set {name!r}")
    return Scenario(name="set", constants=constants, source="--set")


# -- checking against a model ------------------------------------------------
def validate(scenario: Scenario, model) -> Scenario:
    """Return ``scenario`` with names canonicalised to ``model``'s Vensim names.

    Raise :class:`SdInputError` naming the scenario's source and suggesting
    names when a constant or lookup does not exist or is of the wrong kind.
    """
    where = f" (in {scenario.source})" if scenario.source else ""
    constants = {}
    for name, value in scenario.constants.items():
        var = _lookup(model, name, ("constant", "control"), "constant", where)
        value = _finite(value, f"{var.name!r}{where}")
        if var.kind == "control":
            key = {v: k for k, v in TIME_KEYS.items()}.get(var.name)
            if key is None:
                raise SdInputError(f"{var.name!r}{where} cannot be set.")
            scenario = replace(scenario, time={**scenario.time, key: value})
            continue
        constants[var.name] = value
    lookups = {}
    for name, points in scenario.lookups.items():
        var = _lookup(model, name, ("lookup",), "lookup table", where)
        lookups[var.name] = points
    # the one check of time settings, for every engine (sd.model.timing)
    from .model.timing import settings as time_settings
    time_settings(model, scenario.time, constants, where)
    return replace(scenario, constants=constants, lookups=lookups)


def _finite(value, where: str) -> float:
    """A scenario value as a finite float, however the scenario was made (a
    Python caller's ``Scenario`` or a spec table bypass the file readers)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise SdInputError(f"{where}: expected a number, got {value!r}.") from None
    if isinstance(value, (bool, str)) or not math.isfinite(result):
        raise SdInputError(f"{where}: expected a finite number, got {value!r}.")
    return result


def _lookup(model, name, kinds, what, where):
    return model.variable(name, kinds=kinds, what=what, where=where)


def resolve(spec: str | None, model_path: Path, search: list[Path] | None = None) -> Scenario:
    """Turn ``--scenario`` into a Scenario: a ``.cin``/``.toml`` path or a name.

    A bare name is looked up in the ``*scenarios*.toml`` files beside the
    model (or in ``search``), the model's own files first (:func:`beside`):
    several models in one folder each have their own file, and the same name
    (``baseline``, a policy cell) means something different in each.
    """
    if spec is None:
        return Scenario(name="baseline")
    name, at, file_part = spec.partition("@")
    if at:
        return _named(name, [Path(file_part)], model_path)
    candidate = Path(spec)
    if candidate.suffix.lower() == ".cin":
        return load_cin(candidate)
    if candidate.suffix.lower() == ".toml":
        table = load_toml(candidate)
        if len(table) != 1:
            raise SdInputError(f"{candidate} holds {len(table)} scenarios ({', '.join(table)}); "
                               f"pick one with --scenario NAME@{candidate}.")
        return next(iter(table.values()))
    if search is not None:
        return _named(spec, search, model_path)
    own, other = beside(model_path)
    return _named(spec, own + other, model_path, own=len(own))


def beside(model_path: Path) -> tuple[list[Path], list[Path]]:
    """The ``*scenarios*.toml`` files beside a model: (its own, the others).

    A file is the model's own when what precedes ``scenarios`` in its stem is
    the start of the model's stem (``leon_tanneries_scenarios.toml`` and
    ``leon_scenarios.toml`` for ``leon_tanneries.mdl``; ``scenarios.toml``
    for any model), the most specific first; the others in name order.
    """
    model = model_path.stem.lower()
    own, other = [], []
    for f in sorted(model_path.parent.glob("*scenarios*.toml")):
        stem = f.stem.lower()
        prefix = stem[:stem.index("scenarios")].rstrip("_-. ")
        (own if model.startswith(prefix) else other).append((-len(prefix), f))
    return [f for _, f in sorted(own)], [f for _, f in other]


def _named(name: str, files: list[Path], model_path: Path, own: int | None = None) -> Scenario:
    """Scenario ``name`` from the first of ``files`` that defines it.

    With ``own`` (the first ``own`` files are the model's own): a name found
    only in other models' files, with different definitions, is ambiguous.
    """
    known: dict[str, Scenario] = {}
    found: dict[str, list[tuple[Path, Scenario]]] = {}
    for f in files:
        for key, sc in load_toml(f).items():
            known.setdefault(key, sc)
            if key == name:
                found.setdefault(name, []).append((f, sc))
    if name in known:
        hits = found[name]
        if own is not None and files.index(hits[0][0]) >= own and len(
                {(tuple(sorted(s.constants.items())), tuple(sorted(s.time.items())),
                  tuple(sorted(s.lookups))) for _, s in hits}) > 1:
            raise SdInputError(
                f"Scenario {name!r} is defined differently in {', '.join(str(f) for f, _ in hits)},"
                f" none of them named after {model_path.name}; pick one with "
                f"{name}@{hits[0][0]} (or name the model's own file <model>_scenarios.toml).")
        return known[name]
    places = ", ".join(str(f) for f in files) or f"no *scenarios*.toml beside {model_path}"
    raise SdInputError(f"Unknown scenario {name!r} (looked in {places})."
                       + (suggest(name, known) or (f" Known: {', '.join(known)}." if known else "")))
