"""sd.simulation.pysd_backend: isolated PySD runs into xarray, overrides, NaN detection."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sd.errors import SdRuntimeError
from sd.model import load
from sd.simulation.pysd_backend import run
from sd.scenarios import Scenario

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


@pytest.fixture(scope="module")
def teacup():
    return load(TEACUP)


def test_dataset_layout_and_attributes(teacup):
    ds = run(teacup)
    assert ds["time"].values[0] == 0 and ds["time"].values[-1] == 30
    assert ds.sizes["time"] == 241  # 30 / 0.125 + 1
    assert ds["Teacup Temperature"].attrs["units"] == "Degrees Fahrenheit"
    assert ds["Teacup Temperature"].attrs["kind"] == "stock"
    assert ds.attrs["model_sha256"] == teacup.sha256
    # Euler, dt = 0.125: T1 = 180 - 0.125 * (180 - 70) / 10, exact in binary.
    assert ds["Teacup Temperature"].values[1] == 178.625


def test_runs_are_isolated(teacup):
    """A, B(overrides incl. time settings), A must give identical A's (PySD's
    run(params=...) and final_time stick to the model object)."""
    a1 = run(teacup)
    b = run(teacup, Scenario(constants={"Room Temperature": 20, "Characteristic Time": 3},
                             lookups={"Cooling Curve": ((0, 100), (5, 5))},
                             time={"final_time": 10, "time_step": 0.5, "initial_time": 2}))
    a2 = run(teacup)
    assert b["time"].values[0] == 2 and b["time"].values[-1] == 10
    assert b["Curve Output"].values[0] == 5
    assert not np.allclose(b["Teacup Temperature"].values[-1], a1["Teacup Temperature"].values[-1])
    for name in a1.data_vars:
        np.testing.assert_array_equal(a1[name].values, a2[name].values)  # bitwise equal
    np.testing.assert_array_equal(a1["time"].values, a2["time"].values)


def test_constant_override_changes_the_trajectory_as_expected(teacup):
    ds = run(teacup, Scenario(constants={"Room Temperature": 180}))
    # Tea already at room temperature: nothing moves.
    assert np.all(ds["Teacup Temperature"].values == 180)


def test_variables_subset(teacup):
    ds = run(teacup, variables=["teacup temperature"])
    assert list(ds.data_vars) == ["Teacup Temperature"]


def test_nan_is_reported_not_returned(teacup):
    with pytest.raises(SdRuntimeError, match="Heat Loss to Room"):
        run(teacup, Scenario(constants={"Characteristic Time": 0}))
