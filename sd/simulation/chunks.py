"""Chunked ensembles, in this process or on a Dask cluster, and the NetCDF
file the chunks are appended to.

The whole sample design is fixed before the first run; a chunk is only a
slice of its rows. Chunks come back in chunk order whatever order they finish
in, so the same design gives the same file whatever the chunk size and
wherever the chunks ran. Memory is bounded by the chunks in flight, not by the
number of runs: 10^6 runs stream through a few chunks at a time.

Every chunk goes through :func:`sd.simulation.run_many` with the engine the
client decided (:class:`~sd.simulation.engines.Simulator`); a run that fails
is recorded (its values NaN, the reason in the file's ``sd_failed_runs``
attribute), never used.
"""
from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._common import atomic_path, netcdf_names, vensim_names
from ..errors import SdInputError
from ..scenarios import Scenario
from .engines import Simulator, prepare
from .simulate import failed_runs, run_many

#: Seconds to wait for a Dask scheduler before reporting it unreachable.
CONNECT_TIMEOUT = 5


# -- one chunk ---------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """A model as a Dask task carries it: the snapshot (file name and bytes), its
    data files, its content key, and the engine the client decided on (a worker
    does not decide again).

    Workers need not see the client's model file: the bytes travel with the
    task, and each worker translates them once (content-hash cache). External
    files a model reads (GET XLS/DIRECT) are read where the client read them,
    and must be the same there (the content key is checked).
    """

    name: str
    sha256: str
    source: object = field(repr=False)
    data_files: tuple = field(repr=False)
    key: str
    engine: str

    @classmethod
    def of(cls, sim: Simulator) -> "ModelRef":
        model = sim.model
        # the snapshot read by sd.load, not the file as it is now
        return cls(name=model.path.name, sha256=model.sha256, source=model.source,
                   data_files=model.data_files, key=model.key, engine=sim.engine)


@functools.lru_cache(maxsize=4)
def _worker_simulator(ref: ModelRef) -> Simulator:
    """The shipped snapshot, loaded and prepared once per worker."""
    from ..model.model import from_source

    model = from_source(ref.source, data_files=ref.data_files)
    if model.key != ref.key:
        raise SdInputError(f"{ref.name}: an external data file differs on this worker from the "
                           "one the client read; give the workers the same files.")
    return prepare(model, ref.engine)


def run_chunk(sim: Simulator, samples: pd.DataFrame, variables, scenario) -> xr.Dataset:
    """One chunk of runs; failed runs recorded, coordinates ``run`` and ``time`` only
    (the sampled values are in the design; the file stores them once)."""
    ds = run_many(sim, samples, scenario=scenario, variables=list(variables),
                  on_failure="record")
    return ds.reset_coords(drop=True)


def _indexed_chunk(index, ref, samples, variables, scenario):
    """The Dask task: chunk ``index`` on a worker."""
    return index, run_chunk(_worker_simulator(ref), samples, variables, scenario)


# -- many chunks ---------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """What every chunk of an ensemble shares.

    Attributes
    ----------
    simulator : Simulator
        The model and the engine decided for it.
    samples : pandas.DataFrame
        The whole design: one row per run, columns = Vensim constant names.
    variables : tuple of str
        Vensim names each run returns.
    scenario : Scenario
        Applied to every run before the row's values.
    chunk_size : int
        Runs per chunk.
    """

    simulator: Simulator
    samples: pd.DataFrame
    variables: tuple[str, ...]
    scenario: Scenario = Scenario()
    chunk_size: int = 1000

    def bounds(self) -> list[tuple[int, int]]:
        n, size = len(self.samples), max(1, int(self.chunk_size))
        return [(a, min(a + size, n)) for a in range(0, n, size)]

    def chunk(self, a: int, b: int) -> pd.DataFrame:
        """Rows ``a .. b - 1``, indexed by their global run number."""
        return self.samples.iloc[a:b].set_axis(pd.RangeIndex(a, b, name="run"))


def iter_chunks(job: Job, *, client=None, progress: bool = True, label: str = "runs",
                bounds: Sequence[tuple[int, int]] | None = None
                ) -> Iterator[tuple[int, xr.Dataset]]:
    """Yield ``(first run index, chunk Dataset)`` in chunk order.

    Parameters
    ----------
    job : Job
    client : distributed.Client, optional
        Run the chunks on this Dask cluster; default: in this process.
    progress : bool
        Show a tqdm bar on stderr (rate over the whole run, so the time left
        is an average-rate estimate, not one chunk's luck).
    label : str
        Name of the bar.
    bounds : sequence of (int, int), optional
        Run only these chunks (``(first, last + 1)`` of :meth:`Job.bounds`);
        default: all.

    Yields
    ------
    (int, xarray.Dataset)
        The chunk's ``run`` coordinate is global (``start .. start + n - 1``);
        :func:`sd.simulation.failed_runs` lists its failed runs.
    """
    from tqdm.auto import tqdm

    bounds = job.bounds() if bounds is None else list(bounds)
    bar = tqdm(total=sum(b - a for a, b in bounds), unit="run", desc=label, smoothing=0,
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    source = _local(job, bounds) if client is None else _on_dask(job, bounds, client)
    try:
        for a, ds in source:
            bar.update(ds.sizes["run"])
            yield a, ds
    finally:
        bar.close()


def _local(job: Job, bounds):
    for a, b in bounds:
        yield a, run_chunk(job.simulator, job.chunk(a, b), job.variables, job.scenario)


def _on_dask(job: Job, bounds, client):
    """Submit a bounded window of chunks; hand them back in chunk order."""
    from distributed import as_completed

    if not bounds:
        return
    ref = client.scatter(ModelRef.of(job.simulator), broadcast=True)
    # Enough chunks in flight to keep every worker busy while one result is
    # written, few enough that finished-but-unwritten chunks stay small.
    window = 2 * max(1, len(client.scheduler_info().get("workers", {}))) + 1
    pending, ready, next_out = iter(enumerate(bounds)), {}, 0
    futures = as_completed()
    for _ in range(window):
        _submit_next(client, futures, pending, ref, job)
    for future in futures:
        index, ds = future.result()
        ready[index] = ds
        _submit_next(client, futures, pending, ref, job)
        while next_out in ready:
            yield bounds[next_out][0], ready.pop(next_out)
            next_out += 1


def _submit_next(client, futures, pending, ref, job) -> None:
    item = next(pending, None)
    if item is None:
        return
    index, (a, b) = item
    futures.add(client.submit(_indexed_chunk, index, ref, job.chunk(a, b), job.variables,
                              job.scenario, pure=False))


@contextmanager
def dask_client(address: str | None):
    """A :class:`distributed.Client` for ``address`` (``"local"``: a new
    2-worker LocalCluster), or ``None`` when ``address`` is None.

    Raises
    ------
    SdInputError
        Nothing at ``address`` answers as a Dask scheduler within
        :data:`CONNECT_TIMEOUT` seconds (no server, a server that never
        speaks, a web server such as the dashboard), or it has no worker.
    """
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if address == "local":
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
        return
    _check_scheduler(address)
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT}s")
    except Exception as exc:  # noqa: BLE001 - whatever the far end did, say where
        raise _unreachable(address, f"{type(exc).__name__}: {exc}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            raise SdInputError(
                f"the Dask scheduler at {address} has no workers (none joined within "
                f"{CONNECT_TIMEOUT} s); start some with 'dask worker {address}'.") from None
        yield client
    finally:
        client.close()


def _check_scheduler(address: str) -> None:
    """Ask ``address`` who it is, with a deadline on the whole exchange.

    (``distributed.Client``'s own timeout covers opening the connection but
    not the handshake after it, so a server that accepts and never speaks
    would make it wait for minutes.) Runs in a thread of its own, so it works
    whether or not the caller is inside an event loop.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect

    async def identity():
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def bounded():
        return await asyncio.wait_for(identity(), CONNECT_TIMEOUT)

    try:
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(asyncio.run, bounded()).result()
    except (TimeoutError, asyncio.TimeoutError):
        raise _unreachable(address, f"no answer within {CONNECT_TIMEOUT} s") from None
    except Exception as exc:  # noqa: BLE001 - a server speaking another protocol
        raise _unreachable(address, f"{type(exc).__name__}: {exc}"[:300]) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise _unreachable(address, f"it answered as {str(reply)[:80]!r}, not as a scheduler")


def _unreachable(address: str, why: str) -> SdInputError:
    return SdInputError(
        f"--dask: cannot reach the Dask scheduler at {address} ({why}). Expected the address of "
        "a running scheduler, e.g. tcp://host:8786 (not its dashboard, usually port 8787); "
        f"start one with 'dask scheduler' and workers with 'dask worker tcp://host:8786', or "
        "use --dask local.")


# -- the NetCDF file -------------------------------------------------------------
class EnsembleWriter:
    """Append chunks of runs to a NetCDF-4 file with an unlimited ``run`` dim.

    Use as a context manager: the file is written under a temporary name and
    renamed only when the block ends without error, so an interrupted run
    leaves no file that looks finished.

    Parameters
    ----------
    path : Path
        Final file name.
    variables : mapping
        Vensim name -> attributes (units, ...) of each stored variable.
    times : array
        Stored times (a subset of the simulated ones).
    parameters : sequence of str
        Sampled parameters, stored as ``run`` coordinates.
    dtype : str
        ``float64`` (exact) or ``float32`` (half the disk).
    attrs : mapping
        Global attributes (provenance).
    """

    def __init__(self, path, variables: Mapping[str, Mapping], times, parameters,
                 dtype: str = "float64", attrs: Mapping | None = None):
        self.path = Path(path)
        self.variables = dict(variables)
        self.times = np.asarray(times, dtype=float)
        self.parameters = list(parameters)
        self.dtype = dtype
        self.attrs = dict(attrs or {})
        self.written = 0
        self.failed: dict = {}

    @classmethod
    def of(cls, sim: Simulator, path, variables: Sequence[str], times, parameters,
           dtype: str = "float64", attrs: Mapping | None = None) -> "EnsembleWriter":
        """A writer for ``variables`` of ``sim``'s model, with their units, comments
        and kinds from the model's variable table and the engine's provenance."""
        model = sim.model
        var_attrs = {v: {"units": model.variables[v].units, "comment": model.variables[v].comment,
                         "kind": model.variables[v].kind} for v in variables}
        return cls(path, var_attrs, times, parameters, dtype,
                   {**dict(attrs or {}), **sim.provenance()})

    def __enter__(self):
        import netCDF4

        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._nc = nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        nc.createDimension("run", None)
        nc.createDimension("time", len(self.times))
        nc.createVariable("time", "f8", ("time",))[:] = self.times
        nc.createVariable("run", "i8", ("run",))
        # Vensim names as NetCDF names ("/" is a path inside the file); the
        # original is kept in vensim_name and restored by open_ensemble.
        self._names = netcdf_names([*self.parameters, *self.variables])
        for name in self.parameters:
            self._create(name, "f8", ("run",)).setncattr("role", "parameter")
        rows = max(1, min(4096, 2 ** 22 // max(1, len(self.times) * 8)))
        for name, attrs in self.variables.items():
            var = self._create(name, self.dtype, ("run", "time"),
                               chunksizes=(rows, len(self.times)))
            for k, v in attrs.items():
                var.setncattr(k, str(v))
        return self

    def _create(self, name: str, dtype, dims, **kw):
        var = self._nc.createVariable(self._names[name], dtype, dims, **kw)
        if self._names[name] != name:
            var.setncattr("vensim_name", name)
        return var

    def append(self, start: int, ds: xr.Dataset, params: pd.DataFrame,
               failed: dict | None = None) -> None:
        """Write runs ``start .. start + n - 1``; chunks must come in order.

        ``failed`` (``{run: why}``) defaults to :func:`failed_runs` of ``ds``.
        """
        if start != self.written:
            raise RuntimeError(f"chunk starting at run {start} written out of order "
                               f"(expected {self.written})")
        n = ds.sizes["run"]
        nc = self._nc
        nc["run"][start:start + n] = np.arange(start, start + n)
        for name in self.parameters:
            nc[self._names[name]][start:start + n] = params[name].to_numpy(dtype=float)
        sub = ds.sel(time=self.times, method="nearest")
        for name in self.variables:
            nc[self._names[name]][start:start + n, :] = sub[name].transpose("run", "time").values
        self.failed.update(failed_runs(ds) if failed is None else failed)
        self.written += n

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._nc.setncatts({**{k: _attr(v) for k, v in self.attrs.items()},
                                    "sd_parameters": json.dumps(self.parameters),
                                    "sd_failed_runs": json.dumps(sorted(self.failed.items()))})
            self._nc.close()
        finally:
            return self._atomic.__exit__(exc_type, exc, tb)


def _attr(value):
    return value if isinstance(value, (str, int, float)) else json.dumps(value)


def open_ensemble(path) -> xr.Dataset:
    """Open an ensemble file lazily, with the sampled parameters as ``run`` coordinates.

    (Vensim names hold blanks, which the CF ``coordinates`` attribute cannot
    carry, so the file lists them in its ``sd_parameters`` attribute.)
    """
    ds = vensim_names(xr.open_dataset(path))
    names = json.loads(ds.attrs.get("sd_parameters", "[]"))
    return ds.set_coords([n for n in names if n in ds])


def ensemble_failures(ds: xr.Dataset) -> dict:
    """``{run: why}`` of the failed runs of an ensemble file (their values are NaN)."""
    return {int(k): v for k, v in json.loads(ds.attrs.get("sd_failed_runs", "[]"))}


def write_ensemble(job: Job, path, *, store_variables: Sequence[str], store_times,
                   parameters: Sequence[str], on_chunk: Callable | None = None,
                   client=None, progress: bool = True, dtype: str = "float64",
                   attrs: Mapping | None = None, label: str = "runs") -> Path:
    """Run ``job`` chunk by chunk, appending each chunk to ``path`` as it completes.

    ``on_chunk(start, ds)`` sees every full chunk (all variables and saved
    times) before it is cut down to ``store_variables`` and ``store_times``;
    metrics are computed there, so the file can stay small.
    """
    with EnsembleWriter.of(job.simulator, path, store_variables, store_times, parameters,
                           dtype, attrs) as writer:
        for start, ds in iter_chunks(job, client=client, progress=progress, label=label):
            if on_chunk is not None:
                on_chunk(start, ds)
            writer.append(start, ds, job.chunk(start, start + ds.sizes["run"]))
    return Path(path)
