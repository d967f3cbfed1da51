"""Feedback loops and their polarity, read from the equations."""
from __future__ import annotations

from pathlib import Path

import pytest

from sd.model.equations import read_equations
from sd.model.loops import find_loops, link_polarities

DATA = Path(__file__).parent / "data"

_HEADER = "{UTF-8}\n"
_CONTROL = ("FINAL TIME = 10\n\t~\tYear\n\t~\t\t|\nINITIAL TIME = 0\n\t~\tYear\n\t~\t\t|\n"
            "SAVEPER = 1\n\t~\tYear\n\t~\t\t|\nTIME STEP = 1\n\t~\tYear\n\t~\t\t|\n")


def _model(tmp_path, equations: dict[str, str]) -> Path:
    text = _HEADER + "".join(f"{name}=\n\t{eq}\n\t~\t\n\t~\t\t|\n\n" for name, eq in equations.items())
    path = tmp_path / "m.mdl"
    path.write_text(text + _CONTROL)
    return path


def test_teacup_has_one_balancing_loop():
    report = find_loops(read_equations(DATA / "teacup.mdl"))
    assert report.complete
    assert [(l.polarity, l.variables, l.links) for l in report.loops] == [
        ("B", ("Teacup Temperature", "Heat Loss to Room"), ("+", "-"))]


def test_population_has_one_reinforcing_and_one_balancing_loop():
    report = find_loops(read_equations(DATA / "population.mdl"))
    assert [(l.label, l.variables) for l in report.loops] == [
        ("R1", ("Population", "Births")), ("B1", ("Population", "Deaths"))]
    assert report.counts() == {"R": 1, "B": 1, "U": 0}
    # the rising crowding table adds to the deaths' own + link: still +
    assert link_polarities(read_equations(DATA / "population.mdl"))[("population", "deaths")] == 1


@pytest.mark.parametrize("equation, sign", [
    ("x * a", 1), ("a / x", -1), ("a - x", -1), ("-0.5 * x", -1), ("x ^ 2", 1), ("x ^ -1", -1),
    ("x * (1 - x)", 0),                              # logistic: rises then falls
    ("MIN(a, x)", 1), ("MAX(a, -x)", -1),
    ("ZIDZ(a, x)", -1), ("XIDZ(x, a, 1)", 1),
    ("IF THEN ELSE(x > a, 1, 0)", 0),                # the condition is not monotone
    ("IF THEN ELSE(a > 1, x, 0)", 1),
    ("ABS(x)", 0), ("SMOOTH(x, a)", 1), ("EXP(-x)", -1),
    ("WITH LOOKUP(x, ([(0,0)-(2,2)],(0,2),(1,1),(2,0)))", -1),   # falling table
    ("WITH LOOKUP(x, ([(0,0)-(2,2)],(0,0),(1,2),(2,0)))", 0),    # rises then falls
])
def test_link_polarity_from_the_equation(tmp_path, equation, sign):
    path = _model(tmp_path, {"y": equation, "x": "INTEG(y, 1)", "a": "2"})
    assert link_polarities(read_equations(path))[("x", "y")] == sign


def test_initial_values_are_not_feedback(tmp_path):
    path = _model(tmp_path, {"s": "INTEG(f, s0)", "s0": "INITIAL(g)", "g": "s * 2", "f": "a",
                             "a": "1"})
    assert find_loops(read_equations(path)).loops == ()


def test_enumeration_is_bounded_and_says_so(tmp_path):
    # a complete graph on 6 auxiliaries through one stock has many elementary cycles
    names = [f"v{i}" for i in range(6)]
    eqs = {n: " + ".join(m for m in names if m != n) + " + s" for n in names}
    eqs["s"] = "INTEG(v0, 0)"
    report = find_loops(read_equations(_model(tmp_path, eqs)), max_loops=25)
    assert not report.complete and len(report.loops) == 25
    full = find_loops(read_equations(_model(tmp_path, eqs)))
    assert full.complete and len(full.loops) > 25


def test_loops_match_simlin_on_the_shipped_model(juarez_path):
    """Simlin finds the same loops; where it can tell the polarity, it agrees. Simlin lists the
    internal stock of a SMOOTH (named '$...') as a loop variable; sd keeps the SMOOTH as one node."""
    simlin = pytest.importorskip("simlin")
    mine = {frozenset(v.lower().replace(" ", "_") for v in l.variables): l.polarity
            for l in find_loops(read_equations(juarez_path)).loops}
    theirs = {frozenset(v for v in l.variables if not v.startswith("$")): str(l.polarity)
              for l in simlin.load(str(juarez_path)).loops}
    assert set(mine) == set(theirs)
    known = {k: p for k, p in theirs.items() if p in ("R", "B")}
    assert known and all(mine[k] == p for k, p in known.items())
    assert "U" not in mine.values()  # monotone tables and MIN/ZIDZ resolve what simlin leaves open
