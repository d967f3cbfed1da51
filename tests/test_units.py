"""Units: Vensim unit syntax, synonyms, and the dimensional analysis of equations."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from sd.model.equations import read_equations
from sd.model.unit_check import check_units
from sd.model.units import DEFAULT_SYNONYMS, Unit, UnitSyntaxError, UnitSystem, model_synonyms

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def units():
    return UnitSystem(DEFAULT_SYNONYMS)


@pytest.mark.parametrize("left, right", [
    ("kilns/Year", "kilns/Years"),                 # Vensim's default synonym group
    ("1/Year", "Year^-1"),                          # a number and an exponent
    ("USD/(firing*kiln)", "USD/firing/kiln"),       # parentheses
    ("Dmnl", "dmnl"), ("Dmnl", "fraction"), ("Dmnl", "1"), ("Dmnl", "Dimensionless"),
    ("People/Month", "Person/Months"),
    ("$/Widget", "Dollars/Widget"),
    ("m^2", "m*m"),
    ("Degrees Fahrenheit/Minute", "degrees  fahrenheit/minute"),  # case and blanks do not matter
])
def test_equal_units(units, left, right):
    assert units.parse(left) == units.parse(right)


@pytest.mark.parametrize("left, right", [
    ("kiln", "kilns"),          # no synonym declared: Vensim compares names literally
    ("kilns/Year", "kilns/Month"),
    ("Dmnl", "percent"),
    ("m^2", "m"),
])
def test_different_units(units, left, right):
    assert units.parse(left) != units.parse(right)


def test_exponents_are_rational_and_printed_like_vensim(units):
    speed = units.parse("m/s^2")
    assert dict(speed.powers) == {"m": Fraction(1), "s": Fraction(-2)}
    assert units.format(speed) == "m/s^-2".replace("^-2", "^2")
    assert units.format(units.parse("USD/(firing*kiln)")) == "USD/(firing*kiln)"
    assert units.format(units.parse("1/Years")) == "1/Year"  # printed by the group's first name
    assert units.format(Unit()) == "Dmnl"
    assert units.parse("m") ** Fraction(1, 2) * units.parse("m") ** Fraction(1, 2) == units.parse("m")


@pytest.mark.parametrize("bad", ["kilns/", "(kilns", "m^x", "", "kilns)"])
def test_malformed_units_are_refused(units, bad):
    with pytest.raises(UnitSyntaxError):
        units.parse(bad)


def test_model_synonyms_come_from_the_settings_block():
    groups = model_synonyms(DATA / "units_errors.mdl")
    assert ("Widget", "Widgets") in groups and ("kiln", "kilns") in groups
    # a model without 22: lines gets the groups Vensim writes into every new model
    assert model_synonyms(ROOT / "models" / "juarez_brick_kilns.mdl") == DEFAULT_SYNONYMS


def test_crafted_model_findings_name_the_variable_and_both_units():
    findings = check_units(read_equations(DATA / "units_errors.mdl"))
    text = [str(f) for f in findings]
    assert text == [
        "'Share': stock in Dmnl needs flows in 1/Year (stock units / time units Year), but its "
        "flow 'Exits' is in kiln/Year",
        "'Mixed Sum': cannot add kiln (Kilns) and 1/Year (Exit Rate)",
        "'Branch Choice': cannot choose between kiln (Kilns) and USD/kiln (Cost per Kiln)",
        "'Smoothed Kilns': delay time Smoothing Time is in Month, not in the time unit Year",
        "'Effect' (warning): lookup argument Kilns is in kiln; Vensim expects a dimensionless "
        "input (divide by a reference value)",
    ]
    assert [f.severity for f in findings].count("error") == 4


def test_equation_mismatch_and_numbers(tmp_path):
    """Declared units against the right-hand side; numbers adapt in sums, not in products."""
    src = (DATA / "units_errors.mdl").read_text()
    extra = ("Twice Kilns=\n\t2 * Kilns\n\t~\tkilns/Year\n\t~\tWrong: a number is dimensionless.\n\t|\n\n"
             "Kilns Plus One=\n\tKilns + 1\n\t~\tkilns\n\t~\tRight: the number takes kiln.\n\t|\n\n"
             "Literal=\n\t3 * 4\n\t~\tUSD\n\t~\tA constant expression fits its declared units.\n\t|\n\n"
             "Compared=\n\tIF THEN ELSE(Kilns > 0, 1, 0)\n\t~\tDmnl\n\t~\tComparison with 0.\n\t|\n\n")
    path = tmp_path / "m.mdl"
    path.write_text(src.replace("Share=", extra + "Share=", 1))
    text = [str(f) for f in check_units(read_equations(path))]
    assert ("'Twice Kilns': 'Twice Kilns' is declared in kiln/Year but its equation 2 * Kilns "
            "gives kiln") in text
    assert not any(t.startswith(("'Kilns Plus One'", "'Literal'", "'Compared'")) for t in text)


def test_flow_in_kilns_per_year_out_of_a_dimensionless_stock_is_found():
    findings = check_units(read_equations(DATA / "units_errors.mdl"))
    assert any(f.variable == "Share" and "kiln/Year" in f.message and "1/Year" in f.message
               for f in findings)


def test_shipped_model_units_are_consistent(juarez_path):
    assert check_units(read_equations(juarez_path)) == []


def test_population_and_teacup_are_consistent():
    assert check_units(read_equations(DATA / "population.mdl")) == []  # People/Persons synonyms
    teacup = check_units(read_equations(DATA / "teacup.mdl"))
    assert [(f.variable, f.severity) for f in teacup] == [("Curve Output", "warning")]  # table of Time


def test_simlin_finds_the_same_unit_errors(tmp_path):
    """Simlin's independent units check flags the same four variables as errors.

    Simlin's MDL reader does not accept ``^`` in a units field, so the copy
    given to it writes ``m*m``; simlin does not warn about lookup arguments.
    """
    simlin = pytest.importorskip("simlin")
    copy = tmp_path / "units_errors.mdl"
    copy.write_text((DATA / "units_errors.mdl").read_text().replace("~\tm^2", "~\tm*m"))
    theirs = set()
    for issue in simlin.load(str(copy)).check():
        if "unit" not in issue.message:
            continue
        if issue.variable:
            theirs.add(issue.variable)
        else:  # "units inference warning ... involving a, b: ..." names no single variable
            theirs.add(issue.message.split("involving ")[1].split(",")[0].split(":")[0].strip())
    mine = {f.variable.lower().replace(" ", "_") for f in check_units(read_equations(copy))
            if f.severity == "error"}
    # simlin names the flow whose units disagree with its stock; sd names the stock and the flow
    assert theirs == {"exits", "mixed_sum", "branch_choice", "smoothed_kilns"}
    assert mine == {"share", "mixed_sum", "branch_choice", "smoothed_kilns"}


def test_a_unit_declared_equivalent_to_dmnl_is_dimensionless():
    """Wonderland declares NKU = dmnl (settings line 22), thyroid-2008 Dmnl = radians:
    NKU^2, a radian added to a number and NKU per NKU are all dimensionless, as in Vensim."""
    units = UnitSystem(DEFAULT_SYNONYMS + (("dmnl", "NKU"), ("Dmnl", "radian", "radians")))
    for text in ("NKU", "NKU^2", "radians", "NKU*radian", "1/NKU"):
        assert units.parse(text).dimensionless, text
    assert units.parse("NKU/Year") == units.parse("1/Year")
