"""5b SENSITIVITY: Monte Carlo ensembles, Sobol and Morris indices of a spec.

:func:`sensitivity` reads as the pipeline it runs::

    spec, model = load_spec(path)                 # names checked up front
    ensemble    = Monte Carlo design -> chunks -> ensemble + metrics
    sobol       = Sobol design -> chunks -> metrics -> indices
    morris      = Morris design -> chunks -> metrics -> indices

It writes nothing but the ensemble file it is asked to stream to and, when
given a checkpoint folder, each finished chunk (:mod:`sd.simulation.chunk_store`),
so that a killed job rerun with the same folder reuses them; the report
(plots, tables, ``report.md``) is :mod:`sd.report.sensitivity`.
"""
from __future__ import annotations

import tempfile
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import provenance
from ..errors import SdInputError
from ..outcomes import metrics as metrics_mod
from ..simulation import failed_runs, prepare, run_many
from ..simulation.chunk_store import Chunk, ChunkStore, resumable
from ..simulation.chunks import EnsembleWriter, Job, dask_client, ensemble_failures, open_ensemble
from . import distributions as dist_mod
from .methods import (monte_carlo_design, morris_design, morris_indices, sobol_design,
                      sobol_indices)
from .result import SensitivityResult
from .spec import SensitivitySpec, base_scenario, load_spec

__all__ = ["sensitivity", "SensitivityResult", "SensitivitySpec", "load_spec"]


def sensitivity(spec_path: str | Path, *, samples: int | None = None, dask: str | None = None,
                progress: bool = True, store: str | Path | None = None,
                checkpoint: str | Path | None = None) -> SensitivityResult:
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
    checkpoint : str or Path, optional
        Folder keeping every finished chunk; chunks already there that belong
        to this job (same spec, model, base scenario, seed, engine, versions;
        same design rows) are reused instead of run again, and the provenance
        says how many (``resumed``).

    Returns
    -------
    SensitivityResult
    """
    started = _time.perf_counter()
    spec, model = load_spec(spec_path, samples=samples)
    sim = prepare(model)
    base = base_scenario(spec, model)
    # Connect first: an unreachable scheduler must not leave even an empty file.
    with dask_client(dask) as client:
        runner = _Runner(spec, sim, base, client, progress)
        runner.open_checkpoint(checkpoint)
        design, table, ensemble = runner.ensemble(store)
        sobol = runner.indices("sobol", sobol_design(spec) if spec.sobol_n else None,
                               lambda x, t: sobol_indices(spec, t))
        morris = runner.indices("morris", morris_design(spec) if spec.morris_trajectories else None,
                                lambda x, t: morris_indices(spec, x, t))
    seconds = _time.perf_counter() - started
    record = provenance.record(model, spec=str(spec.path), spec_sha256=spec.sha256,
                               seed=spec.seed, method=spec.method, n=spec.n, scenario=base.name,
                               chunk_size=spec.chunk_size, dask=dask, seconds=round(seconds, 2),
                               **runner.resumed(), **sim.provenance())
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
        self.store: ChunkStore | None = None
        self.design = monte_carlo_design(spec)  # fixed before any run
        self._times = None

    def job(self, values: pd.DataFrame) -> Job:
        return Job(self.sim, values, self.variables, self.base, self.spec.chunk_size)

    @property
    def times(self) -> np.ndarray:
        """The times stored in the ensemble file (one probe run tells them)."""
        if self._times is None:
            self._times = self._stored_times()
        return self._times

    def open_checkpoint(self, folder) -> None:
        """Keep finished chunks in ``folder``, reusing those of this same job."""
        if folder is None:
            return
        spec, sim = self.spec, self.sim
        key = {"spec_sha256": spec.sha256, "model_sha256": sim.model.sha256, "seed": spec.seed,
               "n": spec.n, "method": spec.method, "chunk_size": spec.chunk_size,
               "scenario": [self.base.name, dict(self.base.constants),
                            {k: list(map(list, v)) for k, v in self.base.lookups.items()},
                            dict(self.base.time)],
               "variables": list(self.variables), "stored": list(spec.variables),
               "times": self.times, "metrics": [repr(m) for m in spec.metrics],
               "versions": provenance.versions(), **sim.provenance()}
        self.store = ChunkStore(folder, key)

    def resumed(self) -> dict:
        """The provenance entry of a resumed job (none when nothing was reused)."""
        store = self.store
        if store is None or not store.reused_chunks:
            return {}
        return {"resumed": {"chunks": store.reused_chunks, "runs": store.reused_runs,
                            "discarded_chunks": store.discarded}}

    def chunks(self, label: str, job: Job, stored: bool = False):
        """Every chunk of ``job`` reduced to its metrics (and, with ``stored``,
        its stored trajectories), reused from the checkpoint where possible."""
        names = list(self.spec.variables) if stored else []

        def reduce(start: int, ds) -> Chunk:
            kept = ds[names].sel(time=self.times, method="nearest") if names else None
            return Chunk(start, self._metrics(ds), kept, failed_runs(ds))

        return resumable(job, label, reduce, self.store, client=self.client,
                         progress=self.progress)

    def ensemble(self, store):
        """(design, metrics table, stored ensemble) of the Monte Carlo runs."""
        design = self.design
        job = self.job(design)
        parts = []
        attrs = {"spec": str(self.spec.path), "spec_sha256": self.spec.sha256,
                 "model_sha256": self.sim.model.sha256, "seed": self.spec.seed,
                 "method": self.spec.method, "scenario": self.base.name}
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(store) if store is not None else Path(scratch) / "ensemble.nc"
            with EnsembleWriter.of(self.sim, path, self.spec.variables, self.times,
                                   self.spec.names, self.spec.dtype, attrs) as writer:
                for chunk in self.chunks("monte carlo", job, stored=True):
                    parts.append(chunk.metrics)
                    writer.append(chunk.start, chunk.stored,
                                  job.chunk(chunk.start, chunk.start + len(chunk.metrics)),
                                  chunk.failed)
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
        for chunk in self.chunks(name, self.job(values)):
            parts.append(chunk.metrics)
            failed.update(chunk.failed)
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

    def _stored_times(self) -> np.ndarray:
        # One probe run tells the saved times of this model and scenario, and
        # shows a metric window outside them before the ensemble starts.
        job = self.job(self.design)
        probe = run_many(self.sim, job.chunk(0, 1), scenario=self.base,
                         variables=list(job.variables), on_failure="record")
        try:
            self._metrics(probe)
        except SdInputError as exc:
            raise SdInputError(f"{self.spec.path} [metrics]: {exc}") from None
        times = probe["time"].values
        every = self.spec.every
        if every is None or len(times) < 2 or every <= np.diff(times).min():
            return times
        keep = np.arange(times[0], times[-1] + every / 2, every)
        return np.unique(times[np.abs(times[:, None] - keep[None, :]).argmin(axis=0)])
