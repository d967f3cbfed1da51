"""The run layer (sd.simulation): one result shape, one failure policy, one engine
decision, on both engines."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sd
from sd.errors import SdInputError, SdRuntimeError
from sd.model import load
from sd.scenarios import Scenario
from sd.simulation import failed_runs, prepare, run, run_many

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"
ENGINES = ("fast", "pysd")


@pytest.fixture(scope="module")
def teacup():
    return load(TEACUP)


@pytest.mark.parametrize("engine", ENGINES)
def test_dataset_layout_and_attributes(teacup, engine):
    ds = run(teacup, engine=engine)
    assert ds["time"].values[0] == 0 and ds["time"].values[-1] == 30
    assert ds.sizes["time"] == 241  # 30 / 0.125 + 1
    attrs = ds["Teacup Temperature"].attrs
    assert attrs["units"] == "Degrees Fahrenheit" and attrs["kind"] == "stock" and attrs["comment"]
    assert ds.attrs["model_sha256"] == teacup.sha256 and ds.attrs["engine"] == engine
    record = json.loads(ds.attrs["provenance"])
    assert record["engine"] == engine and record["model_sha256"] == teacup.sha256
    # Euler, dt = 0.125: T1 = 180 - 0.125 * (180 - 70) / 10, exact in binary.
    assert ds["Teacup Temperature"].values[1] == 178.625


@pytest.mark.parametrize("engine", ENGINES)
def test_runs_are_isolated(teacup, engine):
    """A, B(overrides incl. time settings), A must give identical A's (PySD's
    run(params=...) and final_time stick to the model object)."""
    a1 = run(teacup, engine=engine)
    b = run(teacup, Scenario(constants={"Room Temperature": 20, "Characteristic Time": 3},
                             lookups={"Cooling Curve": ((0, 100), (5, 5))},
                             time={"final_time": 10, "time_step": 0.5, "initial_time": 2}),
            engine=engine)
    a2 = run(teacup, engine=engine)
    assert b["time"].values[0] == 2 and b["time"].values[-1] == 10
    assert b["Curve Output"].values[0] == 5
    assert not np.allclose(b["Teacup Temperature"].values[-1], a1["Teacup Temperature"].values[-1])
    for name in a1.data_vars:
        np.testing.assert_array_equal(a1[name].values, a2[name].values)  # bitwise equal
    np.testing.assert_array_equal(a1["time"].values, a2["time"].values)


def test_engines_agree_on_a_scenario(teacup):
    """Same Euler steps in float64 on both engines: rtol 1e-12 covers operation order."""
    sc = Scenario(constants={"Room Temperature": 40}, lookups={"Cooling Curve": ((0, 9), (5, 1))})
    fast, slow = run(teacup, sc, engine="fast"), run(teacup, sc, engine="pysd")
    assert set(fast.data_vars) == set(slow.data_vars)
    for name in fast.data_vars:
        np.testing.assert_allclose(fast[name].values, slow[name].values, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("engine", ENGINES)
def test_constant_override_and_variables_subset(teacup, engine):
    ds = run(teacup, Scenario(constants={"Room Temperature": 180}),
             variables=["teacup temperature"], engine=engine)
    assert list(ds.data_vars) == ["Teacup Temperature"]
    assert np.all(ds["Teacup Temperature"].values == 180)   # tea at room temperature


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_fails_naming_the_variable_and_time(teacup, engine):
    """Characteristic Time = 0 divides by zero in 'Heat Loss to Room' at the first step:
    on both engines a run never returns NaN (old main: the fast engine returned it)."""
    with pytest.raises(SdRuntimeError, match=r"'Heat Loss to Room'.* at time 0\b"):
        run(teacup, Scenario(constants={"Characteristic Time": 0}), engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_run_many_records_failed_runs_and_never_uses_them(teacup, engine):
    samples = pd.DataFrame({"Characteristic Time": [5.0, 0.0, 9.0]})
    with pytest.raises(SdRuntimeError, match=r"run 1 \(Characteristic Time = 0\).*Heat Loss"):
        run_many(teacup, samples, engine=engine)
    ds = run_many(teacup, samples, engine=engine, on_failure="record")
    failed = failed_runs(ds)
    assert list(failed) == [1] and "Heat Loss to Room" in failed[1]
    assert np.isnan(ds["Teacup Temperature"].isel(run=1).values).all()      # blanked
    assert np.isfinite(ds["Teacup Temperature"].isel(run=[0, 2]).values).all()
    assert ds["Teacup Temperature"].attrs["units"] == "Degrees Fahrenheit"
    assert ds.attrs["engine"] == engine


def test_run_accepts_a_path_and_the_engine_is_reported():
    ds = sd.run(TEACUP, variables=["Teacup Temperature"])        # old main: AttributeError
    assert ds.attrs["engine"] == "fast" and ds.sizes["time"] == 241
    many = sd.run_many(str(TEACUP), pd.DataFrame({"Room Temperature": [60.0, 80.0]}))
    assert many.sizes["run"] == 2 and many["Teacup Temperature"].attrs["units"]


def test_engine_decided_once_and_passed(tmp_path):
    """A model the fast engine refuses runs on PySD, says so, and is not re-examined."""
    # RANDOM UNIFORM(0, 0, s) is always 0, so PySD's numbers are known; the engine
    # refuses every RANDOM function
    mdl = tmp_path / "random.mdl"
    mdl.write_text(
        "{UTF-8}\nx = 3 * k + RANDOM UNIFORM(0, 0, 1)\n\t~\t~\t|\nk = 2\n\t~\t~\t|\n"
        "FINAL TIME = 3\n\t~\t~\t|\nINITIAL TIME = 0\n\t~\t~\t|\n"
        "SAVEPER = 1\n\t~\t~\t|\nTIME STEP = 1\n\t~\t~\t|\n")
    with pytest.warns(UserWarning, match="fast engine cannot run random.mdl: .*RANDOM"):
        sim = prepare(mdl)
    assert sim.engine == "pysd" and "RANDOM" in sim.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no second decision, no second warning
        ds = run_many(sim, pd.DataFrame({"K": [1.0, 5.0]}))
    np.testing.assert_allclose(ds["x"].values, [[3.0] * 4, [15.0] * 4])
    assert ds.attrs["engine"] == "pysd" and "RANDOM" in ds.attrs["engine_note"]
    with pytest.raises(SdInputError, match="cannot run random.mdl.*--engine pysd"):
        prepare(mdl, "fast")


def test_bad_samples_are_refused(teacup):
    with pytest.raises(SdInputError, match="Did you mean 'Room Temperature'"):
        run_many(teacup, pd.DataFrame({"Room Temprature": [1.0]}))
    with pytest.raises(SdInputError, match="is a stock"):
        run_many(teacup, pd.DataFrame({"Teacup Temperature": [1.0]}))
    with pytest.raises(SdInputError, match="no rows"):
        run_many(teacup, pd.DataFrame({"Room Temperature": []}))


def test_a_variable_held_on_a_path_per_run(teacup):
    """run_many(forced=...): each run holds a variable on its own path (a mediator held
    on its reference path). Holding the stock on the path it had reproduces the run to
    the interpolation between saved times (below 1e-9 here: SAVEPER = TIME STEP);
    a path that differs changes what depends on it, the same on both engines (rtol 1e-9)."""
    rows = pd.DataFrame({"Characteristic Time": [5.0, 9.0]})
    base = run_many(teacup, rows, variables=["Teacup Temperature", "Heat Loss to Room"])
    t, y = base["time"].values, base["Teacup Temperature"].values
    same = run_many(teacup, rows, variables=["Heat Loss to Room"],
                    forced={"Teacup Temperature": (t, y)})
    np.testing.assert_allclose(same["Heat Loss to Room"].values,
                               base["Heat Loss to Room"].values, rtol=1e-9)
    hot = {"Teacup Temperature": (t, np.vstack([np.full(len(t), 150.0), 120.0 - t]))}
    out = {e: run_many(teacup, rows, variables=["Heat Loss to Room", "Teacup Temperature"],
                       forced=hot, engine=e) for e in ("fast", "pysd")}
    np.testing.assert_allclose(out["fast"]["Teacup Temperature"].values, hot[
        "Teacup Temperature"][1], rtol=1e-12)
    np.testing.assert_allclose(out["fast"]["Heat Loss to Room"].values[0], (150 - 70) / 5.0)
    for v in ("Heat Loss to Room", "Teacup Temperature"):
        np.testing.assert_allclose(out["fast"][v].values, out["pysd"][v].values, rtol=1e-9)
    with pytest.raises(SdInputError, match=r"forced 'Teacup Temperature': expected .* shape "
                                           r"\(2, \d+\), got \(1, \d+\)"):
        run_many(teacup, rows, forced={"Teacup Temperature": (t, y[:1])})
    with pytest.raises(SdInputError, match="Did you mean 'Teacup Temperature'"):
        run_many(teacup, rows, forced={"Teacup Temprature": (t, y)})


def _forked_batch(sim, rows, queue):
    queue.put(float(run_many(sim, rows, variables=["Teacup Temperature"])[
        "Teacup Temperature"].values.sum()))


def test_a_forked_process_runs_batches_after_its_parent_did(teacup, monkeypatch):
    """A child forked (multiprocessing's default on Linux) after the parent ran a
    batch split over threads inherits the engine's thread pool without its threads;
    it used to wait forever on it. Timeout 120 s: the batch itself takes a second."""
    import multiprocessing

    monkeypatch.setenv("SD_THREADS", "2")
    sim = prepare(teacup)
    rows = pd.DataFrame({"Characteristic Time": np.linspace(5, 15, 600)})
    here = float(run_many(sim, rows, variables=["Teacup Temperature"])[
        "Teacup Temperature"].values.sum())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forked_batch, args=(sim, rows, queue))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == here


def test_a_pysd_failure_points_to_the_fast_engine_only_where_it_runs(tmp_path):
    """PySD's failure message used to send users to --engine fast even for models the fast
    engine refuses (RANDOM functions): the advice now depends on the engine's own answer."""
    from sd.simulation.pysd_backend import _fast_alternative

    assert "--engine fast" in _fast_alternative(load(TEACUP))
    noisy = tmp_path / "noisy.mdl"
    noisy.write_text(TEACUP.read_text(encoding="utf-8").replace(
        "Room Temperature=\n\t70", "Room Temperature=\n\t70 + RANDOM NORMAL(-1, 1, 0, 1, 5)", 1),
        encoding="utf-8")
    advice = _fast_alternative(load(noisy))
    assert "cannot run it either" in advice and "RANDOM NORMAL" in advice
