"""Many PySD runs in worker processes give exactly the serial loop's results.

Every PySD run starts from a fresh model object, whichever process runs it,
so the parallel path must reproduce the serial one bit for bit (no
tolerance): same values, same order, the same failed runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sd.errors import SdRuntimeError
from sd.model import load
from sd.scenarios import Scenario
from sd.simulation import pool, run_many

ROOT = Path(__file__).resolve().parents[1]
JUAREZ = ROOT / "models" / "juarez_brick_kilns.mdl"
KEEP = ["Propane Share", "Cooperation"]


@pytest.fixture(scope="module")
def juarez():
    return load(JUAREZ)


def _scenarios(n):
    return [Scenario(name=f"s{i}", constants={"Fuel Shock Size": 0.1 * i,
                                               "Liberalisation Year": 1991 + 0.5 * i})
            for i in range(n)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        if isinstance(x, Exception):
            assert str(x) == str(y)
            continue
        assert list(x.data_vars) == list(y.data_vars)
        np.testing.assert_array_equal(x["time"].values, y["time"].values)
        for v in x.data_vars:
            np.testing.assert_array_equal(x[v].values, y[v].values)


def test_parallel_equals_serial(juarez):
    scenarios = _scenarios(6)
    serial = pool.run_scenarios(juarez, scenarios, KEEP, workers=1)
    parallel = pool.run_scenarios(juarez, scenarios, KEEP, workers=2)
    _assert_same(serial, parallel)
    # the scenarios really differ, so order and isolation are checked
    assert not np.array_equal(serial[1]["Propane Share"].values,
                              serial[5]["Propane Share"].values)


def test_spawned_workers_rebuild_the_snapshot(juarez, monkeypatch):
    """Where fork is not used, workers rebuild the model from the snapshot's
    bytes (not the file as it is now) and give the same numbers."""
    monkeypatch.setattr(pool, "_start_method", lambda: "spawn")
    scenarios = _scenarios(3)
    _assert_same(pool.run_scenarios(juarez, scenarios, KEEP, workers=1),
                 pool.run_scenarios(juarez, scenarios, KEEP, workers=2))


def test_failed_runs_in_workers_are_reported_in_place(tmp_path):
    mdl = tmp_path / "div.mdl"
    mdl.write_text(
        "{UTF-8}\nk = 1\n\t~\t~\t|\nx = 1 / (k - Time)\n\t~\t~\t|\n"
        "FINAL TIME = 3\n\t~\t~\t|\nINITIAL TIME = 0\n\t~\t~\t|\n"
        "SAVEPER = 1\n\t~\t~\t|\nTIME STEP = 1\n\t~\t~\t|\n")
    model = load(mdl)
    scenarios = [Scenario(name=f"k{k}", constants={"k": k}) for k in (0.5, 2.0, 7.5, 3.0)]
    serial = pool.run_scenarios(model, scenarios, workers=1)
    parallel = pool.run_scenarios(model, scenarios, workers=2)
    _assert_same(serial, parallel)
    assert isinstance(parallel[1], SdRuntimeError) and isinstance(parallel[3], SdRuntimeError)
    assert "'x'" in str(parallel[1])


def test_run_many_on_pysd_uses_the_pool(juarez, monkeypatch):
    """run_many's PySD path goes through the pool (forced here: start-up
    free) and returns what one process returns."""
    samples = pd.DataFrame({"Fuel Shock Size": [0.0, 0.2, 0.4, 0.6]},
                           index=pd.Index(list("abcd"), name="run"))
    monkeypatch.setenv("SD_WORKERS", "1")
    one = run_many(juarez, samples, variables=KEEP, engine="pysd")
    used = []
    real = pool._parallel
    monkeypatch.setattr(pool, "_parallel", lambda *a: used.append(a[3]) or real(*a))
    monkeypatch.setattr(pool, "START_COST", {k: 0.0 for k in pool.START_COST})
    monkeypatch.setenv("SD_WORKERS", "2")
    two = run_many(juarez, samples, variables=KEEP, engine="pysd")
    assert used == [2]
    assert list(two["run"].values) == list("abcd")
    for v in KEEP:
        np.testing.assert_array_equal(one[v].values, two[v].values)


def test_small_batches_stay_serial():
    assert pool._workers(3, 0.01, None) == 1         # 30 ms of work: not worth a process
    assert pool._workers(1000, 0.1, None) == min(pool.cores(), 1000)
    assert pool._workers(5, 0.1, 1) == 1
