"""The public API at the package's top level."""
from __future__ import annotations

import numpy as np
import pandas as pd

import sd


def test_run_many_rows_equal_single_isolated_runs(juarez_path):
    """Each row of run_many (fast engine) equals a separate PySD run of the same
    scenario. rtol 1e-9: same Euler integration, differences are rounding only."""
    model = sd.load(juarez_path)
    sizes = [0.0, 0.5, 1.0]
    many = sd.run_many(model, pd.DataFrame({"Fuel Shock Size": sizes}),
                       variables=["Propane Share", "Cooperation"])
    assert dict(many.sizes) == {"run": 3, "time": 61}
    for i, size in enumerate(sizes):
        one = sd.run(model, sd.Scenario(constants={"Fuel Shock Size": size}), engine="pysd")
        for name in ("Propane Share", "Cooperation"):
            np.testing.assert_allclose(many[name].isel(run=i).values, one[name].values,
                                       rtol=1e-9, atol=1e-12, err_msg=f"{name}, row {i}")
    # The shock is what ends propane: no shock keeps far more kilns on propane in 1998.
    late = many["Propane Share"].sel(time=1998).values
    assert late[0] > 10 * late[2]


def test_unknown_attribute_is_an_attribute_error():
    try:
        sd.no_such_thing
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_dir_lists_the_public_api():
    """dir(sd) shows the API (old main: nothing), and every name it lists resolves."""
    names = dir(sd)
    for name in ("load", "Scenario", "run", "run_many", "calibrate", "sensitivity", "compare",
                 "FitResult", "SensitivityResult", "Comparison", "SdInputError",
                 "SdRuntimeError"):
        assert name in names, name
        assert getattr(sd, name) is not None
    assert callable(sd.run) and callable(sd.sensitivity) and callable(sd.compare)


def test_version_on_the_command_line():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sd", "--version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"sd {sd.__version__}"
