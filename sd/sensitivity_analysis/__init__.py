"""5b SENSITIVITY: Monte Carlo ensembles, Sobol and Morris indices of a spec.

:func:`sensitivity` reads as the pipeline it runs::

    spec, model = load_spec(path)                 # names checked up front
    ensemble    = Monte Carlo design -> chunks -> ensemble + metrics
    sobol       = Sobol design -> chunks -> metrics -> indices
    morris      = Morris design -> chunks -> metrics -> indices

It writes nothing but the ensemble file it is asked to stream to; the report
(plots, tables, ``report.md``) is :mod:`sd.report.sensitivity`.
"""
from __future__ import annotations

import tempfile
import time as _time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import provenance
from .._common import whole
from ..outcomes import metrics as metrics_mod
from ..simulation import failed_runs, prepare, run_many
from ..simulation.chunks import (Job, dask_client, ensemble_failures, iter_chunks,
                                 open_ensemble, write_ensemble)
from . import distributions as dist_mod
from .methods import (monte_carlo_design, morris_design, morris_indices, sobol_design,
                      sobol_indices)
from .result import SensitivityResult
from .spec import SensitivitySpec, base_scenario, load_spec

__all__ = ["sensitivity", "SensitivityResult", "SensitivitySpec", "load_spec"]


def sensitivity(spec_path: str | Path, *, samples: int | None = None, dask: str | None = None,
                progress: bool = True, store: str | Path | None = None) -> SensitivityResult:
    """Run the Monte Carlo ensemble, Sobol and Morris analyses of a spec.

    Parameters
    ----------
    spec_path : str or Path
        Sensitivity spec (TOML).
    samples : int, optional
        Monte Carlo size, overriding ``[sampling] n``.
    dask : str, optional
        ``tcp://host:8786`` (an existing scheduler) or ``"local"`` (a 2-worker
        LocalCluster); default: run in this process.
    progress : bool
        tqdm progress bars on stderr.
    store : str or Path, optional
        NetCDF file to stream the Monte Carlo trajectories to (written
        atomically: no file unless the ensemble completes); default: keep
        them in memory (``result.ensemble`` is then a Dataset).

    Returns
    -------
    SensitivityResult
    """
    started = _time.perf_counter()
    spec, model = load_spec(spec_path)
    if samples is not None:
        spec = replace(spec, n=whole(samples, "--samples", 1))
    sim = prepare(model)
    base = base_scenario(spec, model)
    # Connect first: an unreachable scheduler must not leave even an empty file.
    with dask_client(dask) as client:
        runner = _Runner(spec, sim, base, client, progress)
        design, table, ensemble = runner.ensemble(store)
        sobol = runner.indices("sobol", sobol_design(spec) if spec.sobol_n else None,
                               lambda x, t: sobol_indices(spec, t))
        morris = runner.indices("morris", morris_design(spec) if spec.morris_trajectories else None,
                                lambda x, t: morris_indices(spec, x, t))
    seconds = _time.perf_counter() - started
    record = provenance.record(model, spec=str(spec.path), spec_sha256=spec.sha256,
                               seed=spec.seed, method=spec.method, n=spec.n, scenario=base.name,
                               chunk_size=spec.chunk_size, dask=dask, seconds=round(seconds, 2),
                               **sim.provenance())
    return SensitivityResult(spec, base, design, table, sobol, morris, ensemble,
                             failures=runner.failures, units=_units(spec, model),
                             notes=tuple(runner.notes), seconds=seconds, provenance=record)


def _units(spec: SensitivitySpec, model) -> dict[str, str]:
    """Metric name -> units: the variable's, or the time unit for a time_of_* metric."""
    time_units = model.variables["INITIAL TIME"].units if "INITIAL TIME" in model.variables else ""
    return {m.name: time_units if m.kind.startswith("time_of") else model.variables[m.variable].units
            for m in spec.metrics}


class _Runner:
    """Runs the designs of one spec in chunks (here or on Dask) and collects metrics.

    A failed run is recorded, never used: its metrics are NaN (left out of
    the Monte Carlo statistics); indices need every run of their design, so a
    design with a failed run gives no indices and a note saying why.
    """

    def __init__(self, spec, sim, base, client, progress):
        self.spec, self.sim, self.base = spec, sim, base
        self.client, self.progress = client, progress
        self.variables = tuple(dict.fromkeys(
            [m.variable for m in spec.metrics] + list(spec.variables) + list(spec.bands)))
        self.failures: dict[str, dict] = {}
        self.notes: list[str] = []

    def job(self, values: pd.DataFrame) -> Job:
        return Job(self.sim, values, self.variables, self.base, self.spec.chunk_size)

    def ensemble(self, store):
        """(design, metrics table, stored ensemble) of the Monte Carlo runs."""
        design = monte_carlo_design(self.spec)
        job = self.job(design)
        parts = []
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(store) if store is not None else Path(scratch) / "ensemble.nc"
            write_ensemble(job, path, store_variables=self.spec.variables,
                           store_times=self._stored_times(job), parameters=self.spec.names,
                           client=self.client, progress=self.progress, dtype=self.spec.dtype,
                           label="monte carlo",
                           on_chunk=lambda a, ds: parts.append(self._metrics(ds)),
                           attrs={"spec": str(self.spec.path), "spec_sha256": self.spec.sha256,
                                  "model_sha256": self.sim.model.sha256, "seed": self.spec.seed,
                                  "method": self.spec.method, "scenario": self.base.name})
            with open_ensemble(path) as ds:
                self._record("monte carlo", ensemble_failures(ds))
                ensemble = path if store is not None else ds.load()
        return design, self._frame(parts), ensemble

    def indices(self, name: str, unit: np.ndarray | None, analyse):
        """``analyse(unit design, metrics)``, or None (not asked, or a run failed)."""
        if unit is None:
            return None
        values = dist_mod.to_values(unit, list(self.spec.parameters))
        parts, failed = [], {}
        for _, ds in iter_chunks(self.job(values), client=self.client, progress=self.progress,
                                 label=name):
            parts.append(self._metrics(ds))
            failed.update(failed_runs(ds))
        self._record(name, failed)
        if failed:
            self.notes.append(f"{name} indices not computed: {len(failed)} of {len(values)} runs "
                              f"of its design failed (first: {next(iter(failed.values()))}); "
                              "narrow the distributions or fix the model's extreme conditions.")
            return None
        return analyse(unit, self._frame(parts))

    def _record(self, name: str, failed: dict) -> None:
        if failed:
            self.failures[name] = dict(failed)
            if name == "monte carlo":
                self.notes.append(f"{len(failed)} of {self.spec.n} Monte Carlo runs failed and are "
                                  f"excluded (first: {next(iter(failed.values()))}).")

    def _metrics(self, ds) -> pd.DataFrame:
        return metrics_mod.compute(ds, list(self.spec.metrics)).to_dataframe()

    def _frame(self, parts: list[pd.DataFrame]) -> pd.DataFrame:
        table = pd.concat(parts)
        table.index.name = "run"
        return table[[m.name for m in self.spec.metrics]]

    def _stored_times(self, job: Job) -> np.ndarray:
        # One probe run tells the saved times of this model and scenario.
        probe = run_many(self.sim, job.chunk(0, 1), scenario=self.base,
                         variables=job.variables[:1], on_failure="record")
        times = probe["time"].values
        if self.spec.every is None:
            return times
        keep = np.arange(times[0], times[-1] + self.spec.every / 2, self.spec.every)
        return np.unique(times[np.abs(times[:, None] - keep[None, :]).argmin(axis=0)])
