"""Many isolated PySD runs spread over the cores (models the fast engine refuses).

:func:`run_scenarios` is the PySD half of ``run_many``: one fresh PySD model
per run (:func:`sd.simulation.pysd_backend.run`), in this process or in a
pool of worker processes, each of which holds the model (the snapshot read
by :func:`sd.model.load`) and runs its share of the scenarios. The results
are the ones the serial loop gives, in the same order: every run starts from
a fresh model object whichever process runs it.

The first run is made here and timed; a pool is started only when the rest
would take clearly longer in one process than starting the workers costs
(small batches, e.g. an optimiser's steps, stay serial).
"""
from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from ..errors import SdInputError, SdRuntimeError
from ..model import Model
from ..scenarios import Scenario
from . import pysd_backend

#: Seconds it takes to start a worker that can run the model: forked workers
#: inherit it (measured ~0.05 s); spawned ones import sd and PySD and load
#: the translation again (measured ~3 s on the Juarez model, 2-core VM).
START_COST = {"fork": 0.3, "forkserver": 4.0, "spawn": 4.0}


def run_scenarios(model: Model, scenarios: Sequence[Scenario], variables=None, *,
                  workers: int | None = None) -> list:
    """Run every scenario once with PySD, isolated, on up to ``workers`` processes.

    Parameters
    ----------
    model : Model
    scenarios : sequence of Scenario
        Names already checked (Vensim names).
    variables : sequence of str, optional
        Vensim names to keep (default: every variable).
    workers : int, optional
        Processes to use; default: the cores available (``SD_WORKERS``
        overrides), fewer when the batch is too small to pay for them.

    Returns
    -------
    list
        One entry per scenario, in order: the run's ``xarray.Dataset``, or
        the :class:`SdRuntimeError` that run raised (an arithmetic error).

    Raises
    ------
    SdInputError
        PySD refused a scenario's overrides (the first such, as the serial
        loop would).
    """
    scenarios = list(scenarios)
    if not scenarios:
        return []
    start = time.perf_counter()
    results = [_attempt(model, scenarios[0], variables)]
    per_run = time.perf_counter() - start
    rest = scenarios[1:]
    k = _workers(len(rest), per_run, workers)
    if k <= 1:
        results += [_attempt(model, s, variables) for s in rest]
    else:
        results += _parallel(model, rest, variables, k)
    for r in results:
        if isinstance(r, SdInputError):
            raise r
    return results


def _attempt(model: Model, scenario: Scenario, variables):
    try:
        return pysd_backend.run(model, scenario, variables=variables)
    except (SdRuntimeError, SdInputError) as exc:
        return exc


def cores() -> int:
    """Processes worth running at once: ``SD_WORKERS`` or the usable cores."""
    env = os.environ.get("SD_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise SdInputError(f"SD_WORKERS={env!r}: expected a whole number of "
                               "processes.") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_method() -> str:
    """``fork`` where it is safe (a single-threaded process on a platform
    that has it): workers inherit the loaded model at no cost; otherwise a
    fresh interpreter per worker."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _workers(n: int, per_run: float, requested: int | None) -> int:
    """How many processes the remaining ``n`` runs are worth."""
    k = min(n, requested if requested is not None else cores())
    if k <= 1:
        return 1
    if requested is not None:
        return k
    serial = n * per_run
    cost = START_COST[_start_method()]
    # parallel time ~ cost + serial / k: worth it when it saves a clear margin
    while k > 1 and cost + serial / k > 0.8 * serial:
        k -= 1
    return k


def _parallel(model: Model, scenarios: list, variables, k: int) -> list:
    method = _start_method()
    # a forked worker inherits the model object; a spawned one rebuilds it
    # from the snapshot's bytes (and checks its external files are unchanged)
    payload = model if method == "fork" else (model.source, model.key, model.data_files)
    chunk = max(1, math.ceil(len(scenarios) / (4 * k)))
    with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context(method),
                             initializer=_init, initargs=(payload,)) as ex:
        return list(ex.map(_work, scenarios, [variables] * len(scenarios), chunksize=chunk))


#: The model of this worker process (set once by :func:`_init`).
_MODEL: Model | None = None


def _init(payload) -> None:
    global _MODEL
    if isinstance(payload, Model):
        _MODEL = payload
        return
    from ..model.model import from_source

    source, key, data_files = payload
    model = from_source(source, data_files=data_files)
    if model.key != key:
        raise SdInputError(f"{source.path.name}: an external data file changed while the "
                           "runs were starting; load the model again.")
    _MODEL = model


def _work(scenario: Scenario, variables):
    return _attempt(_MODEL, scenario, variables)
