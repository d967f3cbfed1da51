"""Run one scenario of a model with PySD, isolated, into an ``xarray.Dataset``.

Every run loads a fresh PySD model from the cached translation, so nothing a
run changes (parameters, ``final_time``, ``time_step``) leaks into the next.
"""
from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import SdInputError, SdRuntimeError
from ..model.model import Model
from ..scenarios import Scenario, validate


def run(model: Model, scenario: Scenario | None = None, *,
        variables: Iterable[str] | None = None) -> xr.Dataset:
    """Simulate ``scenario`` (default: the model as written) with PySD.

    Parameters
    ----------
    model : Model
        From :func:`sd.model.load`.
    scenario : Scenario, optional
        Overrides of constants, lookups and time settings.
    variables : iterable of str, optional
        Vensim names to keep (default: every variable PySD reports).

    Returns
    -------
    xarray.Dataset
        Dimension ``time``; one data variable per model variable under its
        Vensim name, with ``units``, ``comment`` and ``kind`` attributes. The
        dataset's attributes record the model file, its SHA-256, the scenario
        and its overrides.

    Raises
    ------
    SdInputError
        A name in the scenario or ``variables`` is not in the model.
    SdRuntimeError
        The simulation produced NaN or infinity (the message names the first
        variable and time).
    """
    scenario = validate(scenario or Scenario(), model)
    columns = None
    if variables is not None:
        columns = [model.variable(v).name for v in variables]
    frame = _simulate(model, scenario, columns)
    _check_finite(frame, model, scenario)
    return _to_dataset(frame, model, scenario)


def _simulate(model: Model, scenario: Scenario, columns) -> pd.DataFrame:
    params = dict(scenario.constants)
    for name, (xs, ys) in scenario.lookups.items():
        params[name] = pd.Series(list(ys), index=list(xs))
    kwargs = {}
    for key in ("final_time", "time_step", "saveper"):
        if key in scenario.time:
            kwargs[key] = scenario.time[key]
    if "initial_time" in scenario.time:
        kwargs["initial_condition"] = (scenario.time["initial_time"], {})
    pysd_model = model.fresh()
    with warnings.catch_warnings():
        # PySD warns when params replace a constant; that is the point here.
        warnings.simplefilter("ignore")
        try:
            return pysd_model.run(params=params or None, return_columns=columns,
                                  progress=False, **kwargs)
        except (ValueError, KeyError) as exc:
            raise SdInputError(f"{model.path.name}, scenario {scenario.name!r}: "
                               f"PySD refused the run ({exc}).") from exc
        except ArithmeticError as exc:
            name = _failing_variable(exc, model)
            raise SdRuntimeError(
                f"{model.path.name}, scenario {scenario.name!r}: {type(exc).__name__} "
                f"({exc}) while computing {name!r}. Guard the division with XIDZ/ZIDZ or "
                "check the values that scenario gives its inputs.") from exc


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


def _check_finite(frame: pd.DataFrame, model: Model, scenario: Scenario) -> None:
    numeric = frame.select_dtypes("number")
    bad = ~np.isfinite(numeric.to_numpy(dtype=float))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise SdRuntimeError(
            f"{model.path.name}, scenario {scenario.name!r}: {numeric.columns[col]!r} is "
            f"{numeric.iat[row, col]} at time {numeric.index[row]}. Look for a division by "
            "zero or an overflow in that equation (XIDZ/ZIDZ guard divisions), or a TIME STEP "
            "too large for the fastest loop.")


def _to_dataset(frame: pd.DataFrame, model: Model, scenario: Scenario) -> xr.Dataset:
    frame = frame.copy()
    frame.index = pd.Index(frame.index.to_numpy(dtype=float), name="time")
    data_vars = {}
    for column in frame.columns:
        base = column.split("[", 1)[0]
        var = model.variables.get(base)
        attrs = {"units": var.units, "comment": var.comment, "kind": var.kind} if var else {}
        data_vars[column] = xr.Variable("time", frame[column].to_numpy(dtype=float), attrs)
    ds = xr.Dataset(data_vars, coords={"time": frame.index.to_numpy()})
    ds.attrs.update({
        "model_file": str(model.path),
        "model_sha256": model.sha256,
        "scenario": scenario.name,
        "scenario_source": scenario.source,
        "overrides": _describe_overrides(scenario),
    })
    return ds


def _describe_overrides(scenario: Scenario) -> str:
    parts = [f"{k}={v:g}" for k, v in scenario.constants.items()]
    parts += [f"{k}=lookup({len(x)} points)" for k, (x, _) in scenario.lookups.items()]
    parts += [f"{k}={v:g}" for k, v in scenario.time.items()]
    return "; ".join(parts)

