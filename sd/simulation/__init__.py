"""3 RUN: the only place that chooses an engine and runs a model.

- :func:`prepare` -- load a model if needed and decide its engine once (:class:`Simulator`)
- :func:`run` -- one run -> ``Dataset(time)`` with units and provenance
- :func:`run_many` -- many runs -> ``Dataset(run, time)``; failed runs raise or are recorded
- :func:`read_at` -- the saved times that read a run at given (e.g. data) times exactly
- :mod:`.chunks` -- ensembles in chunks, in this process or on Dask, streamed to NetCDF
"""
from .engines import ENGINES, Simulator, prepare
from .simulate import failed_runs, first_failure, read_at, run, run_many

__all__ = ["ENGINES", "Simulator", "prepare", "run", "run_many", "failed_runs", "first_failure",
           "read_at"]
