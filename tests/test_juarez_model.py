"""The Juárez brick-kiln model: documentation and ranges, reference output, a second engine, the
documented pattern, and the structural fixes of issue 10 (each test fails if its fix is undone)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sd
from sd.outcomes import targets as outcomes
from sd.scenarios import load_toml
from sd.simulation.pysd_backend import run

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "models" / "juarez_brick_kilns.reference.csv"
SCENARIOS = ROOT / "models" / "juarez_scenarios.toml"
TARGETS = ROOT / "calibration" / "data" / "juarez_propane.csv"
SOURCE_TAG = re.compile(r"\b(S16|BB96|BB98|B00|BS05|B05|AP 1995|Blackman|CASES\.md|assumption)", re.I)
CONTROL = ("INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER")
#: Constants that are switches or levers, not uncertain quantities (their range is the lever's span).
LEVERS = re.compile(r"^(Switch |Policy )|^(Boycott Enforcement|Incentive End Year)$")
#: Definitions rather than uncertain quantities: no range.
DEFINITIONS = {"One Kiln"}
#: Every programme component off: no incentives, training, enforcement, price floor or boycott.
NO_PROGRAMME = {"Policy Incentives": 0, "Policy Information": 0, "Policy Enforcement": 0,
                "Switch Boycott and Floor": 0}


@pytest.fixture(scope="module")
def base(juarez):
    return run(juarez)


@pytest.fixture(scope="module")
def limits(juarez):
    """Vensim range ``[low,high]`` of every constant, as PySD reads it from the units field."""
    doc = juarez.fresh().doc
    consts = doc[doc["Type"] == "Constant"]
    return {row["Real Name"]: tuple(row["Limits"]) for _, row in consts.iterrows()
            if row["Real Name"] not in CONTROL and row["Real Name"] not in DEFINITIONS}


def _fast(juarez, constants: dict | None = None, variables=None, **time):
    """One fast-engine run of the model with ``constants`` (and time settings) changed."""
    frame = pd.DataFrame([constants or {}], index=[0])
    return sd.run_many(juarez, frame, scenario=sd.Scenario(time=time), variables=variables,
                       engine="fast").isel(run=0)


def _share(ds, year):
    return float(ds["Propane Share"].sel(time=year, method="nearest"))


# -- documentation -----------------------------------------------------------------------------
def test_every_variable_has_units_and_a_sourced_comment(juarez):
    for var in juarez.variables.values():
        assert var.units, f"{var.name} has no units"
        if var.kind != "control":
            assert SOURCE_TAG.search(var.comment) or var.kind in ("flow", "auxiliary", "stock"), \
                f"{var.name}: the comment must cite a source or say 'assumption': {var.comment!r}"
            assert len(var.comment) >= 20, f"{var.name}: comment too thin: {var.comment!r}"
    for var in juarez.variables.values():
        if var.kind == "constant":
            assert SOURCE_TAG.search(var.comment), f"constant {var.name} cites no source"


def test_every_constant_has_a_vensim_range_that_holds_its_value(juarez, limits):
    """Issue 10, point 1: each constant carries its plausible range in the units field
    (``~ Dmnl [0.05,0.5]``), the base value lies inside it, and a "plausible range a-b" in the
    comment says the same as the brackets. Switches and policy levers span [0, 1]."""
    model = juarez.fresh()
    assert len(limits) >= 40
    for name, (low, high) in limits.items():
        assert np.isfinite(low) and np.isfinite(high) and low < high, f"{name}: range {low, high}"
        value = float(getattr(model.components, juarez.variable(name).py_name)())
        assert low <= value <= high, f"{name} = {value} outside its range [{low}, {high}]"
        comment = juarez.variable(name).comment
        said = re.search(r"plausible range ([0-9][0-9.,]*)\s*-\s*([0-9][0-9,]*(?:\.[0-9]+)?)", comment)
        if said:
            assert (float(said[1].replace(",", "")), float(said[2].replace(",", ""))) == (low, high), \
                f"{name}: comment says {said[0]!r}, units field says [{low}, {high}]"
        if LEVERS.search(name) and name != "Incentive End Year":
            assert (low, high) == (0, 1), name
            assert value in (0, 1), f"{name}: a switch or lever defaults to 0 or 1"
        elif not LEVERS.search(name):
            assert said or "range" in comment, f"{name}: the comment gives no plausible range"


def test_units_are_consistent_for_simlin(juarez_path):
    simlin = pytest.importorskip("simlin", reason="pysimlin is in the test extra")
    issues = simlin.load(str(juarez_path)).check_units()
    assert issues == (), issues


# -- engines and reference -----------------------------------------------------------------------
def test_reference_output(base):
    """Same model, same engine, same integration: agreement up to rounding.
    rtol 1e-9 allows floating-point reordering across numpy/PySD patch releases."""
    ref = pd.read_csv(REFERENCE, index_col=0)
    np.testing.assert_allclose(base["time"].values, ref.index.to_numpy(), rtol=0, atol=1e-12)
    assert set(ref.columns) == set(base.data_vars), "the reference must hold every variable"
    for column in ref.columns:
        sim = base[column].values
        bad = ~np.isclose(sim, ref[column].to_numpy(), rtol=1e-9, atol=1e-12)
        assert not bad.any(), (f"{column} diverges from the reference first at time "
                               f"{ref.index[np.argmax(bad)]}: {sim[bad][0]} vs {ref[column].to_numpy()[bad][0]}")


def test_simlin_agrees_with_pysd_on_every_stock(juarez, juarez_path, base):
    """Simlin (Rust) is an independent engine reading the same .mdl. Both use Euler with
    the same TIME STEP, so the stocks agree up to floating-point order of operations;
    rtol 1e-6 leaves room for that (observed differences are below 1e-13)."""
    simlin = pytest.importorskip("simlin", reason="pysimlin is in the test extra")
    other = simlin.load(str(juarez_path)).run(analyze_loops=False).results
    stocks = juarez.names("stock")
    assert len(stocks) >= 6
    np.testing.assert_allclose(other.index.to_numpy(), base["time"].values, atol=1e-9)
    for name in stocks + ["Propane Share", "Propane Cost Premium", "Dirty Kiln Profit"]:
        key = "_".join(name.lower().split())
        np.testing.assert_allclose(other[key].to_numpy(), base[name].values, rtol=1e-6, atol=1e-9,
                                   err_msg=name)


# -- the documented pattern ------------------------------------------------------------------------
def test_base_run_meets_every_documented_outcome(juarez, base):
    """The model as written is one parameter set consistent with all documented outcomes
    (calibration/data/juarez_propane.csv: counts, share pattern, cost premium, boycott collapse,
    kiln profit, dirty fuels at night)."""
    targets = outcomes.check_against(outcomes.load(TARGETS), juarez, 1985, 2000)
    assert len(targets) >= 13
    batch = base[outcomes.variables(targets)].expand_dims(run=[0])
    residuals, simulated = outcomes.evaluate(targets, batch)
    met = outcomes.met(targets, residuals[0])
    missed = [f"{t.describe()}: {s:g}" for t, s, ok in zip(targets, simulated[0], met) if not ok]
    assert not missed, missed


def test_scenarios_run_and_move_the_share_the_expected_way(juarez, base):
    scenarios = load_toml(SCENARIOS)
    assert {"baseline", "subsidy_kept", "no_fuel_shock", "no_boycott", "no_training",
            "boycott_enforced", "programme_never_ends", "command_and_control", "incentives_only",
            "information_only", "incentives_information", "incentives_withdrawn"} <= set(scenarios)
    runs = {name: run(juarez, sc, variables=["Propane Share"])["Propane Share"]
            for name, sc in scenarios.items()}
    late = {name: float(s.sel(time=slice(1996, 2000)).mean()) for name, s in runs.items()}
    peak = {name: float(s.max()) for name, s in runs.items()}
    assert late["subsidy_kept"] > late["baseline"] + 0.5       # keeping the incentives keeps propane
    assert peak["no_training"] < peak["baseline"] / 2          # information matters
    assert peak["no_boycott"] < peak["baseline"]
    assert peak["command_and_control"] < 0.02                  # command and control alone fails (§6)
    assert peak["incentives_information"] > 10 * peak["command_and_control"]  # incentives + information
    assert late["incentives_withdrawn"] < 0.01 < peak["incentives_withdrawn"]  # withdrawal reverses
    np.testing.assert_allclose(runs["baseline"].values, base["Propane Share"].values, rtol=0, atol=0)


# -- structural fixes (issue 10, point 7) -------------------------------------------------------
def test_without_the_programme_propane_stays_near_zero_because_of_costs(juarez):
    """Adoption is a cost comparison, not a product with 'Programme Active': with every programme
    component off the share stays ~0 because propane costs more; make propane cheaper than
    dirty fuel and the same owners adopt it with no programme at all."""
    costly = _fast(juarez, NO_PROGRAMME, variables=["Propane Share", "Adoption Advantage"])
    assert float(costly["Propane Share"].max()) < 0.01
    assert float(costly["Adoption Advantage"].max()) < 0
    cheap = _fast(juarez, {**NO_PROGRAMME, "Base Propane Cost per Firing": 40,
                           "Dirty Fuel Cost per Firing": 60, "Conversion Cost": 300,
                           "Initial Informed Brickmakers": 40, "Contact Rate": 2},
                  variables=["Propane Share", "Adoption Advantage"])
    assert float(cheap["Adoption Advantage"].min()) > 0
    assert float(cheap["Propane Share"].sel(time=2000)) > 0.1


def test_propane_stays_costlier_than_dirty_fuel_with_support(base):
    """BB98: adoption 'even when the new technology significantly raises variable costs':
    the premium is an output and stays positive while subsidised."""
    premium = base["Propane Cost Premium"]
    assert float(premium.min()) > 0.05
    assert float(base["Relative Profit Advantage"].sel(time=slice(1990, 1994.9)).max()) <= 0


def test_liberalisation_is_one_event(juarez):
    """S16: federal liberalisation raised the propane price AND ended the ability to subsidise it."""
    names = ["Fuel Subsidy Active", "Propane Cost per Firing", "Incentives Active"]
    ds = _fast(juarez, {"Liberalisation Year": 1991.5}, variables=names)
    before, after = ds.sel(time=1991.25), ds.sel(time=1991.5)
    assert float(before["Fuel Subsidy Active"]) == 1 and float(after["Fuel Subsidy Active"]) == 0
    assert float(after["Incentives Active"]) == 1                # the programme itself goes on
    assert float(after["Propane Cost per Firing"]) > 1.5 * float(before["Propane Cost per Firing"])
    kept = _fast(juarez, {"Liberalisation Year": 1991.5, "Switch Fuel Shock": 0}, variables=names)
    np.testing.assert_array_equal(kept["Fuel Subsidy Active"].values, kept["Incentives Active"].values)


def test_boycott_with_no_clean_capacity_removes_no_demand(juarez, base):
    """A boycott moves purchases to propane kilns; it cannot destroy demand. With nobody
    converting, cooperation holds but no dirty kiln loses a sale."""
    names = ["Cooperation", "Dirty Sales Loss", "Diverted Sales", "Propane Kilns"]
    nobody = _fast(juarez, {"Normal Adoption Rate": 0}, variables=names)
    assert float(nobody["Cooperation"].max()) > 0.3
    assert float(nobody["Propane Kilns"].max()) == 0
    assert float(np.abs(nobody["Dirty Sales Loss"]).max()) == 0
    # In the base run the sales lost by dirty kilns go to propane kilns, never more than their
    # spare capacity; the gain an owner expects counts the owner's own kiln among the propane
    # kilns (One Kiln), so the propane kilns' total gain is the loss times P / (P + 1).
    lost = (base["Dirty Sales Loss"] * base["Dirty Kilns"]).values
    propane = base["Propane Kilns"].values
    gained = base["Clean Sales Gain"].values * propane
    assert lost.max() > 1
    np.testing.assert_allclose(lost, base["Diverted Sales"].values, rtol=1e-9, atol=1e-12)
    assert np.all(gained <= lost + 1e-9)
    assert np.all(gained >= lost * propane / (propane + 1) - 1e-9)
    assert np.all(lost <= 0.3 * propane + 1e-9)   # Propane Kiln Spare Capacity 0.3 in the base run


def test_total_kilns_are_conserved_through_the_flows(juarez):
    """Saved at every TIME STEP: the change of all kilns is minus the closures (Euler),
    so conversion and reversion move kilns between stocks without creating any."""
    dt = 0.0078125
    ds = _fast(juarez, {}, variables=["Total Kilns", "Kiln Closures"], saveper=dt)
    total, closures = ds["Total Kilns"].values, ds["Kiln Closures"].values
    np.testing.assert_allclose(np.diff(total), -closures[:-1] * dt, rtol=1e-9, atol=1e-9)
    assert float(ds["Total Kilns"].sel(time=1985)) == 450


def test_informed_owners_leave_with_closed_kilns(juarez):
    """With no training and no word of mouth, informed owners decay by forgetting AND by the
    closure of their kilns: exp(-(1/lifetime + closure rate) t)."""
    ds = _fast(juarez, {"Policy Information": 0, "Switch Word of Mouth": 0, "Information Lifetime": 6},
               variables=["Informed Brickmakers"])
    ratio = float(ds["Informed Brickmakers"].sel(time=1995) / ds["Informed Brickmakers"].sel(time=1985))
    expected = math.exp(-(1 / 6 + 0.03) * 10)
    # Euler with dt = 1/128 over 10 years differs from the exponential by about 0.2 %.
    assert ratio == pytest.approx(expected, rel=5e-3)
    assert ratio < math.exp(-10 / 6) * 0.8                       # more than forgetting alone


def test_programme_activities_end(juarez):
    """S16: the efforts were short-lived; training, enforcement and organising stop at the
    programme's end (Programme Start Year + Programme Duration) unless the switch keeps them."""
    names = ["Training", "Enforcement Pressure", "Cooperation Building", "Programme Active"]
    ds = _fast(juarez, {}, variables=names)
    late = ds.sel(time=slice(1995.25, 2000))
    for name in names:
        assert float(np.abs(late[name]).max()) == 0, name
    forever = _fast(juarez, {"Switch Programme End": 0}, variables=names)
    assert float(forever["Programme Active"].sel(time=2000)) == 1
    assert float(forever["Training"].sel(time=1999)) > 0


