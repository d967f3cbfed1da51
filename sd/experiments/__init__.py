"""Experiments over calibrated sets: policies, distributions and testable statements.

:func:`experiment` runs a spec (``sd experiment SPEC``): for every case, the
named policies over the case's behaviour-consistent set (reusing a finished
calibration made from the same files, else calibrating), a table of the
outputs as distributions (median, 90 % range, probability of beating the
baseline with its Monte Carlo standard error), and verdicts on statements:
the model agrees, disagrees, or the documented outcomes cannot decide.
Files are written by :mod:`sd.report.experiment`.
"""
from .compute import DEFAULT_SEARCH, experiment
from .result import ClauseResult, ExperimentResult, Verdict
from .spec import ExperimentSpec, load_spec

__all__ = ["experiment", "load_spec", "ExperimentSpec", "ExperimentResult", "Verdict",
           "ClauseResult", "DEFAULT_SEARCH"]
