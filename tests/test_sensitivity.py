"""Distributions, designs, metrics, the sensitivity spec, chunked ensembles and
``sd sensitivity`` end to end (small N on the teacup model)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sd.sensitivity_analysis import distributions as dist
from sd.outcomes import metrics
from sd.errors import SdInputError

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"

SPEC = """
model = "{model}"
[sampling]
method = "lhs"
n = {n}
seed = 7
chunk_size = 7
[output]
variables = ["Teacup Temperature"]
every = 5
[parameters]
"Characteristic Time" = {{ distribution = "uniform", low = 5, high = 15 }}
"Room Temperature" = {{ distribution = "truncnormal", mean = 70, sd = 5, low = 60, high = 80 }}
[metrics]
t10 = {{ variable = "Teacup Temperature", kind = "at", time = 10 }}
final = {{ variable = "Teacup Temperature", kind = "final" }}
mean = {{ variable = "Teacup Temperature", kind = "mean", start = 0, end = 20 }}
[sobol]
n = 8
second_order = false
[morris]
trajectories = 4
levels = 4
"""


def write_spec(tmp_path, n=20) -> Path:
    text = SPEC.format(model=TEACUP.as_posix(), n=n)
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- distributions and designs (seeded: exact comparisons) ---------------------------
@pytest.mark.parametrize("kind, params, mean", [
    ("uniform", {"low": 2, "high": 4}, 3.0),
    ("normal", {"mean": 1, "sd": 0.5}, 1.0),
    ("triangular", {"low": 0, "mode": 0, "high": 3}, 1.0),
    ("lognormal", {"median": 2, "sigma": 0.1}, 2 * np.exp(0.005)),
    ("truncnormal", {"mean": 0, "sd": 1, "low": -1, "high": 1}, 0.0),
])
def test_distributions_map_the_unit_design_to_their_law(kind, params, mean):
    d = dist.make("x", {"distribution": kind, **params}, "test")
    values = dist.to_values(dist.unit_design("lhs", 4000, 1, 1), [d])["x"]
    # Loose: a Latin hypercube of 4000 points estimates a mean to ~1e-3.
    assert values.mean() == pytest.approx(mean, abs=0.02)


@pytest.mark.parametrize("table, message", [
    ({"distribution": "uniform", "low": 3, "high": 1}, "low must be below high"),
    ({"distribution": "normal", "mean": 1, "sd": 0}, "sd must be positive"),
    ({"distribution": "triangular", "low": 0, "mode": 5, "high": 1}, "mode must lie"),
    ({"distribution": "lognormal", "median": -1, "sigma": 1}, "median > 0"),
    ({"distribution": "unifrom", "low": 0, "high": 1}, "Did you mean 'uniform'"),
    ({"distribution": "normal", "mean": 1}, "missing sd"),
])
def test_impossible_distributions_are_refused(table, message):
    with pytest.raises(SdInputError, match=message):
        dist.make("x", table, "spec.toml [parameters] 'x'")


@pytest.mark.parametrize("method", dist.METHODS)
def test_designs_are_fixed_by_the_seed(method):
    a = dist.unit_design(method, 16, 3, 42)
    assert np.array_equal(a, dist.unit_design(method, 16, 3, 42))
    assert not np.array_equal(a, dist.unit_design(method, 16, 3, 43))
    assert a.shape == (16, 3) and (a >= 0).all() and (a < 1).all()


def test_metrics_on_a_known_trajectory():
    t = np.linspace(0, 10, 11)
    y = np.vstack([np.sin(t / 2), t])  # run 0 peaks at t = 3
    ds = xr.Dataset({"y": (("run", "time"), y)}, coords={"time": t})
    ms = [metrics.Metric("at", "y", "at", time=4.5), metrics.Metric("peak", "y", "max"),
          metrics.Metric("when", "y", "time_of_max"), metrics.Metric("last", "y", "final"),
          metrics.Metric("avg", "y", "mean", start=0, end=10)]
    out = metrics.compute(ds, ms)
    assert out["at"].values[1] == pytest.approx(4.5)
    assert out["when"].values.tolist() == [3.0, 10.0]
    assert out["last"].values[1] == 10 and out["avg"].values[1] == pytest.approx(5.0)
    assert out["peak"].values[0] == pytest.approx(np.sin(1.5))


# -- the spec ---------------------------------------------------------------------------
@pytest.mark.parametrize("old, new, message", [
    ('"Characteristic Time" =', '"Characteristic Tme" =', "Did you mean 'Characteristic Time'"),
    ('kind = "final"', 'kind = "last"', "unknown metric kind 'last'"),
    ('variable = "Teacup Temperature", kind = "final"', 'variable = "Teacup Temp", kind = "final"',
     "no variable named 'Teacup Temp'"),
    ("n = 20", "n = 0", r"\[sampling\] n = 0 must be at least 1"),
    ("low = 5, high = 15", "low = 15, high = 5", "low must be below high"),
    ('method = "lhs"', 'method = "latin"', "unknown 'latin'"),
])
def test_bad_specs_name_the_file_and_key(tmp_path, old, new, message):
    path = write_spec(tmp_path)
    path.write_text(path.read_text().replace(old, new, 1))
    from sd.sensitivity_analysis import load_spec

    with pytest.raises(SdInputError, match=message) as err:
        load_spec(path)
    assert "spec.toml" in str(err.value)


# -- chunked ensembles --------------------------------------------------------------------
def test_chunk_size_does_not_change_a_single_number(tmp_path):
    from sd.simulation import prepare
    from sd.simulation.chunks import Job, open_ensemble, write_ensemble

    model = prepare(TEACUP)
    d = [dist.make("Characteristic Time", {"distribution": "uniform", "low": 5, "high": 15}, "t")]
    samples = dist.to_values(dist.unit_design("sobol", 60, 1, 3), d)
    arrays = []
    for size in (7, 50):
        job = Job(model, samples, ("Teacup Temperature",), chunk_size=size)
        path = write_ensemble(job, tmp_path / f"e{size}.nc", store_variables=["Teacup Temperature"],
                              store_times=np.arange(0, 31, 3.0),
                              parameters=["Characteristic Time"], progress=False)
        with open_ensemble(path) as ds:
            arrays.append(ds.load())
    assert arrays[0].identical(arrays[1])
    assert arrays[0].sizes == {"run": 60, "time": 11}
    assert "Characteristic Time" in arrays[0].coords
    # A chunked run must agree with a single isolated PySD run.
    from sd.scenarios import Scenario
    from sd.simulation import run

    one = run(model.model, Scenario(constants={"Characteristic Time": samples.iat[5, 0]}),
              engine="pysd")
    assert arrays[0]["Teacup Temperature"].isel(run=5).values == pytest.approx(
        one["Teacup Temperature"].sel(time=np.arange(0, 31, 3.0)).values, rel=1e-12)


def test_interrupted_ensemble_leaves_no_file(tmp_path):
    from sd.simulation import prepare
    from sd.simulation.chunks import Job, write_ensemble

    samples = pd.DataFrame({"Characteristic Time": np.linspace(5, 15, 10)})
    job = Job(prepare(TEACUP), samples, ("Teacup Temperature",), chunk_size=3)

    def stop(start, ds):
        if start >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_ensemble(job, tmp_path / "e.nc", store_variables=["Teacup Temperature"],
                       store_times=[0.0, 30.0], parameters=["Characteristic Time"],
                       on_chunk=stop, progress=False)
    assert list(tmp_path.iterdir()) == []


# -- end to end ---------------------------------------------------------------------------
def test_sensitivity_writes_every_output(tmp_path):
    from sd.report.sensitivity import write_sensitivity
    from sd.sensitivity_analysis import sensitivity

    out = tmp_path / "out"
    out.mkdir()
    result = sensitivity(write_spec(tmp_path), progress=False)
    assert list(out.iterdir()) == []               # computing writes nothing
    write_sensitivity(result, out)
    names = {p.name for p in out.iterdir()}
    assert {"ensemble.nc", "metrics.csv", "bands_teacup_temperature.png", "hist_t10.png",
            "sobol.csv", "sobol.png", "morris.csv", "morris.png", "report.md",
            "provenance.json"} <= names
    assert not [n for n in names if n.startswith(".")]  # no scratch left
    assert result.sobol.shape == (6, 4) and result.morris.shape == (6, 4)
    # Characteristic time drives the temperature at t = 10; room temperature
    # the final value. Loose: Morris with 4 trajectories ranks, it does not measure.
    mu = result.morris["mu_star"]
    assert mu["t10", "Characteristic Time"] > mu["t10", "Room Temperature"]
    assert mu["final", "Room Temperature"] > mu["final", "Characteristic Time"]
    report = (out / "report.md").read_text()
    assert "Sobol indices" in report and "seed 7" in report


def test_cli_sensitivity_end_to_end(tmp_path):
    spec = write_spec(tmp_path, n=10)
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "sd", "sensitivity", str(spec), "--out", str(out),
                           "--samples", "12", "--no-progress"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "12 Monte Carlo runs" in proc.stdout
    with xr.open_dataset(out / "ensemble.nc") as ds:
        assert ds.sizes["run"] == 12 and ds.sizes["time"] == 7  # every = 5 over 0..30


def test_cli_bad_spec_exits_2_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace('"Room Temperature" =', '"Room Temprature" ='))
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "sd", "sensitivity", str(spec), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "spec.toml [parameters] 'Room Temprature'" in proc.stderr
    assert "Did you mean 'Room Temperature'" in proc.stderr
    assert not out.exists()


def test_pysd_engine_agrees_with_the_fast_engine():
    from sd.simulation import run_many

    samples = pd.DataFrame({"Characteristic Time": [5.0, 8.0, 12.0]})
    fast = run_many(TEACUP, samples, variables=["Teacup Temperature"], engine="fast")
    slow = run_many(TEACUP, samples, variables=["Teacup Temperature"], engine="pysd")
    # Tight: both integrate the same Euler steps in float64.
    np.testing.assert_allclose(fast["Teacup Temperature"].values,
                               slow["Teacup Temperature"].values, rtol=1e-12)


LOG_MODEL = """{UTF-8}
k = 0.5
\t~\tDmnl\t~\tSampled; LN(k) has no real value below 0.\t|
y = LN(k)
\t~\tDmnl\t~\tNaN when k < 0, -inf when k = 0.\t|
s = INTEG(y, 0)
\t~\tDmnl\t~\tAccumulates y.\t|
FINAL TIME = 4\n\t~\tMonth\t~\t\t|
INITIAL TIME = 0\n\t~\tMonth\t~\t\t|
SAVEPER = 1\n\t~\tMonth\t~\t\t|
TIME STEP = 1\n\t~\tMonth\t~\t\t|
"""


def test_failed_runs_are_recorded_and_excluded(tmp_path):
    """Runs that produce NaN are listed in the file and the report, blank in the
    ensemble and the metrics, and the indices that need them are not computed."""
    from sd.report.sensitivity import write_sensitivity
    from sd.sensitivity_analysis import sensitivity
    from sd.simulation.chunks import ensemble_failures, open_ensemble

    (tmp_path / "log.mdl").write_text(LOG_MODEL)
    spec = tmp_path / "log.toml"
    spec.write_text('model = "log.mdl"\n[sampling]\nn = 16\nseed = 1\nchunk_size = 5\n'
                    '[parameters]\nk = { distribution = "uniform", low = -1, high = 1 }\n'
                    '[metrics]\nlast = { variable = "s", kind = "final" }\n'
                    '[sobol]\nn = 4\n[morris]\ntrajectories = 2\n')
    result = sensitivity(spec, progress=False)
    failed = result.failures["monte carlo"]
    k = result.samples["k"]
    assert set(failed) == set(np.flatnonzero(k <= 0)) and 0 < len(failed) < 16
    assert result.metrics["last"].iloc[list(failed)].isna().all()
    assert result.metrics["last"].drop(index=list(failed)).notna().all()
    assert result.sobol is None and any("sobol indices not computed" in n for n in result.notes)
    out = tmp_path / "out"
    out.mkdir()
    write_sensitivity(result, out)
    with open_ensemble(out / "ensemble.nc") as ds:
        assert set(ensemble_failures(ds)) == set(failed)
        assert np.isnan(ds["s"].isel(run=sorted(failed)).values).all()
    assert f"{len(failed)} failed runs, excluded" in (out / "report.md").read_text()