# -- numerics -------------------------------------------------------------------------------------
def test_runs_from_the_ranges_stay_finite(juarez, limits):
    """Every division is guarded (ZIDZ/XIDZ, or a constant whose range excludes 0): parameter
    sets drawn from the stated ranges, and the all-low and all-high corners, give finite values
    for every variable."""
    names = [n for n in limits if not LEVERS.search(n)]
    low = np.array([limits[n][0] for n in names])
    high = np.array([limits[n][1] for n in names])
    draws = low + np.random.default_rng(10).random((300, len(names))) * (high - low)
    frame = pd.DataFrame(np.vstack([draws, low, high]), columns=names)
    ds = sd.run_many(juarez, frame)
    for name, var in ds.data_vars.items():
        assert np.isfinite(var.values).all(), name


def _unguarded_divisions(node, is_safe, found):
    """Collect the denominators of '/' in a PySD syntax tree that ``is_safe`` rejects."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ArithmeticStructure):
        for i, op in enumerate(node.operators):
            if op == "/" and not is_safe(node.arguments[i + 1]):
                found.append(repr(node.arguments[i + 1])[:80])
    children = node.arguments if isinstance(node, (ae.ArithmeticStructure, ae.CallStructure)) else ()
    if isinstance(node, (ae.IntegStructure, ae.SmoothStructure)):
        children = [getattr(node, f) for f in node.__dataclass_fields__]
    for child in children:
        _unguarded_divisions(child, is_safe, found)


def test_every_division_is_guarded(juarez, juarez_path, limits):
    """A '/' divides only by a constant whose stated range excludes 0, or by a sum of positive
    terms (1 + EXP(...); Propane Kilns + One Kiln: a stock, kept >= 0 by the reality checks, plus
    a positive definition); every other quotient goes through ZIDZ/XIDZ (stocks such as Total
    Kilns can reach 0)."""
    from pysd.translators.structures import abstract_expressions as ae
    from pysd.translators.vensim.vensim_file import VensimFile

    key = lambda name: re.sub(r"\s+", "_", name.lower())
    positive = {key(n) for n, (low, _) in limits.items() if low > 0} | {key(n) for n in DEFINITIONS}
    stocks = {key(n) for n in juarez.names("stock")}

    def is_safe(den):
        if isinstance(den, (int, float)):
            return den != 0
        if isinstance(den, ae.ReferenceStructure):
            return den.reference in positive
        if isinstance(den, ae.ArithmeticStructure) and set(den.operators) == {"+"}:
            terms = den.arguments
            exps = [a for a in terms if isinstance(a, ae.CallStructure)
                    and getattr(a.function, "reference", "") == "exp"]
            refs = [a.reference for a in terms if isinstance(a, ae.ReferenceStructure)]
            literals = [a for a in terms if isinstance(a, (int, float))]
            nonnegative = (len(exps) + len(refs) + len(literals) == len(terms)
                           and all(r in stocks | positive for r in refs)
                           and all(x >= 0 for x in literals))
            return nonnegative and (any(x > 0 for x in literals) or any(r in positive for r in refs))
        return False

    vensim = VensimFile(str(juarez_path))
    vensim.parse()
    bad = {}
    for section in vensim.get_abstract_model().sections:
        for element in section.elements:
            found = []
            for component in element.components:
                _unguarded_divisions(component.ast, is_safe, found)
            if found:
                bad[element.name] = found
    assert not bad, f"unguarded divisions: {bad}"


def test_halving_time_step_barely_moves_the_base_run(juarez):
    """TIME STEP is small against the fastest time constant: halving it moves the propane share
    by less than 0.005 and the kiln count by less than 0.5 kiln (first-order Euler error)."""
    names = ["Propane Share", "Total Kilns", "Cooperation"]
    one = _fast(juarez, {}, variables=names)
    half = _fast(juarez, {}, variables=names, time_step=0.0078125 / 2)
    assert float(np.abs(one["Propane Share"] - half["Propane Share"]).max()) < 0.005
    assert float(np.abs(one["Total Kilns"] - half["Total Kilns"]).max()) < 0.5
    assert float(np.abs(one["Cooperation"] - half["Cooperation"]).max()) < 0.01
