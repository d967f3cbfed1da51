"""One run of a scenario on the chosen engine: the fast engine or PySD.

PySD defines what a model means; the fast engine (``sd.engine``) is verified
against it and is used where it supports every construct of the model.
"""
from __future__ import annotations

import warnings

import xarray as xr

from ..errors import SdInputError
from ..model.model import Model
from .pysd_backend import run as run_pysd
from ..scenarios import Scenario, validate


def simulate(model: Model, scenario: Scenario | None = None, *, engine: str = "auto",
             variables=None) -> tuple[xr.Dataset, str]:
    """Run ``scenario`` on ``engine`` (``auto``, ``fast`` or ``pysd``).

    Returns
    -------
    (xarray.Dataset, str)
        The results (dimension ``time``) and the name of the engine used.
    """
    scenario = validate(scenario or Scenario(), model)
    if engine == "pysd":
        return run_pysd(model, scenario, variables=variables), "pysd"
    try:
        from ..engine import run_scenario_fast
    except ImportError:
        if engine == "fast":
            raise SdInputError("the fast engine is not available in this installation; "
                               "use --engine pysd.") from None
        return run_pysd(model, scenario, variables=variables), "pysd"
    from ..engine import UnsupportedModel

    try:
        return run_scenario_fast(model, scenario, variables=variables), "fast"
    except UnsupportedModel as exc:
        if engine == "fast":
            raise SdInputError(f"the fast engine cannot run {model.path.name}: {exc}. "
                               "Use --engine pysd.") from None
        warnings.warn(f"fast engine refused {model.path.name} ({exc}); running PySD", stacklevel=2)
        return run_pysd(model, scenario, variables=variables), "pysd"
