"""The result of a sensitivity analysis: what its report reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd
import xarray as xr

from ..scenarios import Scenario
from .spec import SensitivitySpec


@dataclass(frozen=True)
class SensitivityResult:
    """What :func:`sd.sensitivity` computed.

    Attributes
    ----------
    spec : SensitivitySpec
    scenario : Scenario
        The base scenario every run started from.
    samples : pandas.DataFrame
        The Monte Carlo design (values), one row per run.
    metrics : pandas.DataFrame
        One row per Monte Carlo run, one column per metric (NaN for a
        failed run).
    sobol, morris : pandas.DataFrame or None
        Indices; None when not asked for or when a run of the design failed
        (``notes`` says so).
    ensemble : Path or xarray.Dataset
        The stored Monte Carlo trajectories: the NetCDF file they were
        streamed to, or the Dataset itself when no file was asked for.
    failures : mapping
        Design (``"monte carlo"``, ``"sobol"``, ``"morris"``) -> {run: why}.
    units : mapping
        Metric name -> units of its values.
    notes : tuple of str
    seconds : float
    provenance : mapping
    """

    spec: SensitivitySpec
    scenario: Scenario
    samples: pd.DataFrame
    metrics: pd.DataFrame
    sobol: pd.DataFrame | None
    morris: pd.DataFrame | None
    ensemble: Path | xr.Dataset
    failures: Mapping = field(default_factory=dict)
    units: Mapping = field(default_factory=dict)
    notes: tuple = ()
    seconds: float = 0.0
    provenance: Mapping = field(default_factory=dict)
