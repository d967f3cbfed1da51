"""Chunks on a real Dask cluster (LocalCluster, 2 worker processes) give the
same numbers as in one process; an unreachable scheduler is bad input."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sd.simulation.chunks import Job, dask_client, open_ensemble, write_ensemble  # noqa: E402
from sd.errors import SdInputError  # noqa: E402
from sd.simulation import prepare  # noqa: E402

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


def _write(job, path, client):
    return write_ensemble(job, path, store_variables=["Teacup Temperature"],
                          store_times=np.arange(0, 31, 2.0),
                          parameters=list(job.samples.columns), client=client, progress=False)


def test_dask_local_cluster_gives_identical_numbers(tmp_path):
    model = prepare(TEACUP)
    rng = np.random.default_rng(5)
    samples = pd.DataFrame({"Characteristic Time": rng.uniform(5, 15, 40),
                            "Room Temperature": rng.uniform(60, 80, 40)})
    local = _write(Job(model, samples, ("Teacup Temperature",), chunk_size=50),
                   tmp_path / "local.nc", None)
    # Small chunks on 2 workers: chunks finish out of order and must be
    # written back in chunk order.
    with dask_client("local") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = _write(Job(model, samples, ("Teacup Temperature",), chunk_size=7),
                        tmp_path / "dask.nc", client)
    with open_ensemble(local) as a, open_ensemble(remote) as b:
        # Tight: the same design and the same engine, so bit-identical.
        assert a.load().identical(b.load())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_bad_input():
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.perf_counter()
    with pytest.raises(SdInputError, match=f"cannot reach the Dask scheduler at {address}"):
        with dask_client(address):
            pass
    assert time.perf_counter() - started < 30


def test_cli_unreachable_scheduler_exits_2_and_leaves_nothing(tmp_path):
    from test_sensitivity import write_spec

    spec = write_spec(tmp_path, n=5)
    out = tmp_path / "out"
    address = f"tcp://127.0.0.1:{_free_port()}"
    proc = subprocess.run([sys.executable, "-m", "sd", "sensitivity", str(spec), "--out", str(out),
                           "--dask", address], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach the Dask scheduler at {address}" in proc.stderr
    assert not out.exists()
