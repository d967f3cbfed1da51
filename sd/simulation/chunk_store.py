"""Finished chunks of an ensemble kept on disk, so a killed job resumes where it stopped.

A chunk is reduced as soon as it is finished (:class:`Chunk`: the metrics of
its runs, the trajectories the job stores, its failed runs) and written as
its own small NetCDF file, under a temporary name then renamed: a kill at any
moment leaves whole chunk files and at most one temporary file, never a torn
one. (One growing NetCDF/HDF5 file would not do: a kill in the middle of a
write can leave the whole file unreadable.)

Every file records the *key* of its job -- a digest of everything that decides
the numbers: spec and model hashes, base scenario, seed, engine, stored
variables and times, package versions -- and the digest of the design rows it
ran. A chunk is reused only when both match the new job's, so a chunk of
another spec, model, scenario or seed is never mixed in; one that does not
match, or cannot be read, is deleted and run again. Runs are deterministic
and a chunk's values are stored in full precision, so a resumed job gives the
same numbers as one that was never interrupted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .._common import atomic_path, safe_name


@dataclass(frozen=True)
class Chunk:
    """What a job keeps of one finished chunk.

    Attributes
    ----------
    start : int
        Global index of its first run.
    metrics : pandas.DataFrame
        One row per run (index ``run``), one column per metric.
    stored : xarray.Dataset or None
        The stored variables at the stored times, dims ``(run, time)``.
    failed : dict
        ``{run: why}`` of its failed runs.
    """

    start: int
    metrics: pd.DataFrame
    stored: xr.Dataset | None
    failed: dict


def digest(value) -> str:
    """SHA-256 of a JSON-serialisable value (keys sorted; arrays as lists)."""
    text = json.dumps(value, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


def rows_digest(rows: pd.DataFrame) -> str:
    """Digest of design rows: their index, column names and exact values."""
    h = hashlib.sha256(json.dumps([list(map(str, rows.columns)),
                                   [int(i) for i in rows.index]]).encode("utf-8"))
    h.update(np.ascontiguousarray(rows.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


class ChunkStore:
    """A folder of finished chunks, for one job key.

    Parameters
    ----------
    folder : Path
        Created if needed.
    key : mapping
        Everything that decides the job's numbers (JSON-serialisable).
    """

    def __init__(self, folder: str | Path, key: Mapping):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = digest(dict(key))
        self.reused_chunks = 0
        self.reused_runs = 0
        self.discarded = 0

    def _file(self, label: str, a: int, b: int) -> Path:
        return self.folder / f"{safe_name(label, lower=True)}-{a:012d}-{b:012d}.nc"

    def has(self, label: str, a: int, b: int, rows: str) -> bool:
        """Whether a valid chunk ``a .. b - 1`` of ``label`` for these rows is stored
        (a stored file that does not match is deleted)."""
        path = self._file(label, a, b)
        if not path.is_file():
            return False
        try:
            with xr.open_dataset(path) as ds:
                ok = ds.attrs.get("sd_key") == self.key and ds.attrs.get("sd_rows") == rows
        except Exception:  # noqa: BLE001 - any unreadable file is simply run again
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            self.discarded += 1
        return ok

    def load(self, label: str, a: int, b: int) -> Chunk:
        ds = xr.load_dataset(self._file(label, a, b))
        metrics = pd.DataFrame(ds["metrics"].values, columns=json.loads(ds.attrs["sd_metrics"]),
                               index=pd.Index(ds["run"].values, name="run"))
        stored = None
        names = json.loads(ds.attrs["sd_variables"])
        if names:
            stored = xr.Dataset({n: (("run", "time"), ds["values"].values[i])
                                 for i, n in enumerate(names)},
                                coords={"run": ds["run"].values, "time": ds["time"].values})
        failed = {k: v for k, v in json.loads(ds.attrs["sd_failed"])}
        self.reused_chunks += 1
        self.reused_runs += b - a
        return Chunk(a, metrics, stored, failed)

    def save(self, label: str, a: int, b: int, rows: str, chunk: Chunk) -> None:
        names = [] if chunk.stored is None else list(chunk.stored.data_vars)
        times = np.zeros(0) if chunk.stored is None else chunk.stored["time"].values
        values = np.stack([chunk.stored[n].transpose("run", "time").values.astype(np.float64)
                           for n in names]) if names else np.zeros((0, b - a, len(times)))
        ds = xr.Dataset(
            {"metrics": (("run", "metric"), chunk.metrics.to_numpy(dtype=np.float64)),
             "values": (("variable", "run", "time"), values)},
            coords={"run": chunk.metrics.index.to_numpy(), "time": times},
            attrs={"sd_key": self.key, "sd_rows": rows,
                   "sd_metrics": json.dumps([str(c) for c in chunk.metrics.columns]),
                   "sd_variables": json.dumps(names),
                   "sd_failed": json.dumps(sorted(chunk.failed.items()))})
        with atomic_path(self._file(label, a, b)) as tmp:
            ds.to_netcdf(tmp)


def resumable(job, label: str, reduce: Callable[[int, xr.Dataset], Chunk],
              store: ChunkStore | None, *, client=None, progress: bool = True) -> Iterator[Chunk]:
    """Every chunk of ``job`` in order, reduced: the stored ones read back, the
    others run (here or on Dask), reduced and stored as they finish."""
    from .chunks import iter_chunks

    bounds = job.bounds()
    rows = {ab: rows_digest(job.chunk(*ab)) for ab in bounds} if store is not None else {}
    done = {ab for ab in bounds if store is not None and store.has(label, *ab, rows[ab])}
    fresh = iter_chunks(job, bounds=[ab for ab in bounds if ab not in done], client=client,
                        progress=progress, label=label)
    for a, b in bounds:
        if (a, b) in done:
            yield store.load(label, a, b)
            continue
        start, ds = next(fresh)
        chunk = reduce(start, ds)
        if store is not None:
            store.save(label, a, b, rows[(a, b)], chunk)
        yield chunk
