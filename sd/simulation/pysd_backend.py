"""One run of a scenario with PySD, isolated, into an ``xarray.Dataset``.

Every run loads a fresh PySD model from the cached translation, so nothing a
run changes (parameters, ``final_time``, ``time_step``) leaks into the next.
This is the PySD half of the run layer: :mod:`sd.simulation.simulate` chooses
the engine, checks the result and adds units and provenance.

PySD draws Vensim's RANDOM functions from numpy's global generator and ignores
their seed arguments. Vensim repeats a run's numbers for the same seeds, so
every run here starts that generator from :func:`random_seed` (the model's
SHA-256: the same model file gives the same numbers in every run, process and
worker; a changed seed argument changes the file, so the numbers), and puts
the generator's previous state back afterwards.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._common import time_text
from ..errors import SdInputError, SdRuntimeError
from ..model import Model
from ..scenarios import Scenario


def random_seed(model: Model) -> int:
    """The seed of numpy's global generator for a PySD run of ``model``."""
    return int(model.sha256[:8], 16)


class _restored:
    """Context manager putting numpy's global generator back to ``state``."""

    def __init__(self, state):
        self.state = state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        np.random.set_state(self.state)
        return False


def run(model: Model, scenario: Scenario | None = None, *,
        variables: Sequence[str] | None = None) -> xr.Dataset:
    """Simulate ``scenario`` (names already Vensim names) with a fresh PySD model.

    Parameters
    ----------
    model : Model
    scenario : Scenario, optional
        Overrides of constants, lookups and time settings.
    variables : sequence of str, optional
        Vensim names to keep (default: every variable PySD reports).

    Returns
    -------
    xarray.Dataset
        Dimension ``time`` (plus a subscript range per dimension of a
        subscripted variable); one data variable per model variable under
        its Vensim name. Values are returned as computed: NaN is not checked
        here.

    Raises
    ------
    SdInputError
        PySD refuses the overrides.
    SdRuntimeError
        An equation raised an arithmetic error (a division by zero in
        Python arithmetic); the message names the variable and the time.
    """
    scenario = scenario or Scenario()
    params = dict(scenario.constants)
    for name, (xs, ys) in scenario.lookups.items():
        params[name] = pd.Series(list(ys), index=list(xs))
    kwargs = {key: scenario.time[key] for key in ("final_time", "time_step", "saveper")
              if key in scenario.time}
    if "initial_time" in scenario.time:
        kwargs["initial_condition"] = (scenario.time["initial_time"], {})
    pysd_model = model.fresh()
    state = np.random.get_state()
    np.random.seed(random_seed(model))
    with _restored(state), warnings.catch_warnings():
        # PySD warns when params replace a constant; that is the point here.
        warnings.simplefilter("ignore")
        try:
            frame = pysd_model.run(params=params or None, return_columns=variables,
                                   progress=False, flatten_output=False, **kwargs)
        except (ValueError, KeyError) as exc:
            raise SdInputError(f"{model.path.name}, scenario {scenario.name!r}: "
                               f"PySD refused the run ({exc}).") from exc
        except NotImplementedError as exc:
            raise SdInputError(f"{model.path.name}: {_failing_variable(exc, model)!r} uses a case "
                               f"of a function PySD does not implement ({exc}).") from exc
        except ArithmeticError as exc:
            name = _failing_variable(exc, model)
            raise SdRuntimeError(
                f"{model.path.name}, scenario {scenario.name!r}: {type(exc).__name__} "
                f"({exc}) while computing {name!r} at time {time_text(pysd_model.time())}. "
                "Guard the division with XIDZ/ZIDZ or check the values that scenario gives "
                "its inputs.") from exc
        except (TypeError, AttributeError, IndexError, RecursionError) as exc:
            # PySD's generated code failing on a construct it builds wrongly (a macro
            # called with subscripted arguments is one): the model, not sd, is the input
            name = _failing_variable(exc, model)
            raise SdRuntimeError(
                f"{model.path.name}: PySD failed while computing {name!r} at time "
                f"{time_text(pysd_model.time())} ({type(exc).__name__}: {exc}). PySD does not "
                "build this equation correctly (macros called with subscripted arguments are "
                f"a known case); {_fast_alternative(model)}") from exc
    return _to_dataset(frame, model)


def _fast_alternative(model: Model) -> str:
    """Where to turn when PySD fails: the fast engine only if it accepts the model."""
    try:
        from ..engine import supports
    except ImportError:
        return "the fast engine is not available in this installation."
    ok, why = supports(model)
    if ok:
        return "the fast engine runs this model (--engine fast)."
    return f"the fast engine cannot run it either ({why})."


def _failing_variable(exc: BaseException, model: Model) -> str:
    """Vensim name of the innermost equation of the translation in the traceback."""
    by_py = {v.py_name: v.name for v in model.variables.values()}
    name, tb = "an equation", exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == str(model.translation):
            name = by_py.get(code.co_name, code.co_name)
        tb = tb.tb_next
    return name


def _to_dataset(frame: pd.DataFrame, model: Model) -> xr.Dataset:
    """PySD's unflattened frame (a subscripted value is a DataArray per cell) as
    a Dataset with the subscript ranges as dimensions, as the fast engine gives;
    the model's variables only (not the copies of expanded macros)."""
    times = frame.index.to_numpy(dtype=float)
    data = {}
    for column in frame.columns:
        if column == "Time" or column not in model.variables:
            continue
        first = frame[column].iloc[0]
        if isinstance(first, xr.DataArray):
            data[column] = xr.concat(list(frame[column]), dim="time").astype(float)
        else:
            data[column] = ("time", frame[column].to_numpy(dtype=float))
    return xr.Dataset(data, coords={"time": times})


def as_runs(datasets: list[xr.Dataset], labels) -> xr.Dataset:
    """Single runs (dim ``time``) stacked along ``run`` with coordinate ``labels``."""
    ds = xr.concat(datasets, dim=pd.Index(labels, name="run"), coords="minimal",
                   compat="override", join="override")
    return ds.transpose("run", "time", ...)


def nan_like(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every value NaN (the place of a run that produced no result)."""
    return ds.copy(data={name: np.full(da.shape, np.nan) for name, da in ds.data_vars.items()})
