"""The Juárez brick-kiln model: documentation, reference output, a second engine, the pattern."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sd.simulation.pysd_backend import run
from sd.scenarios import load_toml

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "juarez_brick_kilns.reference.csv"
SCENARIOS = Path(__file__).resolve().parents[1] / "models" / "juarez_scenarios.toml"
SOURCE_TAG = re.compile(r"\b(S16|BB96|BB98|B00|BS05|B05|AP 1995|Blackman|CASES\.md|assumption)", re.I)


@pytest.fixture(scope="module")
def base(juarez):
    return run(juarez)


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


def test_units_are_consistent_for_simlin(juarez_path):
    simlin = pytest.importorskip("simlin", reason="pysimlin is in the test extra")
    issues = simlin.load(str(juarez_path)).check_units()
    assert issues == (), issues


def test_reference_output(base):
    """Same model, same engine, same integration: agreement up to rounding.
    rtol 1e-9 allows floating-point reordering across numpy/PySD patch releases."""
    ref = pd.read_csv(REFERENCE, index_col=0)
    np.testing.assert_allclose(base["time"].values, ref.index.to_numpy(), rtol=0, atol=1e-12)
    for column in ref.columns:
        sim = base[column].values
        bad = ~np.isclose(sim, ref[column].to_numpy(), rtol=1e-9, atol=1e-12)
        assert not bad.any(), (f"{column} diverges from the reference first at time "
                               f"{ref.index[np.argmax(bad)]}: {sim[bad][0]} vs {ref[column].to_numpy()[bad][0]}")


def test_simlin_agrees_with_pysd_on_every_stock(juarez, juarez_path, base):
    """Simlin (Rust) is an independent engine reading the same .mdl. Both use Euler with
    the same TIME STEP, so the stocks agree up to floating-point order of operations;
    rtol 1e-6 leaves room for that (observed differences are far smaller)."""
    simlin = pytest.importorskip("simlin", reason="pysimlin is in the test extra")
    other = simlin.load(str(juarez_path)).run(analyze_loops=False).results
    stocks = juarez.names("stock")
    assert len(stocks) >= 4
    np.testing.assert_allclose(other.index.to_numpy(), base["time"].values, atol=1e-9)
    for name in stocks:
        key = "_".join(name.lower().split())
        np.testing.assert_allclose(other[key].to_numpy(), base[name].values, rtol=1e-6, atol=1e-9,
                                   err_msg=f"stock {name}")


def _share(ds, year):
    return float(ds["Propane Share"].sel(time=year, method="nearest"))


def test_base_run_shows_rise_and_collapse(juarez, base):
    """The documented pattern (CASES.md §1, interpreted from S16) before any calibration."""
    start = float(juarez.fresh().components.programme_start_year())
    share = base["Propane Share"]
    assert _share(base, start - 0.5) < 0.02, "propane kilns before the programme"
    peak_time = float(share["time"][int(share.argmax(dim="time"))])
    assert start < peak_time < 1995, peak_time
    assert 0.2 <= float(share.max()) <= 0.6
    assert _share(base, 1996) < 0.15
    total = base["Total Kilns"]
    assert 300 <= float(total.sel(time=1995)) <= 400   # about 350 mid-1990s (BB96)
    assert 260 <= float(total.sel(time=1999)) <= 340   # about 300 late 1990s (BB98)


def test_scenarios_run_and_move_the_share_the_expected_way(juarez, base):
    scenarios = load_toml(SCENARIOS)
    assert {"baseline", "subsidy_kept", "no_boycott", "no_training"} <= set(scenarios)
    runs = {name: run(juarez, sc, variables=["Propane Share"]) for name, sc in scenarios.items()}
    late = {name: _share(ds, 1998) for name, ds in runs.items()}
    peak = {name: float(ds["Propane Share"].max()) for name, ds in runs.items()}
    assert late["subsidy_kept"] > late["baseline"] + 0.2      # keeping the incentive keeps propane
    assert peak["no_training"] < peak["baseline"]               # information matters
    assert peak["no_boycott"] <= peak["baseline"]
    np.testing.assert_allclose(runs["baseline"]["Propane Share"].values,
                               base["Propane Share"].values, rtol=0, atol=0)
